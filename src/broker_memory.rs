//! `MemoryBroker`: the single-node, in-memory broker (the default).
//!
//! Room state lives in sharded maps guarded by `std::sync::Mutex` (never held
//! across `.await`). Publishing to a room and joining it both run under that
//! room's shard lock, which is what makes offset assignment, history append,
//! delivery, and join-with-recovery one atomic step each: a join sees either
//! all of a publish or none of it, so replay and live delivery neither
//! overlap nor leave a gap.
//!
//! Every room's epoch is random and made when the room's state is created, so
//! it changes on every server start and whenever an idle room whose history
//! has expired is swept away.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::broker::{
    Broker, BrokerError, HistoryPage, HistoryQuery, JoinNotice, JoinResult, Publication,
    PublishResult, UserControl,
};
use crate::codec::encode_server;
use crate::config::HistoryConfig;
use crate::hub::{Hub, Subscriber};
use crate::ids;
use crate::outbound::ConnId;
use crate::proto::{server_frame::Kind, RoomMessage, ServerFrame, StreamPosition};

const SHARDS: usize = 64;

/// Room name → state: one shard.
type Rooms = HashMap<Arc<str>, RoomState>;

/// A message in a room's history.
struct Stored {
    /// The message as delivered.
    message: RoomMessage,
    /// When it was published, for age-based expiry.
    at: Instant,
}

/// A remembered idempotency key.
struct IdempotencyEntry {
    /// The first publish's result, returned to retries.
    result: PublishResult,
    /// When it was recorded, for expiry.
    at: Instant,
}

/// The authoritative state of one room.
struct RoomState {
    /// Identifies this incarnation of the room's history.
    epoch: String,
    /// Offset of the newest message; 0 before the first.
    offset: u64,
    /// Bounded by count and age; offsets are contiguous, oldest first.
    history: VecDeque<Stored>,
    /// Idempotency key → first result.
    idempotency: HashMap<String, IdempotencyEntry>,
    /// Keys in insertion order, to expire and cap them oldest first.
    idempotency_order: VecDeque<String>,
}

impl RoomState {
    fn new() -> Self {
        Self {
            epoch: ids::random_hex(8),
            offset: 0,
            history: VecDeque::new(),
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }

    /// Drops history and idempotency keys that are too old or too many.
    fn expire(&mut self, now: Instant, limits: &HistoryConfig) {
        while self.history.len() > limits.max_messages {
            self.history.pop_front();
        }
        while self
            .history
            .front()
            .is_some_and(|m| now.duration_since(m.at) >= limits.ttl)
        {
            self.history.pop_front();
        }
        while let Some(key) = self.idempotency_order.front() {
            let expired = self.idempotency_order.len() > limits.idempotency_max_keys
                || self
                    .idempotency
                    .get(key)
                    .is_none_or(|e| now.duration_since(e.at) >= limits.idempotency_ttl);
            if !expired {
                break;
            }
            if let Some(key) = self.idempotency_order.pop_front() {
                self.idempotency.remove(&key);
            }
        }
    }

    /// Offset of the oldest message still in history.
    fn first_offset(&self) -> Option<u64> {
        self.history.front().map(|m| m.message.offset)
    }

    /// Messages with offsets in `lo..=hi` (both within history).
    fn range(&self, lo: u64, hi: u64) -> Vec<RoomMessage> {
        let Some(first) = self.first_offset() else {
            return Vec::new();
        };
        if hi < lo {
            return Vec::new();
        }
        let start = (lo - first) as usize;
        let end = (hi - first) as usize;
        self.history
            .range(start..=end)
            .map(|m| m.message.clone())
            .collect()
    }

    /// Whether everything after `since` is still available.
    fn can_recover(&self, since: &StreamPosition) -> bool {
        if since.epoch != self.epoch || since.offset > self.offset {
            return false;
        }
        if since.offset == self.offset {
            return true;
        }
        self.first_offset()
            .is_some_and(|first| first <= since.offset + 1)
    }
}

/// The in-memory broker. Cheap to share behind an `Arc`.
pub struct MemoryBroker {
    /// Local subscribers; the only node there is.
    hub: Hub,
    /// History and idempotency limits.
    limits: HistoryConfig,
    /// Room name → state, sharded by name hash.
    shards: Box<[Mutex<Rooms>]>,
    /// Picks a room's shard.
    hasher: RandomState,
}

impl MemoryBroker {
    /// A broker delivering to `hub`, keeping history within `limits`.
    pub fn new(hub: Hub, limits: HistoryConfig) -> Self {
        Self {
            hub,
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, room: &str) -> MutexGuard<'_, Rooms> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The room's state, created on first use, with expired history and keys
    /// dropped. Looks up before inserting so the hot path (an existing room)
    /// allocates no key.
    fn room_state<'a>(&self, rooms: &'a mut Rooms, room: &str, now: Instant) -> &'a mut RoomState {
        if !rooms.contains_key(room) {
            rooms.insert(Arc::from(room), RoomState::new());
        }
        let state = rooms.get_mut(room).expect("room state was just ensured");
        state.expire(now, &self.limits);
        state
    }

    /// Forgets rooms that have no local subscriber, no history left and no
    /// idempotency keys left. Returns how many were removed. Run periodically
    /// so memory follows the set of live rooms.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut rooms = shard.lock().unwrap_or_else(|p| p.into_inner());
            rooms.retain(|name, state| {
                state.expire(now, &self.limits);
                let keep = !state.history.is_empty()
                    || !state.idempotency.is_empty()
                    || self.hub.subscriber_count(name) > 0;
                if !keep {
                    removed += 1;
                }
                keep
            });
        }
        removed
    }

    /// Subscribes and computes the join result under the room's lock, and
    /// hands it to `reply` while still holding it, so nothing published after
    /// the join can be queued to the subscriber before the reply.
    fn join_with(
        &self,
        room: &str,
        subscriber: Subscriber,
        since: Option<StreamPosition>,
        reply: impl FnOnce(JoinResult),
    ) {
        let mut rooms = self.shard(room);
        let state = self.room_state(&mut rooms, room, Instant::now());
        self.hub.subscribe(
            room,
            Subscriber {
                after: state.offset,
                ..subscriber
            },
        );
        let mut result = JoinResult {
            position: state.position(),
            ..JoinResult::default()
        };
        if let Some(since) = since {
            if state.can_recover(&since) {
                result.recovered = true;
                result.messages = state.range(since.offset + 1, state.offset);
            }
        }
        reply(result);
    }

    /// Number of rooms with state.
    pub fn room_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(
        &self,
        room: &str,
        publication: Publication,
    ) -> Result<PublishResult, BrokerError> {
        let now = Instant::now();
        let timestamp_ms = ids::now_ms();
        let mut rooms = self.shard(room);
        let state = self.room_state(&mut rooms, room, now);

        // Keys are scoped to their publisher: two users picking the same key
        // never collide, and nobody can read another user's result.
        let key = if publication.idempotency_key.is_empty() {
            String::new()
        } else {
            format!("{}\0{}", publication.sender, publication.idempotency_key)
        };
        if !key.is_empty() {
            if let Some(entry) = state.idempotency.get(&key) {
                return Ok(PublishResult {
                    duplicate: true,
                    ..entry.result.clone()
                });
            }
        }

        state.offset += 1;
        let message = RoomMessage {
            id: ids::message_id(),
            room: room.to_owned(),
            offset: state.offset,
            sender: publication.sender,
            timestamp_ms,
            payload: Some(publication.payload),
        };
        let result = PublishResult {
            offset: message.offset,
            epoch: state.epoch.clone(),
            id: message.id,
            timestamp_ms,
            duplicate: false,
        };
        // Encode once; every subscriber gets a clone of the same bytes.
        let frame = ServerFrame {
            id: 0,
            kind: Some(Kind::Message(message)),
        };
        let encoded = encode_server(&frame);
        let Some(Kind::Message(message)) = frame.kind else {
            unreachable!("frame was built with a message");
        };
        state.history.push_back(Stored { message, at: now });
        if state.history.len() > self.limits.max_messages {
            state.history.pop_front();
        }
        if !key.is_empty() {
            state.idempotency_order.push_back(key.clone());
            state.idempotency.insert(
                key,
                IdempotencyEntry {
                    result: result.clone(),
                    at: now,
                },
            );
        }
        let delivered = self.hub.deliver_message(room, result.offset, &encoded);
        let m = crate::metrics::get();
        m.published.increment(1);
        crate::metrics::fanned_out(delivered, timestamp_ms);
        Ok(result)
    }

    async fn join(
        &self,
        room: &str,
        subscriber: Subscriber,
        since: Option<StreamPosition>,
        notice: JoinNotice,
    ) -> Result<(), BrokerError> {
        let conn = subscriber.conn.clone();
        self.join_with(room, subscriber, since, |result| {
            conn.push(notice.frame(room, result));
        });
        Ok(())
    }

    async fn leave(&self, room: &str, conn: ConnId) -> Result<bool, BrokerError> {
        Ok(self.hub.unsubscribe(room, conn))
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistoryPage, BrokerError> {
        let mut rooms = self.shard(room);
        let state = self.room_state(&mut rooms, room, Instant::now());
        let mut page = HistoryPage {
            position: state.position(),
            ..HistoryPage::default()
        };
        let (Some(first), last) = (state.first_offset(), state.offset) else {
            return Ok(page);
        };
        let limit = query.limit.max(1) as u64;
        // Inclusive upper bound of what may be returned at all.
        let ceiling = if query.before > 0 {
            last.min(query.before - 1)
        } else {
            last
        };
        if query.after > 0 {
            let lo = first.max(query.after + 1);
            if lo <= ceiling {
                let hi = ceiling.min(lo + limit - 1);
                page.messages = state.range(lo, hi);
                page.has_more = hi < ceiling;
            }
        } else if ceiling >= first {
            let lo = first.max(ceiling.saturating_sub(limit - 1));
            page.messages = state.range(lo, ceiling);
            page.has_more = lo > first;
        }
        Ok(page)
    }

    async fn send_to_user(&self, user: &str, frame: Bytes) -> Result<(), BrokerError> {
        self.hub.deliver_user(user, &frame);
        Ok(())
    }

    async fn broadcast_presence(
        &self,
        room: &str,
        frame: Bytes,
        except: ConnId,
    ) -> Result<(), BrokerError> {
        self.hub.deliver_presence(room, &frame, except);
        Ok(())
    }

    async fn notify_room(&self, room: &str, frame: Bytes) -> Result<(), BrokerError> {
        self.hub.deliver(room, &frame);
        Ok(())
    }

    async fn control_user(&self, user: &str, control: UserControl) -> Result<(), BrokerError> {
        self.hub.control_user(user, &control);
        Ok(())
    }

    async fn rooms(&self, limit: usize) -> Result<(Vec<String>, bool), BrokerError> {
        let mut names = std::collections::BTreeSet::new();
        for shard in self.shards.iter() {
            let rooms = shard.lock().unwrap_or_else(|p| p.into_inner());
            names.extend(rooms.keys().map(|r| r.to_string()));
        }
        let more = names.len() > limit;
        Ok((names.into_iter().take(limit).collect(), more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::ConnHandle;
    use crate::proto::Payload;
    use std::time::Duration;

    fn publication(text: &str) -> Publication {
        Publication {
            sender: "u".into(),
            payload: Payload {
                text: text.into(),
                ..Payload::default()
            },
            idempotency_key: String::new(),
        }
    }

    fn broker(max_messages: usize) -> MemoryBroker {
        MemoryBroker::new(
            Hub::new(),
            HistoryConfig {
                max_messages,
                ..HistoryConfig::default()
            },
        )
    }

    #[tokio::test]
    async fn offsets_history_and_paging() {
        let broker = broker(10);
        for i in 1..=25u64 {
            let r = broker.publish("r", publication("x")).await.unwrap();
            assert_eq!(r.offset, i);
        }
        let offsets = |p: &HistoryPage| p.messages.iter().map(|m| m.offset).collect::<Vec<_>>();
        let q = |limit, before, after| HistoryQuery {
            limit,
            before,
            after,
        };
        let page = broker.history("r", q(4, 0, 0)).await.unwrap();
        assert_eq!(offsets(&page), vec![22, 23, 24, 25]);
        assert!(page.has_more);
        let page = broker.history("r", q(4, 18, 0)).await.unwrap();
        assert_eq!(offsets(&page), vec![16, 17]);
        assert!(!page.has_more);
        let page = broker.history("r", q(3, 0, 10)).await.unwrap();
        assert_eq!(offsets(&page), vec![16, 17, 18]);
        assert!(page.has_more);
        let page = broker.history("r", q(30, 0, 20)).await.unwrap();
        assert_eq!(offsets(&page), vec![21, 22, 23, 24, 25]);
        assert!(!page.has_more);
    }

    #[tokio::test]
    async fn recovery_rules() {
        let broker = broker(5);
        let conn = ConnHandle::new(64);
        let sub = || Subscriber {
            conn: conn.clone(),
            presence_events: false,
            after: 0,
        };
        let join = |since: Option<StreamPosition>| {
            let mut out = JoinResult::default();
            broker.join_with("r", sub(), since, |r| out = r);
            out
        };
        let epoch = join(None).position.epoch;
        for _ in 0..8 {
            broker.publish("r", publication("x")).await.unwrap();
        }
        let since = |offset, epoch: &str| {
            Some(StreamPosition {
                offset,
                epoch: epoch.to_owned(),
            })
        };
        let r = join(since(3, &epoch));
        assert!(r.recovered);
        assert_eq!(r.messages.len(), 5);
        assert_eq!(r.messages[0].offset, 4);
        let r = join(since(2, &epoch));
        assert!(!r.recovered && r.messages.is_empty());
        let r = join(since(8, &epoch));
        assert!(r.recovered && r.messages.is_empty());
        let r = join(since(8, "other"));
        assert!(!r.recovered);
        let r = join(since(9, &epoch));
        assert!(!r.recovered);
    }

    #[tokio::test]
    async fn idempotent_publish() {
        let broker = broker(10);
        let mut p = publication("x");
        p.idempotency_key = "k".into();
        let first = broker.publish("r", p.clone()).await.unwrap();
        let again = broker.publish("r", p).await.unwrap();
        assert!(again.duplicate && !first.duplicate);
        assert_eq!(first.offset, again.offset);
        assert_eq!(first.id, again.id);
        let page = newest(&broker, 10).await;
        assert_eq!(page.messages.len(), 1);
    }

    async fn newest(broker: &MemoryBroker, limit: usize) -> HistoryPage {
        let query = HistoryQuery {
            limit,
            ..Default::default()
        };
        broker.history("r", query).await.unwrap()
    }

    fn keyed(key: &str) -> Publication {
        Publication {
            idempotency_key: key.into(),
            ..publication("x")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn history_and_keys_expire_by_age_and_idle_rooms_are_swept() {
        let broker = MemoryBroker::new(
            Hub::new(),
            HistoryConfig {
                ttl: Duration::from_secs(60),
                idempotency_ttl: Duration::from_secs(30),
                ..HistoryConfig::default()
            },
        );
        let first = broker.publish("r", keyed("k")).await.unwrap();
        tokio::time::advance(Duration::from_secs(31)).await;
        // The key has expired, so the same key publishes anew.
        let second = broker.publish("r", keyed("k")).await.unwrap();
        assert!(!second.duplicate);
        assert_eq!(second.offset, first.offset + 1);
        assert_eq!(broker.sweep(), 0, "room still has history");

        tokio::time::advance(Duration::from_secs(30)).await;
        let page = newest(&broker, 10).await;
        assert_eq!(page.messages.len(), 1, "the first message aged out");
        assert_eq!(page.messages[0].offset, 2);
        assert!(!page.has_more);

        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(broker.sweep(), 1);
        assert_eq!(broker.room_count(), 0);
        // A new incarnation of the room has a new epoch and starts over.
        let third = broker.publish("r", publication("x")).await.unwrap();
        assert_eq!(third.offset, 1);
        assert_ne!(third.epoch, first.epoch);
    }
}
