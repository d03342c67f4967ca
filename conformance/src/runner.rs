//! The reference scenario runner.
//!
//! Replays a [`Scenario`] against a live server with one minimal client per
//! alias. The client implements the part of the SDK contract that scenarios
//! observe: request ids and replies, per-stream push queues, dedupe by
//! offset, and, after [`DropConnection`](crate::proto::testing::DropConnection),
//! a reconnect that rejoins every room with `since` = the last offset it
//! delivered. The runner is sequential: a client reads its socket only while
//! one of its steps waits, and whatever arrives meanwhile is queued in order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use switchboard::proto::client_frame::Command;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{
    ClientFrame, ConnectRequest, DirectRequest, ErrorCode, HistoryRequest, JoinReply, JoinRequest,
    LeaveRequest, Payload, PresenceRequest, PublishRequest, ServerFrame, StreamPosition,
};

use crate::proto::chat::{ChatMessage, TypingEvent};
use crate::proto::testing::{expect_push, step::Action, ExpectPush, Scenario, Step};

/// Default wait of `expect_push`.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default wait of `expect_no_push`.
const NO_PUSH_WAIT: Duration = Duration::from_millis(300);
/// Upper bound on waiting for any reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a scenario failed: the step, the client, and what went wrong.
#[derive(Debug)]
pub struct ScenarioError {
    /// The scenario's name.
    pub scenario: String,
    /// Index of the failing step, from 0.
    pub step: usize,
    /// The acting client's alias.
    pub client: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario {}: step {} ({}): {}",
            self.scenario, self.step, self.client, self.message
        )
    }
}

impl std::error::Error for ScenarioError {}

/// Replays `scenario` against the server whose WebSocket endpoint is `url`
/// (e.g. `ws://127.0.0.1:4321/ws`).
pub async fn run(url: &str, scenario: &Scenario) -> Result<(), ScenarioError> {
    let mut clients: HashMap<String, RefClient> = HashMap::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let fail = |message: String| ScenarioError {
            scenario: scenario.name.clone(),
            step: index,
            client: step.client.clone(),
            message,
        };
        perform(url, &mut clients, step).await.map_err(fail)?;
    }
    Ok(())
}

async fn perform(
    url: &str,
    clients: &mut HashMap<String, RefClient>,
    step: &Step,
) -> Result<(), String> {
    let action = step.action.as_ref().ok_or("step has no action")?;
    if let Action::Connect(connect) = action {
        if clients.contains_key(&step.client) {
            return Err("client is already connected".into());
        }
        let expected = code(connect.expect_error);
        let mut client = RefClient::new(url, &connect.name);
        match (client.connect().await, expected) {
            (Ok(()), None) => {
                clients.insert(step.client.clone(), client);
            }
            (Ok(()), Some(want)) => return Err(format!("connect succeeded, want {want:?}")),
            (Err(Failure::Reply(got)), Some(want)) if got == want => {}
            (Err(e), _) => return Err(format!("connect: {e}")),
        }
        return Ok(());
    }
    let client = clients
        .get_mut(&step.client)
        .ok_or_else(|| format!("unknown client {:?}: connect it first", step.client))?;
    match action {
        Action::Connect(_) => unreachable!("handled above"),
        Action::Join(join) => {
            let reply = client
                .join(&join.room, join.presence_events, join.since.clone())
                .await;
            let Some(reply) = outcome(reply, join.expect_error)? else {
                return Ok(());
            };
            if let Some(want) = join.expect_recovered {
                if reply.recovered != want {
                    return Err(format!("recovered = {}, want {want}", reply.recovered));
                }
            }
            Ok(())
        }
        Action::Leave(leave) => {
            let reply = client.leave(&leave.room).await;
            outcome(reply, leave.expect_error).map(drop)
        }
        Action::Publish(publish) => {
            let payload = typed_round_trip(publish.payload.clone().unwrap_or_default())?;
            let reply = client
                .request(Command::Publish(PublishRequest {
                    room: publish.room.clone(),
                    payload: Some(payload),
                    idempotency_key: publish.idempotency_key.clone(),
                }))
                .await;
            let Some(kind) = outcome(reply, publish.expect_error)? else {
                return Ok(());
            };
            let Kind::Publish(ack) = kind else {
                return Err(format!("want a publish reply, got {kind:?}"));
            };
            if publish.expect_offset != 0 && ack.offset != publish.expect_offset {
                return Err(format!(
                    "acknowledged offset {}, want {}",
                    ack.offset, publish.expect_offset
                ));
            }
            if ack.duplicate != publish.expect_duplicate {
                return Err(format!(
                    "duplicate = {}, want {}",
                    ack.duplicate, publish.expect_duplicate
                ));
            }
            Ok(())
        }
        Action::Direct(direct) => {
            let payload = typed_round_trip(direct.payload.clone().unwrap_or_default())?;
            let reply = client
                .request(Command::Direct(DirectRequest {
                    user: direct.user.clone(),
                    payload: Some(payload),
                }))
                .await;
            outcome(reply, direct.expect_error).map(drop)
        }
        Action::History(history) => {
            let reply = client
                .request(Command::History(HistoryRequest {
                    room: history.room.clone(),
                    limit: history.limit,
                    before: history.before,
                    after: history.after,
                }))
                .await;
            let Some(kind) = outcome(reply, history.expect_error)? else {
                return Ok(());
            };
            let Kind::History(page) = kind else {
                return Err(format!("want a history reply, got {kind:?}"));
            };
            if page.has_more != history.expect_has_more {
                return Err(format!(
                    "has_more = {}, want {}",
                    page.has_more, history.expect_has_more
                ));
            }
            matches(
                &json(&history.expect_messages),
                &json(&page.messages),
                "messages",
            )
        }
        Action::Presence(presence) => {
            let reply = client
                .request(Command::Presence(PresenceRequest {
                    room: presence.room.clone(),
                }))
                .await;
            let Some(kind) = outcome(reply, presence.expect_error)? else {
                return Ok(());
            };
            let Kind::Presence(reply) = kind else {
                return Err(format!("want a presence reply, got {kind:?}"));
            };
            let mut users: Vec<_> = reply.members.into_iter().map(|m| m.user).collect();
            users.sort();
            let mut want = presence.expect_users.clone();
            want.sort();
            if users != want {
                return Err(format!("members {users:?}, want {want:?}"));
            }
            Ok(())
        }
        Action::ExpectPush(expect) => client.expect_push(expect).await,
        Action::ExpectNoPush(expect) => {
            let wait = match expect.wait_ms {
                0 => NO_PUSH_WAIT,
                ms => Duration::from_millis(ms.into()),
            };
            client.expect_no_push(wait).await
        }
        Action::DropConnection(_) => client.drop_and_recover().await,
        Action::Close(_) => {
            client.close().await;
            Ok(())
        }
    }
}

/// Checks a command's result against an expected error code (0: success
/// expected). Returns the reply when one was expected.
fn outcome<T: fmt::Debug>(
    result: Result<T, Failure>,
    expect_error: i32,
) -> Result<Option<T>, String> {
    match (result, code(expect_error)) {
        (Ok(reply), None) => Ok(Some(reply)),
        (Ok(reply), Some(want)) => Err(format!("succeeded with {reply:?}, want {want:?}")),
        (Err(Failure::Reply(got)), Some(want)) if got == want => Ok(None),
        (Err(e), Some(want)) => Err(format!("{e}, want {want:?}")),
        (Err(e), None) => Err(e.to_string()),
    }
}

fn code(value: i32) -> Option<ErrorCode> {
    match ErrorCode::try_from(value) {
        Ok(ErrorCode::Unspecified) => None,
        Ok(code) => Some(code),
        Err(_) => Some(ErrorCode::Unspecified),
    }
}

/// The proto3 JSON of a generated value.
fn json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("generated types serialize")
}

/// The shared matching rule: every key present in `expected` must be present
/// in `actual` with a matching value; arrays match element by element and
/// must have the same length.
pub fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, want) in want {
                let got = got
                    .get(key)
                    .ok_or_else(|| format!("{path}.{key} is missing in {actual}"))?;
                matches(want, got, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                return Err(format!(
                    "{path} has {} elements, want {}: {actual}",
                    got.len(),
                    want.len()
                ));
            }
            for (i, (want, got)) in want.iter().zip(got).enumerate() {
                matches(want, got, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path} is {actual}, want {expected}")),
    }
}

/// The typed-payload rule: a registered type is decoded into its generated
/// struct and encoded again; the bytes must not change. Unregistered types
/// pass through as bytes.
fn typed_round_trip(payload: Payload) -> Result<Payload, String> {
    let encoded: Option<Vec<u8>> = match payload.type_name.as_str() {
        "chat.v1.ChatMessage" => Some(
            ChatMessage::decode(payload.data.clone())
                .map_err(|e| format!("chat.v1.ChatMessage: {e}"))?
                .encode_to_vec(),
        ),
        "chat.v1.TypingEvent" => Some(
            TypingEvent::decode(payload.data.clone())
                .map_err(|e| format!("chat.v1.TypingEvent: {e}"))?
                .encode_to_vec(),
        ),
        _ => None,
    };
    match encoded {
        Some(bytes) if bytes != payload.data => Err(format!(
            "{} does not re-encode to the same bytes",
            payload.type_name
        )),
        _ => Ok(payload),
    }
}

/// How a command failed.
#[derive(Debug)]
enum Failure {
    /// The server answered with an error.
    Reply(ErrorCode),
    /// The connection failed or closed, or a wait timed out.
    Transport(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Reply(code) => write!(f, "error reply {code:?}"),
            Failure::Transport(message) => f.write_str(message),
        }
    }
}

type Socket = WebSocketStream<TcpStream>;

/// What the client remembers about a joined room, to rejoin it.
struct Joined {
    presence_events: bool,
    epoch: String,
    /// The last offset delivered; anything at or below it is a duplicate.
    last_offset: u64,
}

/// One scenario client.
struct RefClient {
    url: String,
    name: String,
    socket: Option<Socket>,
    next_id: u32,
    rooms: BTreeMap<String, Joined>,
    /// Pushes received but not yet consumed by an expectation, by stream.
    streams: BTreeMap<String, VecDeque<Value>>,
}

impl RefClient {
    fn new(url: &str, name: &str) -> Self {
        RefClient {
            url: url.to_owned(),
            name: name.to_owned(),
            socket: None,
            next_id: 0,
            rooms: BTreeMap::new(),
            streams: BTreeMap::new(),
        }
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| Failure::Transport(format!("bad url: {e}")))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("switchboard.v1.proto"),
        );
        let uri = request.uri();
        let addr = format!(
            "{}:{}",
            uri.host().unwrap_or("127.0.0.1"),
            uri.port_u16().unwrap_or(80)
        );
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| Failure::Transport(format!("cannot reach {addr}: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| Failure::Transport(format!("nodelay: {e}")))?;
        let (socket, _) = tokio_tungstenite::client_async(request, tcp)
            .await
            .map_err(|e| Failure::Transport(format!("cannot open the WebSocket: {e}")))?;
        self.socket = Some(socket);
        self.request(Command::Connect(ConnectRequest {
            token: String::new(),
            name: self.name.clone(),
        }))
        .await
        .map(drop)
    }

    async fn join(
        &mut self,
        room: &str,
        presence_events: bool,
        since: Option<StreamPosition>,
    ) -> Result<JoinReply, Failure> {
        let kind = self
            .request(Command::Join(JoinRequest {
                room: room.to_owned(),
                since: since.clone(),
                presence_events,
            }))
            .await?;
        let Kind::Join(reply) = kind else {
            return Err(Failure::Transport(format!(
                "want a join reply, got {kind:?}"
            )));
        };
        let position = reply.position.clone().unwrap_or_default();
        let last_offset = match (&since, reply.recovered) {
            (Some(since), true) => since.offset,
            _ => position.offset,
        };
        self.rooms.insert(
            room.to_owned(),
            Joined {
                presence_events,
                epoch: position.epoch,
                last_offset,
            },
        );
        for message in &reply.messages {
            self.record(ServerFrame {
                id: 0,
                kind: Some(Kind::Message(message.clone())),
            });
        }
        Ok(reply)
    }

    async fn leave(&mut self, room: &str) -> Result<Kind, Failure> {
        let reply = self
            .request(Command::Leave(LeaveRequest {
                room: room.to_owned(),
            }))
            .await?;
        self.rooms.remove(room);
        Ok(reply)
    }

    /// Sends a command and waits for its reply, queueing pushes meanwhile.
    async fn request(&mut self, command: Command) -> Result<Kind, Failure> {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        let frame = ClientFrame {
            id,
            command: Some(command),
        };
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| Failure::Transport("not connected".into()))?;
        socket
            .send(Message::Binary(Bytes::from(frame.encode_to_vec())))
            .await
            .map_err(|e| Failure::Transport(format!("send: {e}")))?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let frame = self
                .read(deadline)
                .await?
                .ok_or_else(|| Failure::Transport(format!("no reply to request {id} in time")))?;
            if frame.id == id {
                return match frame.kind {
                    Some(Kind::Error(error)) => Err(Failure::Reply(error.code())),
                    Some(kind) => Ok(kind),
                    None => Err(Failure::Transport("empty reply".into())),
                };
            }
            if frame.id != 0 {
                return Err(Failure::Transport(format!(
                    "reply to unknown request {}",
                    frame.id
                )));
            }
            self.record(frame);
        }
    }

    /// Reads one frame before `deadline`; `None` when the deadline passed.
    async fn read(&mut self, deadline: Instant) -> Result<Option<ServerFrame>, Failure> {
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| Failure::Transport("not connected".into()))?;
        loop {
            let next = match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => return Ok(None),
                Ok(next) => next,
            };
            match next {
                Some(Ok(Message::Binary(data))) => {
                    return ServerFrame::decode(data)
                        .map(Some)
                        .map_err(|e| Failure::Transport(format!("undecodable frame: {e}")));
                }
                Some(Ok(Message::Close(close))) => {
                    return Err(Failure::Transport(format!("server closed: {close:?}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Failure::Transport(format!("read: {e}"))),
                None => return Err(Failure::Transport("connection closed".into())),
            }
        }
    }

    /// Queues a push on its stream, dropping room messages already delivered.
    fn record(&mut self, frame: ServerFrame) {
        let (stream, value) = match frame.kind {
            Some(Kind::Message(message)) => {
                let Some(room) = self.rooms.get_mut(&message.room) else {
                    return;
                };
                if message.offset <= room.last_offset {
                    return;
                }
                room.last_offset = message.offset;
                (format!("message:{}", message.room), json(&message))
            }
            Some(Kind::MemberJoined(event)) => (format!("presence:{}", event.room), json(&event)),
            Some(Kind::MemberLeft(event)) => (format!("presence:{}", event.room), json(&event)),
            Some(Kind::DirectMessage(message)) => ("direct".to_owned(), json(&message)),
            Some(Kind::Notification(n)) => (format!("notification:{}", n.room), json(&n)),
            // Disconnect notices and kinds this client does not know.
            _ => return,
        };
        self.streams.entry(stream).or_default().push_back(value);
    }

    async fn expect_push(&mut self, expect: &ExpectPush) -> Result<(), String> {
        use expect_push::Push;
        let (stream, expected) = match expect.push.as_ref().ok_or("expect_push has no push")? {
            Push::Message(m) => {
                typed_round_trip(m.payload.clone().unwrap_or_default())?;
                (format!("message:{}", m.room), json(m))
            }
            Push::DirectMessage(m) => {
                typed_round_trip(m.payload.clone().unwrap_or_default())?;
                ("direct".to_owned(), json(m))
            }
            Push::Notification(n) => (format!("notification:{}", n.room), json(n)),
            Push::MemberJoined(e) => (format!("presence:{}", e.room), json(e)),
            Push::MemberLeft(e) => (format!("presence:{}", e.room), json(e)),
        };
        let timeout = match expect.timeout_ms {
            0 => PUSH_TIMEOUT,
            ms => Duration::from_millis(ms.into()),
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(actual) = self.streams.get_mut(&stream).and_then(VecDeque::pop_front) {
                return matches(&expected, &actual, &stream);
            }
            match self.read(deadline).await.map_err(|e| e.to_string())? {
                Some(frame) => self.record(frame),
                None => {
                    return Err(format!(
                        "no push on {stream} within {timeout:?}; want {expected}"
                    ))
                }
            }
        }
    }

    async fn expect_no_push(&mut self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        while let Some(frame) = self.read(deadline).await.map_err(|e| e.to_string())? {
            self.record(frame);
        }
        match self.streams.iter().find(|(_, queue)| !queue.is_empty()) {
            Some((stream, queue)) => Err(format!("unexpected push on {stream}: {}", queue[0])),
            None => Ok(()),
        }
    }

    /// Drops the socket without a close handshake, then does what an SDK
    /// does on its own: reconnect, log in again, and rejoin every room from
    /// the last offset it delivered.
    async fn drop_and_recover(&mut self) -> Result<(), String> {
        // Whatever is already buffered was received before the drop.
        while let Some(frame) = self.read(Instant::now()).await.map_err(|e| e.to_string())? {
            self.record(frame);
        }
        self.socket = None;
        self.connect()
            .await
            .map_err(|e| format!("reconnect: {e}"))?;
        let rooms: Vec<(String, bool, StreamPosition)> = self
            .rooms
            .iter()
            .map(|(room, joined)| {
                let since = StreamPosition {
                    offset: joined.last_offset,
                    epoch: joined.epoch.clone(),
                };
                (room.clone(), joined.presence_events, since)
            })
            .collect();
        for (room, presence_events, since) in rooms {
            let reply = self
                .join(&room, presence_events, Some(since))
                .await
                .map_err(|e| format!("rejoin {room}: {e}"))?;
            if !reply.recovered {
                return Err(format!("rejoin {room}: the server could not recover"));
            }
        }
        Ok(())
    }

    async fn close(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            // Best effort: the server may already be gone.
            let _ = socket.close(None).await;
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, socket.next()).await {}
        }
        self.rooms.clear();
    }
}
