//! Authentication: HS256 JWTs, expiry, bad signatures, anonymous logins.

#[macro_use]
mod common;

use common::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde::Serialize;
use switchboard::config::Config;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{ErrorCode, ServerFrame};

const SECRET: &str = "integration-test-secret";

#[derive(Serialize)]
struct Claims {
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

fn now_s() -> u64 {
    (now_ms() / 1000) as u64
}

fn token(sub: &str, exp: Option<u64>, secret: &str) -> String {
    let claims = Claims {
        sub: sub.to_owned(),
        exp,
    };
    encode(
        &Header::default(), // HS256
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign JWT")
}

fn production_config() -> Config {
    let mut config = test_config();
    config.development = false;
    config.auth.jwt_secret = Some(SECRET.to_owned());
    config
}

/// Asserts an error reply with `code`, then a Close 1008 (a `Disconnect`
/// push, if any, must carry 1008 too).
async fn assert_refused(c: &mut Client, reply: ServerFrame, code: ErrorCode) {
    assert_error(&reply, reply.id, code);
    let (frames, close) = c.expect_close_with_frames().await;
    assert_eq!(close, 1008, "auth failures close with 1008");
    for f in &frames {
        assert!(
            matches!(f.kind, Some(Kind::Disconnect(ref d)) if d.code == 1008 && !d.reconnect),
            "only Disconnect{{1008, no reconnect}} may follow the error, got {f:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_authenticates_the_user() {
    let server = TestServer::start(production_config()).await;
    let exp = now_s() + 3600;
    let mut c = server.client().await;
    let reply = c.connect_token(&token("user-42", Some(exp), SECRET)).await;
    let connect = expect_kind!(reply, Kind::Connect);
    assert_eq!(connect.user, "user-42");
    assert_eq!(connect.expires_at_ms, (exp * 1000) as i64);
    assert_eq!(connect.max_message_size, 65536);
    assert_eq!(connect.ping_interval_ms, 25_000);

    // The token's subject is the sender.
    c.join("r").await;
    c.publish("r", "hi").await;
    assert_eq!(c.next_message().await.sender, "user-42");

    // No exp: never expires.
    let mut forever = server.client().await;
    let connect = expect_kind!(
        forever.connect_token(&token("user-7", None, SECRET)).await,
        Kind::Connect
    );
    assert_eq!(connect.user, "user-7");
    assert_eq!(connect.expires_at_ms, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_with_token_expired() {
    let server = TestServer::start(production_config()).await;
    let mut c = server.client().await;
    let reply = c
        .connect_token(&token("user-42", Some(now_s() - 3600), SECRET))
        .await;
    assert_refused(&mut c, reply, ErrorCode::TokenExpired).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signature_and_garbage_tokens_are_unauthorized() {
    let server = TestServer::start(production_config()).await;

    let mut c = server.client().await;
    let reply = c
        .connect_token(&token("user-42", Some(now_s() + 3600), "some-other-secret"))
        .await;
    assert_refused(&mut c, reply, ErrorCode::Unauthorized).await;

    let mut c = server.client().await;
    let reply = c.connect_token("not-a-jwt").await;
    assert_refused(&mut c, reply, ErrorCode::Unauthorized).await;

    // A valid token with its payload swapped: the signature no longer matches.
    let good = token("user-42", None, SECRET);
    let evil = token("admin", None, "guess");
    let good_parts: Vec<&str> = good.split('.').collect();
    let evil_parts: Vec<&str> = evil.split('.').collect();
    let forged = format!("{}.{}.{}", good_parts[0], evil_parts[1], good_parts[2]);
    let mut c = server.client().await;
    let reply = c.connect_token(&forged).await;
    assert_refused(&mut c, reply, ErrorCode::Unauthorized).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_login_refused_outside_development() {
    let server = TestServer::start(production_config()).await;
    let mut c = server.client().await;
    let reply = c.request(connect_name("anon")).await;
    assert_refused(&mut c, reply, ErrorCode::Unauthorized).await;

    // Neither token nor name.
    let mut c = server.client().await;
    let reply = c.connect_token("").await;
    assert_refused(&mut c, reply, ErrorCode::Unauthorized).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_accepts_names_and_tokens() {
    let mut config = test_config();
    config.auth.jwt_secret = Some(SECRET.to_owned());
    let server = TestServer::start(config).await;
    let mut anon = server.client().await;
    anon.login("dev-user").await;
    let mut c = server.client().await;
    let connect = expect_kind!(
        c.connect_token(&token("jwt-user", None, SECRET)).await,
        Kind::Connect
    );
    assert_eq!(connect.user, "jwt-user");

    // A bad token is still refused in development mode.
    let mut bad = server.client().await;
    let reply = bad.connect_token(&token("x", None, "wrong")).await;
    assert_refused(&mut bad, reply, ErrorCode::Unauthorized).await;
    server.shutdown().await;
}
