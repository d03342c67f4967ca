//! Server-assigned identifiers and timestamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Message ids: a random 64-bit starting point per process, then sequential.
/// Unique within a process; across processes a collision needs two random
/// starting points within the number of messages either has published.
static NEXT_MESSAGE_ID: LazyLock<AtomicU64> =
    LazyLock::new(|| AtomicU64::new(rand::random::<u64>() | 1));

/// A new message id (never 0).
pub fn message_id() -> u64 {
    loop {
        let id = NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

/// `bytes` random bytes as lowercase hex: epochs and client ids.
pub fn random_hex(bytes: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let _ = write!(out, "{:02x}", rand::random::<u8>());
    }
    out
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
