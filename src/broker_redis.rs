//! `RedisBroker`: rooms shared by many nodes through one Redis.
//!
//! # What Redis holds
//! Per room (keys share the hash tag `{room}`):
//! - `<prefix>:r:{room}:m`, a hash: the epoch (`e`) and the newest offset
//!   (`o`). It lives while the room has history, idempotency keys or members
//!   on a live node; when Redis loses it (a restart without persistence, a
//!   flush, an idle room expiring) the next use creates a new epoch.
//! - `<prefix>:r:{room}:s`, a stream: the history. Entry ids are
//!   `<offset>-0`, so reading "after offset N" is one `XRANGE`. Bounded by
//!   `history.max_messages` (`MAXLEN`) and `history.ttl` (age, trimmed from
//!   the head by the scripts, and the key's expiry).
//! - `<prefix>:i:{room}:<user>\0<key>`: an idempotency key's first result,
//!   expiring after `history.idempotency_ttl`.
//!
//! Channels: `<prefix>:c:r:<room>` carries a room's messages and presence
//! events, `<prefix>:c:u:<user>` a user's direct messages and notifications.
//!
//! # How a publish travels
//! `publish.lua` increments the offset, appends to the stream and publishes
//! to the room's channel in one atomic script, so a message is acknowledged
//! only once it is in history and on its way to every node. Each node
//! subscribes only to the channels of rooms and users it has local members
//! for, and hands each message to its [`Hub`].
//!
//! # Keeping live delivery gap-free
//! Pub/sub is at most once: a node loses whatever is published while its
//! pub/sub connection is down. Each node therefore remembers, per room, the
//! newest offset it delivered (its *feed*). A message whose offset is not the
//! next one makes the node read the missing ones from the stream first; after
//! a reconnect, and periodically, the node compares its feed with the room's
//! offset in Redis and catches up the same way. When that is impossible (the
//! epoch changed, or the messages already left history), the room's local
//! subscribers are closed with `CLOSE_CODE_INSUFFICIENT_STATE`: they rejoin
//! with `since` and recover, or learn `recovered = false`.
//!
//! All deliveries of a room happen under its feed's lock, and a join queues
//! its reply and subscribes under that same lock, so a subscriber sees its
//! reply first and then exactly the messages after the reply's position.
//!
//! # When Redis is unreachable
//! The node keeps serving its connections. A health task checks that Redis
//! answers (`redis.health_interval`, and at once after a failed write); while
//! it does not, writes are not sent and fail with `BrokerError::Unavailable`
//! (nothing happened). A write that was sent and not confirmed within
//! `redis.command_timeout` fails with `BrokerError::OutcomeUnknown`: it may
//! have been applied, and a publish retried with the same idempotency key
//! finds out. Joins and history reads fail with `Unavailable`. A publish
//! never reports success it did not have. The pub/sub connection is retried
//! with backoff, every channel is subscribed again, and every room catches
//! up from the stream.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use prost::Message as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use redis::{Script, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError, HistoryPage, HistoryQuery, Publication, PublishResult};
use crate::broker::{JoinNotice, JoinResult, UserControl};
use crate::codec::encode_server;
use crate::config::{HistoryConfig, RedisConfig};
use crate::hub::{Hub, Subscriber};
use crate::ids;
use crate::outbound::ConnId;
use crate::proto::{server_frame::Kind, CloseCode, RoomMessage, ServerFrame, StreamPosition};

const SHARDS: usize = 32;

/// Pub/sub messages kept for a room whose first join is still reading its
/// position. The window is one Redis round trip; past this the feed catches
/// up from the stream instead.
const EARLY_LIMIT: usize = 1024;

/// Rooms waiting for a catch-up; more are picked up by the next
/// maintenance pass.
const CATCH_UP_QUEUE: usize = 1024;

/// Times a join re-reads the room when the local feed moved past what it
/// read.
const JOIN_ATTEMPTS: usize = 8;

/// Most `SCAN` round trips for one room listing.
const SCAN_STEPS: usize = 100;

/// Channels per `SUBSCRIBE` when resubscribing after a reconnect.
const SUBSCRIBE_CHUNK: usize = 512;

/// Pub/sub reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How often the health check repeats while Redis does not answer, so a
/// node is ready again soon after Redis is.
const RECHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Node id used for presence events every node delivers (including the one
/// that sent them).
const ANY_NODE: &str = "-";

/// The Lua scripts; each starts with the helpers in `lua/common.lua`.
struct Scripts {
    publish: Script,
    read: Script,
    history: Script,
    touch: Script,
    rewind: Script,
}

impl Scripts {
    /// Every script, for loading them all.
    fn all(&self) -> [&Script; 5] {
        [
            &self.publish,
            &self.read,
            &self.history,
            &self.touch,
            &self.rewind,
        ]
    }

    fn new() -> Self {
        Self {
            publish: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/publish.lua")
            )),
            read: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/read.lua")
            )),
            history: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/history.lua")
            )),
            touch: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/touch.lua")
            )),
            rewind: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/rewind.lua")
            )),
        }
    }
}

/// Key and channel names.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// `redis.prefix`.
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn room_key(&self, room: &str, suffix: &str) -> String {
        format!("{}:r:{{{room}}}:{suffix}", self.prefix)
    }

    fn meta(&self, room: &str) -> String {
        self.room_key(room, "m")
    }

    fn stream(&self, room: &str) -> String {
        self.room_key(room, "s")
    }

    /// Outside the `:r:` namespace, so listing rooms by their meta hash
    /// (`SCAN <prefix>:r:{*}:m`) can never match a client-chosen key.
    fn idempotency(&self, room: &str, sender: &str, key: &str) -> String {
        format!("{}:i:{{{room}}}:{sender}\0{key}", self.prefix)
    }

    /// Presence: client id → expiry (sorted set), client id → `Member`.
    pub(crate) fn presence(&self, room: &str) -> (String, String) {
        (self.room_key(room, "p"), self.room_key(room, "pd"))
    }

    fn room_channel(&self, room: &str) -> String {
        format!("{}:c:r:{room}", self.prefix)
    }

    fn user_channel(&self, user: &str) -> String {
        format!("{}:c:u:{user}", self.prefix)
    }

    /// The room whose meta hash `key` is.
    fn room_of_meta(&self, key: &str) -> Option<String> {
        let rest = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":r:{")?;
        rest.strip_suffix("}:m").map(str::to_owned)
    }

    /// Which room or user a channel is for.
    fn parse_channel<'a>(&self, channel: &'a str) -> Option<Target<'a>> {
        let rest = channel.strip_prefix(self.prefix.as_str())?;
        if let Some(room) = rest.strip_prefix(":c:r:") {
            Some(Target::Room(room))
        } else {
            rest.strip_prefix(":c:u:").map(Target::User)
        }
    }
}

enum Target<'a> {
    Room(&'a str),
    User(&'a str),
}

/// Maps a Redis failure to the broker's error: connection trouble and
/// timeouts are temporary.
pub(crate) fn unavailable(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("redis: {error}"))
}

/// What a Redis call that failed may have left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing a caller could observe: a read, or a write whose repetition
    /// is harmless. Every failure is `Unavailable`.
    Read,
    /// A write that may have been applied once it was sent: a timeout or a
    /// connection dropped mid-call is `OutcomeUnknown`; only a failure
    /// before sending (connection refused, an error reply) is `Unavailable`.
    Write,
}

/// The broker error for a failed Redis call.
fn failure(effect: Effect, error: &redis::RedisError) -> BrokerError {
    let in_flight = !error.is_connection_refusal()
        && (error.is_timeout() || error.is_connection_dropped() || error.is_io_error());
    if effect == Effect::Write && in_flight {
        BrokerError::OutcomeUnknown(format!("redis: {error}"))
    } else {
        unavailable(error)
    }
}

/// Runs a Redis call with the configured timeout.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    bounded_with(Effect::Read, timeout, call).await
}

/// Runs a Redis call with the configured timeout; `effect` says what a
/// failure may have left behind.
pub(crate) async fn bounded_with<T>(
    effect: Effect,
    timeout: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    const SILENT: &str = "redis: no answer within redis.command_timeout";
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(failure(effect, &error)),
        Err(_) if effect == Effect::Write => Err(BrokerError::OutcomeUnknown(SILENT.to_owned())),
        Err(_) => Err(BrokerError::Unavailable(SILENT.to_owned())),
    }
}

/// Runs a Lua script (EVALSHA, loading it first when Redis does not know
/// it, e.g. after a restart) with the configured timeout.
pub(crate) async fn run_script(
    conn: &ConnectionManager,
    effect: Effect,
    timeout: Duration,
    script: &Script,
    keys: &[&str],
    args: Vec<Vec<u8>>,
) -> Result<Value, BrokerError> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in args {
        invocation.arg(arg);
    }
    let mut conn = conn.clone();
    bounded_with(effect, timeout, invocation.invoke_async::<Value>(&mut conn)).await
}

/// A connection manager that connects lazily and reconnects by itself, so a
/// node starts and keeps running while Redis is away.
pub(crate) fn connection(
    client: &redis::Client,
    settings: &RedisConfig,
) -> Result<ConnectionManager, BrokerError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.command_timeout))
        .set_response_timeout(Some(settings.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(BACKOFF_MAX);
    ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)
}

/// This node's view of one room's live messages.
#[derive(Default)]
struct Feed {
    /// Joins in progress plus local subscribers; the channel is dropped at 0.
    refs: usize,
    /// Whether `SUBSCRIBE` was confirmed on the current pub/sub connection.
    subscribed: bool,
    /// The epoch being delivered; `None` until a join read the room.
    epoch: Option<String>,
    /// Newest offset handed to local subscribers.
    last: u64,
    /// Messages that arrived before the first join read the room's position.
    early: VecDeque<Live>,
    /// `early` overflowed; a catch-up is needed once the feed starts.
    early_lost: bool,
    /// The room's offset in Redis at the previous maintenance pass.
    seen: u64,
}

/// Room → feed: one shard.
type Feeds = HashMap<Arc<str>, Feed>;

/// A room message as carried on pub/sub.
struct Live {
    epoch: String,
    offset: u64,
    /// The `RoomMessage` without its offset.
    body: Bytes,
}

impl Live {
    /// `m<epoch> <offset> <body>`, as `publish.lua` writes it.
    fn parse(payload: &[u8]) -> Option<Live> {
        let rest = payload.strip_prefix(b"m")?;
        let space = rest.iter().position(|&b| b == b' ')?;
        let epoch = std::str::from_utf8(&rest[..space]).ok()?.to_owned();
        let rest = &rest[space + 1..];
        let space = rest.iter().position(|&b| b == b' ')?;
        let offset = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let body = Bytes::copy_from_slice(&rest[space + 1..]);
        Some(Live {
            epoch,
            offset,
            body,
        })
    }
}

/// What a user's channel carries: `f<frame>` (a direct message or
/// notification), or a backend's control: `j0<room>` / `j1<room>` (join,
/// with presence events when 1), `l<room>` (leave), `k` (disconnect).
enum UserMessage<'a> {
    Frame(&'a [u8]),
    Control(UserControl),
}

impl<'a> UserMessage<'a> {
    fn parse(payload: &'a [u8]) -> Option<Self> {
        let (&tag, rest) = payload.split_first()?;
        let room = |bytes: &[u8]| std::str::from_utf8(bytes).ok().map(Arc::<str>::from);
        Some(match tag {
            b'f' => UserMessage::Frame(rest),
            b'j' => {
                let (&flag, name) = rest.split_first()?;
                UserMessage::Control(UserControl::Join {
                    room: room(name)?,
                    presence_events: flag == b'1',
                })
            }
            b'l' => UserMessage::Control(UserControl::Leave { room: room(rest)? }),
            b'k' => UserMessage::Control(UserControl::Disconnect),
            _ => return None,
        })
    }

    fn encode_control(control: &UserControl) -> Vec<u8> {
        match control {
            UserControl::Join {
                room,
                presence_events,
            } => {
                let flag = if *presence_events { b'1' } else { b'0' };
                [&[b'j', flag][..], room.as_bytes()].concat()
            }
            UserControl::Leave { room } => [&b"l"[..], room.as_bytes()].concat(),
            UserControl::Disconnect => b"k".to_vec(),
        }
    }
}

/// A user's channel: how many local connections want it.
#[derive(Default)]
struct UserChannel {
    refs: usize,
    subscribed: bool,
}

/// A room's state as one script read it.
struct RoomRead {
    /// Empty when Redis has no state for the room.
    epoch: String,
    offset: u64,
    /// `(offset, body)` pairs, oldest first.
    messages: Vec<(u64, Bytes)>,
}

/// The Redis broker. Create it with [`RedisBroker::start`].
pub struct RedisBroker {
    /// Local subscribers.
    hub: Hub,
    /// History and idempotency limits.
    history: HistoryConfig,
    /// Timeouts and prefix.
    settings: RedisConfig,
    /// Key and channel names.
    keys: Keys,
    /// For the pub/sub connection, made anew after each loss.
    client: redis::Client,
    /// Commands and scripts; reconnects by itself.
    conn: ConnectionManager,
    /// Random id of this process, to skip its own presence events on pub/sub.
    node: String,
    /// Room → feed, sharded by name hash. Std mutexes, never held across
    /// `.await`; deliveries to the hub happen under them.
    feeds: Box<[Mutex<Feeds>]>,
    /// Picks a room's shard.
    hasher: RandomState,
    /// User → channel state.
    users: Mutex<HashMap<Arc<str>, UserChannel>>,
    /// The current pub/sub connection's command side; `None` while
    /// reconnecting. The async lock orders subscribes, unsubscribes and the
    /// resubscription after a reconnect.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    /// Rooms whose feed should be compared with Redis and caught up.
    catch_up: mpsc::Sender<Arc<str>>,
    /// Whether the pub/sub connection is up (for readiness, and for room
    /// joins that wait for it).
    pubsub_up: watch::Sender<bool>,
    /// Whether Redis answers: the last health check (a `PING` on the
    /// command connection) was answered within `redis.health_timeout`, and
    /// no write failed since. A Redis that hangs keeps its connections open,
    /// so a live pub/sub connection alone does not prove it answers.
    answering: watch::Sender<bool>,
    /// Wakes the health task for a check right away (a write failed).
    recheck: tokio::sync::Notify,
    /// The Lua scripts.
    scripts: Scripts,
}

impl RedisBroker {
    /// Connects (lazily) to `url` and starts the pub/sub task, which runs
    /// until `stop` is cancelled. Fails only on an invalid URL.
    pub fn start(
        hub: Hub,
        url: &str,
        history: HistoryConfig,
        settings: RedisConfig,
        stop: CancellationToken,
    ) -> Result<Arc<RedisBroker>, BrokerError> {
        let client = redis::Client::open(url)
            .map_err(|e| BrokerError::Internal(format!("invalid redis_url: {e}")))?;
        let conn = connection(&client, &settings)?;
        let (catch_up, requests) = mpsc::channel(CATCH_UP_QUEUE);
        let broker = Arc::new(RedisBroker {
            hub,
            history,
            keys: Keys::new(&settings.prefix),
            settings,
            client,
            conn,
            node: ids::random_hex(8),
            feeds: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            users: Mutex::new(HashMap::new()),
            sink: tokio::sync::Mutex::new(None),
            catch_up,
            pubsub_up: watch::Sender::new(false),
            answering: watch::Sender::new(false),
            recheck: tokio::sync::Notify::new(),
            scripts: Scripts::new(),
        });
        tokio::spawn(broker.clone().pubsub(requests, stop.clone()));
        tokio::spawn(broker.clone().health(stop));
        Ok(broker)
    }

    /// Whether the pub/sub connection to Redis is up.
    pub fn is_connected(&self) -> bool {
        *self.pubsub_up.borrow()
    }

    /// Whether Redis answers: the pub/sub connection is up and the last
    /// health check was answered in time.
    pub fn is_answering(&self) -> bool {
        self.is_connected() && *self.answering.borrow()
    }

    /// Waits (up to `command_timeout`) until Redis answers (see
    /// [`RedisBroker::is_answering`]), so that a write
    /// is only sent to a Redis that is expected to confirm it: one that
    /// fails before it is sent had no effect (`Unavailable`), while one that
    /// is sent and not confirmed may have (`OutcomeUnknown`).
    async fn writable(&self) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + self.settings.command_timeout;
        let mut connected = self.pubsub_up.subscribe();
        let mut answering = self.answering.subscribe();
        while !self.is_answering() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(BrokerError::Unavailable(
                        "redis: not answering; the command was not sent".to_owned(),
                    ));
                }
                // The senders live as long as the broker.
                _ = connected.changed() => {}
                _ = answering.changed() => {}
            }
        }
        Ok(())
    }

    /// Notes the outcome of a write: one that Redis did not answer makes the
    /// node not ready, and the health task checks again at once.
    fn note_write<T>(&self, result: &Result<T, BrokerError>) {
        if let Err(BrokerError::Unavailable(_) | BrokerError::OutcomeUnknown(_)) = result {
            self.answering.send_replace(false);
            self.recheck.notify_one();
        }
    }

    /// The health task. Every `redis.health_interval` (every
    /// [`RECHECK_INTERVAL`] while Redis does not answer), it asks Redis
    /// whether it has the scripts, which must be answered within
    /// `redis.health_timeout`, and loads any it lacks (a restarted Redis),
    /// so that a publish needs one round trip even right after a restart.
    /// Readiness turns false at the first check that fails and true again
    /// at the first that succeeds.
    async fn health(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let answered = matches!(
                tokio::time::timeout(self.settings.health_timeout, self.check_scripts()).await,
                Ok(Ok(()))
            );
            if self.answering.send_replace(answered) != answered {
                if answered {
                    tracing::info!("redis answers again");
                } else {
                    tracing::warn!(
                        timeout = ?self.settings.health_timeout,
                        "redis did not answer a health check; this node is not ready"
                    );
                }
            }
            let wait = if answered {
                self.settings.health_interval
            } else {
                self.settings.health_interval.min(RECHECK_INTERVAL)
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.recheck.notified() => {}
            }
        }
    }

    /// One health check: `SCRIPT EXISTS` for every script, then
    /// `SCRIPT LOAD` for those Redis does not have.
    async fn check_scripts(&self) -> redis::RedisResult<()> {
        let scripts = self.scripts.all();
        let mut conn = self.conn.clone();
        let mut exists = redis::cmd("SCRIPT");
        exists.arg("EXISTS");
        for script in scripts {
            exists.arg(script.get_hash());
        }
        let present: Vec<bool> = exists.query_async(&mut conn).await?;
        for (script, present) in scripts.iter().zip(present) {
            if !present {
                script.load_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    fn feeds(&self, room: &str) -> MutexGuard<'_, Feeds> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.feeds[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn users(&self) -> MutexGuard<'_, HashMap<Arc<str>, UserChannel>> {
        self.users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long the room's meta hash must outlive its last use: as long as
    /// anything that refers to its epoch (history, idempotency keys), and
    /// several maintenance passes.
    fn meta_ttl_ms(&self) -> u64 {
        let longest = self
            .history
            .ttl
            .max(self.history.idempotency_ttl)
            .max(self.settings.presence_ttl * 3);
        longest.as_millis() as u64
    }

    async fn invoke(
        &self,
        effect: Effect,
        script: &Script,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<Value, BrokerError> {
        run_script(
            &self.conn,
            effect,
            self.settings.command_timeout,
            script,
            keys,
            args,
        )
        .await
    }

    /// Reads the room's position and, with `after`, the messages after it
    /// (within `epoch` when given). `create` makes the room when Redis has
    /// no state for it.
    async fn read(
        &self,
        room: &str,
        create: bool,
        after: Option<u64>,
        epoch: Option<&str>,
    ) -> Result<RoomRead, BrokerError> {
        let candidate = if create {
            ids::random_hex(8)
        } else {
            String::new()
        };
        let after = after.map_or_else(|| "-1".to_owned(), |a| a.to_string());
        let args = vec![
            candidate.into_bytes(),
            after.into_bytes(),
            self.history.max_messages.to_string().into_bytes(),
            ids::now_ms().to_string().into_bytes(),
            millis(self.history.ttl).into_bytes(),
            self.meta_ttl_ms().to_string().into_bytes(),
            epoch.unwrap_or_default().as_bytes().to_vec(),
        ];
        let meta = self.keys.meta(room);
        let stream = self.keys.stream(room);
        let value = self
            .invoke(Effect::Read, &self.scripts.read, &[&meta, &stream], args)
            .await?;
        let mut items = array(value)?.into_iter();
        let epoch = text(items.next())?;
        let offset = int(items.next())?;
        Ok(RoomRead {
            epoch,
            offset,
            messages: pairs(items)?,
        })
    }

    /// Subscribes this node to a room's channel unless it already is.
    ///
    /// While the pub/sub connection is down (a node that has just started,
    /// or a reconnect) it waits up to `command_timeout` for it.
    async fn subscribe_room(&self, room: &str) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + self.settings.command_timeout;
        loop {
            let mut sink = self.sink.lock().await;
            if self.feeds(room).get(room).is_some_and(|f| f.subscribed) {
                return Ok(());
            }
            if let Some(sink) = sink.as_mut() {
                bounded(
                    self.settings.command_timeout,
                    sink.subscribe(self.keys.room_channel(room)),
                )
                .await?;
                if let Some(feed) = self.feeds(room).get_mut(room) {
                    feed.subscribed = true;
                }
                return Ok(());
            }
            drop(sink);
            let mut up = self.pubsub_up.subscribe();
            if tokio::time::timeout_at(deadline, up.wait_for(|up| *up))
                .await
                .is_err()
            {
                return Err(BrokerError::Unavailable(
                    "redis: the pub/sub connection is down".to_owned(),
                ));
            }
        }
    }

    /// Drops one reference to a room's feed; the last one unsubscribes.
    async fn release_room(&self, room: &str) {
        {
            let mut feeds = self.feeds(room);
            let Some(feed) = feeds.get_mut(room) else {
                return;
            };
            feed.refs = feed.refs.saturating_sub(1);
            if feed.refs > 0 {
                return;
            }
        }
        let mut sink = self.sink.lock().await;
        let subscribed = {
            let mut feeds = self.feeds(room);
            match feeds.get(room) {
                Some(feed) if feed.refs == 0 => {
                    let subscribed = feed.subscribed;
                    feeds.remove(room);
                    subscribed
                }
                _ => return,
            }
        };
        if subscribed {
            self.unsubscribe(&mut sink, self.keys.room_channel(room))
                .await;
        }
    }

    /// Unsubscribes a channel on the current pub/sub connection, if there
    /// is one (a later connection does not subscribe it again anyway).
    async fn unsubscribe(&self, sink: &mut Option<PubSubSink>, channel: String) {
        let Some(sink) = sink.as_mut() else {
            return;
        };
        if let Err(error) = bounded(self.settings.command_timeout, sink.unsubscribe(channel)).await
        {
            tracing::debug!(%error, "unsubscribe failed");
        }
    }

    /// One attempt at a join: subscribes (the channel is already subscribed),
    /// reads the room and, under the feed lock, queues the reply and adds the
    /// subscriber. Returns false when the local feed had already delivered
    /// past what was read, so the read must be repeated.
    async fn try_join(
        &self,
        room: &str,
        subscriber: &Subscriber,
        since: Option<&StreamPosition>,
        notice: JoinNotice,
    ) -> Result<bool, BrokerError> {
        let read = self
            .read(
                room,
                true,
                since.map(|s| s.offset),
                since.map(|s| s.epoch.as_str()),
            )
            .await?;
        let mut feeds = self.feeds(room);
        let Some(feed) = feeds.get_mut(room) else {
            return Err(BrokerError::Internal(
                "room feed vanished during a join".into(),
            ));
        };
        let mut catch_up = false;
        match &feed.epoch {
            None => {
                // The first local member: the feed starts at what was read,
                // then takes what pub/sub brought in the meantime.
                feed.epoch = Some(read.epoch.clone());
                feed.last = read.offset;
                catch_up = feed.early_lost;
                feed.early_lost = false;
            }
            Some(epoch) if *epoch != read.epoch => {
                // Redis began a new epoch that the feed has not seen yet; the
                // feed resets on its next message or maintenance pass.
                drop(feeds);
                let _ = self.catch_up.try_send(Arc::from(room));
                return Ok(false);
            }
            Some(_) if feed.last > read.offset => return Ok(false),
            Some(_) => {}
        }
        let mut result = JoinResult {
            position: StreamPosition {
                offset: read.offset,
                epoch: read.epoch.clone(),
            },
            recovered: false,
            messages: Vec::new(),
        };
        if let Some(since) = since {
            if let Some(messages) = recover(room, since, &read) {
                result.recovered = true;
                result.messages = messages;
            }
        }
        subscriber.conn.push(notice.frame(room, result));
        self.hub.subscribe(
            room,
            Subscriber {
                after: read.offset,
                ..subscriber.clone()
            },
        );
        let early = std::mem::take(&mut feed.early);
        for live in early {
            if live.epoch == read.epoch && !self.deliver_live(room, feed, live) {
                // A gap: the rest comes from the stream.
                catch_up = true;
                break;
            }
        }
        drop(feeds);
        if catch_up {
            let _ = self.catch_up.try_send(Arc::from(room));
        }
        Ok(true)
    }

    /// Hands the next message to local subscribers if it is the next
    /// offset; returns false on a gap. Called under the feed lock.
    fn deliver_live(&self, room: &str, feed: &mut Feed, live: Live) -> bool {
        if live.offset <= feed.last {
            return true;
        }
        if live.offset != feed.last + 1 {
            return false;
        }
        feed.last = live.offset;
        self.deliver(room, live.offset, &live.body);
        true
    }

    /// Encodes and queues one message for the room's local subscribers.
    fn deliver(&self, room: &str, offset: u64, body: &[u8]) {
        let mut message = match RoomMessage::decode(body) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, room, offset, "undecodable message in redis");
                return;
            }
        };
        message.offset = offset;
        let published_at = message.timestamp_ms;
        let frame = encode_server(&ServerFrame {
            id: 0,
            kind: Some(Kind::Message(message)),
        });
        let delivered = self.hub.deliver_message(room, offset, &frame);
        crate::metrics::fanned_out(delivered, published_at);
    }

    /// Closes the room's local subscribers: their feed cannot continue
    /// gap-free. The feed restarts at `epoch`/`offset` (or with the next
    /// join when Redis has no state for the room).
    fn reset(&self, room: &str, feed: &mut Feed, epoch: &str, offset: u64) {
        let closed = self.hub.close_room(
            room,
            CloseCode::InsufficientState,
            "room state lost; rejoin to recover",
        );
        tracing::warn!(
            room,
            closed,
            "room feed could not continue; subscribers closed"
        );
        feed.epoch = (!epoch.is_empty()).then(|| epoch.to_owned());
        feed.last = offset;
        feed.early.clear();
    }

    /// A message from a room's channel.
    async fn on_room_message(&self, room: &str, payload: &[u8]) {
        if let Some(frame) = payload.strip_prefix(b"n") {
            // A notification to every member.
            self.hub.deliver(room, &Bytes::copy_from_slice(frame));
            return;
        }
        if let Some(rest) = payload.strip_prefix(b"p") {
            // A presence event: `p<node> <frame>`.
            let Some(space) = rest.iter().position(|&b| b == b' ') else {
                return;
            };
            if &rest[..space] != self.node.as_bytes() {
                let frame = Bytes::copy_from_slice(&rest[space + 1..]);
                self.hub.deliver_presence(room, &frame, 0);
            }
            return;
        }
        let Some(live) = Live::parse(payload) else {
            tracing::warn!(room, "unrecognised message on a room channel");
            return;
        };
        let gap = {
            let mut feeds = self.feeds(room);
            let Some(feed) = feeds.get_mut(room) else {
                return;
            };
            match &feed.epoch {
                None => {
                    if feed.early.len() >= EARLY_LIMIT {
                        feed.early.clear();
                        feed.early_lost = true;
                    }
                    feed.early.push_back(live);
                    return;
                }
                Some(epoch) if *epoch != live.epoch => {
                    // Redis lost the room's state and began a new epoch.
                    self.reset(room, feed, &live.epoch, live.offset);
                    return;
                }
                Some(_) => !self.deliver_live(room, feed, live),
            }
        };
        if gap {
            self.catch_up_room(room).await;
        }
    }

    /// Compares a room's feed with Redis and delivers what it missed, or
    /// resets it when that is impossible.
    async fn catch_up_room(&self, room: &str) {
        let (epoch, last) = {
            let feeds = self.feeds(room);
            match feeds.get(room) {
                Some(Feed {
                    epoch: Some(epoch),
                    last,
                    ..
                }) => (epoch.clone(), *last),
                _ => return,
            }
        };
        let mut read = match self.read(room, false, Some(last), Some(&epoch)).await {
            Ok(read) => read,
            Err(error) => {
                // Retried by the next maintenance pass or reconnect.
                tracing::warn!(%error, room, "catching up a room failed");
                return;
            }
        };
        if read.epoch == epoch && read.offset < last {
            match self.rewind(room, &epoch, last).await {
                Ok((epoch, offset)) => {
                    read = RoomRead {
                        epoch,
                        offset,
                        messages: Vec::new(),
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, room, "starting a new epoch failed");
                    return;
                }
            }
        }
        let mut feeds = self.feeds(room);
        let Some(feed) = feeds.get_mut(room) else {
            return;
        };
        if feed.epoch.as_deref() != Some(read.epoch.as_str()) {
            self.reset(room, feed, &read.epoch, read.offset);
            return;
        }
        for (offset, body) in read.messages {
            if offset <= feed.last {
                continue;
            }
            if offset != feed.last + 1 {
                break;
            }
            feed.last = offset;
            self.deliver(room, offset, &body);
        }
        if feed.last < read.offset {
            // What is missing is no longer in history (or beyond one read,
            // which history's own bound makes the same thing).
            self.reset(room, feed, &read.epoch, read.offset);
        }
    }

    /// Starts a new epoch for a room whose offset in Redis went back below
    /// `last` (Redis lost its newest writes); returns the room's epoch and
    /// offset afterwards.
    async fn rewind(
        &self,
        room: &str,
        epoch: &str,
        last: u64,
    ) -> Result<(String, u64), BrokerError> {
        let meta = self.keys.meta(room);
        let stream = self.keys.stream(room);
        let args = vec![
            epoch.as_bytes().to_vec(),
            last.to_string().into_bytes(),
            ids::random_hex(8).into_bytes(),
            self.meta_ttl_ms().to_string().into_bytes(),
        ];
        let value = self
            .invoke(Effect::Read, &self.scripts.rewind, &[&meta, &stream], args)
            .await?;
        let mut items = array(value)?.into_iter();
        let epoch = text(items.next())?;
        tracing::warn!(room, %epoch, "redis lost a room's newest messages; new epoch");
        Ok((epoch, int(items.next())?))
    }

    /// Local rooms whose feed has started (a join read the room).
    fn started_rooms(&self) -> Vec<Arc<str>> {
        let mut rooms = Vec::new();
        for shard in self.feeds.iter() {
            let feeds = shard.lock().unwrap_or_else(|p| p.into_inner());
            rooms.extend(
                feeds
                    .iter()
                    .filter(|(_, f)| f.epoch.is_some())
                    .map(|(room, _)| room.clone()),
            );
        }
        rooms
    }

    /// Keeps every local room's state alive in Redis and catches up rooms
    /// whose feed fell behind (a lost pub/sub message). Run periodically.
    pub async fn maintain(&self) {
        let rooms = self.started_rooms();
        let ttl = self.meta_ttl_ms().to_string().into_bytes();
        for room in rooms {
            let meta = self.keys.meta(&room);
            let value = match self
                .invoke(
                    Effect::Read,
                    &self.scripts.touch,
                    &[&meta],
                    vec![ttl.clone()],
                )
                .await
            {
                Ok(value) => value,
                Err(error) => {
                    tracing::debug!(%error, "room maintenance failed");
                    return;
                }
            };
            let Ok((epoch, offset)) = array(value).and_then(|v| {
                let mut items = v.into_iter();
                Ok((text(items.next())?, int(items.next())?))
            }) else {
                continue;
            };
            let behind = {
                let mut feeds = self.feeds(&room);
                let Some(feed) = feeds.get_mut(&room) else {
                    continue;
                };
                // Behind for a whole pass (not merely in flight), or Redis
                // went back in time.
                let behind = feed.epoch.as_deref() != Some(epoch.as_str())
                    || feed.last < feed.seen
                    || offset < feed.last;
                feed.seen = offset;
                behind
            };
            if behind {
                let _ = self.catch_up.try_send(room);
            }
        }
    }

    /// The pub/sub task: (re)connects, subscribes every wanted channel,
    /// catches rooms up, then dispatches messages and catch-up requests.
    async fn pubsub(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<Arc<str>>,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let connected = tokio::select! {
                _ = stop.cancelled() => return,
                connected = bounded(self.settings.command_timeout, self.client.get_async_pubsub()) => connected,
            };
            let (sink, mut stream) = match connected {
                Ok(pubsub) => pubsub.split(),
                Err(error) => {
                    tracing::warn!(%error, "redis pub/sub connection failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if let Err(error) = self.resubscribe(sink).await {
                tracing::warn!(%error, "redis resubscribe failed; reconnecting");
                continue;
            }
            backoff = BACKOFF_MIN;
            self.pubsub_up.send_replace(true);
            tracing::info!("redis pub/sub connected");
            // Feeds not started yet begin at their join's own read.
            let rooms = self.started_rooms();
            for room in rooms {
                self.catch_up_room(&room).await;
            }
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    message = stream.next() => match message {
                        Some(message) => self.on_message(&message).await,
                        None => break,
                    },
                    Some(room) = requests.recv() => self.catch_up_room(&room).await,
                }
            }
            self.pubsub_up.send_replace(false);
            *self.sink.lock().await = None;
            tracing::warn!("redis pub/sub connection lost; reconnecting");
        }
    }

    /// Installs a new pub/sub connection and subscribes every channel this
    /// node wants.
    async fn resubscribe(&self, mut sink: PubSubSink) -> Result<(), BrokerError> {
        let mut slot = self.sink.lock().await;
        let mut channels: Vec<String> = Vec::new();
        for shard in self.feeds.iter() {
            let mut feeds = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (room, feed) in feeds.iter_mut() {
                feed.subscribed = false;
                channels.push(self.keys.room_channel(room));
            }
        }
        for (user, channel) in self.users().iter_mut() {
            channel.subscribed = false;
            channels.push(self.keys.user_channel(user));
        }
        for chunk in channels.chunks(SUBSCRIBE_CHUNK) {
            bounded(self.settings.command_timeout, sink.subscribe(chunk)).await?;
        }
        for shard in self.feeds.iter() {
            let mut feeds = shard.lock().unwrap_or_else(|p| p.into_inner());
            for feed in feeds.values_mut() {
                feed.subscribed = true;
            }
        }
        for channel in self.users().values_mut() {
            channel.subscribed = true;
        }
        *slot = Some(sink);
        Ok(())
    }

    async fn on_message(&self, message: &redis::Msg) {
        let payload = message.get_payload_bytes();
        match self.keys.parse_channel(message.get_channel_name()) {
            Some(Target::Room(room)) => self.on_room_message(room, payload).await,
            Some(Target::User(user)) => match UserMessage::parse(payload) {
                Some(UserMessage::Frame(frame)) => {
                    self.hub.deliver_user(user, &Bytes::copy_from_slice(frame));
                }
                Some(UserMessage::Control(control)) => {
                    self.hub.control_user(user, &control);
                }
                None => tracing::warn!("unrecognised message on a user channel"),
            },
            None => tracing::debug!("message on an unknown channel"),
        }
    }

    /// Publishes an ephemeral frame on a channel.
    async fn publish_raw(&self, channel: String, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.writable().await?;
        let mut conn = self.conn.clone();
        let result = bounded_with(
            Effect::Write,
            self.settings.command_timeout,
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut conn),
        )
        .await
        .map(|_| ());
        self.note_write(&result);
        result
    }

    /// Announces presence frames that every node delivers, this one included
    /// (members that expired elsewhere).
    pub async fn broadcast_presence_everywhere(
        &self,
        room: &str,
        frame: Bytes,
    ) -> Result<(), BrokerError> {
        let mut payload = Vec::with_capacity(frame.len() + 3);
        payload.push(b'p');
        payload.extend_from_slice(ANY_NODE.as_bytes());
        payload.push(b' ');
        payload.extend_from_slice(&frame);
        self.publish_raw(self.keys.room_channel(room), payload)
            .await
    }
}

/// The messages `(since, read.offset]` if `read` holds all of them.
fn recover(room: &str, since: &StreamPosition, read: &RoomRead) -> Option<Vec<RoomMessage>> {
    if since.epoch != read.epoch || since.offset > read.offset {
        return None;
    }
    let wanted = (read.offset - since.offset) as usize;
    if read.messages.len() != wanted {
        return None;
    }
    let mut out = Vec::with_capacity(wanted);
    for (i, (offset, body)) in read.messages.iter().enumerate() {
        if *offset != since.offset + 1 + i as u64 {
            return None;
        }
        let mut message = RoomMessage::decode(body.as_ref()).ok()?;
        message.offset = *offset;
        debug_assert_eq!(message.room, room);
        out.push(message);
    }
    Some(out)
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

fn array(value: Value) -> Result<Vec<Value>, BrokerError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(BrokerError::Internal(format!(
            "unexpected redis reply {other:?}"
        ))),
    }
}

fn bytes_of(value: Option<Value>) -> Result<Vec<u8>, BrokerError> {
    match value {
        Some(Value::BulkString(b)) => Ok(b),
        Some(Value::SimpleString(s)) => Ok(s.into_bytes()),
        other => Err(BrokerError::Internal(format!(
            "unexpected redis reply {other:?}"
        ))),
    }
}

fn text(value: Option<Value>) -> Result<String, BrokerError> {
    String::from_utf8(bytes_of(value)?)
        .map_err(|_| BrokerError::Internal("non-UTF-8 text in a redis reply".into()))
}

fn int(value: Option<Value>) -> Result<u64, BrokerError> {
    match value {
        Some(Value::Int(n)) => u64::try_from(n)
            .map_err(|_| BrokerError::Internal("negative number in a redis reply".into())),
        other => Err(BrokerError::Internal(format!(
            "unexpected redis reply {other:?}"
        ))),
    }
}

/// `offset, body` pairs.
fn pairs(mut items: impl Iterator<Item = Value>) -> Result<Vec<(u64, Bytes)>, BrokerError> {
    let mut out = Vec::new();
    while let Some(offset) = items.next() {
        let offset = int(Some(offset))?;
        out.push((offset, Bytes::from(bytes_of(items.next())?)));
    }
    Ok(out)
}

/// Decodes `offset, body` pairs into messages.
fn messages(pairs: Vec<(u64, Bytes)>) -> Result<Vec<RoomMessage>, BrokerError> {
    pairs
        .into_iter()
        .map(|(offset, body)| {
            let mut message = RoomMessage::decode(body)
                .map_err(|e| BrokerError::Internal(format!("undecodable message in redis: {e}")))?;
            message.offset = offset;
            Ok(message)
        })
        .collect()
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(
        &self,
        room: &str,
        publication: Publication,
    ) -> Result<PublishResult, BrokerError> {
        let id = ids::message_id();
        let timestamp_ms = ids::now_ms();
        let body = RoomMessage {
            id,
            room: room.to_owned(),
            offset: 0,
            sender: publication.sender.clone(),
            timestamp_ms,
            payload: Some(publication.payload),
        }
        .encode_to_vec();
        let keyed = !publication.idempotency_key.is_empty();
        let meta = self.keys.meta(room);
        let stream = self.keys.stream(room);
        let idempotency = if keyed {
            self.keys
                .idempotency(room, &publication.sender, &publication.idempotency_key)
        } else {
            meta.clone()
        };
        let idempotency_ttl = if keyed {
            millis(self.history.idempotency_ttl)
        } else {
            "0".to_owned()
        };
        let args = vec![
            ids::random_hex(8).into_bytes(),
            body,
            self.keys.room_channel(room).into_bytes(),
            self.history.max_messages.to_string().into_bytes(),
            millis(self.history.ttl).into_bytes(),
            idempotency_ttl.into_bytes(),
            timestamp_ms.to_string().into_bytes(),
            id.to_string().into_bytes(),
            self.meta_ttl_ms().to_string().into_bytes(),
        ];
        self.writable().await?;
        let result = self
            .invoke(
                Effect::Write,
                &self.scripts.publish,
                &[&meta, &stream, &idempotency],
                args,
            )
            .await;
        self.note_write(&result);
        let value = result?;
        let mut items = array(value)?.into_iter();
        let duplicate = int(items.next())? == 1;
        let result = text(items.next())?;
        let mut fields = result.split(' ');
        let bad = || BrokerError::Internal(format!("unexpected publish result {result:?}"));
        let epoch = fields.next().ok_or_else(bad)?.to_owned();
        let offset = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        let id = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        let timestamp_ms = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        if !duplicate {
            crate::metrics::get().published.increment(1);
        }
        Ok(PublishResult {
            offset,
            epoch,
            id,
            timestamp_ms,
            duplicate,
        })
    }

    async fn join(
        &self,
        room: &str,
        subscriber: Subscriber,
        since: Option<StreamPosition>,
        notice: JoinNotice,
    ) -> Result<(), BrokerError> {
        self.feeds(room).entry(Arc::from(room)).or_default().refs += 1;
        let mut result = self.subscribe_room(room).await;
        if result.is_ok() {
            result = Err(BrokerError::Unavailable(
                "redis: the room kept moving during the join; retry".to_owned(),
            ));
            for attempt in 0..JOIN_ATTEMPTS {
                match self
                    .try_join(room, &subscriber, since.as_ref(), notice)
                    .await
                {
                    Ok(true) => {
                        result = Ok(());
                        break;
                    }
                    // The feed catches up (or resets to a new epoch) on the
                    // pub/sub task; give it a moment: 1, 2, 4 ... 128 ms.
                    Ok(false) => tokio::time::sleep(Duration::from_millis(1 << attempt)).await,
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
            }
        }
        if result.is_err() {
            self.release_room(room).await;
        }
        result
    }

    async fn leave(&self, room: &str, conn: ConnId) -> Result<bool, BrokerError> {
        let left = self.hub.unsubscribe(room, conn);
        if left {
            self.release_room(room).await;
        }
        Ok(left)
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistoryPage, BrokerError> {
        let args = vec![
            ids::random_hex(8).into_bytes(),
            query.limit.max(1).to_string().into_bytes(),
            query.before.to_string().into_bytes(),
            query.after.to_string().into_bytes(),
            ids::now_ms().to_string().into_bytes(),
            millis(self.history.ttl).into_bytes(),
            self.meta_ttl_ms().to_string().into_bytes(),
        ];
        let meta = self.keys.meta(room);
        let stream = self.keys.stream(room);
        let value = self
            .invoke(Effect::Read, &self.scripts.history, &[&meta, &stream], args)
            .await?;
        let mut items = array(value)?.into_iter();
        let epoch = text(items.next())?;
        let offset = int(items.next())?;
        let has_more = int(items.next())? == 1;
        Ok(HistoryPage {
            messages: messages(pairs(items)?)?,
            position: StreamPosition { offset, epoch },
            has_more,
        })
    }

    async fn send_to_user(&self, user: &str, frame: Bytes) -> Result<(), BrokerError> {
        let payload = [&b"f"[..], &frame].concat();
        self.publish_raw(self.keys.user_channel(user), payload)
            .await
    }

    async fn notify_room(&self, room: &str, frame: Bytes) -> Result<(), BrokerError> {
        let payload = [&b"n"[..], &frame].concat();
        self.publish_raw(self.keys.room_channel(room), payload)
            .await
    }

    async fn control_user(&self, user: &str, control: UserControl) -> Result<(), BrokerError> {
        let payload = UserMessage::encode_control(&control);
        self.publish_raw(self.keys.user_channel(user), payload)
            .await
    }

    async fn rooms(&self, limit: usize) -> Result<(Vec<String>, bool), BrokerError> {
        // Every room with state has a meta hash; SCAN walks them in bounded
        // steps (at most SCAN_STEPS round trips).
        let pattern = format!("{}:r:{{*}}:m", self.keys.prefix);
        let mut names = std::collections::BTreeSet::new();
        let mut cursor = 0u64;
        let mut conn = self.conn.clone();
        for _ in 0..SCAN_STEPS {
            let (next, keys): (u64, Vec<String>) = bounded(
                self.settings.command_timeout,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await?;
            names.extend(keys.iter().filter_map(|key| self.keys.room_of_meta(key)));
            cursor = next;
            if cursor == 0 || names.len() > limit {
                break;
            }
        }
        let more = names.len() > limit || cursor != 0;
        Ok((names.into_iter().take(limit).collect(), more))
    }

    async fn broadcast_presence(
        &self,
        room: &str,
        frame: Bytes,
        except: ConnId,
    ) -> Result<(), BrokerError> {
        // Local subscribers now (skipping `except`); other nodes via pub/sub,
        // which this node ignores for its own events.
        self.hub.deliver_presence(room, &frame, except);
        let mut payload = Vec::with_capacity(frame.len() + self.node.len() + 2);
        payload.push(b'p');
        payload.extend_from_slice(self.node.as_bytes());
        payload.push(b' ');
        payload.extend_from_slice(&frame);
        self.publish_raw(self.keys.room_channel(room), payload)
            .await
    }

    async fn attach_user(&self, user: &str) -> Result<(), BrokerError> {
        {
            let mut users = self.users();
            let channel = users.entry(Arc::from(user)).or_default();
            channel.refs += 1;
            if channel.subscribed {
                return Ok(());
            }
        }
        let mut sink = self.sink.lock().await;
        if self.users().get(user).is_some_and(|c| c.subscribed) {
            return Ok(());
        }
        // While pub/sub is down the channel is subscribed on reconnect.
        let Some(sink) = sink.as_mut() else {
            return Ok(());
        };
        bounded(
            self.settings.command_timeout,
            sink.subscribe(self.keys.user_channel(user)),
        )
        .await?;
        if let Some(channel) = self.users().get_mut(user) {
            channel.subscribed = true;
        }
        Ok(())
    }

    async fn detach_user(&self, user: &str) {
        {
            let mut users = self.users();
            let Some(channel) = users.get_mut(user) else {
                return;
            };
            channel.refs = channel.refs.saturating_sub(1);
            if channel.refs > 0 {
                return;
            }
        }
        let mut sink = self.sink.lock().await;
        let subscribed = {
            let mut users = self.users();
            match users.get(user) {
                Some(channel) if channel.refs == 0 => {
                    let subscribed = channel.subscribed;
                    users.remove(user);
                    subscribed
                }
                _ => return,
            }
        };
        if subscribed {
            self.unsubscribe(&mut sink, self.keys.user_channel(user))
                .await;
        }
    }

    fn is_ready(&self) -> bool {
        self.is_answering()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_live_messages() {
        let live = Live::parse(b"mabcdef0123456789 42 \x08\x01 body with spaces").expect("parses");
        assert_eq!(live.epoch, "abcdef0123456789");
        assert_eq!(live.offset, 42);
        assert_eq!(live.body.as_ref(), b"\x08\x01 body with spaces");
        assert!(Live::parse(b"pnode frame").is_none());
        assert!(Live::parse(b"mepoch notanumber x").is_none());
        assert!(Live::parse(b"mepoch").is_none());
    }

    fn stored(room: &str, offset: u64) -> (u64, Bytes) {
        let body = RoomMessage {
            id: offset * 10,
            room: room.to_owned(),
            ..RoomMessage::default()
        };
        (offset, Bytes::from(body.encode_to_vec()))
    }

    #[test]
    fn recovery_needs_every_missed_message_of_the_same_epoch() {
        let read = RoomRead {
            epoch: "e".into(),
            offset: 5,
            messages: vec![stored("r", 4), stored("r", 5)],
        };
        let since = |offset, epoch: &str| StreamPosition {
            offset,
            epoch: epoch.to_owned(),
        };
        let got = recover("r", &since(3, "e"), &read).expect("recovers");
        assert_eq!(
            got.iter().map(|m| (m.offset, m.id)).collect::<Vec<_>>(),
            [(4, 40), (5, 50)]
        );
        assert!(
            recover("r", &since(2, "e"), &read).is_none(),
            "offset 3 left history"
        );
        assert!(
            recover("r", &since(3, "other"), &read).is_none(),
            "another epoch"
        );
        assert!(
            recover("r", &since(6, "e"), &read).is_none(),
            "ahead of the room"
        );
        let up_to_date = RoomRead {
            messages: Vec::new(),
            ..read
        };
        assert_eq!(
            recover("r", &since(5, "e"), &up_to_date).map(|m| m.len()),
            Some(0)
        );
    }

    #[test]
    fn keys_share_the_room_hash_tag_and_channels_parse_back() {
        let keys = Keys::new("sb");
        assert_eq!(keys.meta("a:b"), "sb:r:{a:b}:m");
        assert_eq!(keys.stream("a:b"), "sb:r:{a:b}:s");
        assert_eq!(keys.idempotency("a", "u", "k"), "sb:i:{a}:u\0k");
        assert_eq!(
            keys.room_of_meta(&keys.meta("a}:m")).as_deref(),
            Some("a}:m")
        );
        assert_eq!(keys.room_of_meta("sb:i:{a}:u\0k}:m"), None);
        assert!(matches!(
            keys.parse_channel(&keys.room_channel("a:b")),
            Some(Target::Room("a:b"))
        ));
        assert!(matches!(
            keys.parse_channel(&keys.user_channel("u:1")),
            Some(Target::User("u:1"))
        ));
        assert!(keys.parse_channel("other:c:r:x").is_none());
    }
}
