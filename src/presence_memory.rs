//! `MemoryPresence`: single-node presence in sharded in-memory maps.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::broker::BrokerError;
use crate::presence::Presence;
use crate::proto::Member;

const SHARDS: usize = 32;

/// Room → client id → member, sharded by room hash. The locks are std
/// mutexes held only for map operations, never across `.await`.
type Rooms = HashMap<String, HashMap<String, Member>>;

/// In-memory presence for a single node.
pub struct MemoryPresence {
    /// The sharded maps.
    shards: Box<[Mutex<Rooms>]>,
    /// Picks a room's shard.
    hasher: RandomState,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl MemoryPresence {
    fn shard(&self, room: &str) -> MutexGuard<'_, Rooms> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn add(&self, room: &str, member: Member) -> Result<(), BrokerError> {
        self.shard(room)
            .entry(room.to_owned())
            .or_default()
            .insert(member.client.clone(), member);
        Ok(())
    }

    async fn remove(&self, room: &str, client: &str) -> Result<(), BrokerError> {
        let mut rooms = self.shard(room);
        if let Some(members) = rooms.get_mut(room) {
            members.remove(client);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
        Ok(())
    }

    async fn list(&self, room: &str) -> Result<Vec<Member>, BrokerError> {
        Ok(self
            .shard(room)
            .get(room)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn add_list_remove() {
        let p = MemoryPresence::default();
        let m = |c: &str| Member {
            user: "u".into(),
            client: c.into(),
        };
        p.add("r", m("a")).await.unwrap();
        p.add("r", m("a")).await.unwrap();
        p.add("r", m("b")).await.unwrap();
        assert_eq!(p.list("r").await.unwrap().len(), 2);
        p.remove("r", "a").await.unwrap();
        assert_eq!(p.list("r").await.unwrap(), vec![m("b")]);
        p.remove("r", "b").await.unwrap();
        assert!(p.list("r").await.unwrap().is_empty());
    }
}
