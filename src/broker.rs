//! The broker: room offsets, history and fan-out across nodes.
//!
//! A broker owns the authoritative state of every room (its offset counter,
//! epoch, history and idempotency keys) and delivers each published message
//! to the local subscribers kept in the [`Hub`](crate::hub::Hub) of every
//! node. `MemoryBroker` (in `broker_memory.rs`) serves a single node;
//! `RedisBroker` (in `broker_redis.rs`) lets many nodes share rooms.

use async_trait::async_trait;
use bytes::Bytes;

use std::sync::Arc;

use crate::codec::encode_server;
use crate::config::HistoryConfig;
use crate::hub::Subscriber;
use crate::outbound::ConnId;
use crate::proto::server_frame::Kind;
use crate::proto::{
    ErrorCode, JoinReply, Payload, RoomMessage, ServerFrame, StreamPosition, Subscribed,
};

/// What a client (or backend) asks to publish; the broker stamps the rest.
#[derive(Clone, Debug)]
pub struct Publication {
    /// Authenticated user id of the publisher.
    pub sender: String,
    /// The content.
    pub payload: Payload,
    /// Optional idempotency key; empty means none.
    pub idempotency_key: String,
}

/// The result of a publish: what the acknowledgement carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishResult {
    /// Offset of the message in its room.
    pub offset: u64,
    /// Epoch of the room's history.
    pub epoch: String,
    /// Server-assigned message id.
    pub id: u64,
    /// Publish time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// True when the idempotency key was seen before and this is the first
    /// publish's result.
    pub duplicate: bool,
}

/// The result of a join, as carried by the `JoinReply`.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    /// The room's newest offset and epoch at the moment of the join.
    pub position: StreamPosition,
    /// Whether the requested recovery succeeded.
    pub recovered: bool,
    /// With `recovered`, the missed messages in offset order.
    pub messages: Vec<RoomMessage>,
}

/// How a join is announced to the joining connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinNotice {
    /// The connection asked: a `JoinReply` to this request id.
    Reply(u32),
    /// A backend subscribed it (HTTP API): a `Subscribed` push.
    Subscribed {
        /// Whether presence events were asked for.
        presence_events: bool,
    },
}

impl JoinNotice {
    /// The encoded frame announcing `result` for `room`.
    pub fn frame(self, room: &str, result: JoinResult) -> Bytes {
        let kind = match self {
            JoinNotice::Reply(_) => Kind::Join(JoinReply {
                position: Some(result.position),
                recovered: result.recovered,
                messages: result.messages,
            }),
            JoinNotice::Subscribed { presence_events } => Kind::Subscribed(Subscribed {
                room: room.to_owned(),
                position: Some(result.position),
                presence_events,
            }),
        };
        let id = match self {
            JoinNotice::Reply(id) => id,
            JoinNotice::Subscribed { .. } => 0,
        };
        encode_server(&ServerFrame {
            id,
            kind: Some(kind),
        })
    }
}

/// What a backend asks of every connection of a user (HTTP API), on every
/// node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserControl {
    /// Join the room, as if the connection had sent `join`.
    Join {
        /// The room.
        room: Arc<str>,
        /// Whether to send presence events.
        presence_events: bool,
    },
    /// Leave the room.
    Leave {
        /// The room.
        room: Arc<str>,
    },
    /// Close with `CLOSE_CODE_KICKED`.
    Disconnect,
}

/// A history page request.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryQuery {
    /// Page size (already clamped by the caller).
    pub limit: usize,
    /// Exclusive upper bound on offsets; 0 for none.
    pub before: u64,
    /// Exclusive lower bound on offsets; 0 for none. When set, the page is
    /// the oldest `limit` messages after it; otherwise the newest before
    /// `before`.
    pub after: u64,
}

impl HistoryQuery {
    /// The query for a request's `limit` (0: the default page, clamped to
    /// the largest), `before` and `after`.
    pub fn new(limit: u32, before: u64, after: u64, config: &HistoryConfig) -> Self {
        let limit = match limit {
            0 => config.default_page,
            n => n.min(config.max_page),
        };
        Self {
            limit: limit as usize,
            before,
            after,
        }
    }
}

/// A history page.
#[derive(Clone, Debug, Default)]
pub struct HistoryPage {
    /// The messages, in offset order.
    pub messages: Vec<RoomMessage>,
    /// The room's newest offset and epoch.
    pub position: StreamPosition,
    /// Whether more messages exist beyond the page in the paging direction.
    pub has_more: bool,
}

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backing store is unreachable and the operation was not carried
    /// out: nothing happened. Retryable.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The operation was handed to the backing store, which did not confirm
    /// it in time (a timeout, or a connection dropped while it was in
    /// flight): it may or may not have taken effect. Retryable with the same
    /// idempotency key.
    #[error("broker outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// An unexpected failure.
    #[error("broker internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// The wire error code a client or backend is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::Unavailable(_) => ErrorCode::Unavailable,
            BrokerError::OutcomeUnknown(_) => ErrorCode::OutcomeUnknown,
            BrokerError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Room state and delivery, shared by every node of a deployment.
///
/// # Contract
/// - **Offsets.** Each room has an offset counter starting at 0; every
///   accepted publish gets the next offset. Offsets are never reused within an
///   epoch. The epoch changes whenever the history behind the offsets was
///   lost, so `(epoch, offset)` identifies a message.
/// - **Atomic publish.** Offset assignment, appending to history and handing
///   the message to delivery happen as one step: a message that is
///   acknowledged is in history, and a message is delivered only if it was
///   appended. `publish` returns only after that step.
/// - **Ordering.** Every subscriber receives a room's messages in offset
///   order, without gaps, from the position its join returned, for as long as
///   it stays subscribed and keeps up (a subscriber whose queue overflows is
///   disconnected instead of skipped).
/// - **Join.** `join` subscribes and reads the room position as one step: the
///   subscriber receives live exactly the messages after the returned
///   position. With `since`, the returned messages are exactly those in
///   `(since.offset, position.offset]`, or `recovered` is false.
/// - **Idempotency.** A publish whose non-empty key was seen from the same
///   sender in the same room within the idempotency window returns the first result with `duplicate`
///   set and delivers nothing.
/// - **Ephemeral frames** (direct messages, presence events, notifications)
///   are delivered at most once, to whoever is connected at that moment, and
///   are not stored.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes a message to a room: assigns id, offset and time, appends it
    /// to history and delivers it to every subscriber on every node.
    async fn publish(
        &self,
        room: &str,
        publication: Publication,
    ) -> Result<PublishResult, BrokerError>;

    /// Subscribes a local connection to a room and queues the frame that
    /// announces it (`notice`: a `JoinReply` with the missed messages when
    /// `since` is given, see the contract, or a `Subscribed` push). It is
    /// queued before any live message of the room, so the client sees
    /// replay, then live, in order.
    async fn join(
        &self,
        room: &str,
        subscriber: Subscriber,
        since: Option<StreamPosition>,
        notice: JoinNotice,
    ) -> Result<(), BrokerError>;

    /// Unsubscribes a local connection from a room. Returns whether it was
    /// subscribed.
    async fn leave(&self, room: &str, conn: ConnId) -> Result<bool, BrokerError>;

    /// Reads a page of a room's history.
    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistoryPage, BrokerError>;

    /// Delivers an encoded frame to every connection of `user`, on every node.
    async fn send_to_user(&self, user: &str, frame: Bytes) -> Result<(), BrokerError>;

    /// Delivers an encoded presence event to the room's subscribers that asked
    /// for presence events, on every node, except the connection `except`.
    async fn broadcast_presence(
        &self,
        room: &str,
        frame: Bytes,
        except: ConnId,
    ) -> Result<(), BrokerError>;

    /// Delivers an encoded frame (a notification) to every subscriber of
    /// `room`, on every node. Not stored.
    async fn notify_room(&self, room: &str, frame: Bytes) -> Result<(), BrokerError>;

    /// Has every connection of `user`, on every node, act on `control`.
    async fn control_user(&self, user: &str, control: UserControl) -> Result<(), BrokerError>;

    /// Names of rooms with state (history, idempotency keys or members), at
    /// most `limit`, and whether there were more.
    async fn rooms(&self, limit: usize) -> Result<(Vec<String>, bool), BrokerError>;

    /// Makes frames sent to `user` from any node reach this node's
    /// connections of that user; called when such a connection is
    /// authenticated, and balanced by [`Broker::detach_user`]. A broker that
    /// is temporarily unreachable remembers the user and catches up when it
    /// returns.
    async fn attach_user(&self, _user: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Undoes one [`Broker::attach_user`].
    async fn detach_user(&self, _user: &str) {}

    /// Whether the broker can currently serve publishes and joins (its
    /// backing store is reachable).
    fn is_ready(&self) -> bool {
        true
    }
}
