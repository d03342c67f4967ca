//! Presence (list and events) and direct messages.

#[macro_use]
mod common;

use common::*;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{DirectRequest, Member};
use tokio_tungstenite::tungstenite::Message;

fn member(c: &Client) -> Member {
    Member {
        user: c.user.clone(),
        client: c.client_id.clone(),
    }
}

fn sorted(mut members: Vec<Member>) -> Vec<Member> {
    members.sort_by(|a, b| (&a.user, &a.client).cmp(&(&b.user, &b.client)));
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_list_and_join_leave_events() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;

    alice.join_with_presence("p").await;
    bob.join("p").await;

    // Alice hears about Bob, not about herself.
    let push = alice.next_push().await;
    let joined = expect_kind!(push, Kind::MemberJoined);
    assert_eq!(joined.room, "p");
    assert_eq!(joined.member, Some(member(&bob)));

    // Presence does not require joining.
    let list = carol.presence("p").await;
    assert_eq!(
        sorted(list.members),
        sorted(vec![member(&alice), member(&bob)])
    );

    // A leave is an event too.
    bob.leave("p").await;
    let left = expect_kind!(alice.next_push().await, Kind::MemberLeft);
    assert_eq!(left.room, "p");
    assert_eq!(left.member, Some(member(&bob)));
    assert_eq!(carol.presence("p").await.members, vec![member(&alice)]);

    // Rejoin, then drop the connection: joined, then left.
    bob.join("p").await;
    let joined = expect_kind!(alice.next_push().await, Kind::MemberJoined);
    assert_eq!(joined.member, Some(member(&bob)));
    let bob_member = member(&bob);
    drop(bob);
    let left = expect_kind!(alice.next_push().await, Kind::MemberLeft);
    assert_eq!(left.room, "p");
    assert_eq!(left.member, Some(bob_member), "MemberLeft on disconnect");
    assert_eq!(carol.presence("p").await.members, vec![member(&alice)]);

    // Nothing about alice's own membership ever reached her.
    alice.ping_expect_nothing_before().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_events_only_when_asked_and_one_entry_per_connection() {
    let server = TestServer::start_default().await;
    let mut quiet = server.login("quiet").await;
    let mut bob1 = server.login("bob").await;
    let mut bob2 = server.login("bob").await;
    quiet.join("p").await;
    bob1.join("p").await;
    bob2.join("p").await;

    let list = quiet.presence("p").await;
    assert_eq!(
        sorted(list.members),
        sorted(vec![member(&quiet), member(&bob1), member(&bob2)]),
        "one member per connection, same user twice"
    );
    bob1.publish("p", "flush").await;
    // Without presence_events, the first push is the message, not an event.
    let m = quiet.next_message().await;
    assert_eq!(m.offset, 1);

    assert!(quiet.presence("empty-room").await.members.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_message_reaches_every_connection_of_the_user() {
    let server = TestServer::start_default().await;
    let mut alice = server.login("alice").await;
    let mut bob1 = server.login("bob").await;
    let mut bob2 = server.login("bob").await;
    let mut carol = server.login("carol").await;

    let reply = alice.request(direct("bob", "psst")).await;
    let direct_reply = expect_kind!(reply, Kind::Direct);
    for bob in [&mut bob1, &mut bob2] {
        let dm = expect_kind!(bob.next_push().await, Kind::DirectMessage);
        assert_eq!(dm.sender, "alice");
        assert_eq!(dm.id, direct_reply.id);
        assert_eq!(dm.payload.expect("payload").text, "psst");
        assert!(dm.timestamp_ms > 0);
    }
    carol.ping_expect_nothing_before().await;
    alice.ping_expect_nothing_before().await;

    // A spoofing attempt: unknown fields named like a sender are ignored and
    // the sender is still the authenticated user.
    let mut inner = prost::Message::encode_to_vec(&DirectRequest {
        user: "bob".to_owned(),
        payload: Some(text_payload("from alice really")),
    });
    inner.extend_from_slice(&[0x1a, 0x07]); // field 3 (length-delimited), 7 bytes
    inner.extend_from_slice(b"mallory");
    let mut frame = vec![0x08, 0x63, 0x32, inner.len() as u8]; // id 99, field 6
    frame.extend_from_slice(&inner);
    alice.send_raw(Message::Binary(frame.into())).await;
    expect_kind!(alice.reply(99).await, Kind::Direct);
    for bob in [&mut bob1, &mut bob2] {
        let dm = expect_kind!(bob.next_push().await, Kind::DirectMessage);
        assert_eq!(dm.sender, "alice");
        assert_eq!(dm.payload.expect("payload").text, "from alice really");
    }

    // Sending to a user with no connection succeeds and delivers nothing.
    expect_kind!(
        alice.request(direct("nobody", "hello?")).await,
        Kind::Direct
    );

    // A user may message themselves: every one of their connections gets it.
    expect_kind!(
        bob1.request(direct("bob", "note to self")).await,
        Kind::Direct
    );
    for bob in [&mut bob1, &mut bob2] {
        let dm = expect_kind!(bob.next_push().await, Kind::DirectMessage);
        assert_eq!(dm.sender, "bob");
    }
    server.shutdown().await;
}
