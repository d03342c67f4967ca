//! One WebSocket connection: a reader task and a writer task.
//!
//! - The **reader** (the connection's own task) decodes frames, runs the
//!   session's command handlers, and keeps the timers: connect timeout, ping
//!   interval, idle timeout and token expiry, all on a single sleep.
//! - The **writer** drains the bounded outbound queue: it takes everything
//!   queued (up to `limits.write_batch` frames), feeds it to the socket and
//!   flushes once, so a busy connection writes many frames per syscall.
//!
//! Closing is always the writer's job, so the Close frame follows everything
//! queued before it (ordered close) or jumps the queue (urgent close: slow
//! consumer, shutdown, timeouts). After our Close frame the reader waits up to
//! `limits.close_timeout` for the peer's, then the TCP connection is dropped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::codec::{self, DecodeError, Encoding};
use crate::codes::should_reconnect;
use crate::outbound::{CloseReason, ConnHandle, Outbound};
use crate::proto::{server_frame::Kind, CloseCode, Disconnect, ServerFrame};
use crate::server::Shared;
use crate::session::{Flow, Session};

/// Queue slots that must be free before a command is handled: its reply plus
/// what it may push to this same connection (e.g. its own published message).
const COMMAND_HEADROOM: usize = 4;

/// How the read side ended.
enum ReadEnd {
    /// The peer closed the connection (Close frame or EOF).
    PeerClosed,
    /// The writer finished: our Close frame was sent (or the socket failed).
    WriterDone(Option<SplitSink<WsStream, Message>>),
    /// A read error after which the stream must not be read again; a close
    /// with the matching code was requested.
    Broken,
}

/// The concrete stream type a connection runs on.
pub(crate) type WsStream = WebSocketStream<Box<dyn Io>>;

/// Any byte stream a WebSocket can run on (TCP, an upgraded HTTP connection).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Runs a connection until it is closed, however that happens.
pub(crate) async fn serve(shared: Arc<Shared>, ws: WsStream, encoding: Encoding) {
    let limits = shared.config.limits.clone();
    let (conn, rx) = ConnHandle::new(limits.outbound_queue);
    let (sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(
        sink,
        rx,
        conn.clone(),
        encoding,
        limits.write_batch,
        limits.close_timeout,
    ));
    let mut session = Session::new(shared.clone(), conn.clone());

    let end = read_loop(
        &shared,
        &mut stream,
        &mut session,
        &conn,
        &mut writer,
        encoding,
    )
    .await;
    // Leave rooms right away so presence and fan-out stop including us,
    // before the (bounded) wait for the closing handshake.
    session.close().await;

    let sink = match end {
        ReadEnd::WriterDone(sink) => {
            // We sent Close: give the peer a moment to answer with its own.
            let wait_for_close = async {
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(limits.close_timeout, wait_for_close).await;
            sink
        }
        ReadEnd::PeerClosed => {
            // tungstenite already answered the peer's Close; stop the writer.
            conn.close_now(CloseCode::Normal, "closed by peer");
            finish_writer(writer, limits.close_timeout).await
        }
        ReadEnd::Broken => {
            let sink = finish_writer(writer, limits.close_timeout).await;
            // The stream is unusable after the error, but the peer may still
            // be sending (e.g. the rest of an oversized frame). Discard raw
            // bytes briefly so the Close frame is read before TCP goes away,
            // instead of being lost to a reset.
            if let Some(sink) = sink {
                if let Ok(ws) = stream.reunite(sink) {
                    let mut io = ws.into_inner();
                    drain(&mut io, limits.close_timeout).await;
                }
            }
            None
        }
    };
    drop(sink);
}

/// Waits for the writer to finish sending its Close, bounded in time.
async fn finish_writer(
    writer: JoinHandle<Option<SplitSink<WsStream, Message>>>,
    limit: Duration,
) -> Option<SplitSink<WsStream, Message>> {
    match tokio::time::timeout(limit + Duration::from_millis(100), writer).await {
        Ok(Ok(sink)) => sink,
        _ => None,
    }
}

/// Reads and discards bytes until EOF, an error, or `limit` elapses.
async fn drain(io: &mut Box<dyn Io>, limit: Duration) {
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(limit, async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
}

/// Timers of the read side, all served by one sleep.
struct Timers {
    /// When the next WebSocket Ping is due.
    next_ping: Instant,
    /// Last time anything arrived from the peer.
    last_seen: Instant,
    /// Deadline for the `connect` command; `None` once connected.
    connect_deadline: Option<Instant>,
    /// Token expiry; `None` when the token does not expire.
    expires_at: Option<Instant>,
}

impl Timers {
    fn next_wake(&self, idle: Duration) -> Instant {
        let mut wake = self.next_ping.min(self.last_seen + idle);
        if let Some(at) = self.connect_deadline {
            wake = wake.min(at);
        }
        if let Some(at) = self.expires_at {
            wake = wake.min(at);
        }
        wake
    }
}

async fn read_loop(
    shared: &Shared,
    stream: &mut SplitStream<WsStream>,
    session: &mut Session,
    conn: &ConnHandle,
    writer: &mut JoinHandle<Option<SplitSink<WsStream, Message>>>,
    encoding: Encoding,
) -> ReadEnd {
    let limits = &shared.config.limits;
    let now = Instant::now();
    let mut timers = Timers {
        next_ping: now + limits.ping_interval,
        last_seen: now,
        connect_deadline: Some(now + limits.connect_timeout),
        expires_at: None,
    };
    let sleep = tokio::time::sleep_until(timers.next_wake(limits.idle_timeout));
    tokio::pin!(sleep);
    let mut shutting_down = false;
    // Set once a close was queued; commands after it are not handled.
    let mut closing = false;

    loop {
        tokio::select! {
            biased;
            sink = &mut *writer => return ReadEnd::WriterDone(sink.ok().flatten()),
            _ = shared.shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.close_now(CloseCode::GoingAway, "server shutting down");
            }
            _ = &mut sleep => {
                let now = Instant::now();
                if timers.connect_deadline.is_some_and(|at| at <= now) {
                    conn.close_now(CloseCode::ConnectTimeout, "connect timeout");
                    timers.connect_deadline = None;
                }
                if timers.expires_at.is_some_and(|at| at <= now) {
                    conn.close_now(CloseCode::PolicyViolation, "token expired");
                    timers.expires_at = None;
                }
                if timers.last_seen + limits.idle_timeout <= now {
                    conn.close_now(CloseCode::IdleTimeout, "idle timeout");
                    timers.last_seen = now;
                }
                if timers.next_ping <= now {
                    conn.enqueue(Outbound::Ping);
                    timers.next_ping = now + limits.ping_interval;
                }
                sleep.as_mut().reset(timers.next_wake(limits.idle_timeout));
            }
            message = stream.next() => {
                let message = match message {
                    None => return ReadEnd::PeerClosed,
                    Some(Ok(message)) => message,
                    Some(Err(error)) => match read_error_close(&error) {
                        Some((code, reason)) => {
                            tracing::debug!(%error, code = code.code(), "closing after read error");
                            conn.close_now(code, reason);
                            return ReadEnd::Broken;
                        }
                        None => return ReadEnd::PeerClosed,
                    },
                };
                timers.last_seen = Instant::now();
                if message.is_close() {
                    // tungstenite queues the answering Close; the stream ends
                    // after it is sent.
                    continue;
                }
                if closing {
                    continue;
                }
                let frame = match codec::decode_client(encoding, &message) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => continue,
                    Err(DecodeError::WrongFrameType(kind)) => {
                        tracing::debug!(kind, "wrong frame type for subprotocol");
                        conn.close_now(CloseCode::UnsupportedData, "wrong frame type for subprotocol");
                        closing = true;
                        continue;
                    }
                    Err(DecodeError::Malformed(detail)) => {
                        session.malformed(&detail);
                        continue;
                    }
                };
                // Slow a pipelining client down instead of overflowing its
                // queue; a client that stops reading altogether is closed.
                let headroom = COMMAND_HEADROOM.min(limits.outbound_queue / 2);
                if tokio::time::timeout(limits.idle_timeout, conn.wait_for_headroom(headroom))
                    .await
                    .is_err()
                {
                    conn.close_now(CloseCode::SlowConsumer, "slow consumer");
                    closing = true;
                    continue;
                }
                let was_connected = session.identity().is_some();
                if session.handle(frame).await == Flow::Close {
                    closing = true;
                }
                if !was_connected {
                    if let Some(identity) = session.identity() {
                        timers.connect_deadline = None;
                        timers.expires_at = identity.expires_at.map(|secs| {
                            let now_secs = crate::ids::now_ms() / 1000;
                            let left = (secs as i64 - now_secs).max(0) as u64;
                            Instant::now() + Duration::from_secs(left)
                        });
                        sleep.as_mut().reset(timers.next_wake(limits.idle_timeout));
                    }
                }
            }
        }
    }
}

/// The close code for a read error, or `None` when the connection is simply
/// gone (nothing can be sent).
fn read_error_close(error: &WsError) -> Option<(CloseCode, &'static str)> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some((CloseCode::MessageTooBig, "message too big"))
        }
        WsError::Capacity(_) => Some((CloseCode::MessageTooBig, "frame too big")),
        WsError::Utf8(_) => Some((CloseCode::InvalidPayload, "invalid UTF-8 in text frame")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_) => None,
        WsError::Protocol(_) => Some((CloseCode::ProtocolError, "websocket protocol error")),
        _ => Some((CloseCode::InternalError, "internal error")),
    }
}

/// Drains the outbound queue into the socket until a close; returns the sink
/// so the connection can linger on the raw stream if it needs to.
async fn write_loop(
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    conn: ConnHandle,
    encoding: Encoding,
    batch: usize,
    close_timeout: Duration,
) -> Option<SplitSink<WsStream, Message>> {
    let mut buf = Vec::new();
    let reason = loop {
        let received = tokio::select! {
            biased;
            reason = conn.urgent_close() => break reason,
            n = rx.recv_many(&mut buf, batch) => n,
        };
        if received == 0 {
            // Every handle is gone; nothing more can be queued.
            break CloseReason {
                code: CloseCode::Normal.code(),
                reason: "closed",
            };
        }
        let write = async {
            for item in buf.drain(..) {
                match item {
                    Outbound::Frame(frame) => sink.feed(codec::to_message(encoding, frame)).await?,
                    Outbound::Ping => sink.feed(Message::Ping(Bytes::new())).await?,
                    Outbound::Close(code, reason) => {
                        sink.flush().await?;
                        return Ok(Some(CloseReason { code, reason }));
                    }
                }
            }
            sink.flush().await?;
            Ok::<_, WsError>(None)
        };
        let written = tokio::select! {
            biased;
            reason = conn.urgent_close() => break reason,
            written = write => written,
        };
        match written {
            Ok(None) => continue,
            Ok(Some(reason)) => break reason,
            Err(error) => {
                tracing::debug!(%error, "write failed");
                return None;
            }
        }
    };
    if reason.code == CloseCode::SlowConsumer.code() {
        tracing::info!("closing slow consumer");
    }
    // Drop what is still queued: after a close nothing else is sent.
    rx.close();
    let notice = codec::encode_server(&ServerFrame {
        id: 0,
        kind: Some(Kind::Disconnect(Disconnect {
            code: u32::from(reason.code),
            reason: reason.reason.to_owned(),
            reconnect: should_reconnect(reason.code),
        })),
    });
    let close = CloseFrame {
        code: WsCloseCode::from(reason.code),
        reason: reason.reason.into(),
    };
    let send_close = async {
        sink.feed(codec::to_message(encoding, notice)).await?;
        sink.send(Message::Close(Some(close))).await
    };
    match tokio::time::timeout(close_timeout, send_close).await {
        Ok(Ok(())) => Some(sink),
        _ => None,
    }
}
