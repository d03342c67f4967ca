//! A connection's bounded outbound queue and the handle others use to reach
//! it.
//!
//! Everything sent to a client — replies, room messages, direct messages,
//! presence events — goes through this queue, so frames leave in the order
//! they were queued. Nobody ever waits on another connection's queue: a full
//! queue marks that connection a slow consumer and it is closed with
//! `CLOSE_CODE_SLOW_CONSUMER`, while every other subscriber and the publisher
//! carry on.
//!
//! The queue is a `VecDeque` behind a mutex that is only held to push one
//! item or to swap the whole queue out, plus a waker for the connection's
//! task. An idle connection's queue owns no buffer at all, which keeps the
//! memory of a connected, idle client small; the connection takes everything
//! queued at once and writes it with one flush.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Context;

use bytes::Bytes;
use futures_util::task::AtomicWaker;

use crate::broker::UserControl;
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
    Close(CloseReason),
    /// A backend's join or leave for this connection (HTTP API), acted on
    /// by the connection's task in order with the frames around it.
    Control(UserControl),
}

/// Why and how a connection is being closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// WebSocket close code.
    pub(crate) code: u16,
    /// Short reason, sent in the Close frame and the `Disconnect` push.
    pub(crate) reason: &'static str,
}

impl CloseReason {
    pub(crate) fn new(code: CloseCode, reason: &'static str) -> Self {
        Self {
            code: code.code(),
            reason,
        }
    }
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
    /// Most items the queue holds.
    capacity: usize,
    /// The queue; `None` once the connection stopped accepting frames.
    queue: Mutex<Option<VecDeque<Outbound>>>,
    /// Set once by the first urgent close; later ones are ignored.
    close: OnceLock<CloseReason>,
    /// Wakes the connection's task: something was queued, or an urgent close
    /// (which skips the queue: the queue may be the very thing that is full).
    waker: AtomicWaker,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl ConnHandle {
    /// Creates a handle whose queue holds at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        let inner = ConnInner {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            capacity: capacity.max(1),
            queue: Mutex::new(Some(VecDeque::new())),
            close: OnceLock::new(),
            waker: AtomicWaker::new(),
        };
        Self {
            inner: Arc::new(inner),
        }
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

    fn lock(&self) -> MutexGuard<'_, Option<VecDeque<Outbound>>> {
        // Pushing or swapping cannot leave the deque half-changed.
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn enqueue(&self, item: Outbound) -> bool {
        let full = {
            let mut guard = self.lock();
            let Some(queue) = guard.as_mut() else {
                return false;
            };
            if queue.len() < self.inner.capacity {
                queue.push_back(item);
                false
            } else {
                true
            }
        };
        if full {
            self.close_now(CloseCode::SlowConsumer, "slow consumer");
            return false;
        }
        self.inner.waker.wake();
        true
    }

    /// Closes the connection as soon as possible, ahead of anything queued.
    pub fn close_now(&self, code: CloseCode, reason: &'static str) {
        if self.inner.close.set(CloseReason::new(code, reason)).is_ok() {
            self.inner.waker.wake();
        }
    }

    /// Closes the connection after everything already queued has been sent
    /// (e.g. after an error reply that explains the close). Falls back to an
    /// urgent close when the queue is full.
    pub(crate) fn close_after_queued(&self, code: CloseCode, reason: &'static str) {
        if !self.enqueue(Outbound::Close(CloseReason::new(code, reason))) {
            self.close_now(code, reason);
        }
    }

    /// The urgent close, if one was requested.
    pub(crate) fn urgent_close(&self) -> Option<CloseReason> {
        self.inner.close.get().copied()
    }

    /// Items waiting in the queue.
    pub(crate) fn queued(&self) -> usize {
        self.lock().as_ref().map_or(0, VecDeque::len)
    }

    /// Whether `slots` more items fit.
    pub(crate) fn has_room(&self, slots: usize) -> bool {
        self.queued() + slots <= self.inner.capacity
    }

    /// Registers the connection's task to be woken by the next push or
    /// urgent close.
    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.inner.waker.register(cx.waker());
    }

    /// Moves everything queued into `batch` (which must be empty), leaving
    /// `batch`'s old buffer as the queue's. Returns how many items moved.
    pub(crate) fn take_into(&self, batch: &mut VecDeque<Outbound>) -> usize {
        debug_assert!(batch.is_empty());
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(queue) => {
                std::mem::swap(queue, batch);
                batch.len()
            }
            None => 0,
        }
    }

    /// Stops accepting frames and drops what is queued: after a close
    /// nothing else is sent.
    pub(crate) fn shut(&self) {
        self.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_marks_slow_consumer() {
        let conn = ConnHandle::new(2);
        assert!(conn.push(Bytes::from_static(b"a")));
        assert!(conn.push(Bytes::from_static(b"b")));
        assert!(!conn.has_room(1));
        assert!(!conn.push(Bytes::from_static(b"c")));
        assert_eq!(conn.urgent_close().map(|r| r.code), Some(4000));
        let mut batch = VecDeque::new();
        assert_eq!(conn.take_into(&mut batch), 2);
        assert!(matches!(batch.pop_front(), Some(Outbound::Frame(_))));
        assert!(conn.has_room(2));
    }

    #[test]
    fn nothing_is_queued_after_shut() {
        let conn = ConnHandle::new(4);
        assert!(conn.push(Bytes::from_static(b"a")));
        conn.shut();
        assert!(!conn.push(Bytes::from_static(b"b")));
        assert_eq!(conn.queued(), 0);
        assert_eq!(
            conn.urgent_close(),
            None,
            "a shut queue is not a slow consumer"
        );
        let mut batch = VecDeque::new();
        assert_eq!(conn.take_into(&mut batch), 0);
    }
}
