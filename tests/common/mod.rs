//! Shared harness for the integration tests: an in-process server on an
//! ephemeral port and a typed WebSocket client that speaks the real protocol.
//!
//! Every wait is bounded by [`WAIT`] (or an explicit timeout), so a broken
//! server makes a test fail with a message instead of hanging the suite.
//! Timeouts are only failure guards; no test sleeps to make itself pass.

// Each test crate uses a different subset of this module.
#![allow(dead_code, unreachable_pub)]

/// Unwraps the given `Kind` variant of a `ServerFrame`, or panics with the
/// frame (e.g. an unexpected error reply).
macro_rules! expect_kind {
    ($frame:expr, $variant:path) => {{
        let frame: switchboard::proto::ServerFrame = $frame;
        match frame.kind {
            Some($variant(inner)) => inner,
            other => panic!(
                "expected {} in frame id {}, got {:?}",
                stringify!($variant),
                frame.id,
                other
            ),
        }
    }};
}

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use switchboard::config::Config;
use switchboard::proto::client_frame::Command;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{
    ClientFrame, ConnectReply, ConnectRequest, DirectRequest, ErrorCode, HistoryReply,
    HistoryRequest, JoinReply, JoinRequest, LeaveRequest, Payload, PingRequest, PresenceReply,
    PresenceRequest, PublishReply, PublishRequest, RoomMessage, ServerFrame, StreamPosition,
};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

pub mod http_client;
pub mod redis_server;

/// Subprotocol for binary protobuf frames.
pub const PROTO: &str = "switchboard.v1.proto";
/// Subprotocol for text frames with canonical proto3 JSON.
pub const JSON: &str = "switchboard.v1.json";

/// The configuration tests start from: the defaults (development mode), with
/// a short `close_timeout`. Clients still open when a test ends are not read
/// any more, so they never answer the server's Close frame at shutdown; with
/// the default 2 s wait for that answer, shutdowns would dominate the suite.
/// Tests that check a close read the Close frame right away.
pub fn test_config() -> Config {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    config.limits.close_timeout = Duration::from_millis(300);
    config
}

/// A server running in this process on `127.0.0.1:<ephemeral>`.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown_timeout: Duration,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), switchboard::server::ServerError>>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and runs `switchboard::server::run` on it.
    pub async fn start(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender also means "shut down".
            let _ = rx.await;
        };
        let shutdown_timeout = config.shutdown_timeout;
        let task = tokio::spawn(switchboard::server::run(listener, config, shutdown));
        TestServer {
            addr,
            shutdown_timeout,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A server with [`test_config`].
    pub async fn start_default() -> TestServer {
        TestServer::start(test_config()).await
    }

    /// `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A binary-protocol client (no subprotocol requested).
    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url(), None).await
    }

    /// A binary-protocol client logged in anonymously as `name`.
    pub async fn login(&self, name: &str) -> Client {
        let mut client = self.client().await;
        client.login(name).await;
        client
    }

    /// Triggers the shutdown future and waits for `run` to return, at most
    /// the configured `shutdown_timeout` plus a margin.
    pub async fn shutdown(mut self) {
        self.shutdown.take().expect("shutdown once").send(()).ok();
        let task = self.task.take().expect("server task");
        let bound = self.shutdown_timeout + Duration::from_secs(3);
        let result = tokio::time::timeout(bound, task)
            .await
            .expect("server::run did not return within the timeout after shutdown")
            .expect("server task panicked");
        if let Err(err) = result {
            panic!("server::run returned an error: {err}");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Any byte stream a test client runs on (TCP, or TLS over TCP).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// What the next read from a connection produced.
#[derive(Debug)]
pub enum Event {
    /// A decoded server frame.
    Frame(ServerFrame),
    /// A Close frame, with its code (None when the frame carried no code).
    Close(Option<u16>, String),
    /// The stream ended or failed without a Close frame.
    Ended(String),
}

/// Why no message was read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing arrived within the timeout.
    TimedOut(Duration),
    /// The connection failed.
    Failed(String),
}

/// Encoding of a connection, from the negotiated subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Proto,
    Json,
}

/// Sending half of a client.
pub struct ClientTx {
    sink: SplitSink<Ws, Message>,
    encoding: Encoding,
    next_id: u32,
}

impl ClientTx {
    /// Allocates the next request id (never 0).
    pub fn next_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Encodes `frame` for this connection's encoding.
    pub fn encode(&self, frame: &ClientFrame) -> Message {
        match self.encoding {
            Encoding::Proto => Message::Binary(Bytes::from(frame.encode_to_vec())),
            Encoding::Json => {
                Message::text(serde_json::to_string(frame).expect("serialize ClientFrame"))
            }
        }
    }

    /// Sends `command` with a fresh id and returns the id.
    pub async fn send(&mut self, command: Command) -> u32 {
        let id = self.next_id();
        let frame = ClientFrame {
            id,
            command: Some(command),
        };
        self.send_frame(&frame).await;
        id
    }

    /// Queues `command` without flushing (for pipelining); call [`flush`].
    pub async fn feed(&mut self, command: Command) -> u32 {
        let id = self.next_id();
        let msg = self.encode(&ClientFrame {
            id,
            command: Some(command),
        });
        tokio::time::timeout(WAIT, self.sink.feed(msg))
            .await
            .expect("timed out feeding a frame")
            .expect("feed frame");
        id
    }

    /// Flushes frames queued by [`feed`].
    pub async fn flush(&mut self) {
        tokio::time::timeout(WAIT, self.sink.flush())
            .await
            .expect("timed out flushing")
            .expect("flush");
    }

    /// Sends a frame as is (its id is not checked).
    pub async fn send_frame(&mut self, frame: &ClientFrame) {
        let msg = self.encode(frame);
        self.send_raw(msg).await;
    }

    /// Sends any WebSocket message, e.g. hand-encoded bytes.
    pub async fn send_raw(&mut self, msg: Message) {
        tokio::time::timeout(WAIT, self.sink.send(msg))
            .await
            .expect("timed out sending a frame")
            .expect("send frame");
    }

    /// Like [`send_raw`] but returns the error instead of panicking.
    pub async fn try_send_raw(&mut self, msg: Message) -> Result<(), String> {
        match tokio::time::timeout(WAIT, self.sink.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

/// Receiving half of a client. Frames read while waiting for something else
/// are kept, in order, in `pending`.
pub struct ClientRx {
    stream: SplitStream<Ws>,
    encoding: Encoding,
    pending: VecDeque<ServerFrame>,
}

impl ClientRx {
    /// Decodes one data message for this connection's encoding.
    pub fn decode(&self, msg: &Message) -> ServerFrame {
        match (self.encoding, msg) {
            (Encoding::Proto, Message::Binary(data)) => {
                ServerFrame::decode(data.as_ref()).expect("undecodable ServerFrame")
            }
            (Encoding::Json, Message::Text(text)) => serde_json::from_str(text.as_str())
                .unwrap_or_else(|e| panic!("bad JSON ServerFrame {text:?}: {e}")),
            (enc, other) => panic!("unexpected message for {enc:?} encoding: {other:?}"),
        }
    }

    /// The next raw data or close message (pings and pongs skipped), with a
    /// timeout. `None` when the stream ended.
    pub async fn next_raw_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Message>, ReadError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(ReadError::TimedOut(timeout)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(ReadError::Failed(e.to_string())),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(msg))) => return Ok(Some(msg)),
            }
        }
    }

    /// The next raw data or close message; panics on timeout or end.
    pub async fn next_raw(&mut self) -> Message {
        match self.next_raw_timeout(WAIT).await {
            Ok(Some(msg)) => msg,
            Ok(None) => panic!("connection ended while waiting for a message"),
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Reads the next event from the socket (ignoring `pending`).
    pub async fn read_event(&mut self, timeout: Duration) -> Event {
        match self.next_raw_timeout(timeout).await {
            Ok(Some(Message::Close(frame))) => match frame {
                Some(f) => Event::Close(Some(u16::from(f.code)), f.reason.to_string()),
                None => Event::Close(None, String::new()),
            },
            Ok(Some(msg)) => Event::Frame(self.decode(&msg)),
            Ok(None) => Event::Ended("stream ended".to_owned()),
            Err(ReadError::TimedOut(t)) => panic!("no message within {t:?}"),
            Err(ReadError::Failed(e)) => Event::Ended(format!("read error: {e}")),
        }
    }

    /// The next frame read from the socket; panics on close, end or timeout.
    async fn read_frame(&mut self) -> ServerFrame {
        match self.read_event(WAIT).await {
            Event::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame, reply or push, in arrival order.
    pub async fn next_frame(&mut self) -> ServerFrame {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        self.read_frame().await
    }

    /// The next push (id 0); replies read meanwhile are kept.
    pub async fn next_push(&mut self) -> ServerFrame {
        if let Some(pos) = self.pending.iter().position(|f| f.id == 0) {
            return self.pending.remove(pos).expect("pending frame");
        }
        loop {
            let frame = self.read_frame().await;
            if frame.id == 0 {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// The reply to request `id`; frames read meanwhile are kept.
    pub async fn reply(&mut self, id: u32) -> ServerFrame {
        assert_ne!(id, 0, "replies have non-zero ids");
        if let Some(pos) = self.pending.iter().position(|f| f.id == id) {
            return self.pending.remove(pos).expect("pending frame");
        }
        loop {
            let frame = self.read_frame().await;
            if frame.id == id {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// Takes the oldest frame kept aside by [`reply`](Self::reply).
    pub fn pop_pending(&mut self) -> Option<ServerFrame> {
        self.pending.pop_front()
    }

    /// Frames read but not consumed yet.
    pub fn pending(&self) -> &VecDeque<ServerFrame> {
        &self.pending
    }

    /// After the server's Close frame: keep reading so that tungstenite
    /// flushes its Close reply, until the server drops the connection.
    async fn finish_close(&mut self) {
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }

    /// Reads until the server's Close frame. Returns every frame seen before
    /// it (including pending ones) and the close code. Panics when the
    /// connection ends without a Close frame or nothing arrives in `timeout`.
    pub async fn expect_close_within(&mut self, timeout: Duration) -> (Vec<ServerFrame>, u16) {
        let mut frames: Vec<ServerFrame> = self.pending.drain(..).collect();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_event(left).await {
                Event::Frame(frame) => frames.push(frame),
                Event::Close(Some(code), _) => {
                    self.finish_close().await;
                    return (frames, code);
                }
                Event::Close(None, _) => panic!("Close frame without a code"),
                Event::Ended(why) => panic!(
                    "connection ended without a Close frame ({why}); frames before: {}",
                    frames.len()
                ),
            }
        }
    }
}

/// A typed protocol client.
pub struct Client {
    pub tx: ClientTx,
    pub rx: ClientRx,
    /// The subprotocol the server selected, if any.
    pub protocol: Option<String>,
    /// Set by [`Client::login`] / [`Client::connect_token`].
    pub user: String,
    /// Server-assigned connection id, set on login.
    pub client_id: String,
}

impl Client {
    /// Opens a WebSocket to `url`, asking for `subprotocol` when given.
    pub async fn connect(url: &str, subprotocol: Option<&str>) -> Client {
        let addr = addr_of(url);
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        Client::handshake(stream, url, subprotocol).await
    }

    /// Like [`connect`] but with a tiny kernel receive buffer, so that a
    /// client that stops reading backs up into the server quickly.
    pub async fn connect_small_rcvbuf(url: &str) -> Client {
        let addr = addr_of(url);
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        Client::handshake(stream, url, None).await
    }

    /// Attempts a handshake and returns the error instead of panicking.
    pub async fn try_connect(url: &str, subprotocol: Option<&str>) -> Result<Client, String> {
        let addr = addr_of(url);
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        Client::try_handshake(stream, url, subprotocol).await
    }

    /// Attempts a handshake from loopback source `source` (e.g. 127.0.0.2)
    /// with extra request headers. `Err` holds the HTTP status of a refused
    /// upgrade (0 when the connection failed otherwise).
    pub async fn try_connect_with(
        url: &str,
        source: std::net::Ipv4Addr,
        headers: &[(&str, &str)],
    ) -> Result<Client, (u16, String)> {
        let addr = addr_of(url);
        let socket = TcpSocket::new_v4().map_err(|e| (0, e.to_string()))?;
        socket
            .bind(SocketAddr::from((source, 0)))
            .map_err(|e| (0, e.to_string()))?;
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .map_err(|_| (0, "TCP connect timed out".to_owned()))?
            .map_err(|e| (0, e.to_string()))?;
        stream.set_nodelay(true).ok();
        let stream: Box<dyn Io> = Box::new(stream);
        let mut request = url.into_client_request().map_err(|e| (0, e.to_string()))?;
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let result = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(request, stream, None),
        )
        .await
        .map_err(|_| (0, "handshake timed out".to_owned()))?;
        match result {
            Ok((ws, _)) => Ok(Client::from_ws(ws, Encoding::Proto, None)),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let retry_after = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                Err((response.status().as_u16(), retry_after))
            }
            Err(e) => Err((0, e.to_string())),
        }
    }

    /// Wraps an established WebSocket.
    fn from_ws(ws: Ws, encoding: Encoding, protocol: Option<String>) -> Client {
        let (sink, stream) = ws.split();
        Client {
            tx: ClientTx {
                sink,
                encoding,
                next_id: 0,
            },
            rx: ClientRx {
                stream,
                encoding,
                pending: VecDeque::new(),
            },
            protocol,
            user: String::new(),
            client_id: String::new(),
        }
    }

    async fn handshake(stream: TcpStream, url: &str, subprotocol: Option<&str>) -> Client {
        Client::try_handshake(stream, url, subprotocol)
            .await
            .unwrap_or_else(|e| panic!("WebSocket handshake failed: {e}"))
    }

    async fn try_handshake(
        stream: TcpStream,
        url: &str,
        subprotocol: Option<&str>,
    ) -> Result<Client, String> {
        stream.set_nodelay(true).ok();
        Client::try_handshake_io(Box::new(stream), url, subprotocol).await
    }

    /// The WebSocket handshake over any stream (e.g. TLS).
    pub async fn try_handshake_io(
        stream: Box<dyn Io>,
        url: &str,
        subprotocol: Option<&str>,
    ) -> Result<Client, String> {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        if let Some(p) = subprotocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(p).expect("header value"),
            );
        }
        let (ws, response) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(request, stream, None),
        )
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().expect("ascii protocol").to_owned());
        let encoding = match protocol.as_deref() {
            Some(JSON) => Encoding::Json,
            _ => Encoding::Proto,
        };
        Ok(Client::from_ws(ws, encoding, protocol))
    }

    pub fn encoding(&self) -> Encoding {
        self.tx.encoding
    }

    /// Splits into independently usable halves (e.g. one task per half).
    pub fn split(self) -> (ClientTx, ClientRx) {
        (self.tx, self.rx)
    }

    /// Sends `command` with a fresh id; returns the id.
    pub async fn send(&mut self, command: Command) -> u32 {
        self.tx.send(command).await
    }

    /// Sends `command` and returns its reply (pushes seen meanwhile are kept
    /// for [`next_push`]).
    pub async fn request(&mut self, command: Command) -> ServerFrame {
        let id = self.tx.send(command).await;
        let reply = self.rx.reply(id).await;
        assert_eq!(reply.id, id);
        reply
    }

    pub async fn reply(&mut self, id: u32) -> ServerFrame {
        self.rx.reply(id).await
    }

    pub async fn next_push(&mut self) -> ServerFrame {
        self.rx.next_push().await
    }

    pub async fn next_frame(&mut self) -> ServerFrame {
        self.rx.next_frame().await
    }

    /// The next pushed room message; panics on any other push.
    pub async fn next_message(&mut self) -> RoomMessage {
        let push = self.next_push().await;
        match push.kind {
            Some(Kind::Message(m)) => m,
            other => panic!("expected a RoomMessage push, got {other:?}"),
        }
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.tx.send_raw(msg).await
    }

    pub async fn next_raw(&mut self) -> Message {
        self.rx.next_raw().await
    }

    /// Waits for the server's Close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        self.expect_close_with_frames().await.1
    }

    /// Waits for the server's Close frame; returns the frames before it and
    /// the code.
    pub async fn expect_close_with_frames(&mut self) -> (Vec<ServerFrame>, u16) {
        self.rx.expect_close_within(WAIT).await
    }

    /// Anonymous (development-mode) login; panics unless it succeeds.
    pub async fn login(&mut self, name: &str) -> ConnectReply {
        let reply = self
            .request(Command::Connect(ConnectRequest {
                token: String::new(),
                name: name.to_owned(),
            }))
            .await;
        let connect = expect_kind!(reply, Kind::Connect);
        assert_eq!(connect.user, name, "connect reply names the user");
        assert!(!connect.client.is_empty(), "connect reply has a client id");
        self.user = connect.user.clone();
        self.client_id = connect.client.clone();
        connect
    }

    /// Token login; returns the raw reply (a ConnectReply or an Error).
    pub async fn connect_token(&mut self, token: &str) -> ServerFrame {
        let reply = self
            .request(Command::Connect(ConnectRequest {
                token: token.to_owned(),
                name: String::new(),
            }))
            .await;
        if let Some(Kind::Connect(c)) = &reply.kind {
            self.user = c.user.clone();
            self.client_id = c.client.clone();
        }
        reply
    }

    /// Joins `room`; panics unless it succeeds.
    pub async fn join(&mut self, room: &str) -> JoinReply {
        let reply = self.request(join(room)).await;
        expect_kind!(reply, Kind::Join)
    }

    /// Joins `room` with presence events; panics unless it succeeds.
    pub async fn join_with_presence(&mut self, room: &str) -> JoinReply {
        let reply = self
            .request(Command::Join(JoinRequest {
                room: room.to_owned(),
                since: None,
                presence_events: true,
            }))
            .await;
        expect_kind!(reply, Kind::Join)
    }

    /// Joins `room` recovering from `since`; panics unless the join succeeds.
    pub async fn join_since(&mut self, room: &str, offset: u64, epoch: &str) -> JoinReply {
        let reply = self.request(join_since(room, offset, epoch)).await;
        expect_kind!(reply, Kind::Join)
    }

    /// Leaves `room`; panics unless it succeeds.
    pub async fn leave(&mut self, room: &str) {
        let reply = self
            .request(Command::Leave(LeaveRequest {
                room: room.to_owned(),
            }))
            .await;
        expect_kind!(reply, Kind::Leave);
    }

    /// Publishes text to `room`; panics unless acknowledged.
    pub async fn publish(&mut self, room: &str, text: &str) -> PublishReply {
        let reply = self.request(publish(room, text)).await;
        expect_kind!(reply, Kind::Publish)
    }

    /// Reads history; panics unless it succeeds.
    pub async fn history(
        &mut self,
        room: &str,
        limit: u32,
        before: u64,
        after: u64,
    ) -> HistoryReply {
        let reply = self
            .request(Command::History(HistoryRequest {
                room: room.to_owned(),
                limit,
                before,
                after,
            }))
            .await;
        expect_kind!(reply, Kind::History)
    }

    /// Lists the members of `room`; panics unless it succeeds.
    pub async fn presence(&mut self, room: &str) -> PresenceReply {
        let reply = self
            .request(Command::Presence(PresenceRequest {
                room: room.to_owned(),
            }))
            .await;
        expect_kind!(reply, Kind::Presence)
    }

    /// Sends a ping and asserts that its reply is the very next frame: no
    /// push or other reply was pending before it.
    pub async fn ping_expect_nothing_before(&mut self) {
        assert!(
            self.rx.pending.is_empty(),
            "unconsumed frames: {:?}",
            self.rx.pending
        );
        let id = self.send(ping()).await;
        let frame = self.next_frame().await;
        assert_eq!(frame.id, id, "expected the ping reply, got {frame:?}");
        expect_kind!(frame, Kind::Ping);
    }

    /// Sends a ping and asserts that it is answered (the connection works).
    pub async fn ping_ok(&mut self) {
        let reply = self.request(ping()).await;
        expect_kind!(reply, Kind::Ping);
    }
}

/// `IP:port` of a `ws://IP:port/...` URL.
pub fn addr_of(url: &str) -> SocketAddr {
    let rest = url
        .strip_prefix("ws://")
        .expect("ws:// URL")
        .split('/')
        .next()
        .expect("host");
    rest.parse().expect("URL host must be IP:port")
}

/// Asserts that `frame` is an error reply with `code` (and id `id`).
pub fn assert_error(frame: &ServerFrame, id: u32, code: ErrorCode) {
    assert_eq!(frame.id, id, "error reply id; frame: {frame:?}");
    match &frame.kind {
        Some(Kind::Error(e)) => assert_eq!(
            e.code(),
            code,
            "error code (message: {:?}); frame: {frame:?}",
            e.message
        ),
        other => panic!("expected error {code:?} for id {id}, got {other:?}"),
    }
}

/// The `Disconnect` push in `frames`, asserting there is exactly one and it
/// is the last frame.
pub fn last_disconnect(frames: &[ServerFrame]) -> switchboard::proto::Disconnect {
    let last = frames
        .last()
        .unwrap_or_else(|| panic!("no frame before Close; expected a Disconnect push"));
    assert_eq!(last.id, 0, "Disconnect is a push");
    match &last.kind {
        Some(Kind::Disconnect(d)) => d.clone(),
        other => panic!("expected Disconnect as the last frame before Close, got {other:?}"),
    }
}

// ---- command builders ----

pub fn text_payload(text: &str) -> Payload {
    Payload {
        text: text.to_owned(),
        data: Bytes::new(),
        type_name: String::new(),
    }
}

pub fn connect_name(name: &str) -> Command {
    Command::Connect(ConnectRequest {
        token: String::new(),
        name: name.to_owned(),
    })
}

pub fn join(room: &str) -> Command {
    Command::Join(JoinRequest {
        room: room.to_owned(),
        since: None,
        presence_events: false,
    })
}

pub fn join_since(room: &str, offset: u64, epoch: &str) -> Command {
    Command::Join(JoinRequest {
        room: room.to_owned(),
        since: Some(StreamPosition {
            offset,
            epoch: epoch.to_owned(),
        }),
        presence_events: false,
    })
}

pub fn leave(room: &str) -> Command {
    Command::Leave(LeaveRequest {
        room: room.to_owned(),
    })
}

pub fn publish(room: &str, text: &str) -> Command {
    Command::Publish(PublishRequest {
        room: room.to_owned(),
        payload: Some(text_payload(text)),
        idempotency_key: String::new(),
    })
}

pub fn publish_payload(room: &str, payload: Payload, key: &str) -> Command {
    Command::Publish(PublishRequest {
        room: room.to_owned(),
        payload: Some(payload),
        idempotency_key: key.to_owned(),
    })
}

/// A publish of `text` with an idempotency key.
pub fn keyed_publish(room: &str, text: &str, key: &str) -> Command {
    publish_payload(room, text_payload(text), key)
}

/// A client logged in as `name` to a server process.
pub async fn login(node: &ServerProcess, name: &str) -> Client {
    let mut client = Client::connect(&node.ws_url(), None).await;
    client.login(name).await;
    client
}

pub fn direct(user: &str, text: &str) -> Command {
    Command::Direct(DirectRequest {
        user: user.to_owned(),
        payload: Some(text_payload(text)),
    })
}

pub fn history(room: &str, limit: u32, before: u64, after: u64) -> Command {
    Command::History(HistoryRequest {
        room: room.to_owned(),
        limit,
        before,
        after,
    })
}

pub fn presence(room: &str) -> Command {
    Command::Presence(PresenceRequest {
        room: room.to_owned(),
    })
}

pub fn ping() -> Command {
    Command::Ping(PingRequest {})
}

/// Offsets of a list of room messages.
pub fn offsets(messages: &[RoomMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.offset).collect()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The real binary, killed on drop if a test fails half-way.
pub struct ServerProcess {
    child: std::process::Child,
    addr: String,
    pub stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProcess {
    /// Starts the binary with `extra` arguments.
    pub fn spawn(extra: &[&str]) -> ServerProcess {
        ServerProcess::spawn_with_env(extra, &[])
    }

    /// Starts the binary with `extra` arguments and environment variables.
    pub fn spawn_with_env(extra: &[&str], vars: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra);
        for (key, _) in std::env::vars() {
            if key.starts_with("SWITCHBOARD_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        for (key, value) in vars {
            cmd.env(key, value);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn switchboard binary");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr");
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .expect("stderr lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        // Read the first line on a thread so a silent binary cannot hang us.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut reader, &mut line);
            tx.send((n.map_err(|e| e.to_string()), line, reader)).ok();
        });
        let mut process = ServerProcess {
            child,
            addr: String::new(),
            stdout: None,
            stderr,
        };
        let (n, line, reader) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(got) => got,
            Err(_) => panic!("no startup line within 30 s; stderr:\n{}", process.stderr()),
        };
        assert!(
            matches!(n, Ok(len) if len > 0),
            "stdout closed before the startup line ({n:?}); stderr:\n{}",
            process.stderr()
        );
        let addr = line
            .trim_end()
            .strip_prefix("switchboard listening on http://")
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
        let parsed: std::net::SocketAddr = addr.parse().expect("ADDR is IP:port");
        assert_eq!(parsed.ip().to_string(), "127.0.0.1");
        assert_ne!(parsed.port(), 0, "the actual bound port is printed");
        process.addr = addr.to_owned();
        process.stdout = Some(reader);
        process
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "switchboard did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl ServerProcess {
    /// Stops the process (SIGTERM) and returns everything it logged.
    pub async fn stop_and_output(mut self) -> String {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(15)).await;
        // Let the reader thread take the last bytes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.stderr()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}
