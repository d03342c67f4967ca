// Browser test of the demo chat page: the real server binary serves the page
// (GET /, GET /demo.js) and the WebSocket (/ws); headless Chromium (Debian's
// package, driven by playwright-core) plays two users, alice and bob, each in
// a browser context of its own.
//
// The server binary is $SWITCHBOARD_BIN, else <repo>/target/debug/switchboard.
// With DEMO_SERVE_DIST=1 the page is served from demo/dist by a small server
// in this file that forwards /ws to the binary, so a change to the page can
// be tested without rebuilding the binary (which embeds dist at compile time).
//
// Every wait is bounded (WAIT_MS); the tests of this file share one server
// and two browser contexts and run in order.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { connect as tcpConnect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const demoDir = resolve(here, "..");
const repo = resolve(demoDir, "..");
const distDir = join(demoDir, "dist");
const resultsDir = join(demoDir, "test-results");
const serverBin = process.env.SWITCHBOARD_BIN || join(repo, "target/debug/switchboard");
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const serveDist = process.env.DEMO_SERVE_DIST === "1";

/** Bound of every wait for something to show up. */
const WAIT_MS = 10_000;

// ---------------------------------------------------------------------------
// The server process

/** Rejects when `promise` takes longer than `ms`. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/**
 * Starts `switchboard serve --listen 127.0.0.1:PORT` (0: any free port) and
 * waits for its first stdout line, `switchboard listening on http://127.0.0.1:PORT`.
 */
async function startServer(port = 0) {
  if (!existsSync(serverBin)) {
    throw new Error(`server binary not found: ${serverBin} (build it with cargo build, or set SWITCHBOARD_BIN)`);
  }
  const child = spawn(serverBin, ["serve", "--listen", `127.0.0.1:${port}`], {
    env: {
      // The server reads SWITCHBOARD_* variables as its configuration: pass none through.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SWITCHBOARD_"))),
      SWITCHBOARD_SHUTDOWN_TIMEOUT: "3s",
      SWITCHBOARD_LIMITS__CLOSE_TIMEOUT: "300ms",
      SWITCHBOARD_LOG__LEVEL: "warn",
      NO_COLOR: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise((res) => child.once("exit", res));
  void exited.then(() => children.delete(child));
  const lines = createInterface({ input: child.stdout });
  const listening = await withTimeout(
    new Promise((res, rej) => {
      lines.once("line", (line) => {
        const m = /^switchboard listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m) res(Number(m[1]));
        else rej(new Error(`unexpected first line from the server: ${line}`));
      });
      child.once("exit", (code) => rej(new Error(`server exited with ${code}: ${stderr}`)));
    }),
    WAIT_MS,
    "the server to start",
  ).catch((err) => {
    child.kill("SIGKILL");
    throw err;
  });
  return {
    port: listening,
    logs: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * DEMO_SERVE_DIST=1: serves dist/index.html at / and dist/demo.js at
 * /demo.js, and forwards WebSocket upgrades of /ws to the server binary.
 */
async function startDistServer(targetPort) {
  const files = { "/": ["index.html", "text/html; charset=utf-8"], "/demo.js": ["demo.js", "text/javascript; charset=utf-8"] };
  const http = createServer(async (req, res) => {
    const file = files[new URL(req.url, "http://x").pathname];
    if (!file) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-store" });
    res.end(await readFile(join(distDir, file[0])));
  });
  http.on("upgrade", (req, socket, head) => {
    const upstream = tcpConnect(targetPort(), "127.0.0.1", () => {
      const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`).join("\r\n");
      upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const drop = () => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.on("error", drop);
    socket.on("error", drop);
    upstream.on("close", drop);
    socket.on("close", drop);
  });
  await new Promise((res) => http.listen(0, "127.0.0.1", res));
  return { port: http.address().port, close: () => new Promise((res) => http.close(res)) };
}

// ---------------------------------------------------------------------------
// Page helpers

/** Waits until `fn(arg)` is truthy in the page (bounded). */
function waitIn(page, what, fn, arg) {
  return page
    .waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 })
    .catch((err) => {
      throw new Error(`${what}: ${err.message.split("\n")[0]}`);
    });
}

/** The message lines of the current room: { sender, text, origin, offset }. */
function messages(page) {
  return page.$$eval('[data-testid="message"]', (els) =>
    els.map((el) => ({
      sender: el.dataset.sender,
      text: el.querySelector('[data-testid="message-text"]').textContent,
      origin: el.dataset.origin,
      offset: Number(el.dataset.offset),
    })),
  );
}

function notices(page) {
  return page.$$eval('[data-testid="notice"]', (els) => els.map((el) => el.textContent));
}

function members(page) {
  return page.$$eval('[data-testid="member"]', (els) => els.map((el) => el.dataset.user));
}

function waitForMessage(page, sender, text) {
  return waitIn(
    page,
    `${sender}'s message "${text}"`,
    ([s, t]) =>
      [...document.querySelectorAll('[data-testid="message"]')].some(
        (el) => el.dataset.sender === s && el.querySelector('[data-testid="message-text"]').textContent === t,
      ),
    [sender, text],
  );
}

function waitForMembers(page, expected) {
  return waitIn(
    page,
    `members ${expected.join(", ")}`,
    (want) =>
      JSON.stringify([...document.querySelectorAll('[data-testid="member"]')].map((el) => el.dataset.user)) ===
      JSON.stringify(want),
    expected,
  );
}

function waitForStatus(page, state) {
  return waitIn(page, `status ${state}`, (s) => document.querySelector('[data-testid="status"]').dataset.state === s, state);
}

async function signIn(page, name) {
  await page.getByTestId("name-input").fill(name);
  await page.getByTestId("connect-button").click();
  await waitForStatus(page, "connected");
  await waitIn(page, "signed in", (n) => document.querySelector('[data-testid="me"]').textContent === n, name);
}

async function joinRoom(page, room) {
  await page.getByTestId("room-input").fill(room);
  await page.getByTestId("join-button").click();
  await waitIn(page, `joined ${room}`, (r) => document.querySelector('[data-testid="current-room"]').textContent === `# ${r}`, room);
  await waitIn(page, "message box enabled", () => !document.querySelector('[data-testid="message-input"]').disabled);
}

async function say(page, sender, text) {
  await page.getByTestId("message-input").fill(text);
  await page.getByTestId("send-button").click();
  await waitForMessage(page, sender, text); // its own copy, pushed by the server
}

/**
 * Holds the page's next request for /demo.js until `release()`: a reload
 * then shows nothing and opens no connection until released.
 */
async function holdScript(page) {
  let release;
  const released = new Promise((res) => (release = res));
  let reached;
  const requested = new Promise((res) => (reached = res));
  let done;
  const continued = new Promise((res) => (done = res));
  const handler = async (route) => {
    reached();
    await released;
    try {
      await route.continue();
    } finally {
      done();
    }
  };
  await page.route("**/demo.js", handler, { times: 1 });
  return {
    requested: () => withTimeout(requested, WAIT_MS, "the page to request demo.js"),
    async release() {
      release();
      await withTimeout(continued, WAIT_MS, "the held demo.js request to go on");
    },
  };
}

// ---------------------------------------------------------------------------
// Shared state

let server;
let dist;
let base;
let browser;
const users = {};
const pageErrors = [];

async function openUser(name) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
  await page.goto(base, { timeout: WAIT_MS });
  users[name] = { context, page };
  return page;
}

before(async () => {
  server = await startServer();
  if (serveDist) {
    dist = await startDistServer(() => server.port);
    base = `http://127.0.0.1:${dist.port}/`;
  } else {
    base = `http://127.0.0.1:${server.port}/`;
  }
  await mkdir(resultsDir, { recursive: true });
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"], timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  await dist?.close();
  await server?.stop();
});

// ---------------------------------------------------------------------------
// Tests

test("the server serves the page and the bundle as built in demo/dist", { skip: serveDist && "DEMO_SERVE_DIST=1" }, async () => {
  const page = await fetch(base, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  const html = await page.text();
  const js = await fetch(new URL("demo.js", base), { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type") ?? "", /javascript/);
  const bundle = await js.text();
  const stale =
    html !== (await readFile(join(distDir, "index.html"), "utf8")) ||
    bundle !== (await readFile(join(distDir, "demo.js"), "utf8"));
  assert.ok(!stale, "the binary serves another build of the page than demo/dist: rebuild the server (cargo build) after npm run build");
});

test("alice and bob sign in, join the lobby and see each other", async () => {
  const alice = await openUser("alice");
  const bob = await openUser("bob");
  for (const [page, name] of [[alice, "alice"], [bob, "bob"]]) {
    assert.equal(await page.title(), "Switchboard demo chat");
    await signIn(page, name);
    assert.equal(await page.getByTestId("room-input").inputValue(), "lobby", "the room field defaults to lobby");
    await joinRoom(page, "lobby");
  }
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);
});

test("they chat both ways, in order", async () => {
  const { page: alice } = users.alice;
  const { page: bob } = users.bob;
  await say(alice, "alice", "hi bob");
  await waitForMessage(bob, "alice", "hi bob");
  await say(bob, "bob", "hello alice");
  await waitForMessage(alice, "bob", "hello alice");
  await say(alice, "alice", "how are you?");
  await waitForMessage(bob, "alice", "how are you?");
  const expected = [
    ["alice", "hi bob"],
    ["bob", "hello alice"],
    ["alice", "how are you?"],
  ];
  for (const page of [alice, bob]) {
    const got = await messages(page);
    assert.deepEqual(got.map((m) => [m.sender, m.text]), expected);
    assert.deepEqual(got.map((m) => m.offset), [1, 2, 3]);
    assert.ok(got.every((m) => m.origin === "live"));
  }
});

test("user text is shown as text, never as HTML", async () => {
  const { page: alice } = users.alice;
  const { page: bob } = users.bob;
  const evil = '<img src="x" onerror="window.__pwned = 1"><b>bold</b>';
  await say(alice, "alice", evil);
  await waitForMessage(bob, "alice", evil);
  for (const page of [alice, bob]) {
    assert.equal(await page.locator('[data-testid="messages"] img, [data-testid="messages"] b').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
  }
});

test("bob reloads while alice sends two messages: he recovers them and keeps the earlier ones", async () => {
  const { page: alice } = users.alice;
  const { page: bob } = users.bob;
  const before = await messages(bob);
  assert.equal(before.length, 4);

  // Reload bob's page, holding its script: his old connection closes and no
  // new one opens until alice has sent her messages.
  const held = await holdScript(bob);
  await bob.reload({ waitUntil: "commit", timeout: WAIT_MS });
  await held.requested();
  await waitForMembers(alice, ["alice"]);
  await say(alice, "alice", "are you there?");
  await say(alice, "alice", "sent while you reloaded");
  await held.release();

  // The page signs in again as bob, rejoins with `since` and shows the two.
  await waitForStatus(bob, "connected");
  await waitForMessage(bob, "alice", "sent while you reloaded");
  const got = await messages(bob);
  assert.deepEqual(
    got.map((m) => [m.sender, m.text, m.origin]),
    [
      ...before.map((m) => [m.sender, m.text, "kept"]),
      ["alice", "are you there?", "recovered"],
      ["alice", "sent while you reloaded", "recovered"],
    ],
  );
  assert.deepEqual(got.map((m) => m.offset), [1, 2, 3, 4, 5, 6]);
  assert.ok((await notices(bob)).some((n) => /Recovered 2 messages/.test(n)), "a notice tells how many were recovered");
  assert.equal(await bob.getByTestId("me").textContent(), "bob");
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);

  // Live messages continue after the recovered ones.
  await say(bob, "bob", "back again");
  await waitForMessage(alice, "bob", "back again");
  assert.deepEqual((await messages(bob)).map((m) => m.offset), [1, 2, 3, 4, 5, 6, 7]);
});

test("alice sends bob a direct message and bob answers", async () => {
  const { page: alice } = users.alice;
  const { page: bob } = users.bob;
  await alice.getByTestId("dm-to").fill("bob");
  await alice.getByTestId("dm-text").fill("psst, a secret");
  await alice.getByTestId("dm-send").click();
  await waitIn(bob, "bob receives the direct message", () =>
    [...document.querySelectorAll('[data-testid="dm"]')].some(
      (el) =>
        el.dataset.direction === "in" &&
        el.dataset.peer === "alice" &&
        el.querySelector('[data-testid="dm-body"]').textContent === "psst, a secret",
    ),
  );
  await waitIn(alice, "alice sees her sent message", () =>
    [...document.querySelectorAll('[data-testid="dm"]')].some((el) => el.dataset.direction === "out" && el.dataset.peer === "bob"),
  );
  // Direct messages stay out of the room.
  assert.ok(!(await messages(bob)).some((m) => m.text === "psst, a secret"));

  await bob.getByTestId("dm-to").fill("alice");
  await bob.getByTestId("dm-text").fill("got it");
  await bob.getByTestId("dm-send").click();
  await waitIn(alice, "alice receives the answer", () =>
    [...document.querySelectorAll('[data-testid="dm"]')].some(
      (el) => el.dataset.direction === "in" && el.querySelector('[data-testid="dm-body"]').textContent === "got it",
    ),
  );
  await waitIn(bob, "bob sees his sent answer", () =>
    [...document.querySelectorAll('[data-testid="dm"]')].some((el) => el.dataset.direction === "out" && el.dataset.peer === "alice"),
  );
  await bob.screenshot({ path: join(resultsDir, "chat.png") });
});

test("bob joins a second room; messages stay in their room", async () => {
  const { page: alice } = users.alice;
  const { page: bob } = users.bob;
  await joinRoom(bob, "random");
  await waitForMembers(bob, ["bob"]);
  assert.deepEqual(await messages(bob), []);
  await say(bob, "bob", "anyone in random?");
  // Alice's lobby shows nothing of it; bob's lobby tab is still there.
  await say(alice, "alice", "lobby only");
  assert.ok(!(await messages(alice)).some((m) => m.text === "anyone in random?"));
  await waitIn(bob, "unread badge on lobby", () =>
    document.querySelector('[data-testid="room-tab"][data-room="lobby"] [data-testid="unread"]')?.textContent === "1",
  );
  await bob.locator('[data-testid="room-tab"][data-room="lobby"]').click();
  await waitForMessage(bob, "alice", "lobby only");
});

test("a backend subscribes alice to a room, notifies her and removes her again (HTTP API)", async () => {
  const { page: alice } = users.alice;
  const api = async (method, path, body) => {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/v1${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(res.status, 200, `${method} ${path}: ${await res.text()}`);
  };
  const tab = '[data-testid="room-tab"][data-room="announcements"]';
  await api("PUT", "/users/alice/rooms/announcements", {});
  await waitIn(alice, "the announcements tab appears", (t) => !!document.querySelector(t), tab);
  await api("POST", "/rooms/announcements/messages", { payload: { text: "release 1.2 is out" }, sender: "ops" });
  await alice.locator(tab).click();
  await waitForMessage(alice, "ops", "release 1.2 is out");
  assert.ok((await notices(alice)).some((n) => n.includes("A backend added you")));

  await api("POST", "/users/alice/notifications", { payload: { text: "your export is ready" } });
  await waitIn(alice, "the user notification is shown", () =>
    [...document.querySelectorAll('[data-testid="dm"]')].some(
      (el) => el.dataset.direction === "note" && el.querySelector('[data-testid="dm-body"]').textContent === "your export is ready",
    ),
  );
  await api("POST", "/rooms/announcements/notifications", { payload: { text: "maintenance at noon" } });
  await waitIn(alice, "the room notification is in the room", () =>
    [...document.querySelectorAll('[data-testid="notice"]')].some((el) => el.textContent.includes("maintenance at noon")),
  );

  await api("DELETE", "/users/alice/rooms/announcements");
  await waitIn(alice, "the removal is shown", () =>
    [...document.querySelectorAll('[data-testid="notice"]')].some((el) => el.textContent.includes("removed you")),
  );
  await alice.getByTestId("leave-button").click();
  await waitIn(alice, "the announcements tab is gone", (t) => !document.querySelector(t), tab);
  await alice.locator('[data-testid="room-tab"][data-room="lobby"]').click();
  await waitIn(alice, "back in the lobby", () => document.querySelector('[data-testid="current-room"]').textContent === "# lobby");
});

test("presence follows bob leaving, rejoining and closing the page", async () => {
  const { page: alice } = users.alice;
  const { page: bob } = users.bob;
  await waitForMembers(alice, ["alice", "bob"]);
  await bob.getByTestId("leave-button").click();
  await waitForMembers(alice, ["alice"]);
  await waitIn(bob, "lobby tab gone", () => !document.querySelector('[data-testid="room-tab"][data-room="lobby"]'));

  await joinRoom(bob, "lobby");
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);

  await users.bob.context.close();
  delete users.bob;
  await waitForMembers(alice, ["alice"]);
});

test("after a server restart a reload says the missed messages could not be recovered", async () => {
  const { page: alice } = users.alice;
  const kept = await messages(alice);
  const held = await holdScript(alice);
  await alice.reload({ waitUntil: "commit", timeout: WAIT_MS });
  await held.requested();
  // A new server on the same port: same page origin (and sessionStorage),
  // new epoch, empty history.
  const port = server.port;
  await server.stop();
  server = await startServer(port);
  await held.release();

  await waitForStatus(alice, "connected");
  await waitIn(alice, "the recovery notice", () =>
    [...document.querySelectorAll('[data-testid="notice"]')].some((el) => /could not be recovered/.test(el.textContent)),
  );
  const got = await messages(alice);
  assert.deepEqual(got.map((m) => [m.sender, m.text]), kept.map((m) => [m.sender, m.text]));
  assert.ok(got.every((m) => m.origin === "kept"));
  await waitForMembers(alice, ["alice"]);
  // The room goes on in its new epoch.
  await say(alice, "alice", "fresh start");
  assert.equal((await messages(alice)).at(-1).offset, 1);
});

test("the status line follows a server restart and the SDK's own reconnect", async () => {
  const { page: alice } = users.alice;
  const port = server.port;
  await server.stop(); // closes alice's connection with 1001: she reconnects
  await waitForStatus(alice, "reconnecting");
  server = await startServer(port);
  // The SDK's backoff (full jitter, 0.5 s doubling) may wait a few seconds.
  await alice.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.state === "connected", null, {
    timeout: 2 * WAIT_MS,
    polling: 50,
  });
  assert.equal(await alice.getByTestId("status").textContent(), "connected as alice");
  // The new server has a new epoch: the rejoin could not recover.
  await waitIn(alice, "the reconnect notice", () =>
    [...document.querySelectorAll('[data-testid="notice"]')].some((el) => /lost while reconnecting/.test(el.textContent)),
  );
  await waitForMembers(alice, ["alice"]);
  await say(alice, "alice", "still here");
  assert.equal((await messages(alice)).at(-1).offset, 1);
});

test("no script error on any page", () => {
  assert.deepEqual(pageErrors, []);
});
