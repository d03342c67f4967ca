//! Authentication of the `connect` (and `refresh`) command.
//!
//! A token is a JWT whose `sub` claim is the user id. Signatures are checked
//! with the keys from configuration: `auth.jwt_secret` (HS256), any number of
//! `[[auth.keys]]` (HS256/384/512, RS256, ES256 or EdDSA, each with its own
//! algorithm), and the keys of a JWKS file (`auth.jwks_file`). A key verifies
//! only tokens of its own algorithm: `alg: none`, an algorithm no key has,
//! and key-type confusion (an HMAC token "signed" with an RSA public key) are
//! all rejected. `exp` and `nbf` are honoured when present, `aud` and `iss`
//! are required to match when `auth.audience` / `auth.issuer` are set, all
//! with `auth.leeway`.
//!
//! The token may also grant rooms (the `auth.rooms_claim` claim, default
//! `rooms`: a list of room names or `prefix*` patterns) and direct messages
//! (`"direct": true`); see [`crate::permissions`].
//!
//! In development mode a client may instead connect as an anonymous user by
//! name. Tokens are never logged, not even in error messages.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::permissions::Grants;
use crate::proto::ErrorCode;

/// Longest user id or anonymous name accepted, in bytes.
pub const MAX_USER_LEN: usize = 255;
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Most room grants one token may carry.
pub const MAX_ROOM_GRANTS: usize = 1000;

/// `[auth]` configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Shortcut for one HS256 key: the shared secret. Default: none.
    pub jwt_secret: Option<String>,
    /// Verification keys, each for one algorithm. Default: none.
    pub keys: Vec<KeyConfig>,
    /// A JWKS file (`{"keys": [...]}`) with more verification keys; each key
    /// must name its `alg`. Read at startup. Default: none.
    pub jwks_file: Option<PathBuf>,
    /// Accepted `aud` values; when set, a token must carry one of them.
    /// Default: empty (`aud` is not checked).
    pub audience: Vec<String>,
    /// Accepted `iss` values; when set, a token must carry one of them.
    /// Default: empty (`iss` is not checked).
    pub issuer: Vec<String>,
    /// Clock skew allowed when checking `exp` and `nbf`. Default `0s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The claim listing the rooms a token grants. Default `rooms`.
    pub rooms_claim: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            keys: Vec::new(),
            jwks_file: None,
            audience: Vec::new(),
            issuer: Vec::new(),
            leeway: Duration::ZERO,
            rooms_claim: "rooms".to_owned(),
        }
    }
}

impl AuthConfig {
    /// Whether any verification key is configured.
    pub fn has_keys(&self) -> bool {
        self.jwt_secret.as_deref().is_some_and(|s| !s.is_empty())
            || !self.keys.is_empty()
            || self.jwks_file.is_some()
    }
}

/// One verification key (`[[auth.keys]]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// `HS256`, `HS384`, `HS512`, `RS256`, `ES256` or `EdDSA`.
    pub algorithm: Algorithm,
    /// Key id: when set, only tokens whose header has this `kid` use it.
    #[serde(default)]
    pub kid: Option<String>,
    /// The shared secret (HS algorithms).
    #[serde(default)]
    pub secret: Option<String>,
    /// The public key in PEM (RS256, ES256, EdDSA).
    #[serde(default)]
    pub public_key: Option<String>,
    /// A file holding the public key in PEM.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
}

/// Who a connection is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id: the sender of everything this connection sends.
    pub user: String,
    /// Token expiry in seconds since the Unix epoch, if any.
    pub expires_at: Option<u64>,
    /// What the token grants.
    pub grants: Grants,
}

/// Why a `connect` was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, and no anonymous name allowed or given.
    #[error("a token is required")]
    MissingToken,
    /// The token is malformed, has a bad signature, an algorithm no key
    /// verifies, or fails a claim check.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// An anonymous name was given outside development mode.
    #[error("anonymous login is only allowed in development mode")]
    AnonymousNotAllowed,
    /// The anonymous name is empty, too long or has control characters.
    #[error("invalid name: 1 to 255 bytes without control characters")]
    InvalidName,
}

impl AuthError {
    /// The wire error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::Unauthorized,
        }
    }
}

/// A key that could not be loaded from configuration.
#[derive(Debug, thiserror::Error)]
#[error("auth: {0}")]
pub struct KeyError(String);

/// A verification key with the algorithm it verifies.
struct Key {
    algorithm: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// Verifies connect credentials. Built once from the configuration.
pub struct Authenticator {
    /// Whether anonymous logins by name are allowed.
    development: bool,
    keys: Vec<Key>,
    leeway: u64,
    audience: Vec<String>,
    issuer: Vec<String>,
    rooms_claim: String,
}

impl Authenticator {
    /// Builds the authenticator from `config.auth` and `config.development`,
    /// reading key files and the JWKS file.
    pub fn new(config: &Config) -> Result<Self, KeyError> {
        let auth = &config.auth;
        let mut keys = Vec::new();
        if let Some(secret) = auth.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            keys.push(Key {
                algorithm: Algorithm::HS256,
                kid: None,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        for (i, k) in auth.keys.iter().enumerate() {
            keys.push(load_key(k).map_err(|e| KeyError(format!("auth.keys[{i}]: {e}")))?);
        }
        if let Some(path) = &auth.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| KeyError(format!("reading {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| KeyError(format!("{}: not a JWKS: {e}", path.display())))?;
            for (i, jwk) in set.keys.iter().enumerate() {
                let Some(alg) = jwk.common.key_algorithm else {
                    return Err(KeyError(format!(
                        "{}: key {i} has no `alg`; every key must name its algorithm",
                        path.display()
                    )));
                };
                let algorithm = format!("{alg:?}").parse::<Algorithm>().map_err(|_| {
                    KeyError(format!(
                        "{}: key {i}: unsupported alg {alg:?}",
                        path.display()
                    ))
                })?;
                check_supported(algorithm)
                    .map_err(|e| KeyError(format!("{}: key {i}: {e}", path.display())))?;
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| KeyError(format!("{}: key {i}: {e}", path.display())))?;
                keys.push(Key {
                    algorithm,
                    kid: jwk.common.key_id.clone(),
                    key,
                });
            }
        }
        Ok(Self {
            development: config.development,
            keys,
            leeway: auth.leeway.as_secs(),
            audience: auth.audience.clone(),
            issuer: auth.issuer.clone(),
            rooms_claim: auth.rooms_claim.clone(),
        })
    }

    /// Checks a token, or an anonymous name in development mode.
    pub fn authenticate(&self, token: &str, name: &str) -> Result<Identity, AuthError> {
        if !token.is_empty() {
            return self.verify_token(token);
        }
        if !self.development {
            return Err(if name.is_empty() {
                AuthError::MissingToken
            } else {
                AuthError::AnonymousNotAllowed
            });
        }
        let user = if name.is_empty() {
            format!("guest-{}", crate::ids::random_hex(4))
        } else {
            name.to_owned()
        };
        if !valid_user(&user) {
            return Err(AuthError::InvalidName);
        }
        Ok(Identity {
            user,
            expires_at: None,
            grants: Grants::default(),
        })
    }

    /// Verifies a token's signature and claims.
    pub fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::InvalidToken(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        if self.keys.is_empty() {
            return Err(AuthError::InvalidToken(
                "no token key is configured on this server".to_owned(),
            ));
        }
        // The header is only used to pick keys; the signature check below
        // covers it. An unknown `alg` (including "none") fails here.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::InvalidToken(format!("bad header: {e}")))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&k.kid, &header.kid) {
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        });
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &self.validation(key.algorithm),
            ) {
                Ok(data) => return self.identity(data.claims),
                Err(e) => {
                    let fatal = !matches!(e.kind(), ErrorKind::InvalidSignature);
                    last = Some(e);
                    if fatal {
                        // The signature was good; a claim failed.
                        break;
                    }
                }
            }
        }
        Err(match last {
            None => AuthError::InvalidToken(format!(
                "no key on this server verifies {:?} tokens{}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|kid| format!(" with kid {kid:?}"))
                    .unwrap_or_default()
            )),
            Some(e) => match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::InvalidToken("bad signature".to_owned()),
                ErrorKind::ImmatureSignature => {
                    AuthError::InvalidToken("not valid yet (nbf)".to_owned())
                }
                ErrorKind::InvalidAudience => {
                    AuthError::InvalidToken("wrong audience (aud)".to_owned())
                }
                ErrorKind::InvalidIssuer => {
                    AuthError::InvalidToken("wrong issuer (iss)".to_owned())
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    AuthError::InvalidToken(format!("missing claim {claim}"))
                }
                _ => AuthError::InvalidToken(e.to_string()),
            },
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.leeway = self.leeway;
        v.required_spec_claims.clear();
        v.validate_exp = true;
        v.validate_nbf = true;
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
            v.required_spec_claims.insert("aud".to_owned());
        }
        if !self.issuer.is_empty() {
            v.set_issuer(&self.issuer);
            v.required_spec_claims.insert("iss".to_owned());
        }
        v
    }

    fn identity(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Identity, AuthError> {
        let user = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !valid_user(user) {
            return Err(AuthError::InvalidToken(
                "`sub` must be a user id of 1 to 255 bytes".to_owned(),
            ));
        }
        let expires_at = claims.get("exp").and_then(serde_json::Value::as_u64);
        let rooms = match claims.get(&self.rooms_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => {
                if items.len() > MAX_ROOM_GRANTS {
                    return Err(AuthError::InvalidToken(format!(
                        "`{}` lists more than {MAX_ROOM_GRANTS} rooms",
                        self.rooms_claim
                    )));
                }
                items
                    .iter()
                    .map(|v| match v.as_str() {
                        Some(p) if crate::permissions::valid_pattern(p) => Ok(p.to_owned()),
                        _ => Err(AuthError::InvalidToken(format!(
                            "`{}` must be a list of room names or `prefix*` patterns",
                            self.rooms_claim
                        ))),
                    })
                    .collect::<Result<_, _>>()?
            }
            Some(_) => {
                return Err(AuthError::InvalidToken(format!(
                    "`{}` must be a list",
                    self.rooms_claim
                )))
            }
        };
        let direct = claims
            .get("direct")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Ok(Identity {
            user: user.to_owned(),
            expires_at,
            grants: Grants { rooms, direct },
        })
    }
}

/// Algorithms this server verifies.
const SUPPORTED: [Algorithm; 6] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

fn check_supported(algorithm: Algorithm) -> Result<(), String> {
    if SUPPORTED.contains(&algorithm) {
        Ok(())
    } else {
        Err(format!(
            "algorithm {algorithm:?} is not supported (use HS256, HS384, HS512, RS256, ES256 or EdDSA)"
        ))
    }
}

fn load_key(k: &KeyConfig) -> Result<Key, String> {
    check_supported(k.algorithm)?;
    let hmac = matches!(
        k.algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    let pem = match (&k.public_key, &k.public_key_file) {
        (Some(p), None) => Some(p.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
        ),
        (None, None) => None,
        (Some(_), Some(_)) => return Err("give public_key or public_key_file, not both".into()),
    };
    let key = match (hmac, &k.secret, pem) {
        (true, Some(secret), None) if !secret.is_empty() => {
            DecodingKey::from_secret(secret.as_bytes())
        }
        (true, _, _) => {
            return Err(format!(
                "{:?} needs `secret` (and no public key)",
                k.algorithm
            ))
        }
        (false, None, Some(pem)) => {
            let pem = pem.as_bytes();
            match k.algorithm {
                Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
                Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
                _ => DecodingKey::from_ed_pem(pem),
            }
            .map_err(|e| format!("bad {:?} public key: {e}", k.algorithm))?
        }
        (false, _, _) => {
            return Err(format!(
                "{:?} needs `public_key` or `public_key_file` (and no secret)",
                k.algorithm
            ))
        }
    };
    Ok(Key {
        algorithm: k.algorithm,
        kid: k.kid.clone(),
        key,
    })
}

fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}
