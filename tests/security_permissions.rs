//! Room permissions on every path (join, publish, history, presence, direct
//! send), from configuration namespaces and token grants; a forbidden room
//! leaks nothing; the sender is always the authenticated user.

#[macro_use]
mod common;

use common::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use prost::Message as _;
use serde_json::json;
use switchboard::config::Config;
use switchboard::permissions::{Access, DirectAccess, Namespace, RoomRules};
use switchboard::proto::client_frame::Command;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{ClientFrame, ErrorCode, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "permissions-test-secret";

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// `public:*` open to all; `news:*` read-only for clients, history for
/// members only, no presence; everything else only for granted users.
fn config() -> Config {
    let mut config = test_config();
    config.development = false;
    config.auth.jwt_secret = Some(SECRET.into());
    config.permissions.default = RoomRules {
        join: Access::Granted,
        publish: Access::Granted,
        history: Access::Granted,
        presence: Access::Granted,
    };
    config.permissions.namespaces = vec![
        Namespace {
            pattern: "public:*".into(),
            join: Access::Anyone,
            publish: Access::Members,
            history: Access::Anyone,
            presence: Access::Anyone,
        },
        Namespace {
            pattern: "news:*".into(),
            join: Access::Anyone,
            publish: Access::Nobody,
            history: Access::Members,
            presence: Access::Nobody,
        },
    ];
    config.permissions.direct = DirectAccess::Granted;
    config
}

async fn connect(server: &TestServer, claims: serde_json::Value) -> Client {
    let mut c = server.client().await;
    expect_kind!(c.connect_token(&token(claims)).await, Kind::Connect);
    c
}

fn denied(frame: &ServerFrame) -> String {
    assert_error(frame, frame.id, ErrorCode::PermissionDenied);
    match &frame.kind {
        Some(Kind::Error(e)) => e.message.clone(),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_grants_on_every_path() {
    let server = TestServer::start(config()).await;
    let mut granted = connect(
        &server,
        json!({"sub": "gina", "rooms": ["team-7:*", "ops"], "direct": true}),
    )
    .await;
    let mut plain = connect(&server, json!({"sub": "pete"})).await;

    // Granted rooms: everything works for gina.
    granted.join("team-7:chat").await;
    granted.publish("team-7:chat", "hello team").await;
    granted.next_message().await;
    granted.history("team-7:chat", 10, 0, 0).await;
    granted.presence("team-7:chat").await;
    granted.join("ops").await;

    // And nothing for pete, on any path.
    for room in ["team-7:chat", "ops", "secret-room-that-does-not-exist"] {
        let m1 = denied(&plain.request(join(room)).await);
        let m2 = denied(&plain.request(history(room, 10, 0, 0)).await);
        let m3 = denied(&plain.request(presence(room)).await);
        // The same answer whether the room exists (with history and
        // members) or not: nothing leaks.
        assert_eq!(
            (m1.as_str(), m2.as_str(), m3.as_str()),
            (
                "not allowed in this room",
                "not allowed in this room",
                "not allowed in this room"
            )
        );
        // Publishing needs a join first, which failed.
        let reply = plain.request(publish(room, "x")).await;
        assert_error(&reply, reply.id, ErrorCode::NotJoined);
    }

    // public:*: anyone joins, members publish, anyone reads.
    plain.join("public:lobby").await;
    plain.publish("public:lobby", "hi").await;
    assert_eq!(plain.next_message().await.sender, "pete");
    granted.history("public:lobby", 10, 0, 0).await;
    granted.presence("public:lobby").await;

    // news:*: read-only for clients; history for members; no presence.
    let reply = plain.request(history("news:today", 10, 0, 0)).await;
    denied(&reply);
    plain.join("news:today").await;
    denied(&plain.request(publish("news:today", "fake news")).await);
    plain.history("news:today", 10, 0, 0).await;
    denied(&plain.request(presence("news:today")).await);

    // Direct messages need the `direct` grant.
    denied(&plain.request(direct("gina", "psst")).await);
    let reply = granted.request(direct("pete", "hello pete")).await;
    expect_kind!(reply, Kind::Direct);
    let push = plain.next_push().await;
    let dm = expect_kind!(push, Kind::DirectMessage);
    assert_eq!(dm.sender, "gina");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_can_be_switched_off() {
    let mut c = config();
    c.permissions.direct = DirectAccess::Nobody;
    let server = TestServer::start(c).await;
    let mut a = connect(&server, json!({"sub": "a", "direct": true})).await;
    denied(&a.request(direct("b", "x")).await);
    server.shutdown().await;
}

/// Encodes a frame with an extra field appended: a client trying to set a
/// sender (or anything else) the protocol does not let it set.
fn with_extra_field(frame: &ClientFrame, field: u32, value: &str) -> Message {
    let mut bytes = frame.encode_to_vec();
    prost::encoding::string::encode(field, &value.to_owned(), &mut bytes);
    Message::binary(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_is_always_the_authenticated_user() {
    let server = TestServer::start(config()).await;
    let mut mallory = connect(&server, json!({"sub": "mallory", "direct": true})).await;
    let mut victim = connect(&server, json!({"sub": "victim"})).await;
    mallory.join("public:square").await;
    victim.join("public:square").await;

    // Unknown fields everywhere a sender might be smuggled: in the frame,
    // and inside the publish command (RoomMessage.sender is field 4).
    let id = mallory.tx.next_id();
    let mut frame = ClientFrame {
        id,
        command: Some(publish("public:square", "I am the admin")),
    };
    let mut bytes = frame.encode_to_vec();
    // Field 4 of PublishRequest nested in field 5 of ClientFrame: rebuild the
    // command with the extra field inside it.
    if let Some(Command::Publish(p)) = frame.command.take() {
        let mut inner = p.encode_to_vec();
        prost::encoding::string::encode(4, &"admin".to_owned(), &mut inner);
        bytes = Vec::new();
        prost::encoding::uint32::encode(1, &id, &mut bytes);
        prost::encoding::bytes::encode(5, &inner, &mut bytes);
        prost::encoding::string::encode(15, &"admin".to_owned(), &mut bytes);
    }
    mallory.send_raw(Message::binary(bytes)).await;
    let reply = mallory.rx.reply(id).await;
    expect_kind!(reply, Kind::Publish);
    let seen = victim.next_message().await;
    assert_eq!(seen.sender, "mallory");
    assert_eq!(seen.payload.unwrap().text, "I am the admin");

    // The same for a direct message.
    let id = mallory.tx.next_id();
    let frame = ClientFrame {
        id,
        command: Some(direct("victim", "from the admin")),
    };
    mallory
        .send_raw(with_extra_field(&frame, 14, "admin"))
        .await;
    expect_kind!(mallory.rx.reply(id).await, Kind::Direct);
    let dm = expect_kind!(victim.next_push().await, Kind::DirectMessage);
    assert_eq!(dm.sender, "mallory");
    server.shutdown().await;
}

#[test]
fn invalid_permission_settings_are_refused() {
    let mut c = config();
    c.permissions.namespaces[0].pattern = "a*b".into();
    assert!(c.validate().is_err());
    let mut c = config();
    c.permissions.default.publish = Access::Anyone;
    assert!(c.validate().is_err());
}
