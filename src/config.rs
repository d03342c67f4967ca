//! Configuration: a TOML file plus `SWITCHBOARD_*` environment overrides.
//!
//! Every key has a default, so `switchboard serve` runs with no file at all
//! (development mode, in-memory broker, `127.0.0.1:8080`). Nested keys are
//! overridden from the environment with `__` between levels, e.g.
//! `SWITCHBOARD_LIMITS__MAX_MESSAGE_SIZE=131072` or
//! `SWITCHBOARD_HISTORY__TTL=30m`. Durations are written like `10s`, `5m`,
//! `250ms`. Unknown keys are an error, so a typo never silently falls back to
//! a default. The one exception: an environment variable whose first level
//! is not a configuration section or key at all (`SWITCHBOARD_BIN`, or the
//! `SWITCHBOARD_SERVICE_HOST` and `SWITCHBOARD_PORT_*` variables that
//! Kubernetes injects for a service named `switchboard`) is not meant for the
//! server and is ignored; `SWITCHBOARD_LIMITS__TYPO` is still an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::auth::{AuthConfig, KeyConfig};
pub use crate::permissions::PermissionsConfig;

/// Largest frame the protocol allows at all; `limits.max_message_size` may
/// not exceed it.
pub const MAX_MESSAGE_SIZE_CEILING: usize = 16 * 1024 * 1024;

/// The whole server configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Development mode: allows anonymous logins by name (no token). Default
    /// `true`, so a fresh checkout runs with no setup; set `false` in
    /// production and configure token keys (`auth.jwt_secret`, `auth.keys`
    /// or `auth.jwks_file`). Refused on a listen address other than loopback
    /// unless `development_on_public_address` is set.
    pub development: bool,
    /// Allows development mode on a non-loopback listen address. Default
    /// `false`.
    pub development_on_public_address: bool,
    /// TLS termination. Default: off (plain HTTP and WebSocket).
    pub tls: TlsConfig,
    /// HTTP upgrade settings: origins and the handshake timeout.
    pub http: HttpConfig,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Room and direct-message permissions.
    pub permissions: PermissionsConfig,
    /// Per-connection limits and timeouts.
    pub limits: LimitsConfig,
    /// Room history and idempotency settings.
    pub history: HistoryConfig,
    /// Where room state lives: `memory` (this node only, the default) or
    /// `redis` (shared by every node pointing at the same Redis).
    pub broker: BrokerKind,
    /// Redis to use with `broker = "redis"`, as a `redis://` URL (user,
    /// password and database number go in the URL; `rediss://` for TLS is
    /// not supported by this build). Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Redis broker settings.
    pub redis: RedisConfig,
    /// The HTTP server API for backends (`/api/v1`).
    pub api: ApiConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// How long a graceful shutdown waits for connections to close before
    /// exiting anyway. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            development: true,
            development_on_public_address: false,
            tls: TlsConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            permissions: PermissionsConfig::default(),
            limits: LimitsConfig::default(),
            history: HistoryConfig::default(),
            broker: BrokerKind::Memory,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis: RedisConfig::default(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// TLS termination with rustls. Both files or neither.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain in PEM (leaf first). Default: none.
    pub cert: Option<PathBuf>,
    /// Private key in PEM (PKCS#8, PKCS#1 or SEC1). Default: none.
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether TLS is configured.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }
}

/// HTTP upgrade settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Origins allowed to open a WebSocket (exact match of the `Origin`
    /// header, e.g. `https://app.example.com`). Empty: any origin. Default
    /// empty.
    pub allowed_origins: Vec<String>,
    /// Whether an upgrade without an `Origin` header (not a browser: mobile
    /// apps, servers, CLI tools) is accepted when `allowed_origins` is set.
    /// Default `true`.
    pub allow_missing_origin: bool,
    /// Time allowed for a new TCP connection to complete its TLS handshake
    /// (if any) and send the whole HTTP request head. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Serve the demo chat page at `GET /`. Default `true`.
    pub demo_page: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
            handshake_timeout: Duration::from_secs(10),
            demo_page: true,
        }
    }
}

/// Per-connection limits and timeouts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame (WebSocket message) accepted from a client, in bytes; a
    /// larger one closes the connection with 1009. Default `65536`.
    pub max_message_size: usize,
    /// Rooms one connection may have joined at once. Default `100`.
    pub max_rooms_per_connection: usize,
    /// Frames that may wait in one connection's outbound queue. A connection
    /// whose queue overflows is closed with 4000 (slow consumer) at once;
    /// nobody else waits for it. It rejoins with `since` and recovers what it
    /// missed while the room's history still holds it, so keep this well
    /// below `history.max_messages` (the server warns at start when it is
    /// more than half of it). Default `1024`: a burst of a thousand
    /// pipelined publishes reaches a subscriber that reads.
    pub outbound_queue: usize,
    /// Kernel send buffer of each client socket in bytes (`SO_SNDBUF`;
    /// Linux reserves twice this for bookkeeping). Bounds what a client that
    /// stopped reading holds in flight beyond its outbound queue, and the
    /// kernel memory it pins; `0` leaves the kernel's autotuning (up to
    /// several MiB per socket). Default `65536`.
    pub socket_send_buffer: usize,
    /// Most frames the writer hands to the socket per flush. Default `64`.
    pub write_batch: usize,
    /// Time allowed between the upgrade and the `connect` command; closes
    /// with 4001 when exceeded. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How often the server sends a WebSocket Ping. Default `25s`.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection from which nothing (not even a Pong) arrives for this long
    /// is closed with 4002. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// After sending a Close frame, how long to wait for the peer's Close
    /// before dropping the TCP connection. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// WebSocket connections open at once on this node; more get HTTP 503
    /// before the upgrade. Default `100000`.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more get HTTP 503.
    /// Default `1000`.
    pub max_connections_per_ip: usize,
    /// Connections open at once for one user (counted at `connect`); more
    /// are closed with 1013. Default `100`.
    pub max_connections_per_user: usize,
    /// Commands one connection may send per second (sustained; `0`: no
    /// limit). Over the limit a command gets `ERROR_CODE_RATE_LIMITED` with
    /// `retry_after_ms`. Default `1000`.
    pub commands_per_second: u32,
    /// Commands one connection may send in a burst. Default `2000`.
    pub command_burst: u32,
    /// Publishes per second for one user, across their connections on this
    /// node (`0`: no limit). Default `1000`.
    pub publishes_per_second: u32,
    /// Publishes one user may send in a burst. Default `2000`.
    pub publish_burst: u32,
    /// New WebSocket connections per second from one IP address (`0`: no
    /// limit); more get HTTP 429 with `Retry-After`. Default `200`.
    pub connects_per_second: u32,
    /// New connections one IP address may open in a burst. Default `1000`.
    pub connect_burst: u32,
    /// Rate-limited commands in a row after which the connection is closed
    /// with 4003. Default `50`.
    pub rate_limit_strikes: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_rooms_per_connection: 100,
            outbound_queue: 1024,
            socket_send_buffer: 64 * 1024,
            write_batch: 64,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(2),
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            max_connections_per_user: 100,
            commands_per_second: 1000,
            command_burst: 2000,
            publishes_per_second: 1000,
            publish_burst: 2000,
            connects_per_second: 200,
            connect_burst: 1000,
            rate_limit_strikes: 50,
        }
    }
}

/// Room history and idempotency settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Messages kept per room; older ones are dropped. At least twice
    /// `limits.outbound_queue`, so that a slow consumer closed with 4000 can
    /// recover what it missed. Default `2048`.
    pub max_messages: usize,
    /// Age after which a message leaves the history. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Page size of a history read that asks for 0. Default `100`.
    pub default_page: u32,
    /// Largest page a history read returns. Default `1000`.
    pub max_page: u32,
    /// How long a publish's idempotency key is remembered. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Idempotency keys remembered per room; the oldest is forgotten first.
    /// Default `10000`.
    pub idempotency_max_keys: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_messages: 2048,
            ttl: Duration::from_secs(600),
            default_page: 100,
            max_page: 1000,
            idempotency_ttl: Duration::from_secs(300),
            idempotency_max_keys: 10_000,
        }
    }
}

/// Which broker and presence implementation a node uses.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// In-memory, one node (default).
    #[default]
    Memory,
    /// Redis: rooms, history and presence shared by many nodes.
    Redis,
}

/// Redis broker settings (used with `broker = "redis"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Prefix of every key and channel, so several deployments can share one
    /// Redis. Default `switchboard`.
    pub prefix: String,
    /// How long a member stays present after its node last refreshed it.
    /// Live nodes refresh their members every third of this, so a node that
    /// dies (even with SIGKILL) leaves no member behind for longer than this.
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
    /// Longest wait for one Redis command (or a connection attempt). A
    /// publish (or direct message) that Redis does not confirm in time fails
    /// with `ERROR_CODE_OUTCOME_UNKNOWN`: it may have been applied, so retry
    /// it with the same idempotency key. A join or read fails with
    /// `ERROR_CODE_UNAVAILABLE`. Both are temporary. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// How often a node checks that Redis answers (`SCRIPT EXISTS`, which
    /// also reloads the scripts into a restarted Redis). `/readyz` turns 503
    /// at the first check that is not answered within `health_timeout` (at
    /// most `health_interval + health_timeout` after Redis stops answering:
    /// a crash, a hang, a partition), or at once when a write is not
    /// answered in time. While Redis does not answer the check repeats every
    /// 100 ms, and `/readyz` is 200 again at the first answered one. While
    /// not ready, writes are not sent (they fail with `ERROR_CODE_UNAVAILABLE`
    /// after waiting up to `command_timeout` for Redis). Default `1s`.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Longest wait for the health check's answer. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "switchboard".to_owned(),
            presence_ttl: Duration::from_secs(30),
            command_timeout: Duration::from_secs(2),
            health_interval: Duration::from_secs(1),
            health_timeout: Duration::from_secs(1),
        }
    }
}

/// The HTTP server API (`/api/v1`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Keys a backend presents (`Authorization: Bearer <key>` or
    /// `X-Api-Key`). With none, the API is open in development mode and off
    /// otherwise. Default: none.
    pub keys: Vec<ApiKeyConfig>,
}

/// One API key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key; logged, and stamped as the sender of what it
    /// publishes or sends unless the request names one.
    pub name: String,
    /// The secret, at least 16 bytes.
    pub key: String,
}

impl std::fmt::Debug for ApiKeyConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`. Default `human`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `switchboard=debug`; `RUST_LOG`
    /// takes precedence when set. Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be parsed.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// The values parsed but are inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The configuration's top-level keys (`listen`, `limits`, ...).
fn top_level_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then `SWITCHBOARD_*` variables
    /// from the process environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only variables whose first level is a top-level key are overrides;
        // `SWITCHBOARD_CONFIG` names the file itself.
        let top_level = top_level_keys();
        let env = Env::prefixed("SWITCHBOARD_")
            .split("__")
            .filter(move |key| {
                let first = key.as_str().split('.').next().unwrap_or_default();
                top_level.iter().any(|k| k.eq_ignore_ascii_case(first))
            });
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Settings that are valid but break a documented promise, one line
    /// each; the server logs them as warnings at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.limits.outbound_queue > self.history.max_messages / 2 {
            warnings.push(format!(
                "limits.outbound_queue ({}) is more than half of history.max_messages ({}):                  a slow consumer closed with 4000 may have missed more than the history keeps,                  and then rejoins with recovered = false",
                self.limits.outbound_queue, self.history.max_messages
            ));
        }
        warnings
    }

    /// Checks the cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        if !self.development && !self.auth.has_keys() {
            return invalid(
                "a token key (auth.jwt_secret, auth.keys or auth.jwks_file) is required when development = false",
            );
        }
        if self.development
            && !self.listen.ip().is_loopback()
            && !self.development_on_public_address
        {
            return Err(ConfigError::Invalid(format!(
                "development mode (anonymous logins) on {} is refused: listen on a loopback address, \
                 set development = false, or set development_on_public_address = true",
                self.listen
            )));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return invalid("tls.cert and tls.key go together");
        }
        if self.auth.rooms_claim.is_empty() {
            return invalid("auth.rooms_claim must not be empty");
        }
        self.permissions.validate().map_err(ConfigError::Invalid)?;
        let limits = &self.limits;
        if limits.max_message_size < 256 || limits.max_message_size > MAX_MESSAGE_SIZE_CEILING {
            return invalid("limits.max_message_size must be between 256 and 16777216");
        }
        if limits.outbound_queue < 4 {
            return invalid("limits.outbound_queue must be at least 4");
        }
        if limits.write_batch == 0 {
            return invalid("limits.write_batch must be at least 1");
        }
        if limits.max_rooms_per_connection == 0 {
            return invalid("limits.max_rooms_per_connection must be at least 1");
        }
        for (name, value) in [
            ("limits.max_connections", limits.max_connections),
            (
                "limits.max_connections_per_ip",
                limits.max_connections_per_ip,
            ),
            (
                "limits.max_connections_per_user",
                limits.max_connections_per_user,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        for (name, rate, burst) in [
            (
                "limits.commands_per_second",
                limits.commands_per_second,
                limits.command_burst,
            ),
            (
                "limits.publishes_per_second",
                limits.publishes_per_second,
                limits.publish_burst,
            ),
            (
                "limits.connects_per_second",
                limits.connects_per_second,
                limits.connect_burst,
            ),
        ] {
            if rate > 0 && burst == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} is set, so its burst must be at least 1"
                )));
            }
        }
        for (name, value) in [
            ("http.handshake_timeout", self.http.handshake_timeout),
            ("limits.connect_timeout", limits.connect_timeout),
            ("limits.ping_interval", limits.ping_interval),
            ("limits.idle_timeout", limits.idle_timeout),
            ("history.ttl", self.history.ttl),
            ("redis.presence_ttl", self.redis.presence_ttl),
            ("redis.command_timeout", self.redis.command_timeout),
            ("redis.health_interval", self.redis.health_interval),
            ("redis.health_timeout", self.redis.health_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
        }
        if self.broker == BrokerKind::Redis {
            if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("unix://") {
                return invalid("redis_url must start with redis:// or unix://");
            }
            if self.redis.prefix.is_empty() || self.redis.prefix.contains(['{', '}']) {
                return invalid("redis.prefix must be non-empty and contain no braces");
            }
            if self.redis.presence_ttl < Duration::from_secs(1) {
                return invalid("redis.presence_ttl must be at least 1s");
            }
        }
        let mut names = std::collections::HashSet::new();
        for key in &self.api.keys {
            if key.name.is_empty() || key.name.len() > 255 {
                return invalid("api.keys: every name must be 1 to 255 bytes");
            }
            if !names.insert(key.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "api.keys: the name {:?} is used twice",
                    key.name
                )));
            }
            if key.key.len() < 16 {
                return Err(ConfigError::Invalid(format!(
                    "api.keys: the key named {:?} is shorter than 16 bytes",
                    key.name
                )));
            }
        }
        if self.history.max_messages == 0 {
            return invalid("history.max_messages must be at least 1");
        }
        if self.history.default_page == 0 || self.history.max_page < self.history.default_page {
            return invalid("history.default_page must be at least 1 and at most history.max_page");
        }
        Ok(())
    }
}

#[cfg(test)]
// `figment::Jail` closures return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn example_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("switchboard.example.toml");
        let parsed: Config = Figment::from(Toml::file(path)).extract().unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "sb.toml",
                "development = false\n[auth]\njwt_secret = \"x\"\n[limits]\nidle_timeout = \"90s\"\nmax_message_size = 2048\n",
            )?;
            jail.set_env("SWITCHBOARD_LIMITS__MAX_MESSAGE_SIZE", "4096");
            jail.set_env("SWITCHBOARD_HISTORY__TTL", "30m");
            jail.set_env("SWITCHBOARD_BROKER", "redis");
            jail.set_env("SWITCHBOARD_REDIS_URL", "redis://127.0.0.1:6390/2");
            jail.set_env("SWITCHBOARD_REDIS__PRESENCE_TTL", "5s");
            jail.set_env("SWITCHBOARD_CONFIG", "sb.toml");
            // Not configuration keys at all: ignored.
            jail.set_env("SWITCHBOARD_BIN", "/usr/local/bin/switchboard");
            jail.set_env("SWITCHBOARD_SERVICE_HOST", "10.0.0.1");
            let config = Config::load(Some(Path::new("sb.toml"))).map_err(|e| e.to_string())?;
            assert!(!config.development);
            assert_eq!(config.limits.idle_timeout, Duration::from_secs(90));
            assert_eq!(config.limits.max_message_size, 4096);
            assert_eq!(config.history.ttl, Duration::from_secs(1800));
            assert_eq!(config.broker, BrokerKind::Redis);
            assert_eq!(config.redis_url, "redis://127.0.0.1:6390/2");
            assert_eq!(config.redis.presence_ttl, Duration::from_secs(5));
            Ok(())
        });
    }

    #[test]
    fn warns_when_a_slow_consumer_could_not_recover() {
        assert!(Config::default().warnings().is_empty());
        let mut config = Config::default();
        config.limits.outbound_queue = 1025;
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("limits.outbound_queue"),
            "{warnings:?}"
        );
        config.history.max_messages = 4096;
        assert!(config.warnings().is_empty());
    }

    #[test]
    fn rejects_unknown_keys_and_inconsistent_values() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[limits]\nmax_mesage_size = 1\n")?;
            assert!(Config::load(Some(Path::new("typo.toml"))).is_err());
            jail.create_file("prod.toml", "development = false\n")?;
            let err = Config::load(Some(Path::new("prod.toml"))).unwrap_err();
            assert!(err.to_string().contains("jwt_secret"), "{err}");
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            jail.create_file(
                "redis.toml",
                "broker = \"redis\"\nredis_url = \"http://x\"\n",
            )?;
            let err = Config::load(Some(Path::new("redis.toml"))).unwrap_err();
            assert!(err.to_string().contains("redis_url"), "{err}");
            jail.create_file("broker.toml", "broker = \"postgres\"\n")?;
            assert!(Config::load(Some(Path::new("broker.toml"))).is_err());
            jail.set_env("SWITCHBOARD_LIMITS__MAX_MESAGE_SIZE", "1");
            let err = Config::load(None).unwrap_err();
            assert!(err.to_string().contains("max_mesage_size"), "{err}");
            Ok(())
        });
    }
}
