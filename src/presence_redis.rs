//! `RedisPresence`: room membership shared by many nodes, with expiry.
//!
//! Per room, a sorted set maps each present connection (its client id) to
//! the time its entry expires, and a hash holds its `Member`. A node adds its
//! connections as they join and, every third of `redis.presence_ttl`,
//! pushes the expiry of all of them forward. A node that dies stops doing
//! so: its members expire within `presence_ttl`, and the next live node to
//! refresh the room removes them and announces `MemberLeft` for each.
//!
//! The node also remembers its own members, so entries lost while Redis was
//! unreachable (or restarted empty) are written again by the next refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use prost::Message as _;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use crate::broker::BrokerError;
use crate::broker_redis::{connection, run_script, Effect, Keys};
use crate::config::RedisConfig;
use crate::ids;
use crate::presence::Presence;
use crate::proto::Member;

/// Most members a presence list returns.
const MAX_LIST: usize = 10_000;

/// A client id and its encoded `Member`.
type ClientMember = (String, Vec<u8>);

/// Room → client id → encoded `Member`.
type Local = HashMap<Arc<str>, HashMap<String, Vec<u8>>>;

/// Redis-backed presence. Cheap to share behind an `Arc`.
pub struct RedisPresence {
    /// Commands; reconnects by itself.
    conn: ConnectionManager,
    /// Key names (shared with the broker).
    keys: Keys,
    /// Expiry and timeouts.
    settings: RedisConfig,
    /// This node's members, to refresh. A std mutex: never held across
    /// `.await`.
    local: Mutex<Local>,
    add: Script,
    remove: Script,
    list: Script,
    refresh: Script,
}

impl RedisPresence {
    /// Presence in the Redis at `url` (connected lazily).
    pub fn new(url: &str, settings: RedisConfig) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url)
            .map_err(|e| BrokerError::Internal(format!("invalid redis_url: {e}")))?;
        Ok(Self {
            conn: connection(&client, &settings)?,
            keys: Keys::new(&settings.prefix),
            settings,
            local: Mutex::new(HashMap::new()),
            add: Script::new(include_str!("lua/presence_add.lua")),
            remove: Script::new(include_str!("lua/presence_remove.lua")),
            list: Script::new(include_str!("lua/presence_list.lua")),
            refresh: Script::new(include_str!("lua/presence_refresh.lua")),
        })
    }

    /// How often live nodes refresh their members.
    pub fn refresh_interval(&self) -> std::time::Duration {
        self.settings.presence_ttl / 3
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expiry_ms(&self) -> i64 {
        ids::now_ms() + self.settings.presence_ttl.as_millis() as i64
    }

    /// Presence keys outlive their members a little, then go by themselves.
    fn key_ttl_ms(&self) -> String {
        (self.settings.presence_ttl.as_millis() * 2).to_string()
    }

    async fn invoke(
        &self,
        script: &Script,
        room: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<Value, BrokerError> {
        let (members, data) = self.keys.presence(room);
        let keys = [members.as_str(), data.as_str()];
        // Adding, removing and refreshing a member are safe to repeat.
        run_script(
            &self.conn,
            Effect::Read,
            self.settings.command_timeout,
            script,
            &keys,
            args,
        )
        .await
    }

    /// Re-announces this node's members and removes members whose node
    /// stopped refreshing them. Returns those removed, by room, for the
    /// caller to announce `MemberLeft`.
    pub async fn refresh(&self) -> Vec<(Arc<str>, Member)> {
        let rooms: Vec<(Arc<str>, Vec<ClientMember>)> = self
            .local()
            .iter()
            .map(|(room, members)| {
                let members = members.iter().map(|(c, m)| (c.clone(), m.clone()));
                (room.clone(), members.collect())
            })
            .collect();
        let mut expired = Vec::new();
        for (room, members) in rooms {
            let mut args = vec![
                ids::now_ms().to_string().into_bytes(),
                self.expiry_ms().to_string().into_bytes(),
                self.key_ttl_ms().into_bytes(),
            ];
            for (client, member) in members {
                args.push(client.into_bytes());
                args.push(member);
            }
            match self.invoke(&self.refresh, &room, args).await {
                Ok(value) => {
                    for member in decode_members(value) {
                        expired.push((room.clone(), member));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "presence refresh failed");
                    break;
                }
            }
        }
        expired
    }
}

fn decode_members(value: Value) -> Vec<Member> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::BulkString(bytes) => Member::decode(bytes.as_slice()).ok(),
            _ => None,
        })
        .collect()
}

#[async_trait]
impl Presence for RedisPresence {
    async fn add(&self, room: &str, member: Member) -> Result<(), BrokerError> {
        let client = member.client.clone();
        let data = member.encode_to_vec();
        self.local()
            .entry(Arc::from(room))
            .or_default()
            .insert(client.clone(), data.clone());
        let args = vec![
            client.into_bytes(),
            data,
            self.expiry_ms().to_string().into_bytes(),
            self.key_ttl_ms().into_bytes(),
        ];
        self.invoke(&self.add, room, args).await.map(|_| ())
    }

    async fn remove(&self, room: &str, client: &str) -> Result<(), BrokerError> {
        {
            let mut local = self.local();
            if let Some(members) = local.get_mut(room) {
                members.remove(client);
                if members.is_empty() {
                    local.remove(room);
                }
            }
        }
        self.invoke(&self.remove, room, vec![client.as_bytes().to_vec()])
            .await
            .map(|_| ())
    }

    async fn list(&self, room: &str) -> Result<Vec<Member>, BrokerError> {
        let args = vec![
            ids::now_ms().to_string().into_bytes(),
            MAX_LIST.to_string().into_bytes(),
        ];
        let value = self.invoke(&self.list, room, args).await?;
        Ok(decode_members(value))
    }
}
