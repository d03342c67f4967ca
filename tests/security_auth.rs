//! Authentication hardening: every supported algorithm, key selection, JWKS,
//! `aud`/`iss`/`nbf`, `alg: none`, key-type confusion, the Bearer header,
//! refresh and expiry mid-connection, and tokens kept out of the logs.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use switchboard::config::{Config, KeyConfig};
use switchboard::proto::client_frame::Command;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{ErrorCode, RefreshRequest, ServerFrame};

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn read_key(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).expect("test key")
}

fn now_s() -> i64 {
    now_ms() / 1000
}

/// Signs `claims` with `algorithm` and `key`.
fn sign(
    algorithm: Algorithm,
    kid: Option<&str>,
    claims: serde_json::Value,
    key: &EncodingKey,
) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, key).expect("sign")
}

fn hs(secret: &str) -> EncodingKey {
    EncodingKey::from_secret(secret.as_bytes())
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(read_key("rsa_private.pem").as_bytes()).unwrap()
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(read_key("ec_private.pem").as_bytes()).unwrap()
}

fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(read_key("ed_private.pem").as_bytes()).unwrap()
}

fn key(algorithm: Algorithm) -> KeyConfig {
    KeyConfig {
        algorithm,
        kid: None,
        secret: None,
        public_key: None,
        public_key_file: None,
    }
}

/// A production server (no anonymous logins) with every kind of key.
fn config() -> Config {
    let mut config = test_config();
    config.development = false;
    config.auth.keys = vec![
        KeyConfig {
            secret: Some("hs256-secret-for-tests-only".into()),
            ..key(Algorithm::HS256)
        },
        KeyConfig {
            secret: Some("hs384-secret-for-tests-only".into()),
            ..key(Algorithm::HS384)
        },
        KeyConfig {
            secret: Some("hs512-secret-for-tests-only".into()),
            ..key(Algorithm::HS512)
        },
        KeyConfig {
            public_key: Some(read_key("rsa_public.pem")),
            ..key(Algorithm::RS256)
        },
        KeyConfig {
            public_key_file: Some(keys_dir().join("ec_public.pem")),
            ..key(Algorithm::ES256)
        },
        KeyConfig {
            kid: Some("ed-1".into()),
            public_key_file: Some(keys_dir().join("ed_public.pem")),
            ..key(Algorithm::EdDSA)
        },
    ];
    config
}

fn claims(sub: &str) -> serde_json::Value {
    json!({ "sub": sub, "exp": now_s() + 3600 })
}

async fn connects_as(server: &TestServer, token: &str, user: &str) {
    let mut c = server.client().await;
    let connect = expect_kind!(c.connect_token(token).await, Kind::Connect);
    assert_eq!(connect.user, user);
}

/// Asserts an error reply with `code`, then a Close 1008.
async fn refused(server: &TestServer, token: &str, code: ErrorCode) -> String {
    let mut c = server.client().await;
    let reply = c.connect_token(token).await;
    assert_error(&reply, reply.id, code);
    let message = match &reply.kind {
        Some(Kind::Error(e)) => e.message.clone(),
        _ => unreachable!(),
    };
    assert!(!message.contains(token), "the error echoes the token");
    assert_eq!(c.expect_close().await, 1008);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_algorithm_verifies() {
    let server = TestServer::start(config()).await;
    let cases = [
        (Algorithm::HS256, None, hs("hs256-secret-for-tests-only")),
        (Algorithm::HS384, None, hs("hs384-secret-for-tests-only")),
        (Algorithm::HS512, None, hs("hs512-secret-for-tests-only")),
        (Algorithm::RS256, None, rsa()),
        (Algorithm::ES256, None, ec()),
        (Algorithm::EdDSA, Some("ed-1"), ed()),
    ];
    for (algorithm, kid, key) in &cases {
        let user = format!("user-{algorithm:?}");
        connects_as(&server, &sign(*algorithm, *kid, claims(&user), key), &user).await;
    }
    // A key with a `kid` only verifies tokens naming it.
    let message = refused(
        &server,
        &sign(Algorithm::EdDSA, Some("ed-2"), claims("x"), &ed()),
        ErrorCode::Unauthorized,
    )
    .await;
    assert!(message.contains("no key"), "{message}");
    refused(
        &server,
        &sign(Algorithm::EdDSA, None, claims("x"), &ed()),
        ErrorCode::Unauthorized,
    )
    .await;
    // Right algorithm, wrong key.
    let other = hs("a-different-secret");
    refused(
        &server,
        &sign(Algorithm::HS256, None, claims("x"), &other),
        ErrorCode::Unauthorized,
    )
    .await;
    server.shutdown().await;
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_and_key_type_confusion_are_rejected() {
    let server = TestServer::start(config()).await;
    let payload = b64(claims("mallory").to_string().as_bytes());
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None"}),
        json!({"alg": "NONE"}),
    ] {
        let unsigned = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        refused(&server, &unsigned, ErrorCode::Unauthorized).await;
    }

    // HS256 "signed" with the RSA public key as the HMAC secret: the classic
    // confusion attack against servers that let the token pick the key type.
    let mut rsa_only = test_config();
    rsa_only.development = false;
    rsa_only.auth.keys = vec![KeyConfig {
        public_key: Some(read_key("rsa_public.pem")),
        ..key(Algorithm::RS256)
    }];
    let rsa_server = TestServer::start(rsa_only).await;
    let confused = sign(
        Algorithm::HS256,
        None,
        claims("mallory"),
        &hs(&read_key("rsa_public.pem")),
    );
    refused(&rsa_server, &confused, ErrorCode::Unauthorized).await;
    // The same against a server that also has an HS256 key.
    refused(&server, &confused, ErrorCode::Unauthorized).await;
    // A genuine RS256 token still works there.
    connects_as(
        &rsa_server,
        &sign(Algorithm::RS256, None, claims("amy"), &rsa()),
        "amy",
    )
    .await;
    rsa_server.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_file_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    // The EdDSA public key as a JWK: the last 32 bytes of its DER form.
    let pem = read_key("ed_public.pem");
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let x = b64(&der[der.len() - 32..]);
    let jwks = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "kid": "jwks-ed", "use": "sig"},
        {"kty": "oct", "k": b64(b"jwks-hmac-secret-for-tests"), "alg": "HS512", "kid": "jwks-hs"}
    ]});
    std::fs::write(&path, jwks.to_string()).unwrap();
    let mut c = test_config();
    c.development = false;
    c.auth.jwks_file = Some(path.clone());
    let server = TestServer::start(c).await;
    connects_as(
        &server,
        &sign(Algorithm::EdDSA, Some("jwks-ed"), claims("j1"), &ed()),
        "j1",
    )
    .await;
    connects_as(
        &server,
        &sign(
            Algorithm::HS512,
            Some("jwks-hs"),
            claims("j2"),
            &hs("jwks-hmac-secret-for-tests"),
        ),
        "j2",
    )
    .await;
    refused(
        &server,
        &sign(Algorithm::EdDSA, Some("other"), claims("j3"), &ed()),
        ErrorCode::Unauthorized,
    )
    .await;
    server.shutdown().await;

    // A key without `alg` is a configuration error, not a wildcard.
    std::fs::write(
        &path,
        json!({"keys": [{"kty": "oct", "k": b64(b"k")}]}).to_string(),
    )
    .unwrap();
    let mut c = test_config();
    c.development = false;
    c.auth.jwks_file = Some(path);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = switchboard::server::run(listener, c, async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("alg"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_issuer_not_before_and_leeway() {
    let mut c = config();
    c.auth.audience = vec!["chat-app".into()];
    c.auth.issuer = vec!["https://auth.example".into()];
    c.auth.leeway = Duration::from_secs(30);
    let server = TestServer::start(c).await;
    let key = hs("hs256-secret-for-tests-only");
    let t = |claims: serde_json::Value| sign(Algorithm::HS256, None, claims, &key);
    let exp = now_s() + 3600;
    connects_as(
        &server,
        &t(json!({"sub": "a", "exp": exp, "aud": "chat-app", "iss": "https://auth.example"})),
        "a",
    )
    .await;
    // `aud` may be a list.
    connects_as(
        &server,
        &t(json!({"sub": "b", "aud": ["other", "chat-app"], "iss": "https://auth.example"})),
        "b",
    )
    .await;
    let message = refused(
        &server,
        &t(json!({"sub": "c", "iss": "https://auth.example"})),
        ErrorCode::Unauthorized,
    )
    .await;
    assert!(message.contains("aud"), "{message}");
    let message = refused(
        &server,
        &t(json!({"sub": "c", "aud": "another-app", "iss": "https://auth.example"})),
        ErrorCode::Unauthorized,
    )
    .await;
    assert!(message.contains("aud"), "{message}");
    let message = refused(
        &server,
        &t(json!({"sub": "c", "aud": "chat-app", "iss": "https://evil.example"})),
        ErrorCode::Unauthorized,
    )
    .await;
    assert!(message.contains("iss"), "{message}");
    // nbf in the future beyond the leeway; within the leeway is fine.
    let ok =
        json!({"sub": "d", "aud": "chat-app", "iss": "https://auth.example", "nbf": now_s() + 10});
    connects_as(&server, &t(ok), "d").await;
    let early =
        json!({"sub": "d", "aud": "chat-app", "iss": "https://auth.example", "nbf": now_s() + 300});
    let message = refused(&server, &t(early), ErrorCode::Unauthorized).await;
    assert!(message.contains("nbf"), "{message}");
    // Expired beyond the leeway.
    let old =
        json!({"sub": "e", "aud": "chat-app", "iss": "https://auth.example", "exp": now_s() - 300});
    refused(&server, &t(old), ErrorCode::TokenExpired).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_header_on_the_upgrade() {
    let server = TestServer::start(config()).await;
    let token = sign(Algorithm::RS256, None, claims("bearer-user"), &rsa());
    let auth = format!("Bearer {token}");
    let mut c = Client::try_connect_with(
        &server.ws_url(),
        [127, 0, 0, 1].into(),
        &[("Authorization", &auth)],
    )
    .await
    .unwrap();
    let connect = expect_kind!(c.connect_token("").await, Kind::Connect);
    assert_eq!(connect.user, "bearer-user");

    // A token in the command wins over the header.
    let other = sign(Algorithm::ES256, None, claims("command-user"), &ec());
    let mut c = Client::try_connect_with(
        &server.ws_url(),
        [127, 0, 0, 1].into(),
        &[("Authorization", &auth)],
    )
    .await
    .unwrap();
    let connect = expect_kind!(c.connect_token(&other).await, Kind::Connect);
    assert_eq!(connect.user, "command-user");

    // A malformed header is refused before the upgrade.
    let err = Client::try_connect_with(
        &server.ws_url(),
        [127, 0, 0, 1].into(),
        &[("Authorization", "Basic abc")],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.0, 400);
    server.shutdown().await;
}

fn refresh(token: &str) -> Command {
    Command::Refresh(RefreshRequest {
        token: token.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_extends_the_connection_and_expiry_closes_it() {
    let server = TestServer::start(config()).await;
    let key = hs("hs256-secret-for-tests-only");
    let short = |sub: &str| {
        sign(
            Algorithm::HS256,
            None,
            json!({"sub": sub, "exp": now_s() + 2}),
            &key,
        )
    };

    let mut kept = server.client().await;
    expect_kind!(kept.connect_token(&short("alice")).await, Kind::Connect);
    let mut lapsed = server.client().await;
    expect_kind!(lapsed.connect_token(&short("bob")).await, Kind::Connect);

    let new_exp = now_s() + 3600;
    let reply = kept
        .request(refresh(&sign(
            Algorithm::HS256,
            None,
            json!({"sub": "alice", "exp": new_exp}),
            &key,
        )))
        .await;
    let refreshed = expect_kind!(reply, Kind::Refresh);
    assert_eq!(refreshed.expires_at_ms, new_exp * 1000);

    // bob did not refresh: closed with 1008 once his token expires.
    let (frames, code) = lapsed.expect_close_with_frames().await;
    assert_eq!(code, 1008);
    let notice = last_disconnect(&frames);
    assert_eq!(notice.reason, "token expired");
    assert!(!notice.reconnect);
    // alice is still connected after her first token's expiry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kept.ping_ok().await;

    // A refresh for another user, or with a bad token, closes with 1008.
    let reply = kept
        .request(refresh(&sign(
            Algorithm::HS256,
            None,
            claims("mallory"),
            &key,
        )))
        .await;
    assert_error(&reply, reply.id, ErrorCode::Unauthorized);
    assert_eq!(kept.expect_close().await, 1008);
    let mut c = server.client().await;
    expect_kind!(
        c.connect_token(&sign(Algorithm::HS256, None, claims("carol"), &key))
            .await,
        Kind::Connect
    );
    let reply = c.request(refresh("garbage")).await;
    assert_error(&reply, reply.id, ErrorCode::Unauthorized);
    assert_eq!(c.expect_close().await, 1008);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_connect_is_refused() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let reply: ServerFrame = c.request(refresh("x")).await;
    assert_error(&reply, reply.id, ErrorCode::NotConnected);
    server.shutdown().await;
}

/// The real binary at debug log level: neither a good nor a bad token may
/// appear in its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs() {
    let secret = "log-test-secret-0123456789";
    let server = ServerProcess::spawn_with_env(
        &[],
        &[
            ("SWITCHBOARD_DEVELOPMENT", "false"),
            ("SWITCHBOARD_AUTH__JWT_SECRET", secret),
            ("RUST_LOG", "trace"),
        ],
    );
    let good = sign(Algorithm::HS256, None, claims("logged-user"), &hs(secret));
    let bad = sign(
        Algorithm::HS256,
        None,
        claims("logged-user"),
        &hs("wrong-secret"),
    );
    let mut c = Client::connect(&server.ws_url(), None).await;
    expect_kind!(c.connect_token(&good).await, Kind::Connect);
    let mut d = Client::connect(&server.ws_url(), None).await;
    let reply = d.connect_token(&bad).await;
    assert_error(&reply, reply.id, ErrorCode::Unauthorized);
    let auth = format!("Bearer {good}");
    let mut e = Client::try_connect_with(
        &server.ws_url(),
        [127, 0, 0, 1].into(),
        &[("Authorization", &auth)],
    )
    .await
    .unwrap();
    expect_kind!(e.connect_token("").await, Kind::Connect);
    let output = server.stop_and_output().await;
    assert!(
        output.contains("token refused"),
        "debug logging was not on:\n{output}"
    );
    for (name, token) in [("good", &good), ("bad", &bad)] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !output.contains(signature),
            "the {name} token's signature is in the log"
        );
        let body = token.split('.').nth(1).unwrap();
        assert!(
            !output.contains(body),
            "the {name} token's claims are in the log"
        );
    }
}
