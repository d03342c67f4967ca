//! Presence: which connections are in which room.
//!
//! `MemoryPresence` (in `presence_memory.rs`) serves a single node; a
//! Redis-backed implementation with expiry sits beside it behind the same
//! trait. Presence is membership only; the join/leave pushes go through the
//! broker so they reach subscribers on every node.

use async_trait::async_trait;

use crate::broker::BrokerError;
use crate::proto::Member;

/// Room membership, shared by every node of a deployment.
///
/// # Contract
/// - `add` and `remove` are idempotent; `list` returns each present
///   connection once.
/// - A connection is present from the moment its join succeeds until it
///   leaves or disconnects. Implementations shared between nodes expire the
///   entries of a node that stopped refreshing them, so a crashed node leaves
///   no ghost members.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Marks `member` present in `room`.
    async fn add(&self, room: &str, member: Member) -> Result<(), BrokerError>;
    /// Marks the connection `client` absent from `room`.
    async fn remove(&self, room: &str, client: &str) -> Result<(), BrokerError>;
    /// Every connection present in `room`.
    async fn list(&self, room: &str) -> Result<Vec<Member>, BrokerError>;
}
