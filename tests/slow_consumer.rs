//! Slow consumers: a connection that stops reading is closed with 4000 once
//! its outbound queue overflows; the publisher and other subscribers are not
//! slowed or disturbed.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use switchboard::proto::server_frame::Kind;
use tokio::sync::watch;

const N: u64 = 2000;
/// Publishes in flight (not yet acknowledged, or not yet seen by the
/// well-behaved subscriber). Well below the outbound queue, so only the
/// connection that does not read at all can overflow.
const WINDOW: u64 = 16;
/// 2000 x 8 KiB = 16 MiB: far more than the kernel buffers (a few MiB) can
/// hold for the non-reading connection.
const PAYLOAD: usize = 8 * 1024;

/// Waits until `rx` reaches `target`, failing after a generous bound.
async fn wait_at_least(rx: &mut watch::Receiver<u64>, target: u64, what: &str) {
    let current = *rx.borrow();
    tokio::time::timeout(WAIT * 2, rx.wait_for(|v| *v >= target))
        .await
        .unwrap_or_else(|_| panic!("{what} stuck (was at {current}, waiting for {target})"))
        .unwrap_or_else(|_| panic!("{what} task ended early (waiting for {target})"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_connection_is_closed_with_4000_and_nobody_else_suffers() {
    let mut config = test_config();
    config.limits.outbound_queue = 64;
    // Leave the non-reading client time to start reading after the flood and
    // still get its Disconnect and Close frames.
    config.limits.close_timeout = Duration::from_secs(30);
    let server = TestServer::start(config).await;

    let mut slow = Client::connect_small_rcvbuf(&server.ws_url()).await;
    slow.login("slow").await;
    slow.join("flood").await;

    let mut good = server.login("good").await;
    good.join("flood").await;
    let mut publisher = server.login("publisher").await;
    publisher.join("flood").await;

    let (good_tx, mut good_progress) = watch::channel(0u64);
    let good_task = tokio::spawn(async move {
        for expected in 1..=N {
            let m = good.next_message().await;
            assert_eq!(
                m.offset, expected,
                "well-behaved subscriber: gap or reorder"
            );
            assert_eq!(m.payload.as_ref().expect("payload").text.len(), PAYLOAD);
            good_tx.send_replace(expected);
        }
        good
    });

    let (mut p_tx, mut p_rx) = publisher.split();
    let (ack_tx, mut acks) = watch::channel(0u64);
    let ack_task = tokio::spawn(async move {
        let mut acked = 0u64;
        let mut own = 0u64;
        while acked < N || own < N {
            let frame = p_rx.next_frame().await;
            match frame.kind {
                Some(Kind::Publish(ack)) => {
                    acked += 1;
                    assert_eq!(ack.offset, acked, "publisher: acks in offset order");
                    ack_tx.send_replace(acked);
                }
                Some(Kind::Message(m)) => {
                    own += 1;
                    assert_eq!(m.offset, own, "publisher: own messages in order");
                }
                other => panic!("publisher: unexpected frame {other:?}"),
            }
        }
        p_rx
    });

    let text = "x".repeat(PAYLOAD);
    for i in 1..=N {
        if i > WINDOW {
            wait_at_least(&mut acks, i - WINDOW, "publisher acks").await;
            wait_at_least(&mut good_progress, i - WINDOW, "well-behaved subscriber").await;
        }
        p_tx.send(publish("flood", &text)).await;
    }

    let p_rx = tokio::time::timeout(WAIT * 3, ack_task)
        .await
        .expect("publisher did not get every ack")
        .expect("publisher task");
    let mut good = tokio::time::timeout(WAIT * 3, good_task)
        .await
        .expect("well-behaved subscriber did not get every message")
        .expect("subscriber task");

    // Now the slow connection reads: a prefix of the messages, then the
    // Disconnect push, then Close 4000.
    let (frames, code) = slow.rx.expect_close_within(WAIT * 3).await;
    let disconnect = last_disconnect(&frames);
    assert_eq!(disconnect.code, 4000, "slow consumer code in Disconnect");
    assert!(disconnect.reconnect, "a slow consumer may reconnect");
    assert_eq!(code, 4000, "Close code for a slow consumer");
    let delivered: Vec<u64> = frames[..frames.len() - 1]
        .iter()
        .map(|f| match &f.kind {
            Some(Kind::Message(m)) => m.offset,
            other => panic!("slow consumer: unexpected frame {other:?}"),
        })
        .collect();
    assert!(
        (delivered.len() as u64) < N,
        "the slow consumer cannot have received everything"
    );
    assert_eq!(
        delivered,
        (1..=delivered.len() as u64).collect::<Vec<_>>(),
        "what the slow consumer got is a gap-free prefix"
    );

    // Everyone else is still connected and working.
    good.ping_expect_nothing_before().await;
    let mut publisher = Client {
        tx: p_tx,
        rx: p_rx,
        protocol: None,
        user: "publisher".to_owned(),
        client_id: String::new(),
    };
    publisher.ping_ok().await;
    let members = publisher.presence("flood").await.members;
    assert_eq!(
        members.len(),
        2,
        "the slow consumer left the room: {members:?}"
    );
    // These clients stop reading now; with the long close_timeout above the
    // server would wait for their Close replies at shutdown. Hang up instead.
    drop((good, publisher, slow));
    server.shutdown().await;
}

/// Publishes and waits for the acknowledgement; the publisher's own copies
/// are read and dropped.
async fn publish_ok(publisher: &mut Client, room: &str, text: &str) -> u64 {
    let reply = publisher.request(publish(room, text)).await;
    while publisher.rx.pop_pending().is_some() {}
    expect_kind!(reply, Kind::Publish).offset
}

/// `switchboard_slow_consumer_disconnects_total` of a server process.
async fn slow_consumer_closes(node: &ServerProcess) -> u64 {
    let reply = common::http_client::call(
        addr_of(&node.ws_url()),
        hyper::Method::GET,
        "/metrics",
        &[],
        Vec::new(),
    )
    .await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix("switchboard_slow_consumer_disconnects_total "))
        .map_or(0, |value| value.trim().parse().expect("a counter value"))
}

/// The promise of close_codes.proto and the README under the default
/// settings: a subscriber that stops reading is closed with 4000 soon after
/// its queue overflows (not at the next ping), and rejoining with `since`
/// the position it had recovers every message it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_closed_promptly_and_recovers_everything() {
    // Default settings: nothing but the listen address is configured.
    let node = ServerProcess::spawn(&[]);
    let room = "feed";
    let payload = "x".repeat(4096);

    let mut slow = Client::connect_small_rcvbuf(&node.ws_url()).await;
    slow.login("slow").await;
    let epoch = slow.join(room).await.position.expect("position").epoch;
    let mut publisher = Client::connect(&node.ws_url(), None).await;
    publisher.login("publisher").await;
    publisher.join(room).await;

    // The slow reader takes the first 20 messages, then stops reading.
    let mut published = 0u64;
    while published < 20 {
        publish_ok(&mut publisher, room, &payload).await;
        published += 1;
    }
    let mut held = 0;
    while held < 20 {
        held = slow.next_message().await.offset;
    }

    // 400 messages of 4 KiB a second until the server gives up on it. The
    // queue and the socket buffers hold a few hundred, so it overflows
    // within a few seconds; it must be closed at once then, not at the next
    // ping (25 s).
    let mut tick = tokio::time::interval(Duration::from_micros(2500));
    let limit = 4000;
    let mut closed_at = None;
    while published < limit {
        tick.tick().await;
        publish_ok(&mut publisher, room, &payload).await;
        published += 1;
        if published.is_multiple_of(20) && slow_consumer_closes(&node).await > 0 {
            closed_at = Some(published);
            break;
        }
    }
    let closed_at = closed_at.unwrap_or_else(|| {
        panic!("the reader that stopped at offset {held} was not closed after {published} messages")
    });
    // Publishing goes on while it reconnects (one more second).
    for _ in 0..400 {
        tick.tick().await;
        publish_ok(&mut publisher, room, &payload).await;
        published += 1;
    }

    // It reconnects and rejoins from the position it held: everything after
    // it is recovered, in order, then live messages follow.
    drop(slow);
    let mut back = Client::connect(&node.ws_url(), None).await;
    back.login("slow").await;
    let id = back.send(join_since(room, held, &epoch)).await;
    let reply = back.reply(id).await;
    let joined = expect_kind!(reply, Kind::Join);
    assert!(
        joined.recovered,
        "closed after {closed_at} messages, holding {held}: not recovered"
    );
    let offsets: Vec<u64> = joined.messages.iter().map(|m| m.offset).collect();
    assert_eq!(
        offsets,
        (held + 1..=published).collect::<Vec<_>>(),
        "the join reply holds every message after {held}"
    );
    publish_ok(&mut publisher, room, "live").await;
    assert_eq!(back.next_message().await.offset, published + 1);
    eprintln!(
        "closed after {closed_at} of {published} messages; recovered {}",
        offsets.len()
    );
}
