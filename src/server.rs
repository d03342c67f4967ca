//! The listener: HTTP routes, the WebSocket upgrade, and graceful shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::api;
use crate::auth::{Authenticator, KeyError};
use crate::broker::{Broker, BrokerError};
use crate::broker_memory::MemoryBroker;
use crate::broker_redis::RedisBroker;
use crate::codec::{encode_server, Encoding};
use crate::config::{BrokerKind, Config, ConfigError, HttpConfig};
use crate::connection::{self, Io};
use crate::hub::Hub;
use crate::limits::Limits;
use crate::metrics;
use crate::presence::Presence;
use crate::presence_memory::MemoryPresence;
use crate::presence_redis::RedisPresence;
use crate::proto::{server_frame::Kind, MemberLeft, ServerFrame};
use crate::tls;

/// How often idle in-memory rooms are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Bytes tungstenite reads from the socket at a time. Its default (128 KiB)
/// is allocated and zero-filled per connection; a few KiB is plenty for
/// frames of the sizes this protocol uses and keeps idle connections small.
const READ_BUFFER_SIZE: usize = 4 * 1024;

/// Bytes of frames tungstenite gathers before writing to the socket. The
/// writer flushes after each batch anyway; this only bounds one write.
const WRITE_BUFFER_SIZE: usize = 64 * 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A token key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The broker could not be set up (an invalid `redis_url`).
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Accepting or serving failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every connection of this node.
pub(crate) struct Shared {
    /// The configuration the server was started with.
    pub(crate) config: Config,
    /// Room state, history and fan-out.
    pub(crate) broker: Arc<dyn Broker>,
    /// Room membership.
    pub(crate) presence: Arc<dyn Presence>,
    /// Local subscribers and user connections.
    pub(crate) hub: Hub,
    /// Verifies `connect`.
    pub(crate) auth: Authenticator,
    /// Connection caps and rate limits.
    pub(crate) limits: Limits,
    /// Cancelled when the server starts shutting down.
    pub(crate) shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// tungstenite limits derived from the configuration.
    ws_config: WebSocketConfig,
}

/// The broker and presence a node runs with, for their housekeeping.
pub(crate) enum Backend {
    /// One node, in memory.
    Memory(Arc<MemoryBroker>),
    /// Shared through Redis.
    Redis {
        broker: Arc<RedisBroker>,
        presence: Arc<RedisPresence>,
        /// Stops the broker's pub/sub task once the node has drained.
        stop: CancellationToken,
    },
}

impl Shared {
    /// The node's state from a configuration (validated here), with the
    /// broker it names. Must run inside a Tokio runtime (the Redis broker
    /// starts its pub/sub task).
    pub(crate) fn new(config: Config) -> Result<(Arc<Shared>, Backend), ServerError> {
        config.validate()?;
        let auth = Authenticator::new(&config)?;
        let hub = Hub::new();
        let (broker, presence, backend): (Arc<dyn Broker>, Arc<dyn Presence>, Backend) =
            match config.broker {
                BrokerKind::Memory => {
                    let broker = Arc::new(MemoryBroker::new(hub.clone(), config.history.clone()));
                    (
                        broker.clone(),
                        Arc::new(MemoryPresence::default()),
                        Backend::Memory(broker),
                    )
                }
                BrokerKind::Redis => {
                    let stop = CancellationToken::new();
                    let broker = RedisBroker::start(
                        hub.clone(),
                        &config.redis_url,
                        config.history.clone(),
                        config.redis.clone(),
                        stop.clone(),
                    )?;
                    let presence =
                        Arc::new(RedisPresence::new(&config.redis_url, config.redis.clone())?);
                    (
                        broker.clone(),
                        presence.clone(),
                        Backend::Redis {
                            broker,
                            presence,
                            stop,
                        },
                    )
                }
            };
        let max = config.limits.max_message_size;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let limits = Limits::new(&config.limits);
        let shared = Arc::new(Shared {
            auth,
            limits,
            config,
            broker,
            presence,
            hub,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ws_config,
        });
        Ok((shared, backend))
    }
}

/// Serves on `listener` until `shutdown` resolves, then closes every
/// WebSocket with 1001 and waits (up to `shutdown_timeout`) for them to end.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tls = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let (shared, backend) = Shared::new(config)?;
    let backend = Arc::new(backend);
    let sweeper = tokio::spawn(housekeeping(
        backend.clone(),
        shared.clone(),
        shared.shutdown.clone().cancelled_owned(),
    ));

    let app = Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/", get(demo_page))
        .route("/demo.js", get(demo_script))
        .with_state(shared.clone())
        .merge(api::routes(shared.clone()));
    // HTTP connections (before or without an upgrade); upgraded WebSockets
    // are tracked in `shared.tracker`.
    let http = TaskTracker::new();
    let stop = shared.shutdown.clone();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Frames are small and latency matters; the writer batches itself.
        let _ = stream.set_nodelay(true);
        // A bounded kernel send buffer bounds what a client that stopped
        // reading holds beyond its outbound queue (see LimitsConfig).
        let send_buffer = shared.config.limits.socket_send_buffer;
        if send_buffer > 0 {
            if let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(send_buffer) {
                tracing::debug!(%error, "SO_SNDBUF not set");
            }
        }
        let service =
            app.clone()
                .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    request
                });
        http.spawn(serve_http(
            stream,
            tls.clone(),
            TowerToHyperService::new(service),
            shared.config.http.handshake_timeout,
            stop.clone(),
        ));
    }

    stop.cancel();
    http.close();
    shared.tracker.close();
    let timeout = shared.config.shutdown_timeout;
    let drained = async {
        http.wait().await;
        shared.tracker.wait().await;
    };
    if tokio::time::timeout(timeout, drained).await.is_err() {
        tracing::warn!(
            remaining = shared.tracker.len(),
            "connections still open after shutdown_timeout"
        );
    }
    sweeper.abort();
    if let Backend::Redis { stop, .. } = &*backend {
        stop.cancel();
    }
    Ok(())
}

/// Periodic housekeeping: idle in-memory rooms, or the Redis broker's
/// room and presence refresh; rate-limiter state.
async fn housekeeping(
    backend: Arc<Backend>,
    shared: Arc<Shared>,
    stop: tokio_util::sync::WaitForCancellationFutureOwned,
) {
    tokio::pin!(stop);
    let period = match &*backend {
        Backend::Memory(_) => SWEEP_INTERVAL,
        Backend::Redis { presence, .. } => presence.refresh_interval(),
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                match &*backend {
                    Backend::Memory(broker) => {
                        let removed = broker.sweep();
                        if removed > 0 {
                            tracing::debug!(removed, "swept idle rooms");
                        }
                    }
                    Backend::Redis { broker, presence, .. } => {
                        broker.maintain().await;
                        for (room, member) in presence.refresh().await {
                            let frame = encode_server(&ServerFrame {
                                id: 0,
                                kind: Some(Kind::MemberLeft(MemberLeft {
                                    room: room.to_string(),
                                    member: Some(member),
                                })),
                            });
                            if let Err(error) = broker.broadcast_presence_everywhere(&room, frame).await {
                                tracing::debug!(%error, "announcing an expired member failed");
                            }
                        }
                    }
                }
                shared.limits.sweep();
            }
        }
    }
}

/// One accepted TCP connection: optional TLS, then HTTP/1.1 with upgrades.
/// The TLS handshake and the request head must arrive within
/// `handshake_timeout`, so a slow or partial request cannot hold a socket.
async fn serve_http<S>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    service: S,
    handshake_timeout: Duration,
    stop: CancellationToken,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let io: Box<dyn Io> = match tls {
        None => Box::new(stream),
        Some(acceptor) => {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// `GET /readyz`: 200 while the node can serve (its broker is reachable and
/// it is not shutting down), 503 otherwise, so a load balancer sends new
/// clients elsewhere.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let ready = broker_ready(&shared);
    if shared.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if !ready {
        (StatusCode::SERVICE_UNAVAILABLE, "broker unreachable\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

/// Whether the broker is reachable, also recorded as a gauge.
fn broker_ready(shared: &Shared) -> bool {
    let ready = shared.broker.is_ready();
    metrics::get()
        .broker_ready
        .set(if ready { 1.0 } else { 0.0 });
    ready
}

/// `GET /metrics`: every metric in the Prometheus text format.
async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    broker_ready(&shared);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics::render(),
    )
        .into_response()
}

/// The demo chat page (`demo/`, built with esbuild and embedded).
const DEMO_PAGE: &[u8] = include_bytes!("../demo/dist/index.html");
const DEMO_SCRIPT: &[u8] = include_bytes!("../demo/dist/demo.js");

async fn demo_page(State(shared): State<Arc<Shared>>) -> Response {
    demo_asset(&shared, "text/html; charset=utf-8", DEMO_PAGE)
}

async fn demo_script(State(shared): State<Arc<Shared>>) -> Response {
    demo_asset(&shared, "text/javascript; charset=utf-8", DEMO_SCRIPT)
}

/// One of the demo page's files, unless `http.demo_page` is off.
fn demo_asset(shared: &Shared, content_type: &'static str, body: &'static [u8]) -> Response {
    if !shared.config.http.demo_page {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The client's address, attached to every request.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

/// `GET /ws`: validates the upgrade request (headers, origin, limits),
/// negotiates the subprotocol and hands the upgraded connection to a
/// connection task.
async fn upgrade(State(shared): State<Arc<Shared>>, mut request: Request) -> Response {
    let headers = request.headers();
    if let Err(message) = check_upgrade_headers(headers) {
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    if let Err(message) = check_origin(&shared.config.http, headers) {
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let negotiated = match Encoding::negotiate(offered) {
        Ok(negotiated) => negotiated,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let bearer = match bearer_token(headers) {
        Ok(token) => token,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let ip = request
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    if let Err(wait) = shared.limits.check_connect_rate(ip) {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many new connections from this address",
        )
            .into_response();
        let secs = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&secs) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let slot = match shared.limits.open_connection(ip) {
        Ok(slot) => slot,
        Err(message) => return (StatusCode::SERVICE_UNAVAILABLE, message).into_response(),
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "connection cannot be upgraded",
        )
            .into_response();
    };

    let encoding = negotiated.unwrap_or(Encoding::Proto);
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        // Held until the connection ends: counts it against the caps.
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let io: Box<dyn Io> = Box::new(TokioIo::new(upgraded));
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(shared.ws_config)).await;
        connection::serve(shared, ws, encoding, bearer).await;
    });

    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        out.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(encoding) = negotiated {
        out.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(encoding.subprotocol()),
        );
    }
    response
}

/// The origin policy: with `http.allowed_origins` empty every origin is
/// accepted; otherwise the `Origin` header must equal one of them exactly,
/// and a request without one is accepted only if `allow_missing_origin`.
fn check_origin(http: &HttpConfig, headers: &HeaderMap) -> Result<(), &'static str> {
    if http.allowed_origins.is_empty() {
        return Ok(());
    }
    match headers.get(header::ORIGIN) {
        None if http.allow_missing_origin => Ok(()),
        None => Err("an Origin header is required"),
        Some(origin) => {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| http.allowed_origins.iter().any(|a| a == o));
            if allowed {
                Ok(())
            } else {
                Err("origin not allowed")
            }
        }
    }
}

/// The token from an `Authorization: Bearer` header, if there is one. It
/// authenticates a `connect` that carries no token itself.
fn bearer_token(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "malformed Authorization header")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or("malformed Authorization header")?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err("the Authorization header must be `Bearer <token>`");
    }
    Ok(Some(token.trim().to_owned()))
}

fn check_upgrade_headers(headers: &HeaderMap) -> Result<(), &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err("expected a WebSocket upgrade request");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("unsupported Sec-WebSocket-Version; expected 13");
    }
    Ok(())
}
