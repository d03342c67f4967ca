//! One WebSocket connection, driven by a single task.
//!
//! The task multiplexes everything the connection does in one poll loop:
//!
//! - **write**: when the outbound queue has frames, it takes all of them at
//!   once, feeds them to the socket (up to `limits.write_batch` per flush) and
//!   flushes, so a busy connection writes many frames per syscall;
//! - **read**: decodes frames and runs the session's command handlers, as long
//!   as the queue has room for what a command may send back (a client that
//!   pipelines commands without reading replies is slowed down by TCP, and
//!   closed as a slow consumer if that lasts `limits.idle_timeout`);
//! - **timers**: connect timeout, ping interval, idle timeout and token
//!   expiry, all on a single sleep;
//! - **close**: an urgent close (slow consumer, shutdown, timeouts) skips the
//!   queue; an ordered close follows everything queued before it.
//!
//! One task and one socket object (no split halves, no second task, no
//! channel buffer while idle) keep an idle connection small.
//!
//! Every close sends a `Disconnect` push and the Close frame, then leaves the
//! session's rooms, then waits up to `limits.close_timeout` for the peer's
//! Close before the TCP connection is dropped.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::{ArcWake, AtomicWaker};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::broker::UserControl;
use crate::codec::{self, DecodeError, Encoding};
use crate::codes::should_reconnect;
use crate::metrics;
use crate::outbound::{CloseReason, ConnHandle, Outbound};
use crate::proto::{server_frame::Kind, CloseCode, Disconnect, ServerFrame};
use crate::server::Shared;
use crate::session::{Flow, Session};

/// Queue slots that must be free before a command is handled: its reply plus
/// what it may push to this same connection (e.g. its own published message).
const COMMAND_HEADROOM: usize = 4;
/// Most frames read and handled before what they queued is written.
const READS_PER_WRITE: u32 = 64;

/// Records whether the socket's read side was woken, so the loop polls it
/// only then: tungstenite zero-fills its read buffer on every read attempt,
/// which would otherwise be paid for every frame written.
struct ReadWake {
    /// Set by a wake of the read side; starts set so the first poll reads.
    woken: AtomicBool,
    /// The connection task, woken along with the flag.
    task: AtomicWaker,
}

impl ArcWake for ReadWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Release);
        arc_self.task.wake();
    }
}

/// The concrete stream type a connection runs on.
pub(crate) type WsStream = WebSocketStream<Box<dyn Io>>;

/// Any byte stream a WebSocket can run on (TCP, an upgraded HTTP connection).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// How the main loop ended.
enum End {
    /// Close with this reason: send `Disconnect` and Close, then linger.
    Close(CloseReason),
    /// The peer sent Close (tungstenite queued the answer) or EOF.
    PeerClosed,
    /// A read error after which the stream must not be read again: send the
    /// Close with this reason, then discard raw bytes for a moment.
    Broken(CloseReason),
    /// The socket failed: nothing more can be sent.
    Gone,
}

/// What woke the main loop.
enum Event {
    End(End),
    Shutdown,
    Timer,
    Read(Message),
    /// A backend's join or leave reached the front of the queue.
    Control(UserControl),
}

/// Why writing stopped before the queue was empty.
enum Stop {
    /// An ordered close: everything before it is flushed.
    Close(CloseReason),
    /// A control item for the session, in order with the frames.
    Control(UserControl),
}

/// Runs a connection until it is closed, however that happens.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    ws: WsStream,
    encoding: Encoding,
    bearer: Option<String>,
) {
    let limits = &shared.config.limits;
    let conn = ConnHandle::new(limits.outbound_queue);
    let mut link = Link {
        ws,
        conn: conn.clone(),
        encoding,
        batch: VecDeque::new(),
        batch_limit: limits.write_batch.max(1),
        fed: 0,
        fed_bytes: 0,
        unflushed: false,
    };
    let mut session = Session::new(shared.clone(), conn.clone(), bearer);
    metrics::get().connections.increment(1.0);
    let end = run(&shared, &mut link, &mut session).await;
    match &end {
        End::Close(reason) | End::Broken(reason) => {
            metrics::close(reason.code.to_string());
            if reason.code == CloseCode::SlowConsumer.code() {
                metrics::get().slow_consumers.increment(1);
            }
        }
        End::PeerClosed => metrics::close("peer"),
        End::Gone => metrics::close("gone"),
    }
    // Nothing queued from now on is sent.
    conn.shut();
    // Boxed, like command handling: closing happens once, so an idle
    // connection's task should not carry room for it.
    Box::pin(close(link, session, end, limits.close_timeout)).await;
    metrics::get().connections.decrement(1.0);
}

/// Closes the connection the way `end` requires.
async fn close(mut link: Link, mut session: Session, end: End, close_timeout: Duration) {
    match end {
        End::Close(reason) => {
            let sent = tokio::time::timeout(close_timeout, link.send_close(reason)).await;
            // Leave rooms right away so presence and fan-out stop including
            // us, before the (bounded) wait for the closing handshake.
            session.close().await;
            if matches!(sent, Ok(Ok(()))) {
                let _ = tokio::time::timeout(close_timeout, link.wait_for_close()).await;
            }
        }
        End::PeerClosed => {
            session.close().await;
            // Send tungstenite's answer to the peer's Close.
            let _ = tokio::time::timeout(close_timeout, link.ws.flush()).await;
        }
        End::Broken(reason) => {
            let _ = tokio::time::timeout(close_timeout, link.send_close(reason)).await;
            session.close().await;
            // The stream is unusable after the error, but the peer may still
            // be sending (e.g. the rest of an oversized frame). Discard raw
            // bytes briefly so the Close frame is read before TCP goes away,
            // instead of being lost to a reset.
            let mut io = link.ws.into_inner();
            drain(&mut io, close_timeout).await;
        }
        End::Gone => session.close().await,
    }
}

/// Reads and discards bytes until EOF, an error, or `limit` elapses.
async fn drain(io: &mut Box<dyn Io>, limit: Duration) {
    // On the heap: a buffer inside this future would enlarge every
    // connection's task, idle or not.
    let mut buf = vec![0u8; 2048];
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

/// Timers of the connection, all served by one sleep.
struct Timers {
    /// When the next WebSocket Ping is due.
    next_ping: Instant,
    /// Last time anything arrived from the peer.
    last_seen: Instant,
    /// Deadline for the `connect` command; `None` once connected.
    connect_deadline: Option<Instant>,
    /// Token expiry; `None` when the token does not expire.
    expires_at: Option<Instant>,
    /// Since when reading is paused because the queue has no room.
    stalled_since: Option<Instant>,
}

impl Timers {
    fn next_wake(&self, idle: Duration) -> Instant {
        let mut wake = self.next_ping.min(self.last_seen + idle);
        for at in [
            self.connect_deadline,
            self.expires_at,
            self.stalled_since.map(|s| s + idle),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(at);
        }
        wake
    }
}

/// The main loop: returns how the connection must end.
async fn run(shared: &Shared, link: &mut Link, session: &mut Session) -> End {
    let limits = &shared.config.limits;
    let now = Instant::now();
    let mut timers = Timers {
        next_ping: now + limits.ping_interval,
        last_seen: now,
        connect_deadline: Some(now + limits.connect_timeout),
        expires_at: None,
        stalled_since: None,
    };
    let sleep = tokio::time::sleep_until(timers.next_wake(limits.idle_timeout));
    tokio::pin!(sleep);
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    let mut shutting_down = false;
    let headroom = COMMAND_HEADROOM.min(limits.outbound_queue / 2);

    // Whether the socket's read side was woken since it was last polled.
    let read_wake = Arc::new(ReadWake {
        woken: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    let read_waker = futures_util::task::waker(read_wake.clone());
    // Frames read and handled since what they queued was last written.
    let mut reads = 0u32;

    loop {
        let mut stalled = false;
        let event = poll_fn(|cx| {
            // Registered on every poll: `poll_write` registers only once it
            // gets to take from the queue, and a full socket stops it before
            // that, so an urgent close (a slow consumer's overflow) would
            // otherwise wait for the next timer.
            link.conn.register(cx);
            if let Some(reason) = link.conn.urgent_close() {
                return Poll::Ready(Event::End(End::Close(reason)));
            }
            if !shutting_down && shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Shutdown);
            }
            read_wake.task.register(cx.waker());
            // Read first, so the replies to frames that arrived together go
            // out with one write; but write at least every READS_PER_WRITE.
            if reads < READS_PER_WRITE {
                if let Some(event) = link.poll_read(&read_wake, &read_waker, headroom, &mut stalled)
                {
                    reads += 1;
                    return Poll::Ready(event);
                }
            }
            match link.poll_write(cx) {
                Poll::Ready(Ok(Stop::Close(reason))) => {
                    return Poll::Ready(Event::End(End::Close(reason)))
                }
                Poll::Ready(Ok(Stop::Control(control))) => {
                    return Poll::Ready(Event::Control(control))
                }
                Poll::Ready(Err(error)) => {
                    tracing::debug!(%error, "write failed");
                    return Poll::Ready(Event::End(End::Gone));
                }
                Poll::Pending => {}
            }
            // Everything queued is written (or the socket is full): read on.
            reads = 0;
            if let Some(event) = link.poll_read(&read_wake, &read_waker, headroom, &mut stalled) {
                reads += 1;
                return Poll::Ready(event);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            Poll::Pending
        })
        .await;
        // Track stalls: the writer will make room, or the timer closes us.
        match (stalled, timers.stalled_since) {
            (true, None) => {
                timers.stalled_since = Some(Instant::now());
                sleep.as_mut().reset(timers.next_wake(limits.idle_timeout));
            }
            (false, Some(_)) => timers.stalled_since = None,
            _ => {}
        }
        match event {
            Event::End(end) => return end,
            Event::Control(control) => {
                if Box::pin(session.control(control)).await == Flow::Close {
                    return finish_queued(link).await;
                }
            }
            Event::Shutdown => {
                shutting_down = true;
                link.conn
                    .close_now(CloseCode::GoingAway, "server shutting down");
            }
            Event::Timer => {
                let now = Instant::now();
                if timers
                    .stalled_since
                    .is_some_and(|s| s + limits.idle_timeout <= now)
                {
                    link.conn
                        .close_now(CloseCode::SlowConsumer, "slow consumer");
                }
                if timers.connect_deadline.is_some_and(|at| at <= now) {
                    link.conn
                        .close_now(CloseCode::ConnectTimeout, "connect timeout");
                    timers.connect_deadline = None;
                }
                if timers.expires_at.is_some_and(|at| at <= now) {
                    link.conn
                        .close_now(CloseCode::PolicyViolation, "token expired");
                    timers.expires_at = None;
                }
                if timers.last_seen + limits.idle_timeout <= now {
                    link.conn.close_now(CloseCode::IdleTimeout, "idle timeout");
                    timers.last_seen = now;
                }
                if timers.next_ping <= now {
                    link.conn.enqueue(Outbound::Ping);
                    timers.next_ping = now + limits.ping_interval;
                }
                sleep.as_mut().reset(timers.next_wake(limits.idle_timeout));
            }
            Event::Read(message) => {
                timers.last_seen = Instant::now();
                let m = metrics::get();
                m.frames_in.increment(1);
                m.bytes_in.increment(message.len() as u64);
                if message.is_close() {
                    // tungstenite queues the answering Close; the stream
                    // ends after it is sent.
                    continue;
                }
                let frame = match codec::decode_client(link.encoding, &message) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => continue,
                    Err(DecodeError::WrongFrameType(kind)) => {
                        tracing::debug!(kind, "wrong frame type for subprotocol");
                        return End::Close(CloseReason::new(
                            CloseCode::UnsupportedData,
                            "wrong frame type for subprotocol",
                        ));
                    }
                    Err(DecodeError::Malformed(detail)) => {
                        session.malformed(&detail);
                        continue;
                    }
                };
                let expiry_before = session.identity().map(|i| i.expires_at);
                // Boxed: a command's future is large and short-lived; an idle
                // connection should not carry room for it.
                if Box::pin(session.handle(frame)).await == Flow::Close {
                    // The close was queued after the reply; read nothing more,
                    // write until it.
                    return finish_queued(link).await;
                }
                // Connected, or the token was refreshed: (re)arm the timers.
                let expiry = session.identity().map(|i| i.expires_at);
                if let (Some(expires_at), true) = (expiry, expiry != expiry_before) {
                    timers.connect_deadline = None;
                    timers.expires_at = expires_at.map(|secs| {
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

/// Writes everything queued up to the ordered close that ends it (or until
/// an urgent close or a write error), without reading.
async fn finish_queued(link: &mut Link) -> End {
    poll_fn(|cx| {
        if let Some(reason) = link.conn.urgent_close() {
            return Poll::Ready(End::Close(reason));
        }
        loop {
            return match link.poll_write(cx) {
                Poll::Ready(Ok(Stop::Close(reason))) => Poll::Ready(End::Close(reason)),
                // Closing: a backend's join or leave no longer matters.
                Poll::Ready(Ok(Stop::Control(_))) => continue,
                Poll::Ready(Err(_)) => Poll::Ready(End::Gone),
                Poll::Pending => Poll::Pending,
            };
        }
    })
    .await
}

/// The closing frame for a read error, or `None` when the connection is
/// simply gone (nothing can be sent).
fn read_error_close(error: &WsError) -> Option<CloseReason> {
    let (code, reason) = match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            (CloseCode::MessageTooBig, "message too big")
        }
        WsError::Capacity(_) => (CloseCode::MessageTooBig, "frame too big"),
        WsError::Utf8(_) => (CloseCode::InvalidPayload, "invalid UTF-8 in text frame"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_) => return None,
        WsError::Protocol(_) => (CloseCode::ProtocolError, "websocket protocol error"),
        _ => (CloseCode::InternalError, "internal error"),
    };
    Some(CloseReason::new(code, reason))
}

/// The socket and the write side's state.
struct Link {
    ws: WsStream,
    conn: ConnHandle,
    encoding: Encoding,
    /// Frames taken from the queue, being written.
    batch: VecDeque<Outbound>,
    /// Most frames fed before a flush.
    batch_limit: usize,
    /// Frames fed since the last flush.
    fed: usize,
    /// Bytes of the frames fed since the last flush (for metrics).
    fed_bytes: usize,
    /// Whether frames were fed and not yet flushed.
    unflushed: bool,
}

impl Link {
    /// Polls the read side if it was woken (and the queue has room for what
    /// a command may send back). `None`: nothing to handle now.
    fn poll_read(
        &mut self,
        wake: &ReadWake,
        waker: &Waker,
        headroom: usize,
        stalled: &mut bool,
    ) -> Option<Event> {
        if !wake.woken.swap(false, Ordering::AcqRel) {
            return None;
        }
        if !self.conn.has_room(headroom) {
            // Keep the wake for when the writer made room.
            wake.woken.store(true, Ordering::Release);
            *stalled = true;
            return None;
        }
        let mut cx = Context::from_waker(waker);
        let event = match self.ws.poll_next_unpin(&mut cx) {
            Poll::Pending => return None,
            Poll::Ready(Some(Ok(message))) => Event::Read(message),
            Poll::Ready(None) => Event::End(End::PeerClosed),
            Poll::Ready(Some(Err(error))) => Event::End(match read_error_close(&error) {
                Some(reason) => {
                    tracing::debug!(%error, code = reason.code, "closing after read error");
                    End::Broken(reason)
                }
                None => End::PeerClosed,
            }),
        };
        // More frames may be buffered already: read again next time.
        wake.woken.store(true, Ordering::Release);
        Some(event)
    }

    /// Writes what is queued. `Ready(Ok(reason))` when an ordered close was
    /// reached (everything before it is flushed); `Pending` when everything
    /// is written or the socket is full (the task is woken by the socket or
    /// by the next push).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stop, WsError>> {
        loop {
            if self.batch.is_empty() {
                if self.unflushed {
                    ready!(self.poll_flush(cx))?;
                }
                // Hand the queue an empty buffer: an idle connection then
                // holds no queue memory at all (one allocation per batch).
                if self.batch.capacity() > 0 {
                    self.batch = VecDeque::new();
                }
                // Register before looking, so a push right after is not missed.
                self.conn.register(cx);
                let taken = self.conn.take_into(&mut self.batch);
                if taken == 0 {
                    return Poll::Pending;
                }
                metrics::get().write_batch.record(taken as f64);
            }
            while let Some(item) = self.batch.front() {
                if let Outbound::Close(reason) = item {
                    let reason = *reason;
                    if self.unflushed {
                        ready!(self.poll_flush(cx))?;
                    }
                    self.batch.clear();
                    return Poll::Ready(Ok(Stop::Close(reason)));
                }
                if let Outbound::Control(_) = item {
                    if let Some(Outbound::Control(control)) = self.batch.pop_front() {
                        return Poll::Ready(Ok(Stop::Control(control)));
                    }
                }
                if self.fed >= self.batch_limit {
                    ready!(self.poll_flush(cx))?;
                }
                match self.ws.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
                let message = match self.batch.pop_front() {
                    Some(Outbound::Frame(frame)) => {
                        self.fed_bytes += frame.len();
                        codec::to_message(self.encoding, frame)
                    }
                    Some(Outbound::Ping) => Message::Ping(Bytes::new()),
                    Some(Outbound::Close(_) | Outbound::Control(_)) | None => {
                        unreachable!("checked above")
                    }
                };
                self.ws.start_send_unpin(message)?;
                self.unflushed = true;
                self.fed += 1;
            }
        }
    }

    /// Flushes what was fed and starts a new batch count.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        ready!(self.ws.poll_flush_unpin(cx))?;
        let m = metrics::get();
        m.frames_out.increment(self.fed as u64);
        m.bytes_out.increment(self.fed_bytes as u64);
        self.unflushed = false;
        self.fed = 0;
        self.fed_bytes = 0;
        Poll::Ready(Ok(()))
    }

    /// Sends the `Disconnect` push and the Close frame.
    async fn send_close(&mut self, reason: CloseReason) -> Result<(), WsError> {
        if reason.code == CloseCode::SlowConsumer.code() {
            tracing::info!("closing slow consumer");
        }
        self.batch.clear();
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
        self.ws
            .feed(codec::to_message(self.encoding, notice))
            .await?;
        self.ws.send(Message::Close(Some(close))).await
    }

    /// After our Close: reads until the peer's Close (or the end).
    async fn wait_for_close(&mut self) {
        while let Some(Ok(message)) = self.ws.next().await {
            if message.is_close() {
                break;
            }
        }
    }
}
