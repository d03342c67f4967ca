//! Connection caps and rate limits (`[limits]`), enforced with `governor`.
//!
//! | what | limit | when exceeded |
//! | --- | --- | --- |
//! | connections on this node | `max_connections` | HTTP 503 before the upgrade |
//! | connections from one IP | `max_connections_per_ip` | HTTP 503 before the upgrade |
//! | new connections from one IP | `connects_per_second` / `connect_burst` | HTTP 429 with `Retry-After` |
//! | connections of one user | `max_connections_per_user` | error reply, then close 1013 |
//! | commands on one connection | `commands_per_second` / `command_burst` | `ERROR_CODE_RATE_LIMITED` with `retry_after_ms`; close 4003 after `rate_limit_strikes` in a row |
//! | publishes of one user | `publishes_per_second` / `publish_burst` | `ERROR_CODE_RATE_LIMITED` with `retry_after_ms` |
//!
//! A rate of `0` turns that limiter off.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;

/// The node's caps and shared rate limiters.
pub(crate) struct Limits {
    max_connections: usize,
    max_per_ip: usize,
    max_per_user: usize,
    command_quota: Option<Quota>,
    connects: Option<DefaultKeyedRateLimiter<IpAddr>>,
    publishes: Option<DefaultKeyedRateLimiter<Arc<str>>>,
    clock: DefaultClock,
    open: Arc<Counts>,
}

/// Connections open now, in total and by key.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    by_user: Mutex<HashMap<Arc<str>, usize>>,
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Limits {
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            max_per_user: config.max_connections_per_user,
            command_quota: quota(config.commands_per_second, config.command_burst),
            connects: quota(config.connects_per_second, config.connect_burst)
                .map(RateLimiter::keyed),
            publishes: quota(config.publishes_per_second, config.publish_burst)
                .map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            open: Arc::default(),
        }
    }

    /// A new connection from `ip`: within its rate? `Err` holds how long to
    /// wait.
    pub(crate) fn check_connect_rate(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_keyed(self.connects.as_ref(), &ip)
    }

    /// A publish by `user`: within its rate? `Err` holds how long to wait.
    pub(crate) fn check_publish(&self, user: &Arc<str>) -> Result<(), Duration> {
        self.check_keyed(self.publishes.as_ref(), user)
    }

    fn check_keyed<K: Hash + Eq + Clone>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), Duration> {
        match limiter {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    /// A per-connection command limiter, if commands are limited.
    pub(crate) fn command_limiter(&self) -> Option<CommandLimiter> {
        self.command_quota.map(|q| CommandLimiter {
            limiter: RateLimiter::direct(q),
        })
    }

    /// Counts a new connection from `ip` against the node and IP caps.
    pub(crate) fn open_connection(&self, ip: IpAddr) -> Result<ConnectionSlot, &'static str> {
        if self.open.total.fetch_add(1, Ordering::Relaxed) >= self.max_connections {
            self.open.total.fetch_sub(1, Ordering::Relaxed);
            return Err("this server is at its connection limit");
        }
        let mut by_ip = self.open.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                by_ip.remove(&ip);
            }
            self.open.total.fetch_sub(1, Ordering::Relaxed);
            return Err("too many connections from this address");
        }
        *n += 1;
        Ok(ConnectionSlot {
            open: self.open.clone(),
            ip,
        })
    }

    /// Counts a connection of `user` against the per-user cap.
    pub(crate) fn open_user(&self, user: &Arc<str>) -> Option<UserSlot> {
        let mut by_user = self.open.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let n = by_user.entry(user.clone()).or_insert(0);
        if *n >= self.max_per_user {
            if *n == 0 {
                by_user.remove(user);
            }
            return None;
        }
        *n += 1;
        Some(UserSlot {
            open: self.open.clone(),
            user: user.clone(),
        })
    }

    /// Forgets rate-limiter state that no longer limits anyone.
    pub(crate) fn sweep(&self) {
        if let Some(l) = &self.connects {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.publishes {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// One connection's command limiter.
pub(crate) struct CommandLimiter {
    limiter: DefaultDirectRateLimiter,
}

impl CommandLimiter {
    /// A command: within the rate? `Err` holds how long to wait.
    pub(crate) fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// A connection counted against the node and IP caps until dropped.
pub(crate) struct ConnectionSlot {
    open: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.total.fetch_sub(1, Ordering::Relaxed);
        let mut by_ip = self.open.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// A connection counted against its user's cap until dropped.
pub(crate) struct UserSlot {
    open: Arc<Counts>,
    user: Arc<str>,
}

impl UserSlot {
    /// The user id.
    pub(crate) fn user(&self) -> &Arc<str> {
        &self.user
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut by_user = self.open.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LimitsConfig {
        LimitsConfig {
            max_connections: 3,
            max_connections_per_ip: 2,
            max_connections_per_user: 1,
            commands_per_second: 1,
            command_burst: 2,
            publishes_per_second: 0,
            connects_per_second: 1,
            connect_burst: 1,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn caps_count_open_connections() {
        let limits = Limits::new(&config());
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let a1 = limits.open_connection(a).unwrap();
        let _a2 = limits.open_connection(a).unwrap();
        assert!(limits.open_connection(a).is_err(), "per-IP cap");
        let _b1 = limits.open_connection(b).unwrap();
        assert!(limits.open_connection(b).is_err(), "node cap");
        drop(a1);
        let _b2 = limits.open_connection(b).unwrap();

        let user: Arc<str> = Arc::from("alice");
        let slot = limits.open_user(&user).unwrap();
        assert!(limits.open_user(&user).is_none());
        drop(slot);
        assert!(limits.open_user(&user).is_some());
    }

    #[test]
    fn rates() {
        let limits = Limits::new(&config());
        let ip: IpAddr = [127, 0, 0, 9].into();
        assert!(limits.check_connect_rate(ip).is_ok());
        let wait = limits.check_connect_rate(ip).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            limits.check_publish(&Arc::from("u")).is_ok(),
            "off at rate 0"
        );
        let commands = limits.command_limiter().unwrap();
        assert!(commands.check().is_ok());
        assert!(commands.check().is_ok());
        assert!(commands.check().is_err(), "burst of 2");
        limits.sweep();
    }
}
