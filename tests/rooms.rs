//! Rooms: join, publish, receive, leave, ordering and idempotent publishes.

#[macro_use]
mod common;

use std::collections::HashSet;

use bytes::Bytes;
use common::*;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{ErrorCode, Payload, PublishRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_join_publish_and_receive() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    assert_ne!(alice.client_id, bob.client_id, "client ids are unique");

    let a_join = alice.join("lobby").await;
    let b_join = bob.join("lobby").await;
    let a_pos = a_join.position.expect("join reply has a position");
    assert_eq!(a_pos.offset, 0, "a new room starts before offset 1");
    assert!(!a_pos.epoch.is_empty(), "epoch is set");
    assert_eq!(b_join.position.expect("position").epoch, a_pos.epoch);
    assert!(!a_join.recovered, "no recovery was asked for");
    assert!(a_join.messages.is_empty());

    let payload = Payload {
        text: "hello".to_owned(),
        data: Bytes::from_static(&[0, 1, 2, 255]),
        type_name: "chat.v1.Line".to_owned(),
    };
    let before = now_ms();
    let id = alice
        .send(publish_payload("lobby", payload.clone(), ""))
        .await;

    // The publisher receives its own message before the acknowledgement.
    let first = alice.next_frame().await;
    assert_eq!(
        first.id, 0,
        "own message (a push) comes before the ack, got {first:?}"
    );
    let own = expect_kind!(first, Kind::Message);
    let ack_frame = alice.next_frame().await;
    assert_eq!(ack_frame.id, id);
    let ack = expect_kind!(ack_frame, Kind::Publish);
    assert_eq!(ack.offset, 1);
    assert_eq!(ack.epoch, a_pos.epoch);
    assert!(!ack.duplicate);
    assert!(ack.timestamp_ms >= before - 1000 && ack.timestamp_ms <= now_ms() + 1000);

    let got = bob.next_message().await;
    for m in [&own, &got] {
        assert_eq!(m.room, "lobby");
        assert_eq!(m.offset, 1);
        assert_eq!(m.sender, "alice");
        assert_eq!(m.id, ack.id, "message id equals the ack's id");
        assert_eq!(m.timestamp_ms, ack.timestamp_ms);
        assert_eq!(
            m.payload.as_ref(),
            Some(&payload),
            "payload delivered as published"
        );
    }

    // Bob answers; offsets continue.
    let ack2 = bob.publish("lobby", "hi alice").await;
    assert_eq!(ack2.offset, 2);
    let m = alice.next_message().await;
    assert_eq!((m.offset, m.sender.as_str()), (2, "bob"));
    assert_eq!(m.payload.expect("payload").text, "hi alice");
    let own2 = bob.next_message().await;
    assert_eq!(own2.offset, 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("red").await;
    alice.join("blue").await;
    bob.join("blue").await;

    // Offsets are per room.
    assert_eq!(alice.publish("red", "r1").await.offset, 1);
    assert_eq!(alice.publish("red", "r2").await.offset, 2);
    assert_eq!(alice.publish("blue", "b1").await.offset, 1);

    // Bob only gets blue.
    let m = bob.next_message().await;
    assert_eq!((m.room.as_str(), m.offset), ("blue", 1));
    assert_eq!(m.payload.expect("payload").text, "b1");
    bob.ping_expect_nothing_before().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_stops_delivery_and_rejoin_continues_after_position() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("room").await;
    bob.join("room").await;

    alice.publish("room", "one").await;
    assert_eq!(bob.next_message().await.offset, 1);
    bob.leave("room").await;

    alice.publish("room", "two").await; // offset 2, after bob left
    let rejoin = bob.join("room").await;
    assert_eq!(
        rejoin.position.expect("position").offset,
        2,
        "join position is the newest offset"
    );
    alice.publish("room", "three").await;
    let m = bob.next_message().await;
    assert_eq!(
        m.offset, 3,
        "after leaving, offset 2 must not be delivered; live continues after the join position"
    );
    assert_eq!(m.payload.expect("payload").text, "three");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_is_the_authenticated_user_whatever_the_client_sends() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("r").await;
    bob.join("r").await;

    // A publish frame with extra fields a spoofing client might add: field 4
    // of RoomMessage is `sender`; put "mallory" into unknown field numbers of
    // the PublishRequest (4, 100) and of the envelope (100).
    let publish = PublishRequest {
        room: "r".to_owned(),
        payload: Some(text_payload("spoof?")),
        idempotency_key: String::new(),
    };
    let mut inner = prost::Message::encode_to_vec(&publish);
    for field in [4u32, 100] {
        push_string_field(&mut inner, field, "mallory");
    }
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0x08, 0x2a]); // id = 42
    push_bytes_field(&mut frame, 5, &inner); // command.publish
    push_string_field(&mut frame, 100, "mallory");
    alice
        .send_raw(tokio_tungstenite::tungstenite::Message::Binary(
            frame.into(),
        ))
        .await;
    let ack = expect_kind!(alice.reply(42).await, Kind::Publish);
    assert_eq!(ack.offset, 1);
    let m = bob.next_message().await;
    assert_eq!(m.sender, "alice");
    assert_eq!(m.payload.expect("payload").text, "spoof?");
    server.shutdown().await;
}

fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn push_bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    push_varint(buf, (u64::from(field) << 3) | 2);
    push_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn push_string_field(buf: &mut Vec<u8>, field: u32, s: &str) {
    push_bytes_field(buf, field, s.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_pipelined_publishes_arrive_in_order() {
    const N: u64 = 1000;
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("order").await;
    bob.join("order").await;

    let (mut a_tx, mut a_rx) = alice.split();

    // Bob reads concurrently: offsets 1..=N in order, payloads matching.
    let bob_task = tokio::spawn(async move {
        for expected in 1..=N {
            let m = bob.next_message().await;
            assert_eq!(m.offset, expected, "bob: gap, duplicate or reordering");
            assert_eq!(m.sender, "alice");
            assert_eq!(m.payload.expect("payload").text, format!("msg {expected}"));
        }
        bob.ping_expect_nothing_before().await;
        bob
    });

    // Alice reads her own messages and acks concurrently.
    let alice_reader = tokio::spawn(async move {
        let mut acked = HashSet::new();
        let mut next_own = 1u64;
        let mut last_ack_offset = 0u64;
        while acked.len() < N as usize || next_own <= N {
            let frame = a_rx.next_frame().await;
            let id = frame.id;
            match frame.kind {
                Some(Kind::Message(m)) => {
                    assert_eq!(m.offset, next_own, "alice: own messages in order");
                    next_own += 1;
                }
                Some(Kind::Publish(ack)) => {
                    // Publishes are request ids 3..=N+2 (after login and
                    // join), processed in the order sent: request k gets
                    // offset k - 2. Acks never overtake their messages.
                    assert_eq!(ack.offset + 2, u64::from(id), "ack offset for request {id}");
                    assert!(ack.offset < next_own, "ack overtook its own message");
                    assert!(ack.offset > last_ack_offset, "acks in order");
                    last_ack_offset = ack.offset;
                    assert!(acked.insert(id), "duplicate ack for {id}");
                }
                other => panic!("alice: unexpected frame {other:?}"),
            }
        }
        a_rx
    });

    // Pipeline every publish without waiting for acks.
    for i in 1..=N {
        let id = a_tx.feed(publish("order", &format!("msg {i}"))).await;
        assert_eq!(u64::from(id), i + 2);
        if i % 100 == 0 {
            a_tx.flush().await;
        }
    }
    a_tx.flush().await;

    tokio::time::timeout(WAIT * 3, bob_task)
        .await
        .expect("bob did not receive all messages in time")
        .expect("bob task");
    let _ = tokio::time::timeout(WAIT * 3, alice_reader)
        .await
        .expect("alice did not get all acks in time")
        .expect("alice task");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_publish_is_delivered_once() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("idem").await;
    alice.join("other").await;
    bob.join("idem").await;

    let first = expect_kind!(
        alice
            .request(publish_payload("idem", text_payload("once"), "key-1"))
            .await,
        Kind::Publish
    );
    assert_eq!(first.offset, 1);
    assert!(!first.duplicate);

    let retry = expect_kind!(
        alice
            .request(publish_payload("idem", text_payload("once"), "key-1"))
            .await,
        Kind::Publish
    );
    assert!(retry.duplicate, "a retried key is reported as duplicate");
    assert_eq!(retry.offset, first.offset);
    assert_eq!(retry.id, first.id);
    assert_eq!(retry.epoch, first.epoch);

    // The same key in another room is independent.
    let other = expect_kind!(
        alice
            .request(publish_payload("other", text_payload("x"), "key-1"))
            .await,
        Kind::Publish
    );
    assert!(!other.duplicate);
    assert_eq!(other.offset, 1);

    // A new key gets the next offset.
    let next = expect_kind!(
        alice
            .request(publish_payload("idem", text_payload("twice"), "key-2"))
            .await,
        Kind::Publish
    );
    assert_eq!(next.offset, 2);
    assert!(!next.duplicate);

    // Bob saw offset 1 once, then offset 2.
    let m1 = bob.next_message().await;
    let m2 = bob.next_message().await;
    assert_eq!(offsets(&[m1, m2]), vec![1, 2]);
    bob.ping_expect_nothing_before().await;

    // History holds it once too.
    let h = bob.history("idem", 10, 0, 0).await;
    assert_eq!(offsets(&h.messages), vec![1, 2]);

    // Keys are bounded: 256 bytes is fine, 257 is refused and publishes nothing.
    let long = "k".repeat(256);
    let ok = expect_kind!(
        alice
            .request(publish_payload("idem", text_payload("long"), &long))
            .await,
        Kind::Publish
    );
    assert_eq!(ok.offset, 3);
    let too_long = "k".repeat(257);
    let err = expect_kind!(
        alice
            .request(publish_payload("idem", text_payload("x"), &too_long))
            .await,
        Kind::Error
    );
    assert_eq!(err.code, ErrorCode::BadRequest as i32);
    assert!(!err.temporary);
    let h = bob.history("idem", 10, 0, 0).await;
    assert_eq!(offsets(&h.messages), vec![1, 2, 3]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_reply_carries_server_time() {
    let server = TestServer::start_default().await;
    let mut c = server.login("pinger").await;
    let before = now_ms();
    let reply = expect_kind!(c.request(ping()).await, Kind::Ping);
    assert!(
        reply.timestamp_ms >= before - 1000 && reply.timestamp_ms <= now_ms() + 1000,
        "ping timestamp {} not near now {before}",
        reply.timestamp_ms
    );
    server.shutdown().await;
}
