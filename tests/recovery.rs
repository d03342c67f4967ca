//! Recovery: rejoin with `since` after a dropped connection.

#[macro_use]
mod common;

use common::*;
use switchboard::proto::server_frame::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoin_since_replays_exactly_the_missed_messages_then_continues_live() {
    let server = TestServer::start_default().await;
    let mut a = server.login("a").await;
    let mut b = server.login("b").await;
    a.join("feed").await;
    b.join("feed").await;

    let mut epoch = String::new();
    for i in 1..=5u64 {
        let ack = b.publish("feed", &format!("m{i}")).await;
        assert_eq!(ack.offset, i);
        epoch = ack.epoch;
    }
    let mut last = 0;
    for i in 1..=5u64 {
        let m = a.next_message().await;
        assert_eq!(m.offset, i);
        last = m.offset;
    }
    // A drops without a goodbye.
    drop(a);

    for i in 6..=12u64 {
        assert_eq!(b.publish("feed", &format!("m{i}")).await.offset, i);
    }

    let mut a2 = server.login("a").await;
    let reply = a2.join_since("feed", last, &epoch).await;
    assert!(reply.recovered, "history reaches back to offset {last}");
    let pos = reply.position.expect("position");
    assert_eq!(pos.offset, 12);
    assert_eq!(pos.epoch, epoch);
    assert_eq!(offsets(&reply.messages), (6..=12).collect::<Vec<_>>());
    for m in &reply.messages {
        assert_eq!(m.room, "feed");
        assert_eq!(m.sender, "b");
        let text = &m.payload.as_ref().expect("payload").text;
        assert_eq!(text, &format!("m{}", m.offset));
    }

    // Live continues with the next offset, no duplicate of the replay.
    assert_eq!(b.publish("feed", "m13").await.offset, 13);
    let live = a2.next_message().await;
    assert_eq!(live.offset, 13);
    assert_eq!(live.payload.expect("payload").text, "m13");
    a2.ping_expect_nothing_before().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_with_wrong_epoch_is_not_recovered() {
    let server = TestServer::start_default().await;
    let mut b = server.login("b").await;
    b.join("feed").await;
    let mut epoch = String::new();
    for i in 1..=3 {
        epoch = b.publish("feed", &format!("m{i}")).await.epoch;
    }
    let mut a = server.login("a").await;
    let wrong = format!("{epoch}-not");
    let reply = a.join_since("feed", 1, &wrong).await;
    assert!(!reply.recovered, "a different epoch cannot be recovered");
    assert!(reply.messages.is_empty());
    let pos = reply.position.expect("position");
    assert_eq!(pos.offset, 3);
    assert_eq!(pos.epoch, epoch, "the reply tells the real epoch");

    // The join itself succeeded: live messages flow.
    b.publish("feed", "m4").await;
    assert_eq!(a.next_message().await.offset, 4);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_current_position_recovers_nothing_and_offset_zero_recovers_all() {
    let server = TestServer::start_default().await;
    let mut b = server.login("b").await;
    b.join("feed").await;
    let mut epoch = String::new();
    for i in 1..=4 {
        epoch = b.publish("feed", &format!("m{i}")).await.epoch;
    }

    let mut up_to_date = server.login("a").await;
    let reply = up_to_date.join_since("feed", 4, &epoch).await;
    assert!(reply.recovered);
    assert!(reply.messages.is_empty());

    let mut from_start = server.login("c").await;
    let reply = from_start.join_since("feed", 0, &epoch).await;
    assert!(reply.recovered, "offset 0 = before the first message");
    assert_eq!(offsets(&reply.messages), vec![1, 2, 3, 4]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_older_than_history_is_not_recovered() {
    let mut config = test_config();
    config.history.max_messages = 10;
    let server = TestServer::start(config).await;
    let mut b = server.login("b").await;
    b.join("feed").await;
    let mut epoch = String::new();
    for i in 1..=15 {
        epoch = b.publish("feed", &format!("m{i}")).await.epoch;
    }
    // History now holds 6..=15.
    let mut a = server.login("a").await;
    let reply = a.join_since("feed", 3, &epoch).await;
    assert!(!reply.recovered, "offsets 4 and 5 are gone");
    assert!(reply.messages.is_empty());
    assert_eq!(reply.position.expect("position").offset, 15);

    // Since 5: everything after it (6..=15) is still there.
    let mut c = server.login("c").await;
    let reply = c.join_since("feed", 5, &epoch).await;
    assert!(reply.recovered, "6..=15 are all in history");
    assert_eq!(offsets(&reply.messages), (6..=15).collect::<Vec<_>>());
    server.shutdown().await;
}

/// Messages published while the join with `since` is being handled must end
/// up either in the replay or live, never both and never neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_racing_with_live_publishes_has_no_gap_and_no_duplicate() {
    const N: u64 = 300;
    let server = TestServer::start_default().await;
    let mut b = server.login("b").await;
    b.join("race").await;
    let epoch = b.publish("race", "m1").await.epoch;

    let (mut b_tx, mut b_rx) = b.split();
    let publisher = tokio::spawn(async move {
        for i in 2..=N {
            b_tx.feed(publish("race", &format!("m{i}"))).await;
            if i % 10 == 0 {
                b_tx.flush().await;
                tokio::task::yield_now().await;
            }
        }
        b_tx.flush().await;
        // Wait for every ack (and drain own messages).
        let mut acks = 0;
        while acks < N - 1 {
            if let Some(Kind::Publish(_)) = b_rx.next_frame().await.kind {
                acks += 1;
            }
        }
        (b_tx, b_rx)
    });

    let mut a = server.login("a").await;
    let reply = a.join_since("race", 1, &epoch).await;
    assert!(reply.recovered);
    let mut seen: Vec<u64> = offsets(&reply.messages);
    let mut next = 2;
    for &o in &seen {
        assert_eq!(o, next, "replay must be contiguous from since+1");
        next += 1;
    }
    let replayed = seen.len();
    while next <= N {
        let m = a.next_message().await;
        assert_eq!(
            m.offset, next,
            "live after replay of {replayed}: expected offset {next}, got {} (gap or duplicate)",
            m.offset
        );
        seen.push(m.offset);
        next += 1;
    }
    assert_eq!(seen, (2..=N).collect::<Vec<_>>());
    tokio::time::timeout(WAIT * 2, publisher)
        .await
        .expect("publisher finished")
        .expect("publisher task");
    a.ping_expect_nothing_before().await;
    server.shutdown().await;
}
