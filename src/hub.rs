//! The hub: this node's local subscribers, by room and by user.
//!
//! The hub only knows who is connected here. Brokers call it to fan a frame
//! out to local subscribers; fan-out hands each subscriber a clone of the same
//! encoded `Bytes` (a reference-count increment, no copy, no allocation).
//!
//! The maps are sharded by key hash so that rooms and users on different
//! shards never contend. The shard locks are `std::sync::Mutex`, not tokio's:
//! they are held only for short synchronous work and never across `.await`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::broker::UserControl;
use crate::outbound::{ConnHandle, ConnId, Outbound};
use crate::proto::CloseCode;

const SHARDS: usize = 64;

/// One local subscription to a room.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The subscribing connection.
    pub conn: ConnHandle,
    /// Whether it asked for `MemberJoined` / `MemberLeft` pushes.
    pub presence_events: bool,
    /// The room offset its join reply ended at: live messages at or below it
    /// were already in the reply (or before the join) and are skipped by
    /// [`Hub::deliver_message`].
    pub after: u64,
}

#[derive(Default)]
struct Shard {
    /// Room name → its local subscribers.
    rooms: HashMap<Arc<str>, Vec<Subscriber>>,
    /// User id → that user's local connections, for direct messages.
    users: HashMap<Arc<str>, Vec<ConnHandle>>,
}

/// Local subscribers by room and connections by user. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    /// Shared shards; cloning the hub clones this `Arc`.
    inner: Arc<HubInner>,
}

struct HubInner {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            inner: Arc::new(HubInner {
                shards,
                hasher: RandomState::new(),
            }),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = self.inner.hasher.hash_one(key) as usize % SHARDS;
        // A panic while holding a shard lock cannot leave the maps in a state
        // worse than "one subscriber missing", so poisoning is ignored.
        self.inner.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a subscriber to a room. Returns false if that connection was
    /// already subscribed (nothing changes then).
    pub fn subscribe(&self, room: &str, subscriber: Subscriber) -> bool {
        let mut shard = self.shard(room);
        let subs = shard.rooms.entry(Arc::from(room)).or_default();
        if subs.iter().any(|s| s.conn.id() == subscriber.conn.id()) {
            return false;
        }
        subs.push(subscriber);
        true
    }

    /// Removes a connection from a room. Returns whether it was subscribed.
    pub fn unsubscribe(&self, room: &str, conn: ConnId) -> bool {
        let mut shard = self.shard(room);
        let Some(subs) = shard.rooms.get_mut(room) else {
            return false;
        };
        let Some(index) = subs.iter().position(|s| s.conn.id() == conn) else {
            return false;
        };
        subs.swap_remove(index);
        if subs.is_empty() {
            shard.rooms.remove(room);
        }
        true
    }

    /// Number of local subscribers of a room.
    pub fn subscriber_count(&self, room: &str) -> usize {
        self.shard(room).rooms.get(room).map_or(0, Vec::len)
    }

    /// Queues `frame` for every local subscriber of `room`. Returns how many
    /// accepted it (a subscriber whose queue is full is being closed as a slow
    /// consumer and does not count).
    pub fn deliver(&self, room: &str, frame: &Bytes) -> usize {
        let shard = self.shard(room);
        let Some(subs) = shard.rooms.get(room) else {
            return 0;
        };
        subs.iter().filter(|s| s.conn.push(frame.clone())).count()
    }

    /// Queues the room message at `offset` for every local subscriber of
    /// `room` whose join reply did not already reach past it. Returns how many
    /// accepted it.
    pub fn deliver_message(&self, room: &str, offset: u64, frame: &Bytes) -> usize {
        let shard = self.shard(room);
        let Some(subs) = shard.rooms.get(room) else {
            return 0;
        };
        subs.iter()
            .filter(|s| offset > s.after && s.conn.push(frame.clone()))
            .count()
    }

    /// Closes every local subscriber of `room` after what is already queued
    /// to it (a broker that can no longer keep the room's feed gap-free).
    /// Returns how many there were.
    pub fn close_room(&self, room: &str, code: CloseCode, reason: &'static str) -> usize {
        let shard = self.shard(room);
        let Some(subs) = shard.rooms.get(room) else {
            return 0;
        };
        for sub in subs {
            sub.conn.close_after_queued(code, reason);
        }
        subs.len()
    }

    /// Queues a presence event for the subscribers of `room` that asked for
    /// presence events, except the connection `except` it is about.
    pub fn deliver_presence(&self, room: &str, frame: &Bytes, except: ConnId) -> usize {
        let shard = self.shard(room);
        let Some(subs) = shard.rooms.get(room) else {
            return 0;
        };
        subs.iter()
            .filter(|s| s.presence_events && s.conn.id() != except)
            .filter(|s| s.conn.push(frame.clone()))
            .count()
    }

    /// Registers a connection of `user` for direct messages.
    pub fn add_user(&self, user: &str, conn: ConnHandle) {
        self.shard(user)
            .users
            .entry(Arc::from(user))
            .or_default()
            .push(conn);
    }

    /// Unregisters a connection of `user`.
    pub fn remove_user(&self, user: &str, conn: ConnId) {
        let mut shard = self.shard(user);
        if let Some(conns) = shard.users.get_mut(user) {
            conns.retain(|c| c.id() != conn);
            if conns.is_empty() {
                shard.users.remove(user);
            }
        }
    }

    /// Hands `control` to every local connection of `user`: a join or leave
    /// is queued for the connection to act on in order with its frames; a
    /// disconnect closes it with `CLOSE_CODE_KICKED` after what is queued.
    /// Returns how many connections there were.
    pub fn control_user(&self, user: &str, control: &UserControl) -> usize {
        let shard = self.shard(user);
        let Some(conns) = shard.users.get(user) else {
            return 0;
        };
        for conn in conns {
            match control {
                UserControl::Disconnect => {
                    conn.close_after_queued(CloseCode::Kicked, "disconnected by the server")
                }
                other => {
                    conn.enqueue(Outbound::Control(other.clone()));
                }
            }
        }
        conns.len()
    }

    /// Queues `frame` for every local connection of `user`.
    pub fn deliver_user(&self, user: &str, frame: &Bytes) -> usize {
        let shard = self.shard(user);
        let Some(conns) = shard.users.get(user) else {
            return 0;
        };
        conns.iter().filter(|c| c.push(frame.clone())).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_deliver_unsubscribe() {
        let hub = Hub::new();
        let a = ConnHandle::new(8);
        let b = ConnHandle::new(8);
        assert!(hub.subscribe(
            "r",
            Subscriber {
                conn: a.clone(),
                presence_events: true,
                after: 0,
            }
        ));
        assert!(!hub.subscribe(
            "r",
            Subscriber {
                conn: a.clone(),
                presence_events: true,
                after: 0,
            }
        ));
        assert!(hub.subscribe(
            "r",
            Subscriber {
                conn: b.clone(),
                presence_events: false,
                after: 0,
            }
        ));
        assert_eq!(hub.deliver("r", &Bytes::from_static(b"x")), 2);
        assert_eq!(
            hub.deliver_presence("r", &Bytes::from_static(b"p"), b.id()),
            1
        );
        assert_eq!(a.queued(), 2, "the message and the presence event");
        assert!(hub.unsubscribe("r", a.id()));
        assert!(!hub.unsubscribe("r", a.id()));
        assert_eq!(hub.subscriber_count("r"), 1);
        assert!(hub.unsubscribe("r", b.id()));
        assert_eq!(hub.subscriber_count("r"), 0);
    }
}
