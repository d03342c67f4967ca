//! Benchmark connections: opened from spread-out loopback sources, each run
//! by one task that reads frames, counts markers and answers keepalives.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::payload::{self, Clock, Kind};
use crate::wire::Target;

/// A WebSocket client stream.
pub type Ws = WebSocketStream<TcpStream>;

/// Number of loopback source addresses connections are spread over
/// (127.0.0.2 onwards), so the ephemeral port range never runs out.
const SOURCES: u32 = 64;

/// Where connections go.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// The target's protocol.
    pub target: Target,
    /// Its listening address.
    pub addr: SocketAddr,
    /// A second node of the same deployment: odd-numbered connections go
    /// there.
    pub alt: Option<SocketAddr>,
}

impl Endpoint {
    /// The address connection number `n` connects to.
    pub fn addr_for(&self, n: u32) -> SocketAddr {
        match self.alt {
            Some(alt) if n % 2 == 1 => alt,
            _ => self.addr,
        }
    }
}

/// The loopback source address of connection number `n`.
pub fn source(n: u32) -> Ipv4Addr {
    let host = 2 + n % SOURCES;
    Ipv4Addr::new(127, 0, 0, host as u8)
}

/// Opens connection number `n`: TCP from its loopback source, the upgrade,
/// and the protocol's connect handshake, all within `timeout`.
pub async fn open(endpoint: Endpoint, n: u32, timeout: Duration) -> Result<Ws> {
    tokio::time::timeout(timeout, open_inner(endpoint, n))
        .await
        .with_context(|| format!("connection {n}: timed out after {timeout:?}"))?
}

async fn open_inner(endpoint: Endpoint, n: u32) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source(n), 0)))?;
    let addr = endpoint.addr_for(n);
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let target = endpoint.target;
    let mut request = format!("ws://{}{}", addr, target.path()).into_client_request()?;
    if let Some(protocol) = target.subprotocol() {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    // Small buffers: the tool holds up to tens of thousands of connections.
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    if let Some(hello) = target.hello(&format!("bench-{n}")) {
        ws.send(hello).await?;
        loop {
            let Some(frame) = ws.next().await else {
                bail!("connection {n}: closed during the connect handshake");
            };
            let frame = frame?;
            if let Some(answer) = target.answer(&frame) {
                ws.send(answer).await?;
            }
            if let Message::Close(close) = &frame {
                bail!("connection {n}: closed during the connect handshake: {close:?}");
            }
            if target.is_ready(&frame) {
                break;
            }
        }
    }
    Ok(ws)
}

/// A counter written by one task and read by others, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counter(AtomicU64);

impl Counter {
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// What a receiving connection reports when it stops.
#[derive(Debug)]
pub struct Received {
    /// Measured deliveries.
    pub count: u64,
    /// Latency of measured deliveries, in nanoseconds (when recorded).
    pub latency: Option<Histogram<u64>>,
    /// Clock time of the last measured delivery.
    pub last_ns: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// How a receiving connection behaves.
#[derive(Clone)]
pub struct Receiver {
    /// Target protocol (for keepalives).
    pub target: Target,
    /// Shared clock of the run.
    pub clock: Clock,
    /// Measured deliveries so far, for flow control and progress.
    pub counter: Arc<Counter>,
    /// Set once the first warm-up marker arrived (the join took effect).
    pub warm: Arc<Counter>,
    /// Stop after this many measured deliveries (`u64::MAX`: until cancelled).
    pub expect: u64,
    /// Record latency.
    pub record_latency: bool,
}

/// Runs one connection: sends what arrives on `outgoing`, reads and counts
/// markers, answers keepalives, until `expect` deliveries, `stop` fires (or
/// its sender is dropped), or an error. Each task has its own `stop`: a
/// shared cancellation token would put a contended lock on every frame.
pub async fn run(
    mut ws: Ws,
    rx: Receiver,
    mut outgoing: Option<mpsc::Receiver<Message>>,
    stop: oneshot::Receiver<()>,
) -> Received {
    tokio::pin!(stop);
    let mut latency = None::<Histogram<u64>>;
    let mut count = 0u64;
    let mut last_ns = 0u64;
    let mut error = None;
    let mut pending_answer = None;
    if rx.expect == 0 {
        return Received {
            count,
            latency,
            last_ns,
            error,
        };
    }
    loop {
        if let Some(answer) = pending_answer.take() {
            if let Err(e) = ws.send(answer).await {
                error = Some(format!("send: {e}"));
                break;
            }
        }
        let frame = tokio::select! {
            biased;
            _ = &mut stop => break,
            out = async {
                match outgoing.as_mut() {
                    Some(o) => o.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match out {
                    Some(message) => {
                        if let Err(e) = ws.send(message).await {
                            error = Some(format!("send: {e}"));
                            break;
                        }
                    }
                    None => outgoing = None,
                }
                continue;
            }
            frame = ws.next() => frame,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                error = Some(format!("read: {e}"));
                break;
            }
            None => {
                error = Some("closed by the server".to_owned());
                break;
            }
        };
        let data: &[u8] = match &frame {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            Message::Close(c) => {
                error = Some(format!("closed by the server: {c:?}"));
                break;
            }
            _ => continue,
        };
        let now = rx.clock.now_ns();
        payload::scan(data, |mark| match mark.kind {
            Kind::Warmup => rx.warm.set(1),
            Kind::Measured => {
                count += 1;
                last_ns = now;
                if rx.record_latency {
                    let h = latency.get_or_insert_with(new_histogram);
                    h.saturating_record(now.saturating_sub(mark.sent_ns).max(1));
                }
            }
        });
        rx.counter.set(count);
        pending_answer = rx.target.answer(&frame);
        if count >= rx.expect {
            break;
        }
    }
    rx.counter.set(count);
    Received {
        count,
        latency,
        last_ns,
        error,
    }
}

/// A latency histogram: 1 ns to 60 s, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}
