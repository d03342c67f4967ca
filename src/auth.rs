//! Authentication of the `connect` command.
//!
//! A token is an HS256-signed JWT whose `sub` claim is the user id; `exp` and
//! `nbf` are honoured when present. In development mode a client may instead
//! connect as an anonymous user by name. Tokens are never logged.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::Config;
use crate::proto::ErrorCode;

/// Longest user id or anonymous name accepted, in bytes.
pub const MAX_USER_LEN: usize = 255;

/// Who a connection is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id: the sender of everything this connection sends.
    pub user: String,
    /// Token expiry in seconds since the Unix epoch, if any.
    pub expires_at: Option<u64>,
}

/// Why a `connect` was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, and no anonymous name allowed or given.
    #[error("a token is required")]
    MissingToken,
    /// The token is malformed, has a bad signature or lacks `sub`.
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

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: Option<u64>,
}

/// Verifies connect credentials. Built once from the configuration.
pub struct Authenticator {
    /// Whether anonymous logins by name are allowed.
    development: bool,
    /// HS256 key, when a secret is configured.
    key: Option<DecodingKey>,
    /// Algorithm, leeway and claim rules.
    validation: Validation,
}

impl Authenticator {
    /// Builds the authenticator from `config.auth` and `config.development`.
    pub fn new(config: &Config) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.auth.leeway.as_secs();
        // `exp` is honoured when present but not required; `sub` is checked
        // below so its absence gets a precise message.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Self {
            development: config.development,
            key: config
                .auth
                .jwt_secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            validation,
        }
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
        })
    }

    fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        let Some(key) = &self.key else {
            return Err(AuthError::InvalidToken(
                "no token key is configured on this server".to_owned(),
            ));
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::InvalidToken(e.to_string()),
                }
            })?;
        let claims = data.claims;
        if !valid_user(&claims.sub) {
            return Err(AuthError::InvalidToken(
                "`sub` must be a user id of 1 to 255 bytes".to_owned(),
            ));
        }
        Ok(Identity {
            user: claims.sub,
            expires_at: claims.exp,
        })
    }
}

fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde::Serialize;

    #[derive(Serialize)]
    struct TestClaims {
        sub: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<u64>,
    }

    fn token(secret: &str, sub: &str, exp: Option<u64>) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &TestClaims {
                sub: sub.into(),
                exp,
            },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn auth(development: bool) -> Authenticator {
        let config = Config {
            development,
            auth: crate::config::AuthConfig {
                jwt_secret: Some("s3cret".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Authenticator::new(&config)
    }

    #[test]
    fn tokens() {
        let now = jsonwebtoken::get_current_timestamp();
        let a = auth(false);
        let id = a
            .authenticate(&token("s3cret", "alice", Some(now + 60)), "")
            .unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.expires_at, Some(now + 60));
        assert_eq!(
            a.authenticate(&token("s3cret", "bob", None), "")
                .unwrap()
                .user,
            "bob"
        );
        assert!(matches!(
            a.authenticate(&token("s3cret", "alice", Some(now - 60)), ""),
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            a.authenticate(&token("wrong", "alice", None), ""),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            a.authenticate(&token("s3cret", "", None), ""),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            a.authenticate("", "x"),
            Err(AuthError::AnonymousNotAllowed)
        ));
        assert!(matches!(
            a.authenticate("", ""),
            Err(AuthError::MissingToken)
        ));
    }

    #[test]
    fn anonymous_in_development() {
        let a = auth(true);
        assert_eq!(a.authenticate("", "carol").unwrap().user, "carol");
        assert!(a.authenticate("", "").unwrap().user.starts_with("guest-"));
        assert!(matches!(
            a.authenticate("", "a\u{0}b"),
            Err(AuthError::InvalidName)
        ));
    }
}
