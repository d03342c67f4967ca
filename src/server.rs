//! The listener: HTTP routes, the WebSocket upgrade, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::broker_memory::MemoryBroker;
use crate::codec::Encoding;
use crate::config::{Config, ConfigError};
use crate::connection::{self, Io};
use crate::hub::Hub;
use crate::presence::Presence;
use crate::presence_memory::MemoryPresence;

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
    /// Cancelled when the server starts shutting down.
    pub(crate) shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// tungstenite limits derived from the configuration.
    ws_config: WebSocketConfig,
}

/// Serves on `listener` until `shutdown` resolves, then closes every
/// WebSocket with 1001 and waits (up to `shutdown_timeout`) for them to end.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let hub = Hub::new();
    let broker = Arc::new(MemoryBroker::new(hub.clone(), config.history.clone()));
    let max = config.limits.max_message_size;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let shared = Arc::new(Shared {
        auth: Authenticator::new(&config),
        config,
        broker: broker.clone(),
        presence: Arc::new(MemoryPresence::default()),
        hub,
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        ws_config,
    });
    let sweeper = tokio::spawn(
        broker
            .clone()
            .sweep_until(SWEEP_INTERVAL, shared.shutdown.clone().cancelled_owned()),
    );

    let app = Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(shared.clone());
    let listener = listener.tap_io(|tcp| {
        // Frames are small and latency matters; the writer batches itself.
        let _ = tcp.set_nodelay(true);
    });
    let stop = shared.shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await?;

    shared.tracker.close();
    let timeout = shared.config.shutdown_timeout;
    if tokio::time::timeout(timeout, shared.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = shared.tracker.len(),
            "connections still open after shutdown_timeout"
        );
    }
    sweeper.abort();
    Ok(())
}

/// `GET /ws`: validates the upgrade request, negotiates the subprotocol and
/// hands the upgraded connection to a connection task.
async fn upgrade(State(shared): State<Arc<Shared>>, mut request: Request) -> Response {
    let headers = request.headers();
    if let Err(message) = check_upgrade_headers(headers) {
        return (StatusCode::BAD_REQUEST, message).into_response();
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
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
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
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let io: Box<dyn Io> = Box::new(TokioIo::new(upgraded));
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(shared.ws_config)).await;
        connection::serve(shared, ws, encoding).await;
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
