//! The HTTP server API (`/api/v1`) with a real HTTP client (hyper), in both
//! encodings, against WebSocket clients that see its effects; bad bodies,
//! wrong keys, and the operational endpoints.

#[macro_use]
mod common;

use std::net::SocketAddr;

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};

use common::http_client::{call, Reply};
use common::*;
use switchboard::config::{ApiKeyConfig, Config};
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{
    ApiAccepted, ApiNotifyReply, ApiNotifyRequest, ApiPublishRequest, ApiRoomList, ApiSendReply,
    ApiSendRequest, ApiSubscribeRequest, ErrorCode, HistoryReply, PresenceReply, PublishReply,
    RoomInfo, ServerFrame,
};

const KEY: &str = "test-key-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enc {
    Proto,
    Json,
}

impl Enc {
    fn media(self) -> &'static str {
        match self {
            Enc::Proto => "application/x-protobuf",
            Enc::Json => "application/json",
        }
    }
}

/// A backend speaking one encoding with one key.
struct Backend {
    addr: SocketAddr,
    enc: Enc,
    key: Option<&'static str>,
}

impl Backend {
    fn headers(&self, with_body: bool) -> Vec<(&'static str, String)> {
        let mut out = vec![("accept", self.enc.media().to_owned())];
        if with_body {
            out.push(("content-type", self.enc.media().to_owned()));
        }
        if let Some(key) = self.key {
            out.push(("authorization", format!("Bearer {key}")));
        }
        out
    }

    async fn send<M>(&self, method: Method, path: &str, message: Option<&M>) -> Reply
    where
        M: prost::Message + serde::Serialize,
    {
        let body = match (message, self.enc) {
            (None, _) => Vec::new(),
            (Some(m), Enc::Proto) => m.encode_to_vec(),
            (Some(m), Enc::Json) => serde_json::to_vec(m).expect("JSON"),
        };
        let headers = self.headers(message.is_some());
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        call(self.addr, method, path, &headers, body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send::<ApiAccepted>(Method::GET, path, None).await
    }

    async fn post<M>(&self, path: &str, message: &M) -> Reply
    where
        M: prost::Message + serde::Serialize,
    {
        self.send(Method::POST, path, Some(message)).await
    }
}

fn config_with_key() -> Config {
    let mut config = test_config();
    config.api.keys = vec![ApiKeyConfig {
        name: "backend".into(),
        key: KEY.into(),
    }];
    config
}

fn publish_body(text: &str, sender: &str, key: &str) -> ApiPublishRequest {
    ApiPublishRequest {
        payload: Some(text_payload(text)),
        sender: sender.into(),
        idempotency_key: key.into(),
    }
}

fn notify_body(text: &str) -> ApiNotifyRequest {
    ApiNotifyRequest {
        payload: Some(text_payload(text)),
    }
}

/// The next push that is not a presence event.
async fn next_push_skipping_presence(client: &mut Client) -> ServerFrame {
    loop {
        let push = client.next_push().await;
        if !matches!(push.kind, Some(Kind::MemberJoined(_) | Kind::MemberLeft(_))) {
            return push;
        }
    }
}

#[tokio::test]
async fn every_route_works_in_both_encodings() {
    let server = TestServer::start(config_with_key()).await;
    let mut alice = server.login("alice").await;
    alice.join("lobby").await;
    let mut offset = 0;
    for enc in [Enc::Proto, Enc::Json] {
        let api = Backend {
            addr: server.addr,
            enc,
            key: Some(KEY),
        };
        let what = format!("{enc:?}");

        // Publish, as the key's name and on behalf of a user.
        let ack: PublishReply = api
            .post(
                "/api/v1/rooms/lobby/messages",
                &publish_body("from api", "", ""),
            )
            .await
            .ok();
        offset += 1;
        assert_eq!(ack.offset, offset, "{what}");
        let message = alice.next_message().await;
        assert_eq!(
            (message.offset, message.sender.as_str()),
            (offset, "backend")
        );
        assert_eq!(message.payload.expect("payload").text, "from api");
        let ack: PublishReply = api
            .post(
                "/api/v1/rooms/lobby/messages",
                &publish_body("as carol", "carol", ""),
            )
            .await
            .ok();
        offset += 1;
        assert_eq!(ack.offset, offset);
        assert_eq!(alice.next_message().await.sender, "carol");

        // Idempotent retry.
        let key = format!("k-{what}");
        let first: PublishReply = api
            .post(
                "/api/v1/rooms/lobby/messages",
                &publish_body("once", "", &key),
            )
            .await
            .ok();
        let again: PublishReply = api
            .post(
                "/api/v1/rooms/lobby/messages",
                &publish_body("once", "", &key),
            )
            .await
            .ok();
        offset += 1;
        assert!(!first.duplicate && again.duplicate);
        assert_eq!((again.offset, again.id), (first.offset, first.id));
        assert_eq!(alice.next_message().await.offset, offset);

        // History, paged.
        let page: HistoryReply = api.get("/api/v1/rooms/lobby/messages?limit=2").await.ok();
        let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [offset - 1, offset]);
        assert!(page.has_more);
        assert_eq!(page.position.expect("position").offset, offset);
        let page: HistoryReply = api
            .get("/api/v1/rooms/lobby/messages?after=1&limit=1")
            .await
            .ok();
        assert_eq!(page.messages[0].offset, 2);

        // Presence, one room, the room list.
        let members: PresenceReply = api.get("/api/v1/rooms/lobby/presence").await.ok();
        assert_eq!(members.members.len(), 1);
        assert_eq!(members.members[0].user, "alice");
        let info: RoomInfo = api.get("/api/v1/rooms/lobby").await.ok();
        assert_eq!((info.room.as_str(), info.members), ("lobby", 1));
        assert_eq!(info.position.expect("position").offset, offset);
        let list: ApiRoomList = api.get("/api/v1/rooms").await.ok();
        assert!(list
            .rooms
            .iter()
            .any(|r| r.room == "lobby" && r.members == 1));
        assert!(!list.truncated);

        // A direct message and notifications.
        let sent: ApiSendReply = api
            .post(
                "/api/v1/users/alice/messages",
                &ApiSendRequest {
                    payload: Some(text_payload("dm")),
                    sender: String::new(),
                },
            )
            .await
            .ok();
        let push = alice.next_push().await;
        let Some(Kind::DirectMessage(dm)) = push.kind else {
            panic!("expected a direct message, got {push:?}");
        };
        assert_eq!((dm.id, dm.sender.as_str()), (sent.id, "backend"));
        let notified: ApiNotifyReply = api
            .post("/api/v1/users/alice/notifications", &notify_body("to you"))
            .await
            .ok();
        let push = alice.next_push().await;
        let Some(Kind::Notification(n)) = push.kind else {
            panic!("expected a notification, got {push:?}");
        };
        assert_eq!((n.id, n.room.as_str()), (notified.id, ""));
        assert_eq!(n.payload.expect("payload").text, "to you");
        let _: ApiNotifyReply = api
            .post(
                "/api/v1/rooms/lobby/notifications",
                &notify_body("to the room"),
            )
            .await
            .ok();
        let push = alice.next_push().await;
        let Some(Kind::Notification(n)) = push.kind else {
            panic!("expected a room notification, got {push:?}");
        };
        assert_eq!(n.room, "lobby");

        // Server-side subscribe and unsubscribe.
        let room = format!("side-{what}");
        let path = format!("/api/v1/users/alice/rooms/{room}");
        let _: ApiAccepted = api
            .send(
                Method::PUT,
                &path,
                Some(&ApiSubscribeRequest {
                    presence_events: enc == Enc::Json,
                }),
            )
            .await
            .ok();
        let push = next_push_skipping_presence(&mut alice).await;
        let Some(Kind::Subscribed(subscribed)) = push.kind else {
            panic!("expected Subscribed, got {push:?}");
        };
        assert_eq!(subscribed.room, room);
        assert_eq!(subscribed.presence_events, enc == Enc::Json);
        assert_eq!(subscribed.position.expect("position").offset, 0);
        let _: PublishReply = api
            .post(
                &format!("/api/v1/rooms/{room}/messages"),
                &publish_body("side", "", ""),
            )
            .await
            .ok();
        let message = alice.next_message().await;
        assert_eq!((message.room.as_str(), message.offset), (room.as_str(), 1));
        let _: ApiAccepted = api
            .send::<ApiAccepted>(Method::DELETE, &path, None)
            .await
            .ok();
        let push = next_push_skipping_presence(&mut alice).await;
        let Some(Kind::Unsubscribed(unsubscribed)) = push.kind else {
            panic!("expected Unsubscribed, got {push:?}");
        };
        assert_eq!(unsubscribed.room, room);
        let _: PublishReply = api
            .post(
                &format!("/api/v1/rooms/{room}/messages"),
                &publish_body("gone", "", ""),
            )
            .await
            .ok();
        alice.ping_expect_nothing_before().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_wrong_keys_and_limits_get_errors_with_fitting_statuses() {
    let mut config = config_with_key();
    config.limits.max_message_size = 1024;
    let server = TestServer::start(config).await;
    let addr = server.addr;
    let json = [("content-type", "application/json")];
    let bearer = format!("Bearer {KEY}");
    let with_key = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, String)> = vec![("authorization", bearer.clone())];
        h.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        h
    };
    let send =
        |method: Method, path: &'static str, headers: Vec<(&'static str, String)>, body: &[u8]| {
            let body = body.to_vec();
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                call(addr, method, path, &headers, body).await
            }
        };

    // No key, a wrong key, the X-Api-Key header.
    let reply = send(Method::GET, "/api/v1/rooms", vec![], b"").await;
    reply.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    assert!(reply.headers.contains_key(WWW_AUTHENTICATE));
    let reply = send(
        Method::GET,
        "/api/v1/rooms",
        vec![("authorization", "Bearer wrong-key-0123456789".into())],
        b"",
    )
    .await;
    reply.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    let reply = send(
        Method::GET,
        "/api/v1/rooms",
        vec![("x-api-key", KEY.into())],
        b"",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Undecodable bodies in both encodings, an unsupported media type.
    let reply = send(
        Method::POST,
        "/api/v1/rooms/r/messages",
        with_key(&[
            ("content-type", "application/x-protobuf"),
            ("accept", "application/x-protobuf"),
        ]),
        &[0xff, 0xff, 0xff],
    )
    .await;
    let error = reply.error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest);
    assert!(reply.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/x-protobuf"));
    assert!(!error.temporary);
    let reply = send(
        Method::POST,
        "/api/v1/rooms/r/messages",
        with_key(&json),
        b"{\"payload\": 7}",
    )
    .await;
    reply.error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest);
    let reply = send(
        Method::POST,
        "/api/v1/rooms/r/messages",
        with_key(&[("content-type", "text/plain")]),
        b"hi",
    )
    .await;
    reply.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::BadRequest);

    // Too large, an invalid room, a bad query, an unknown route, a wrong method.
    let big = format!("{{\"payload\":{{\"text\":\"{}\"}}}}", "x".repeat(4096));
    let reply = send(
        Method::POST,
        "/api/v1/rooms/r/messages",
        with_key(&json),
        big.as_bytes(),
    )
    .await;
    reply.error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::LimitExceeded);
    let long_room: &'static str =
        Box::leak(format!("/api/v1/rooms/{}/messages", "r".repeat(300)).into_boxed_str());
    let reply = send(Method::POST, long_room, with_key(&json), b"{}").await;
    reply.error(StatusCode::BAD_REQUEST, ErrorCode::InvalidRoom);
    let reply = send(
        Method::GET,
        "/api/v1/rooms/r/messages?limit=lots",
        with_key(&[]),
        b"",
    )
    .await;
    reply.error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest);
    let reply = send(Method::GET, "/api/v1/nothing/here", with_key(&[]), b"").await;
    reply.error(StatusCode::NOT_FOUND, ErrorCode::BadRequest);
    let reply = send(
        Method::GET,
        "/api/v1/users/u/disconnect",
        with_key(&[]),
        b"",
    )
    .await;
    reply.error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::BadRequest);
    let reply = send(
        Method::POST,
        "/api/v1/users/u/messages",
        with_key(&[
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]),
        b"{\"sender\": \"",
    )
    .await;
    reply.error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest);
    server.shutdown().await;
}

#[tokio::test]
async fn without_keys_the_api_is_open_in_development_and_off_otherwise() {
    let server = TestServer::start_default().await;
    let reply = call(server.addr, Method::GET, "/api/v1/rooms", &[], Vec::new()).await;
    let list: ApiRoomList = reply.ok();
    assert!(list.rooms.is_empty());
    server.shutdown().await;

    let mut config = test_config();
    config.development = false;
    config.auth.jwt_secret = Some("a-secret-for-tokens-only".into());
    let server = TestServer::start(config).await;
    let reply = call(
        server.addr,
        Method::GET,
        "/api/v1/rooms",
        &[(AUTHORIZATION.as_str(), "Bearer anything-at-all-here")],
        Vec::new(),
    )
    .await;
    reply.error(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied);
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_closes_every_connection_of_the_user_for_good() {
    let server = TestServer::start(config_with_key()).await;
    let mut first = server.login("bob").await;
    let mut second = server.login("bob").await;
    let mut other = server.login("carol").await;
    let api = Backend {
        addr: server.addr,
        enc: Enc::Json,
        key: Some(KEY),
    };
    let _: ApiAccepted = api
        .send::<ApiAccepted>(Method::POST, "/api/v1/users/bob/disconnect", None)
        .await
        .ok();
    for client in [&mut first, &mut second] {
        let (frames, code) = client.expect_close_with_frames().await;
        assert_eq!(code, 4500);
        assert!(!last_disconnect(&frames).reconnect, "kicked is terminal");
    }
    other.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_the_demo_page() {
    let server = TestServer::start(config_with_key()).await;
    let get = |path: &'static str| call(server.addr, Method::GET, path, &[], Vec::new());
    let reply = get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = get("/readyz").await;
    assert_eq!(
        (reply.status, reply.body.as_ref()),
        (StatusCode::OK, &b"ready\n"[..])
    );

    let mut alice = server.login("alice").await;
    alice.join("metered").await;
    alice.publish("metered", "counted").await;
    alice.next_message().await;
    let reply = get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    for needle in [
        "switchboard_connections ",
        "switchboard_commands_total{command=\"publish\"}",
        "switchboard_messages_published_total ",
        "switchboard_messages_delivered_total ",
        "switchboard_delivery_latency_seconds_bucket",
        "switchboard_broker_latency_seconds_bucket{op=\"publish\"",
        "switchboard_frames_sent_total ",
        "switchboard_write_batch_frames_bucket",
        "switchboard_broker_ready 1",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle:?}:\n{text}");
    }
    // Tokens and message contents never appear.
    assert!(!text.contains("counted"));

    let page = get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(page.body.to_vec()).expect("utf-8");
    assert!(html.contains("demo.js"), "the page loads its script");
    let script = get("/demo.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.body.len() > 1000, "the bundled SDK");
    server.shutdown().await;
}

/// The real binary logging JSON at trace level: every line is a JSON
/// object, the API key's name may appear but never a key, and no message
/// content does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_no_keys_and_no_message_contents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("switchboard.toml");
    std::fs::write(
        &path,
        format!("[[api.keys]]\nname = \"billing\"\nkey = \"{KEY}\"\n"),
    )
    .expect("write config");
    let server = ServerProcess::spawn_with_env(
        &["--config", path.to_str().expect("utf-8 path")],
        &[("SWITCHBOARD_LOG__FORMAT", "json"), ("RUST_LOG", "trace")],
    );
    let addr = addr_of(&server.ws_url());
    let mut alice = Client::connect(&server.ws_url(), None).await;
    alice.login("alice").await;
    alice.join("logged").await;
    alice.publish("logged", "ws-canary-3141").await;
    let api = Backend {
        addr,
        enc: Enc::Json,
        key: Some(KEY),
    };
    let _: PublishReply = api
        .post(
            "/api/v1/rooms/logged/messages",
            &publish_body("api-canary-2718", "", ""),
        )
        .await
        .ok();
    let _: ApiAccepted = api
        .send(
            Method::PUT,
            "/api/v1/users/alice/rooms/other",
            Some(&ApiSubscribeRequest::default()),
        )
        .await
        .ok();
    let wrong = Backend {
        key: Some("wrong-key-canary-1618"),
        ..api
    };
    wrong
        .get("/api/v1/rooms")
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    let output = server.stop_and_output().await;
    assert!(
        output.contains("server-side control") && output.contains("billing"),
        "trace logging was not on, or the control was not logged:\n{output}"
    );
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        assert!(value.is_object(), "{line}");
    }
    for secret in [
        KEY,
        "wrong-key-canary-1618",
        "ws-canary-3141",
        "api-canary-2718",
    ] {
        let leaks: Vec<&str> = output.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret:?} is in the log: {leaks:?}");
    }
}
