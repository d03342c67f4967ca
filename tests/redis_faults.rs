//! A Redis that hangs (SIGSTOP) instead of going away: readiness follows it,
//! and a publish it did not confirm is reported as "outcome unknown", never
//! as "no effect", so a retry with the same idempotency key is the safe way
//! on. A Redis that is gone (connection refused) still means "no effect".

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::http_client::{call, Reply};
use common::redis_server::RedisServer;
use common::*;
use hyper::{Method, StatusCode};
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{Error, ErrorCode, PublishReply, RoomMessage, ServerFrame};

fn error_of(frame: &ServerFrame) -> &Error {
    match &frame.kind {
        Some(Kind::Error(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn readyz(node: &ServerProcess) -> StatusCode {
    call(
        addr_of(&node.ws_url()),
        Method::GET,
        "/readyz",
        &[],
        Vec::new(),
    )
    .await
    .status
}

/// Polls `/readyz` until it answers `want`; returns how long that took.
async fn wait_ready(node: &ServerProcess, want: StatusCode, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let status = readyz(node).await;
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "/readyz stayed {status} for {limit:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes through the HTTP API (open in development mode).
async fn api_publish(node: &ServerProcess, text: &str, key: &str) -> Reply {
    let body = format!(r#"{{"payload":{{"text":{text:?}}},"idempotencyKey":{key:?}}}"#);
    call(
        addr_of(&node.ws_url()),
        Method::POST,
        "/api/v1/rooms/orders/messages",
        &[("content-type", "application/json")],
        body.into_bytes(),
    )
    .await
}

/// The next `count` room messages (presence events skipped), then checks
/// that nothing else arrives for `quiet`.
async fn exactly(client: &mut Client, count: usize, quiet: Duration) -> Vec<RoomMessage> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match client.next_push().await.kind {
            Some(Kind::Message(m)) => out.push(m),
            Some(Kind::MemberJoined(_) | Kind::MemberLeft(_)) => {}
            other => panic!("expected a room message, got {other:?}"),
        }
    }
    match client.rx.next_raw_timeout(quiet).await {
        Err(ReadError::TimedOut(_)) => out,
        other => panic!("more than {count} messages arrived: {other:?}"),
    }
}

#[tokio::test]
async fn readiness_follows_a_hung_redis() {
    let redis = RedisServer::start();
    // Defaults: a PING every 1 s that must be answered within 1 s.
    let node = redis.node(&[]);
    wait_ready(&node, StatusCode::OK, WAIT).await;

    redis.pause();
    // Not ready within health_interval + health_timeout (2 s), plus slack
    // for a loaded machine.
    let down = wait_ready(
        &node,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(6),
    )
    .await;
    let health = call(
        addr_of(&node.ws_url()),
        Method::GET,
        "/healthz",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK, "alive while Redis hangs");
    // It stays not ready while Redis stays frozen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(readyz(&node).await, StatusCode::SERVICE_UNAVAILABLE);

    redis.resume();
    let up = wait_ready(&node, StatusCode::OK, Duration::from_secs(6)).await;
    eprintln!("readyz: 503 after {down:?} of a hang, 200 again {up:?} after it ended");
}

#[tokio::test]
async fn a_publish_redis_did_not_confirm_is_outcome_unknown_and_its_retry_is_not_doubled() {
    let redis = RedisServer::start();
    let node = redis.node(&[("SWITCHBOARD_REDIS__COMMAND_TIMEOUT", "300ms")]);
    wait_ready(&node, StatusCode::OK, WAIT).await;
    let mut writer = login(&node, "writer").await;
    writer.join("orders").await;
    let mut reader = login(&node, "reader").await;
    reader.join("orders").await;
    // No publish before the pause: a ready node has loaded its scripts into
    // Redis, so the first publish is one round trip that a hung Redis holds
    // (not a NOSCRIPT reply whose second step never happens).

    redis.pause();
    let reply = writer
        .request(keyed_publish("orders", "paid", "order-42"))
        .await;
    let error = error_of(&reply);
    assert_eq!(
        error.code(),
        ErrorCode::OutcomeUnknown,
        "a publish sent to a hung Redis may have been applied: {error:?}"
    );
    assert!(error.temporary);
    // The node now knows Redis does not answer: the next write is not sent
    // at all, so it had no effect.
    let api = api_publish(&node, "from the backend", "api-1").await;
    let error = api.error(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable);
    assert!(error.temporary);
    redis.resume();

    // The hung Redis applied the publish once it ran again: the retry with
    // the same key says so, and nothing is delivered twice. The refused one
    // had not been applied.
    wait_ready(&node, StatusCode::OK, WAIT).await;
    let retry = writer
        .request(keyed_publish("orders", "paid", "order-42"))
        .await;
    let ack = expect_kind!(retry, Kind::Publish);
    assert!(ack.duplicate, "the first attempt had been applied: {ack:?}");
    assert_eq!(ack.offset, 1);
    let ack: PublishReply = api_publish(&node, "from the backend", "api-1").await.ok();
    assert!(!ack.duplicate, "the refused publish had no effect: {ack:?}");
    assert_eq!(ack.offset, 2);

    // Over the HTTP API, a publish sent to a hung Redis answers 504 with
    // the same code, and its retry is not doubled either.
    redis.pause();
    let api = api_publish(&node, "deploy finished", "api-2").await;
    let error = api.error(StatusCode::GATEWAY_TIMEOUT, ErrorCode::OutcomeUnknown);
    assert!(error.temporary);
    redis.resume();
    wait_ready(&node, StatusCode::OK, WAIT).await;
    let ack: PublishReply = api_publish(&node, "deploy finished", "api-2").await.ok();
    assert!(ack.duplicate, "the first attempt had been applied: {ack:?}");
    assert_eq!(ack.offset, 3);

    let messages = exactly(&mut reader, 3, Duration::from_millis(800)).await;
    let seen: Vec<_> = messages
        .iter()
        .map(|m| (m.offset, m.sender.clone()))
        .collect();
    let want: Vec<_> = [(1, "writer"), (2, "development"), (3, "development")]
        .into_iter()
        .map(|(offset, sender)| (offset, sender.to_owned()))
        .collect();
    assert_eq!(seen, want, "each publish delivered once, in order");
}

#[tokio::test]
async fn a_publish_while_redis_refuses_connections_is_unavailable() {
    let mut redis = RedisServer::start();
    let node = redis.node(&[("SWITCHBOARD_REDIS__COMMAND_TIMEOUT", "500ms")]);
    wait_ready(&node, StatusCode::OK, WAIT).await;
    let mut writer = login(&node, "writer").await;
    writer.join("orders").await;
    redis.stop();
    wait_ready(&node, StatusCode::SERVICE_UNAVAILABLE, WAIT).await;
    // Once the node knows Redis is gone, a publish is not sent at all.
    let reply = writer
        .request(keyed_publish("orders", "paid", "order-1"))
        .await;
    let error = error_of(&reply);
    assert_eq!(
        error.code(),
        ErrorCode::Unavailable,
        "nothing was sent, so nothing happened: {error:?}"
    );
    assert!(error.temporary);
    redis.restart();
    wait_ready(&node, StatusCode::OK, WAIT).await;
    let ack = writer
        .request(keyed_publish("orders", "paid", "order-1"))
        .await;
    let ack = expect_kind!(ack, Kind::Publish);
    assert!(!ack.duplicate, "the refused publish had no effect: {ack:?}");
}
