//! A connection's bounded outbound queue and the handle others use to reach
//! it.
//!
//! Everything sent to a client — replies, room messages, direct messages,
//! presence events — goes through this queue, so frames leave in the order
//! they were queued. Nobody ever waits on another connection's queue: a full
//! queue marks that connection a slow consumer and it is closed with
//! `CLOSE_CODE_SLOW_CONSUMER`, while every other subscriber and the publisher
//! carry on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::proto::CloseCode;

/// Process-unique connection number, used as the key in room and user maps.
pub type ConnId = u64;

/// One item in the outbound queue.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// An encoded `ServerFrame` (binary protobuf; converted for JSON clients).
    Frame(Bytes),
    /// Send a WebSocket Ping.
    Ping,
    /// Send a `Disconnect` push and the Close frame, after everything queued
    /// before it.
    Close(u16, &'static str),
}

/// Why and how a connection is being closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// WebSocket close code.
    pub(crate) code: u16,
    /// Short reason, sent in the Close frame and the `Disconnect` push.
    pub(crate) reason: &'static str,
}

/// Cheap-to-clone handle to a connection's outbound side.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    /// Shared state; the handle is just an `Arc`.
    inner: Arc<ConnInner>,
}

#[derive(Debug)]
struct ConnInner {
    /// Key in room and user maps.
    id: ConnId,
    /// The bounded queue the connection's writer drains.
    tx: mpsc::Sender<Outbound>,
    /// Set once by the first urgent close; later ones are ignored.
    close: OnceLock<CloseReason>,
    /// Wakes the writer for an urgent close, which skips the queue (the queue
    /// may be the very thing that is full).
    close_signal: Notify,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl ConnHandle {
    /// Creates a handle and the receiving end of its queue of `capacity`.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        let inner = ConnInner {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            tx,
            close: OnceLock::new(),
            close_signal: Notify::new(),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// The connection's number.
    pub fn id(&self) -> ConnId {
        self.inner.id
    }

    /// Queues an encoded frame without waiting. Returns false when the frame
    /// was not queued: the queue was full (the connection is then closed as a
    /// slow consumer) or the connection is gone.
    pub fn push(&self, frame: Bytes) -> bool {
        self.enqueue(Outbound::Frame(frame))
    }

    pub(crate) fn enqueue(&self, item: Outbound) -> bool {
        match self.inner.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close_now(CloseCode::SlowConsumer, "slow consumer");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Closes the connection as soon as possible, ahead of anything queued.
    pub fn close_now(&self, code: CloseCode, reason: &'static str) {
        let reason = CloseReason {
            code: code.code(),
            reason,
        };
        if self.inner.close.set(reason).is_ok() {
            self.inner.close_signal.notify_one();
        }
    }

    /// Closes the connection after everything already queued has been sent
    /// (e.g. after an error reply that explains the close). Falls back to an
    /// urgent close when the queue is full.
    pub(crate) fn close_after_queued(&self, code: CloseCode, reason: &'static str) {
        if !self.enqueue(Outbound::Close(code.code(), reason)) {
            self.close_now(code, reason);
        }
    }

    /// Waits until enough queue slots are free to answer one command and
    /// deliver what it causes, so a client that pipelines commands is slowed
    /// down (through TCP backpressure) instead of overflowing its own queue.
    pub(crate) async fn wait_for_headroom(&self, slots: usize) {
        // Reserving and immediately releasing the permits only waits; the
        // frames themselves are queued with `try_send`.
        let _ = self.inner.tx.reserve_many(slots).await;
    }

    /// Resolves when an urgent close was requested; returns its reason.
    pub(crate) async fn urgent_close(&self) -> CloseReason {
        loop {
            if let Some(reason) = self.inner.close.get() {
                return *reason;
            }
            self.inner.close_signal.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_marks_slow_consumer() {
        let (conn, mut rx) = ConnHandle::new(2);
        assert!(conn.push(Bytes::from_static(b"a")));
        assert!(conn.push(Bytes::from_static(b"b")));
        assert!(!conn.push(Bytes::from_static(b"c")));
        let reason = conn.urgent_close().await;
        assert_eq!(reason.code, 4000);
        assert!(matches!(rx.recv().await, Some(Outbound::Frame(_))));
    }
}
