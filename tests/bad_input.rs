//! Bad input: protocol misuse answered with errors, broken framing and limits
//! answered with closes.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{ClientFrame, ErrorCode, JoinRequest};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_before_connect_are_refused_and_connection_survives() {
    let server = TestServer::start_default().await;
    let mut c = server.client().await;
    for cmd in [join("r"), ping(), publish("r", "x"), history("r", 1, 0, 0)] {
        let reply = c.request(cmd).await;
        assert_error(&reply, reply.id, ErrorCode::NotConnected);
    }
    c.login("late").await;
    c.join("r").await;
    c.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_twice_is_refused() {
    let server = TestServer::start_default().await;
    let mut c = server.login("once").await;
    let reply = c.request(connect_name("twice")).await;
    assert_error(&reply, reply.id, ErrorCode::AlreadyConnected);
    // Still the first identity.
    c.join("r").await;
    assert_eq!(c.publish("r", "x").await.offset, 1);
    assert_eq!(c.next_message().await.sender, "once");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_membership_errors() {
    let server = TestServer::start_default().await;
    let mut c = server.login("u").await;

    let reply = c.request(leave("never")).await;
    assert_error(&reply, reply.id, ErrorCode::NotJoined);

    let reply = c.request(publish("never", "x")).await;
    assert_error(&reply, reply.id, ErrorCode::NotJoined);

    c.join("r").await;
    let reply = c.request(join("r")).await;
    assert_error(&reply, reply.id, ErrorCode::AlreadyJoined);

    c.leave("r").await;
    let reply = c.request(leave("r")).await;
    assert_error(&reply, reply.id, ErrorCode::NotJoined);
    let reply = c.request(publish("r", "x")).await;
    assert_error(&reply, reply.id, ErrorCode::NotJoined);

    // Nothing was published by the refused commands.
    assert!(c.history("never", 10, 0, 0).await.messages.is_empty());
    assert!(c.history("r", 10, 0, 0).await.messages.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_room_names() {
    let server = TestServer::start_default().await;
    let mut c = server.login("u").await;
    let long = "a".repeat(256);
    let long_multibyte = "é".repeat(128); // 256 bytes, 128 chars
    let bad = [
        "",
        long.as_str(),
        long_multibyte.as_str(),
        "line\nbreak",
        "tab\there",
        "nul\0",
        "del\u{7f}",
        "c1\u{85}",
    ];
    for room in bad {
        let reply = c.request(join(room)).await;
        assert_error(&reply, reply.id, ErrorCode::InvalidRoom);
        let reply = c.request(history(room, 1, 0, 0)).await;
        assert_error(&reply, reply.id, ErrorCode::InvalidRoom);
        let reply = c.request(presence(room)).await;
        assert_error(&reply, reply.id, ErrorCode::InvalidRoom);
    }

    // Limits are in bytes and inclusive: 255 bytes is fine, as is Unicode.
    let max_ascii = "b".repeat(255);
    let max_multibyte = format!("{}x", "é".repeat(127)); // 255 bytes
    for room in [
        max_ascii.as_str(),
        max_multibyte.as_str(),
        "ünïcødé 房间 🎉",
        "a",
    ] {
        let reply = c.join(room).await;
        assert_eq!(reply.position.expect("position").offset, 0);
        assert_eq!(c.publish(room, "ok").await.offset, 1);
        let m = c.next_message().await;
        assert_eq!(m.room, room);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_rooms() {
    let mut config = test_config();
    config.limits.max_rooms_per_connection = 3;
    let server = TestServer::start(config).await;
    let mut c = server.login("u").await;
    for room in ["r1", "r2", "r3"] {
        c.join(room).await;
    }
    let reply = c.request(join("r4")).await;
    assert_error(&reply, reply.id, ErrorCode::LimitExceeded);
    // The failed join left no trace: leaving r4 is NOT_JOINED.
    let reply = c.request(leave("r4")).await;
    assert_error(&reply, reply.id, ErrorCode::NotJoined);
    // Leaving frees a slot.
    c.leave("r2").await;
    c.join("r4").await;
    let reply = c.request(join("r5")).await;
    assert_error(&reply, reply.id, ErrorCode::LimitExceeded);
    // The limit is per connection.
    let mut other = server.login("u").await;
    other.join("r5").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_and_frame_without_command() {
    let server = TestServer::start_default().await;
    let mut c = server.login("u").await;

    // id = 7, field 99 (an unknown oneof case), length-delimited, empty.
    c.send_raw(Message::Binary(Bytes::from_static(&[
        0x08, 0x07, 0x9a, 0x06, 0x00,
    ])))
    .await;
    let reply = c.reply(7).await;
    assert_error(&reply, 7, ErrorCode::UnknownCommand);

    // id = 8 and no command at all.
    c.tx.send_frame(&ClientFrame {
        id: 8,
        command: None,
    })
    .await;
    let reply = c.reply(8).await;
    assert_error(&reply, 8, ErrorCode::UnknownCommand);

    c.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_alongside_a_known_command_are_ignored() {
    let server = TestServer::start_default().await;
    let mut c = server.login("u").await;

    // id = 5, ping {} (field 9), plus unknown field 100 (varint 1).
    c.send_raw(Message::Binary(Bytes::from_static(&[
        0x08, 0x05, 0x4a, 0x00, 0xa0, 0x06, 0x01,
    ])))
    .await;
    expect_kind!(c.reply(5).await, Kind::Ping);

    // A join whose JoinRequest carries an unknown field 50 (varint 3).
    let mut inner = prost::Message::encode_to_vec(&JoinRequest {
        room: "r".to_owned(),
        since: None,
        presence_events: false,
    });
    inner.extend_from_slice(&[0x90, 0x03, 0x03]);
    let mut frame = vec![0x08, 0x06, 0x1a, inner.len() as u8];
    frame.extend_from_slice(&inner);
    c.send_raw(Message::Binary(frame.into())).await;
    expect_kind!(c.reply(6).await, Kind::Join);
    assert_eq!(c.publish("r", "joined").await.offset, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_frame_gets_bad_request_with_id_zero_and_connection_survives() {
    let server = TestServer::start_default().await;
    let mut c = server.login("u").await;
    c.send_raw(Message::Binary(Bytes::from_static(&[0xff, 0xff, 0xff])))
        .await;
    let frame = c.next_frame().await;
    assert_error(&frame, 0, ErrorCode::BadRequest);
    c.join("r").await;
    c.ping_ok().await;

    // Also before connect.
    let mut fresh = server.client().await;
    fresh
        .send_raw(Message::Binary(Bytes::from_static(&[0xff, 0xff, 0xff])))
        .await;
    let frame = fresh.next_frame().await;
    assert_error(&frame, 0, ErrorCode::BadRequest);
    fresh.login("fresh").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_without_a_known_command_are_answered_even_with_id_0() {
    let server = TestServer::start_default().await;
    let mut c = server.login("u").await;
    // An empty frame decodes as id 0 with no command: envelope.proto says
    // it is answered, under id 0.
    c.send_raw(Message::Binary(Bytes::new())).await;
    let frame = c.next_frame().await;
    assert_error(&frame, 0, ErrorCode::UnknownCommand);
    // An unknown command (field 99) without an id.
    c.send_raw(Message::Binary(Bytes::from_static(&[0x9a, 0x06, 0x00])))
        .await;
    let frame = c.next_frame().await;
    assert_error(&frame, 0, ErrorCode::UnknownCommand);
    // The connection is still usable, and nothing else was sent.
    let id = c.send(ping()).await;
    let frame = c.next_frame().await;
    assert_eq!(frame.id, id);
    expect_kind!(frame, Kind::Ping);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frame_on_binary_subprotocol_closes_1003() {
    let server = TestServer::start_default().await;

    // After connect: a Disconnect push, then Close 1003.
    let mut c = server.login("u").await;
    c.send_raw(Message::text(r#"{"id":1,"ping":{}}"#)).await;
    let (frames, code) = c.expect_close_with_frames().await;
    assert_eq!(code, 1003);
    let d = last_disconnect(&frames);
    assert_eq!(d.code, 1003);
    assert!(!d.reconnect, "1003 is terminal");

    // With the binary subprotocol asked for explicitly, before connect.
    let mut c = Client::connect(&server.ws_url(), Some(PROTO)).await;
    assert_eq!(c.protocol.as_deref(), Some(PROTO));
    c.send_raw(Message::text("hello")).await;
    assert_eq!(c.expect_close().await, 1003);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_1009() {
    let mut config = test_config();
    config.limits.max_message_size = 4096;
    let server = TestServer::start(config).await;
    let mut c = server.login("u").await;
    let connect_limit = {
        let mut probe = server.client().await;
        probe.login("probe").await.max_message_size
    };
    assert_eq!(connect_limit, 4096, "ConnectReply tells the limit");

    // Exactly at the limit is accepted (a publish padded to 4096 bytes).
    c.join("r").await;
    let frame = |text: String, id: u32| ClientFrame {
        id,
        command: Some(publish("r", &text)),
    };
    let mut text = String::new();
    let encoded_len = |t: &String| prost::Message::encoded_len(&frame(t.clone(), 100));
    while encoded_len(&text) < 4096 {
        text.push('x');
    }
    assert_eq!(encoded_len(&text), 4096);
    c.tx.send_frame(&frame(text.clone(), 100)).await;
    expect_kind!(c.reply(100).await, Kind::Publish);

    // One byte more closes the connection with 1009.
    text.push('x');
    c.tx.send_frame(&frame(text, 101)).await;
    let (frames, code) = c.expect_close_with_frames().await;
    assert_eq!(code, 1009);
    let d = last_disconnect(&frames);
    assert_eq!(d.code, 1009);
    assert!(!d.reconnect, "1009 is terminal");

    // Twice the limit, before connect.
    let mut big = server.client().await;
    let _ = big
        .tx
        .try_send_raw(Message::Binary(Bytes::from(vec![0u8; 8192])))
        .await;
    assert_eq!(big.expect_close().await, 1009);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connect_within_timeout_closes_4001() {
    let mut config = test_config();
    config.limits.connect_timeout = Duration::from_millis(300);
    let server = TestServer::start(config).await;
    let started = Instant::now();
    let mut idle = server.client().await;
    // A client that is connecting in time is not affected.
    let mut prompt = server.login("prompt").await;

    let (frames, code) = idle.expect_close_with_frames().await;
    assert_eq!(code, 4001);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early: {:?}",
        started.elapsed()
    );
    for f in &frames {
        assert!(
            matches!(f.kind, Some(Kind::Disconnect(ref d)) if d.code == 4001 && d.reconnect),
            "only a Disconnect{{4001, reconnect}} may precede the close, got {f:?}"
        );
    }

    // Commands that are not connect do not count as connecting.
    let mut chatty = server.client().await;
    let reply = chatty.request(ping()).await;
    assert_error(&reply, reply.id, ErrorCode::NotConnected);
    assert_eq!(chatty.expect_close().await, 4001);

    // The logged-in client outlives the timeout.
    prompt.ping_ok().await;
    server.shutdown().await;
}
