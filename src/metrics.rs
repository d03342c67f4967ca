//! Metrics in the Prometheus text format at `GET /metrics`.
//!
//! The process has one recorder (`metrics` with the Prometheus exporter),
//! installed by the first server that starts. Hot-path metrics are handles
//! registered once ([`Metrics`]), and the busiest of them are added to once
//! per batch rather than once per frame. The full list, with what each
//! means, is in `docs/OPERATIONS.md`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// Frames per write batch.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The registered handles.
pub(crate) struct Metrics {
    /// Open WebSocket connections.
    pub(crate) connections: Gauge,
    /// Room memberships of this node's connections.
    pub(crate) joined_rooms: Gauge,
    /// Messages accepted by a publish (WebSocket or HTTP API).
    pub(crate) published: Counter,
    /// Room messages queued to this node's subscribers.
    pub(crate) delivered: Counter,
    /// Data frames received from clients.
    pub(crate) frames_in: Counter,
    /// Bytes of data frames received from clients.
    pub(crate) bytes_in: Counter,
    /// Frames written to clients.
    pub(crate) frames_out: Counter,
    /// Bytes of frames written to clients (payload sizes).
    pub(crate) bytes_out: Counter,
    /// Connections closed because their outbound queue overflowed.
    pub(crate) slow_consumers: Counter,
    /// Frames taken from a connection's queue per write.
    pub(crate) write_batch: Histogram,
    /// From a message's publish time to its fan-out on this node.
    pub(crate) delivery_latency: Histogram,
    /// Whether the broker is reachable (1) or not (0).
    pub(crate) broker_ready: Gauge,
    /// Commands received, one counter per command name (registered once:
    /// counting a command is then a short scan and an atomic add).
    commands: Vec<(&'static str, Counter)>,
}

/// The command names `switchboard_commands_total` is labelled with.
const COMMANDS: [&str; 9] = [
    "connect", "join", "leave", "publish", "direct", "history", "presence", "ping", "refresh",
];

/// The process's recorder and handles.
struct Installed {
    handle: Option<PrometheusHandle>,
    metrics: Metrics,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

fn installed() -> &'static Installed {
    INSTALLED.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("switchboard_write_batch_frames".into()),
                    &BATCH_BUCKETS,
                )
            });
        let handle = match builder.map(|b| b.install_recorder()) {
            Ok(Ok(handle)) => Some(handle),
            Ok(Err(error)) | Err(error) => {
                // Another recorder owns the process (an embedding app):
                // metrics go there and /metrics says so.
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        };
        let metrics = Metrics {
            connections: gauge!("switchboard_connections"),
            joined_rooms: gauge!("switchboard_joined_rooms"),
            published: counter!("switchboard_messages_published_total"),
            delivered: counter!("switchboard_messages_delivered_total"),
            frames_in: counter!("switchboard_frames_received_total"),
            bytes_in: counter!("switchboard_bytes_received_total"),
            frames_out: counter!("switchboard_frames_sent_total"),
            bytes_out: counter!("switchboard_bytes_sent_total"),
            slow_consumers: counter!("switchboard_slow_consumer_disconnects_total"),
            write_batch: histogram!("switchboard_write_batch_frames"),
            delivery_latency: histogram!("switchboard_delivery_latency_seconds"),
            broker_ready: gauge!("switchboard_broker_ready"),
            commands: COMMANDS
                .iter()
                .map(|&name| {
                    (
                        name,
                        counter!("switchboard_commands_total", "command" => name),
                    )
                })
                .collect(),
        };
        Installed { handle, metrics }
    })
}

/// The handles (installing the recorder on first use).
pub(crate) fn get() -> &'static Metrics {
    &installed().metrics
}

/// The Prometheus text exposition of every metric.
pub(crate) fn render() -> String {
    match &installed().handle {
        Some(handle) => handle.render(),
        None => "# metrics are recorded by the embedding application's recorder\n".to_owned(),
    }
}

/// Counts a command by type (one of [`COMMANDS`]).
pub(crate) fn command(name: &'static str) {
    match get().commands.iter().find(|(n, _)| *n == name) {
        Some((_, counter)) => counter.increment(1),
        None => counter!("switchboard_commands_total", "command" => name).increment(1),
    }
}

/// Counts an error reply by code.
pub(crate) fn error(code: &'static str) {
    counter!("switchboard_errors_total", "code" => code).increment(1);
}

/// Counts an ended connection by close code (or `peer` when the client
/// closed first, `gone` when the socket broke).
pub(crate) fn close(code: impl Into<String>) {
    counter!("switchboard_closes_total", "code" => code.into()).increment(1);
}

/// Records how long a broker call took.
pub(crate) fn broker_call(op: &'static str, took: Duration) {
    histogram!("switchboard_broker_latency_seconds", "op" => op).record(took.as_secs_f64());
}

/// Records a room message's fan-out on this node: how many subscribers got
/// it and how long after its publish time.
pub(crate) fn fanned_out(delivered: usize, timestamp_ms: i64) {
    let m = get();
    m.delivered.increment(delivered as u64);
    let age_ms = crate::ids::now_ms().saturating_sub(timestamp_ms).max(0);
    m.delivery_latency.record(age_ms as f64 / 1000.0);
}
