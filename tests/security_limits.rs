//! Limits and protection: rate limits (commands, publishes, connects),
//! connection caps (node, IP, user), the handshake timeout, origins, TLS, and
//! development mode on a public address.

#[macro_use]
mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use switchboard::config::Config;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn error_of(frame: &switchboard::proto::ServerFrame) -> switchboard::proto::Error {
    match &frame.kind {
        Some(Kind::Error(e)) => e.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_burst_over_the_rate_limit() {
    let mut config = test_config();
    config.limits.commands_per_second = 5;
    config.limits.command_burst = 5;
    config.limits.rate_limit_strikes = 3;
    let server = TestServer::start(config).await;
    let mut other = server.login("bystander").await;
    let mut c = server.login("flooder").await; // connect is command 1 of 5
    for _ in 0..4 {
        c.ping_ok().await;
    }
    let reply = c.request(ping()).await;
    let e = error_of(&reply);
    assert_eq!(e.code, ErrorCode::RateLimited as i32);
    assert!(e.temporary);
    assert!(e.retry_after_ms > 0 && e.retry_after_ms <= 1000, "{e:?}");
    // Waiting as told works.
    tokio::time::sleep(Duration::from_millis(u64::from(e.retry_after_ms) + 50)).await;
    c.ping_ok().await;
    // Sustained: closed with 4003 after 3 rate-limited commands in a row.
    for _ in 0..3 {
        c.send(ping()).await;
    }
    let (frames, code) = c.expect_close_with_frames().await;
    assert_eq!(code, 4003);
    assert!(last_disconnect(&frames).reconnect);
    // Nobody else noticed.
    other.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rate_is_per_user_across_connections() {
    let mut config = test_config();
    config.limits.publishes_per_second = 2;
    config.limits.publish_burst = 3;
    let server = TestServer::start(config).await;
    let mut a1 = server.login("alice").await;
    let mut a2 = server.login("alice").await;
    let mut b = server.login("bob").await;
    for c in [&mut a1, &mut a2, &mut b] {
        c.join("r").await;
    }
    a1.publish("r", "1").await;
    a2.publish("r", "2").await;
    a1.publish("r", "3").await;
    let reply = a2.request(publish("r", "4")).await;
    let e = error_of(&reply);
    assert_eq!(e.code, ErrorCode::RateLimited as i32);
    assert!(e.retry_after_ms > 0);
    // bob has his own budget.
    b.publish("r", "b1").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_per_ip_are_rate_limited() {
    let mut config = test_config();
    config.limits.connects_per_second = 1;
    config.limits.connect_burst = 2;
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let ip = Ipv4Addr::new(127, 0, 0, 3);
    let _a = Client::try_connect_with(&url, ip, &[]).await.unwrap();
    let _b = Client::try_connect_with(&url, ip, &[]).await.unwrap();
    let err = Client::try_connect_with(&url, ip, &[]).await.err().unwrap();
    assert_eq!(err.0, 429);
    assert_eq!(err.1, "1", "Retry-After in seconds");
    // Another address is not affected.
    Client::try_connect_with(&url, Ipv4Addr::new(127, 0, 0, 4), &[])
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_for_the_node_an_ip_and_a_user() {
    let mut config = test_config();
    config.limits.max_connections = 6;
    config.limits.max_connections_per_ip = 3;
    config.limits.max_connections_per_user = 2;
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);

    // A flood from one address: three get in, the rest get 503.
    let mut from_5 = Vec::new();
    for _ in 0..3 {
        from_5.push(Client::try_connect_with(&url, ip(5), &[]).await.unwrap());
    }
    for _ in 0..5 {
        assert_eq!(
            Client::try_connect_with(&url, ip(5), &[])
                .await
                .err()
                .unwrap()
                .0,
            503
        );
    }
    // The node cap: three more from elsewhere, then 503 for everyone.
    let mut others = Vec::new();
    for n in 6..9 {
        others.push(Client::try_connect_with(&url, ip(n), &[]).await.unwrap());
    }
    assert_eq!(
        Client::try_connect_with(&url, ip(9), &[])
            .await
            .err()
            .unwrap()
            .0,
        503
    );
    // Those inside still work.
    from_5[0].login("x").await;
    others[0].login("y").await;
    // Closing one frees a slot.
    let closed = others.pop().unwrap();
    drop(closed);
    let deadline = Instant::now() + WAIT;
    let mut again = loop {
        match Client::try_connect_with(&url, ip(9), &[]).await {
            Ok(c) => break c,
            Err((503, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };

    // Per user: the third connection of `u` is refused with 1013.
    from_5[1].login("u").await;
    from_5[2].login("u").await;
    let reply = again.request(connect_name("u")).await;
    assert_error(&reply, reply.id, ErrorCode::LimitExceeded);
    let (frames, code) = again.expect_close_with_frames().await;
    assert_eq!(code, 1013);
    assert!(last_disconnect(&frames).reconnect);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_partial_handshakes_are_cut_off() {
    let mut config = test_config();
    config.http.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(config).await;

    // Half a request head, then silence.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
        .await
        .unwrap();
    // Nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    for stream in [&mut slow, &mut silent] {
        let mut buf = [0u8; 1024];
        let end = tokio::time::timeout(WAIT, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue, // e.g. a 408 response
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the server kept a stalled handshake open");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // A prompt client is unaffected.
    server.login("prompt").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allowlist() {
    let mut config = test_config();
    config.http.allowed_origins = vec!["https://app.example".into()];
    config.http.allow_missing_origin = false;
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let local = Ipv4Addr::LOCALHOST;
    let mut ok = Client::try_connect_with(&url, local, &[("Origin", "https://app.example")])
        .await
        .unwrap();
    ok.login("web").await;
    for origin in [
        "https://evil.example",
        "https://app.example.evil",
        "http://app.example",
        "null",
    ] {
        let err = Client::try_connect_with(&url, local, &[("Origin", origin)])
            .await
            .err()
            .unwrap();
        assert_eq!(err.0, 403, "{origin}");
    }
    assert_eq!(
        Client::try_connect_with(&url, local, &[])
            .await
            .err()
            .unwrap()
            .0,
        403
    );
    server.shutdown().await;

    // With allow_missing_origin (the default), non-browser clients get in.
    let mut config = test_config();
    config.http.allowed_origins = vec!["https://app.example".into()];
    let server = TestServer::start(config).await;
    Client::try_connect_with(&server.ws_url(), local, &[])
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut config = test_config();
    config.tls.cert = Some(cert_path);
    config.tls.key = Some(key_path);
    config.http.handshake_timeout = Duration::from_millis(500);
    let server = TestServer::start(config).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let mut c = Client::try_handshake_io(Box::new(tls), &url, None)
        .await
        .unwrap();
    c.login("secure").await;
    c.join("r").await;
    c.publish("r", "over TLS").await;
    assert_eq!(c.next_message().await.payload.unwrap().text, "over TLS");

    // Plain WebSocket on the TLS port fails; a silent TCP client is cut off
    // after the handshake timeout.
    assert!(Client::try_connect(&server.ws_url(), None).await.is_err());
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(WAIT, silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    server.shutdown().await;
}

#[test]
fn development_mode_is_refused_on_a_public_address_unless_forced() {
    let mut config = Config {
        listen: "0.0.0.0:8080".parse().unwrap(),
        ..Config::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("development_on_public_address"), "{err}");
    config.development_on_public_address = true;
    config.validate().unwrap();
    config.development = false;
    config.development_on_public_address = false;
    assert!(config.validate().is_err(), "production needs a token key");
    config.auth.jwt_secret = Some("s".into());
    config.validate().unwrap();
}
