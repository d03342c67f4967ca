/**
 * Switchboard's demo chat page (served by the server at `GET /`).
 *
 * Everything goes through the TypeScript SDK: `Client.connect` with a
 * development-mode name, `join` with presence events (its subscription is
 * read with `for await`), `publish`, `direct`, `presence`, and the SDK's own
 * reconnect. What a page reload would lose lives in `sessionStorage` (per
 * tab): the name, the joined rooms, each room's timeline and the position
 * (offset and epoch) of the last message shown. After a reload the page
 * connects again as the same user and rejoins each room with `since` that
 * position, so the messages published meanwhile appear; when the server
 * cannot recover them (`recovered = false`) the timeline says so.
 *
 * User text only ever reaches the page through `textContent`.
 */
import {
  Client,
  ConnectionError,
  ServerError,
  SwitchboardError,
  type MemberJoined,
  type MemberLeft,
  type ReceivedDirectMessage,
  type ReceivedMessage,
  type ReceivedNotification,
  type StateChange,
  type Subscription,
} from "../../clients/typescript/src/index.js";

// ---------------------------------------------------------------------------
// Model

/** One line of a room's timeline: a message or a notice from the page. */
type Entry =
  | {
      kind: "message";
      offset: string;
      sender: string;
      text: string;
      ts: number;
      /** How it reached this page: live push, recovered after a reconnect, or kept from before a reload. */
      origin: "live" | "recovered" | "kept";
    }
  | { kind: "notice"; text: string; level: "info" | "warn" };

/** A room position as stored (offsets as decimal strings: they are uint64). */
interface StoredPosition {
  offset: string;
  epoch: string;
}

interface Room {
  readonly name: string;
  sub: Subscription | undefined;
  entries: Entry[];
  /** Position of the last message shown (or of the room when joined). */
  position: StoredPosition | undefined;
  /** Present connections: client id → user. */
  members: Map<string, string>;
  /** Presence events that arrived while a presence snapshot was in flight. */
  pendingPresence: ((members: Map<string, string>) => void)[] | undefined;
  unread: number;
}

interface DirectEntry {
  /** Sent, received, or a backend's notification to this user. */
  direction: "in" | "out" | "note";
  peer: string;
  text: string;
  ts: number;
}

/** Most timeline entries kept per room (in memory and in sessionStorage). */
const MAX_ENTRIES = 200;
/** Most direct messages kept. */
const MAX_DIRECTS = 100;
/** Retries of a publish or direct message that failed temporarily (same idempotency key). */
const SEND_RETRIES = 3;

let client: Client | undefined;
/** Bumped on every sign-in and sign-out, so late callbacks of an old client are ignored. */
let generation = 0;
const rooms = new Map<string, Room>();
let current: string | undefined;
let directs: DirectEntry[] = [];

// ---------------------------------------------------------------------------
// sessionStorage (per tab; survives reloads). Failures (storage disabled or
// full) only cost the recovery after a reload.

const PREFIX = "switchboard-demo:";

function load<T>(key: string): T | undefined {
  try {
    const raw = sessionStorage.getItem(PREFIX + key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  } catch {
    return undefined;
  }
}

function save(key: string, value: unknown): void {
  try {
    sessionStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // Storage unavailable or full.
  }
}

function forget(key: string): void {
  try {
    sessionStorage.removeItem(PREFIX + key);
  } catch {
    // Storage unavailable.
  }
}

function forgetAll(): void {
  try {
    for (let i = sessionStorage.length - 1; i >= 0; i--) {
      const key = sessionStorage.key(i);
      if (key?.startsWith(PREFIX)) {
        sessionStorage.removeItem(key);
      }
    }
  } catch {
    // Storage unavailable.
  }
}

interface StoredRoom {
  position?: StoredPosition;
  entries: Entry[];
}

function saveRoom(room: Room): void {
  if (rooms.get(room.name) !== room) {
    return; // Left (or signed out): nothing to keep.
  }
  const stored: StoredRoom = { entries: room.entries };
  if (room.position) {
    stored.position = room.position;
  }
  save(`room:${room.name}`, stored);
}

function saveRoomList(): void {
  save("rooms", [...rooms.keys()]);
  if (current !== undefined) {
    save("current", current);
  }
}

// ---------------------------------------------------------------------------
// DOM

function el<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`demo: #${id} missing from index.html`);
  }
  return found as T;
}

/** Creates an element with text content (never HTML). */
function make(tag: string, props: { className?: string; text?: string; testid?: string } = {}): HTMLElement {
  const node = document.createElement(tag);
  if (props.className !== undefined) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  if (props.testid !== undefined) node.dataset["testid"] = props.testid;
  return node;
}

const ui = {
  status: el<HTMLElement>("status"),
  me: el<HTMLElement>("me"),
  meName: el<HTMLElement>("me-name"),
  signout: el<HTMLButtonElement>("signout"),
  error: el<HTMLElement>("error"),
  login: el<HTMLElement>("login"),
  loginForm: el<HTMLFormElement>("login-form"),
  name: el<HTMLInputElement>("name"),
  connect: el<HTMLButtonElement>("connect"),
  app: el<HTMLElement>("app"),
  rooms: el<HTMLUListElement>("rooms"),
  joinForm: el<HTMLFormElement>("join-form"),
  roomName: el<HTMLInputElement>("room-name"),
  roomTitle: el<HTMLElement>("room-title"),
  leave: el<HTMLButtonElement>("leave"),
  messages: el<HTMLOListElement>("messages"),
  sendForm: el<HTMLFormElement>("send-form"),
  message: el<HTMLInputElement>("message"),
  send: el<HTMLButtonElement>("send"),
  memberCount: el<HTMLElement>("member-count"),
  members: el<HTMLUListElement>("members"),
  dms: el<HTMLUListElement>("dms"),
  dmForm: el<HTMLFormElement>("dm-form"),
  dmTo: el<HTMLInputElement>("dm-to"),
  dmText: el<HTMLInputElement>("dm-text"),
};

function setStatus(state: string, text: string): void {
  ui.status.dataset["state"] = state;
  ui.status.textContent = text;
}

function showError(message: string | undefined): void {
  ui.error.hidden = message === undefined;
  ui.error.textContent = message ?? "";
}

function describe(err: unknown): string {
  if (err instanceof SwitchboardError) {
    return err.message.replace(/^switchboard: /, "");
  }
  return err instanceof Error ? err.message : String(err);
}

function formatTime(ts: number): string {
  if (!(ts > 0)) return "";
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderRooms(): void {
  const items: HTMLElement[] = [];
  for (const room of rooms.values()) {
    const li = make("li");
    const button = make("button", { testid: "room-tab" }) as HTMLButtonElement;
    button.type = "button";
    button.dataset["room"] = room.name;
    button.setAttribute("role", "tab");
    button.setAttribute("aria-selected", String(room.name === current));
    button.append(make("span", { text: `# ${room.name}` }));
    if (room.unread > 0) {
      button.append(make("span", { className: "badge", text: String(room.unread), testid: "unread" }));
    }
    button.addEventListener("click", () => selectRoom(room.name));
    li.append(button);
    items.push(li);
  }
  ui.rooms.replaceChildren(...items);
}

function entryNode(entry: Entry, me: string): HTMLElement {
  if (entry.kind === "notice") {
    return make("li", { className: `notice ${entry.level}`, text: entry.text, testid: "notice" });
  }
  const li = make("li", { testid: "message" });
  if (entry.sender === me) li.classList.add("mine");
  li.dataset["offset"] = entry.offset;
  li.dataset["origin"] = entry.origin;
  li.dataset["sender"] = entry.sender;
  li.append(
    make("span", { className: "sender", text: entry.sender, testid: "message-sender" }),
    make("span", { className: "text", text: entry.text, testid: "message-text" }),
    make("span", { className: "time", text: formatTime(entry.ts) }),
  );
  return li;
}

function renderMessages(): void {
  const room = current === undefined ? undefined : rooms.get(current);
  ui.roomTitle.textContent = room ? `# ${room.name}` : "no room";
  ui.leave.disabled = !room;
  ui.message.disabled = !room;
  ui.send.disabled = !room;
  ui.message.placeholder = room ? `Message # ${room.name}` : "Join a room to chat";
  if (!room) {
    ui.messages.replaceChildren(make("li", { className: "empty", text: "Join a room to start chatting." }));
    return;
  }
  const me = client?.user ?? "";
  if (room.entries.length === 0) {
    ui.messages.replaceChildren(make("li", { className: "empty", text: "No messages yet. Say hello!" }));
    return;
  }
  ui.messages.replaceChildren(...room.entries.map((e) => entryNode(e, me)));
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** Appends one entry to the current room's list without redrawing it. */
function appendEntry(entry: Entry): void {
  const list = ui.messages;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.querySelector(".empty")?.remove();
  list.append(entryNode(entry, client?.user ?? ""));
  while (list.children.length > MAX_ENTRIES) {
    list.firstElementChild?.remove();
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderMembers(): void {
  const room = current === undefined ? undefined : rooms.get(current);
  const me = client?.user ?? "";
  // Presence is per connection; show each user once.
  const present = new Set(room?.members.values() ?? []);
  if (room?.sub && me !== "") present.add(me);
  const users = [...present].sort((a, b) => a.localeCompare(b));
  ui.memberCount.textContent = String(users.length);
  ui.members.replaceChildren(
    ...users.map((user) => {
      const li = make("li", { testid: "member" });
      li.dataset["user"] = user;
      li.append(make("span", { text: user }));
      if (user === me) li.append(" ", make("span", { className: "you", text: "(you)" }));
      return li;
    }),
  );
}

function renderDirects(): void {
  ui.dms.replaceChildren(
    ...directs.map((dm) => {
      const li = make("li", { testid: "dm" });
      li.dataset["direction"] = dm.direction;
      li.dataset["peer"] = dm.peer;
      li.append(
        make("span", { className: "dm-peer", text: dm.direction === "out" ? `→ ${dm.peer}` : dm.peer, testid: "dm-peer" }),
        make("span", { text: dm.text, testid: "dm-body" }),
        make("span", { className: "time", text: formatTime(dm.ts) }),
      );
      return li;
    }),
  );
  ui.dms.scrollTop = ui.dms.scrollHeight;
}

function renderAll(): void {
  renderRooms();
  renderMessages();
  renderMembers();
  renderDirects();
}

function selectRoom(name: string | undefined): void {
  current = name;
  const room = name === undefined ? undefined : rooms.get(name);
  if (room) room.unread = 0;
  saveRoomList();
  renderRooms();
  renderMessages();
  renderMembers();
}

function setSignedIn(user: string | undefined): void {
  ui.login.hidden = user !== undefined;
  ui.app.hidden = user === undefined;
  ui.me.hidden = user === undefined;
  ui.meName.textContent = user ?? "";
}

// ---------------------------------------------------------------------------
// Rooms

function addEntry(room: Room, entry: Entry): void {
  room.entries.push(entry);
  if (room.entries.length > MAX_ENTRIES) {
    room.entries.splice(0, room.entries.length - MAX_ENTRIES);
  }
  if (room.name === current) {
    appendEntry(entry);
  } else if (entry.kind === "message") {
    room.unread++;
    renderRooms();
  }
}

function notice(room: Room, text: string, level: "info" | "warn" = "info"): void {
  addEntry(room, { kind: "notice", text, level });
  saveRoom(room);
}

/** Records a message the subscription delivered, and the position to recover from after it. */
function onMessage(room: Room, sub: Subscription, msg: ReceivedMessage, origin: "live" | "recovered"): void {
  addEntry(room, {
    kind: "message",
    offset: msg.offset.toString(),
    sender: msg.sender,
    text: msg.typeName === "" || msg.text !== "" ? msg.text : `[${msg.typeName}, ${msg.data.byteLength} bytes]`,
    ts: Number(msg.timestampMs),
    origin,
  });
  // The subscription's position is that of the last message it delivered:
  // this one unless more wait in the iterator's buffer.
  const position = sub.position;
  room.position = {
    offset: sub.buffered === 0 ? position.offset.toString() : msg.offset.toString(),
    epoch: position.epoch,
  };
  saveRoom(room);
}

/** Applies a presence change now, or after the snapshot in flight. */
function presenceChange(room: Room, change: (members: Map<string, string>) => void): void {
  if (room.pendingPresence) {
    room.pendingPresence.push(change);
  } else {
    change(room.members);
  }
  if (room.name === current) renderMembers();
}

/** Reads who is in the room now; events arriving meanwhile are applied on top. */
async function refreshPresence(c: Client, room: Room): Promise<void> {
  const pending: ((members: Map<string, string>) => void)[] = [];
  room.pendingPresence = pending;
  let members: Map<string, string> | undefined;
  let failure: unknown;
  try {
    const list = await c.presence(room.name);
    members = new Map(list.map((m) => [m.client, m.user] as const));
  } catch (err) {
    failure = err;
  }
  if (room.pendingPresence !== pending || c !== client) {
    return; // A newer snapshot is on its way (or signed out).
  }
  room.pendingPresence = undefined;
  if (members === undefined) {
    members = room.members;
    notice(room, `Could not read who is here: ${describe(failure)}`, "warn");
  }
  for (const change of pending) change(members);
  room.members = members;
  if (room.name === current) renderMembers();
}

function newRoom(name: string, stored: StoredRoom | undefined): Room {
  return {
    name,
    sub: undefined,
    entries: (stored?.entries ?? []).map((e): Entry => (e.kind === "message" ? { ...e, origin: "kept" } : e)),
    position: stored?.position,
    members: new Map(),
    pendingPresence: undefined,
    unread: 0,
  };
}

/**
 * Joins `name` (recovering from `room.position` when there is one: after a
 * reload) and reads its subscription until it ends.
 */
async function joinRoom(c: Client, room: Room): Promise<void> {
  const since = room.position;
  const sub = await c.join(room.name, {
    presenceEvents: true,
    ...(since ? { since: { offset: BigInt(since.offset), epoch: since.epoch } } : {}),
  });
  if (c !== client) {
    return; // Signed out meanwhile (closing the client ended the subscription).
  }
  if (rooms.get(room.name) !== room) {
    await sub.leave(); // Left while the join was in flight.
    return;
  }
  follow(c, room, sub, since);
}

/**
 * A backend subscribed this connection to a room through the HTTP API: show
 * the room and follow it like one the user joined.
 */
function onSubscribed(c: Client, sub: Subscription): void {
  if (c !== client) return;
  let room = rooms.get(sub.room);
  if (!room) {
    room = newRoom(sub.room, undefined);
    rooms.set(sub.room, room);
    saveRoomList();
  }
  follow(c, room, sub, undefined);
  notice(room, "A backend added you to this room.");
  if (current === undefined) selectRoom(sub.room);
  renderRooms();
}

/** A backend's notification: in its room's timeline, or with the direct messages. */
function onNotification(notification: ReceivedNotification): void {
  const room = notification.room ? rooms.get(notification.room) : undefined;
  if (room) {
    notice(room, `Notification: ${notification.text}`);
    return;
  }
  addDirect({ direction: "note", peer: "notification", text: notification.text, ts: Number(notification.timestampMs) });
}

/** Reads a room's subscription (joined, or made by a backend) until it ends. */
function follow(c: Client, room: Room, sub: Subscription, since: Room["position"]): void {
  room.sub = sub;
  // With `since`, the recovered messages are already at the head of the iterator.
  let recovered = since && sub.recovered ? sub.buffered : 0;
  if (since && !sub.recovered) {
    notice(
      room,
      "Messages sent while you were away could not be recovered (the server restarted or its history no longer reaches back). New messages continue below.",
      "warn",
    );
  } else if (recovered > 0) {
    notice(room, `Recovered ${recovered} message${recovered === 1 ? "" : "s"} sent while you were away.`);
  }
  if (!since || !sub.recovered) {
    room.position = { offset: sub.position.offset.toString(), epoch: sub.position.epoch };
  }
  saveRoom(room);

  sub.on("memberJoined", (e: MemberJoined) => {
    const m = e.member;
    if (m) presenceChange(room, (members) => members.set(m.client, m.user));
  });
  sub.on("memberLeft", (e: MemberLeft) => {
    const m = e.member;
    if (m) presenceChange(room, (members) => members.delete(m.client));
  });
  // After the SDK reconnected on its own and rejoined with `since`: the
  // `missed` messages it recovered are next in the iterator. Presence events
  // were missed meanwhile, so read the members again.
  sub.on("rejoined", ({ recovered: ok, missed }) => {
    if (ok && missed > 0) {
      recovered += missed;
      notice(room, `Reconnected; recovered ${missed} missed message${missed === 1 ? "" : "s"}.`);
    }
    void refreshPresence(c, room);
  });
  sub.on("recoveryFailed", ({ position }) => {
    // Live delivery goes on from the room's current position (a new epoch).
    room.position = { offset: position.offset.toString(), epoch: position.epoch };
    notice(room, "Some messages may have been lost while reconnecting (the server restarted or its history expired).", "warn");
  });
  sub.on("overflow", () => notice(room, "Some messages were skipped because the page fell behind.", "warn"));
  void refreshPresence(c, room);

  void (async () => {
    try {
      for await (const msg of sub) {
        onMessage(room, sub, msg, recovered > 0 ? "recovered" : "live");
        if (recovered > 0) recovered--;
      }
      // Ended without the user leaving: a backend unsubscribed the connection.
      if (c === client && rooms.get(room.name) === room && room.sub === sub) {
        room.sub = undefined;
        notice(room, "A backend removed you from this room; join it again to follow it.", "warn");
      }
    } catch (err) {
      if (c === client && rooms.get(room.name) === room) {
        notice(room, `Stopped receiving messages: ${describe(err)}`, "warn");
      }
    }
  })();
}

async function joinByName(name: string): Promise<void> {
  const c = client;
  if (!c) return;
  const existing = rooms.get(name);
  if (existing) {
    selectRoom(name);
    // A room a backend removed the user from is shown until joined again.
    if (!existing.sub) await joinRoom(c, existing);
    return;
  }
  const room = newRoom(name, undefined);
  rooms.set(name, room);
  selectRoom(name);
  try {
    await joinRoom(c, room);
  } catch (err) {
    if (rooms.get(name) === room) {
      rooms.delete(name);
      forget(`room:${name}`);
      selectRoom(rooms.keys().next().value);
    }
    throw err;
  }
}

async function leaveCurrent(): Promise<void> {
  const name = current;
  const room = name === undefined ? undefined : rooms.get(name);
  if (!room || name === undefined) return;
  rooms.delete(name);
  forget(`room:${name}`);
  selectRoom(rooms.keys().next().value);
  renderRooms();
  await room.sub?.leave();
}

// ---------------------------------------------------------------------------
// Connection

function wsUrl(): string {
  // Same origin, next to the page (`/ws` when the page is `/`).
  const url = new URL("ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.toString();
}

function onState(c: Client, change: StateChange): void {
  if (c !== client) return;
  switch (change.state) {
    case "connecting":
      setStatus("connecting", "connecting…");
      break;
    case "connected":
      setStatus("connected", `connected as ${c.user}`);
      showError(undefined);
      break;
    case "reconnecting": {
      const seconds = ((change.delayMs ?? 0) / 1000).toFixed(1);
      const code = change.code === undefined ? "" : `, closed ${change.code}`;
      setStatus("reconnecting", `connection lost${code}; reconnecting in ${seconds} s (attempt ${(change.attempt ?? 0) + 1})`);
      break;
    }
    case "closed":
      setStatus("closed", `disconnected${change.code === undefined ? "" : ` (${change.code}${change.reason ? `: ${change.reason}` : ""})`}`);
      if (change.error) {
        // The server ended the session for good (e.g. refused the name).
        showError(`Disconnected: ${describe(change.error)}`);
        teardown();
      }
      break;
  }
}

function onDirect(dm: ReceivedDirectMessage): void {
  addDirect({ direction: "in", peer: dm.sender, text: dm.text, ts: Number(dm.timestampMs) });
}

function addDirect(dm: DirectEntry): void {
  directs.push(dm);
  if (directs.length > MAX_DIRECTS) directs.splice(0, directs.length - MAX_DIRECTS);
  save("directs", directs);
  renderDirects();
}

/** Forgets the client and the rooms in memory (not in storage). */
function teardown(): void {
  generation++;
  client = undefined;
  rooms.clear();
  current = undefined;
  directs = [];
  setSignedIn(undefined);
  ui.connect.disabled = false;
  renderAll();
}

/**
 * Signs in as `name`. With `restore`, the rooms, timelines and direct
 * messages stored by this tab for the same name are brought back and each
 * room is rejoined from its stored position.
 */
async function signIn(name: string, restore: boolean): Promise<void> {
  const gen = ++generation;
  ui.connect.disabled = true;
  showError(undefined);
  setStatus("connecting", "connecting…");
  let c: Client;
  for (let attempt = 0; ; attempt++) {
    try {
      c = await Client.connect(wsUrl(), { name });
      break;
    } catch (err) {
      if (gen !== generation) {
        return;
      }
      ui.connect.disabled = false;
      // Restoring after a reload: the server may be restarting, so keep
      // trying (backoff with jitter, at most 10 s) unless it refused us.
      if (!restore || err instanceof ServerError) {
        setStatus("closed", "not connected");
        showError(`Could not connect: ${describe(err)}`);
        return;
      }
      const delayMs = Math.min(10_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      setStatus("reconnecting", `could not connect; retrying in ${(delayMs / 1000).toFixed(1)} s`);
      await sleep(delayMs);
      if (gen !== generation) {
        return;
      }
    }
  }
  if (gen !== generation) {
    void c.close();
    return;
  }
  client = c;
  c.on("state", (change) => onState(c, change));
  c.on("directMessage", (dm) => {
    if (c === client) onDirect(dm);
  });
  c.on("notification", (notification) => {
    if (c === client) onNotification(notification);
  });
  c.on("subscribed", (sub) => onSubscribed(c, sub));
  c.on("error", (err) => {
    if (c === client) showError(describe(err));
  });
  setStatus("connected", `connected as ${c.user}`);
  if (!restore || load<string>("name") !== c.user) {
    forgetAll();
  }
  save("name", c.user);
  setSignedIn(c.user);

  const names = load<string[]>("rooms") ?? [];
  directs = load<DirectEntry[]>("directs") ?? [];
  for (const roomName of names) {
    rooms.set(roomName, newRoom(roomName, load<StoredRoom>(`room:${roomName}`)));
  }
  const stored = load<string>("current");
  current = stored !== undefined && rooms.has(stored) ? stored : names[0];
  renderAll();
  await Promise.all(
    [...rooms.values()].map(async (room) => {
      try {
        await joinRoom(c, room);
      } catch (err) {
        if (c === client) notice(room, `Could not rejoin: ${describe(err)}`, "warn");
      }
    }),
  );
  if (c === client) ui.roomName.focus();
}

async function signOut(): Promise<void> {
  const c = client;
  forgetAll();
  teardown();
  setStatus("idle", "not connected");
  await c?.close();
}

// ---------------------------------------------------------------------------
// Sending

function idempotencyKey(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Retries a send that failed temporarily (connection lost, rate limited). */
async function withRetry<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (attempt >= SEND_RETRIES || !(err instanceof SwitchboardError) || !err.temporary) throw err;
      await sleep(err instanceof ServerError && err.retryAfterMs > 0 ? err.retryAfterMs : 500);
    }
  }
}

// ---------------------------------------------------------------------------
// Wiring

ui.loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (name !== "") void signIn(name, name === load<string>("name"));
});

ui.signout.addEventListener("click", () => void signOut());

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.roomName.value.trim();
  if (name === "") return;
  showError(undefined);
  joinByName(name).then(
    () => ui.message.focus(),
    (err: unknown) => showError(`Could not join ${name}: ${describe(err)}`),
  );
});

ui.leave.addEventListener("click", () => {
  leaveCurrent().catch((err: unknown) => {
    if (!(err instanceof ConnectionError)) showError(`Could not leave: ${describe(err)}`);
  });
});

ui.sendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const c = client;
  const room = current;
  const text = ui.message.value;
  if (!c || room === undefined || text.trim() === "") return;
  ui.message.value = "";
  const key = idempotencyKey();
  withRetry(() => c.publish(room, text, { idempotencyKey: key })).catch((err: unknown) => {
    showError(`Message not sent: ${describe(err)}`);
    if (ui.message.value === "") ui.message.value = text;
  });
});

ui.dmForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const c = client;
  const to = ui.dmTo.value.trim();
  const text = ui.dmText.value;
  if (!c || to === "" || text.trim() === "") return;
  ui.dmText.value = "";
  // Direct messages carry no idempotency key, so a failed one is not retried
  // (it may have been delivered); the text goes back into the box instead.
  c.direct(to, text).then(
    () => addDirect({ direction: "out", peer: to, text, ts: Date.now() }),
    (err: unknown) => {
      showError(`Direct message not sent: ${describe(err)}`);
      if (ui.dmText.value === "") ui.dmText.value = text;
    },
  );
});

// After a reload: sign in again as the same user and recover.
const storedName = load<string>("name");
renderAll();
if (storedName !== undefined && storedName !== "") {
  ui.name.value = storedName;
  void signIn(storedName, true);
} else {
  setStatus("idle", "not connected");
  ui.name.focus();
}
