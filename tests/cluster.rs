//! Several `switchboard` processes sharing rooms through one real
//! `redis-server` (`broker = "redis"`): cross-node delivery, order, history,
//! presence, direct messages, idempotency, a Redis restart, lost Redis
//! state and a node killed with SIGKILL.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::http_client::{call, Reply};
use common::redis_server::RedisServer;
use common::*;
use hyper::{Method, StatusCode};
use switchboard::proto::client_frame::Command;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{
    ApiAccepted, ApiNotifyReply, ApiRoomList, ApiSendReply, DirectRequest, ErrorCode, JoinRequest,
    PresenceReply, PublishReply, RoomMessage, ServerFrame,
};

/// The next push, skipping presence events.
async fn next_room_message(client: &mut Client) -> RoomMessage {
    loop {
        let push = client.next_push().await;
        match push.kind {
            Some(Kind::Message(m)) => return m,
            Some(Kind::MemberJoined(_) | Kind::MemberLeft(_)) => continue,
            other => panic!("expected a room message, got {other:?}"),
        }
    }
}

/// Reads `count` room messages (skipping anything else pushed).
async fn collect(mut client: Client, count: usize) -> (Client, Vec<RoomMessage>) {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        out.push(next_room_message(&mut client).await);
    }
    (client, out)
}

fn assert_contiguous(messages: &[RoomMessage], first: u64, what: &str) {
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.offset,
            first + i as u64,
            "{what}: message {i} has offset {} (gap or duplicate)",
            m.offset
        );
    }
}

#[tokio::test]
async fn rooms_history_presence_direct_and_idempotency_span_nodes() {
    let redis = RedisServer::start();
    let a = redis.node(&[]);
    let b = redis.node(&[]);

    let mut alice = login(&a, "alice").await;
    let joined = alice.join_with_presence("lobby").await;
    let epoch = joined.position.expect("position").epoch;
    let mut bob = login(&b, "bob").await;
    let bob_join = bob.join("lobby").await;
    assert_eq!(
        bob_join.position.expect("position").epoch,
        epoch,
        "one epoch for the room on every node"
    );

    // Presence event across nodes, then the list from either node.
    let push = alice.next_push().await;
    let Some(Kind::MemberJoined(event)) = push.kind else {
        panic!("expected MemberJoined, got {push:?}");
    };
    assert_eq!(event.member.expect("member").user, "bob");
    for client in [&mut alice, &mut bob] {
        let mut users: Vec<String> = client
            .presence("lobby")
            .await
            .members
            .into_iter()
            .map(|m| m.user)
            .collect();
        users.sort();
        assert_eq!(users, ["alice", "bob"]);
    }

    // Publish on B, receive on A (and on B).
    let ack = bob.publish("lobby", "hello from b").await;
    assert_eq!((ack.offset, ack.epoch.as_str()), (1, epoch.as_str()));
    let got = next_room_message(&mut alice).await;
    assert_eq!((got.offset, got.sender.as_str()), (1, "bob"));
    assert_eq!(got.payload.expect("payload").text, "hello from b");
    assert_eq!(next_room_message(&mut bob).await.offset, 1);

    // History read on the other node.
    let page = alice.history("lobby", 10, 0, 0).await;
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].id, ack.id);
    assert_eq!(page.position.expect("position").offset, 1);

    // Direct message from A to a user on B.
    let reply = alice
        .request(Command::Direct(DirectRequest {
            user: "bob".into(),
            payload: Some(text_payload("psst")),
        }))
        .await;
    expect_kind!(reply, Kind::Direct);
    let push = bob.next_push().await;
    let Some(Kind::DirectMessage(dm)) = push.kind else {
        panic!("expected a direct message, got {push:?}");
    };
    assert_eq!(
        (
            dm.sender.as_str(),
            dm.payload.expect("payload").text.as_str()
        ),
        ("alice", "psst")
    );

    // An idempotent publish retried on another node returns the first result
    // and is delivered once.
    let first = expect_kind!(
        bob.request(keyed_publish("lobby", "once", "k-1")).await,
        Kind::Publish
    );
    let mut bob_on_a = login(&a, "bob").await;
    let retry: PublishReply = {
        bob_on_a.join("lobby").await;
        expect_kind!(
            bob_on_a
                .request(keyed_publish("lobby", "once", "k-1"))
                .await,
            Kind::Publish
        )
    };
    assert!(!first.duplicate && retry.duplicate);
    assert_eq!(
        (retry.offset, retry.id, retry.epoch.as_str()),
        (first.offset, first.id, first.epoch.as_str())
    );
    bob.publish("lobby", "after").await;
    let texts: Vec<(u64, String)> = {
        let (_, messages) = collect(alice, 2).await;
        messages
            .into_iter()
            .map(|m| (m.offset, m.payload.expect("payload").text))
            .collect()
    };
    assert_eq!(texts, [(2, "once".to_owned()), (3, "after".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_arrive_in_one_order_on_every_node() {
    const PER_PUBLISHER: usize = 5_000;
    const WINDOW: usize = 100;
    let redis = RedisServer::start();
    let nodes: Vec<ServerProcess> = (0..3).map(|_| redis.node(&[])).collect();

    let mut readers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut client = login(node, &format!("reader-{i}")).await;
        assert_eq!(
            client
                .join("firehose")
                .await
                .position
                .expect("position")
                .offset,
            0
        );
        readers.push(tokio::spawn(collect(client, 2 * PER_PUBLISHER)));
    }
    // Two publishers on different nodes, each keeping a window of publishes
    // in flight.
    let mut publishers = Vec::new();
    for (i, node) in nodes.iter().take(2).enumerate() {
        let mut client = login(node, &format!("writer-{i}")).await;
        client.join("firehose").await;
        publishers.push(tokio::spawn(async move {
            let (mut tx, mut rx) = (client.tx, client.rx);
            let mut acked = 0;
            let mut sent = 0;
            while acked < PER_PUBLISHER {
                while sent < PER_PUBLISHER && sent - acked < WINDOW {
                    tx.feed(publish("firehose", &format!("{i}:{sent}"))).await;
                    sent += 1;
                }
                tx.flush().await;
                let frame = rx.next_frame().await;
                match frame.kind {
                    Some(Kind::Publish(_)) => acked += 1,
                    Some(Kind::Message(_)) => {}
                    other => panic!("publisher {i} got {other:?}"),
                }
            }
        }));
    }
    for publisher in publishers {
        tokio::time::timeout(Duration::from_secs(120), publisher)
            .await
            .expect("publishers finish")
            .expect("publisher task");
    }
    let mut orders = Vec::new();
    for (i, reader) in readers.into_iter().enumerate() {
        let (_, messages) = tokio::time::timeout(Duration::from_secs(120), reader)
            .await
            .expect("readers finish")
            .expect("reader task");
        assert_contiguous(&messages, 1, &format!("reader on node {i}"));
        // Each publisher's messages keep their publish order.
        for p in 0..2 {
            let mine: Vec<usize> = messages
                .iter()
                .filter_map(|m| {
                    let text = m.payload.as_ref().expect("payload").text.clone();
                    let (who, n) = text.split_once(':').expect("who:n");
                    (who == p.to_string()).then(|| n.parse().expect("n"))
                })
                .collect();
            assert_eq!(
                mine,
                (0..PER_PUBLISHER).collect::<Vec<_>>(),
                "publisher {p} order on node {i}"
            );
        }
        orders.push(messages.into_iter().map(|m| m.id).collect::<Vec<_>>());
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every node delivers the same sequence"
    );
}

/// Publishes `text` with an idempotency key, retrying temporary failures
/// (Redis away) with the same key, so a publish whose reply was lost is not
/// doubled. Returns the ack and how many attempts failed.
async fn publish_until_acked(client: &mut Client, room: &str, text: &str) -> (PublishReply, usize) {
    let mut failures = 0;
    for _ in 0..200 {
        let frame = client.request(keyed_publish(room, text, text)).await;
        match frame.kind {
            Some(Kind::Publish(ack)) => return (ack, failures),
            Some(Kind::Error(e)) if e.temporary => {
                assert!(
                    matches!(e.code(), ErrorCode::Unavailable | ErrorCode::OutcomeUnknown),
                    "{e:?}"
                );
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("publish failed: {other:?}"),
        }
    }
    panic!("publish of {text:?} never succeeded");
}

#[tokio::test]
async fn redis_restart_mid_stream_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start();
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut writer = login(&a, "writer").await;
    let epoch = writer
        .join("stream")
        .await
        .position
        .expect("position")
        .epoch;
    let mut reader_a = login(&a, "reader-a").await;
    reader_a.join("stream").await;
    let mut reader_b = login(&b, "reader-b").await;
    reader_b.join("stream").await;

    let mut acked = Vec::new();
    for i in 0..100 {
        acked.push(
            publish_until_acked(&mut writer, "stream", &format!("m{i}"))
                .await
                .0,
        );
    }

    // Redis goes away: a publish fails with a temporary error, never a
    // silent success (UNAVAILABLE once the node noticed; OUTCOME_UNKNOWN if
    // the publish was sent on the dying connection).
    redis.stop();
    let reply = writer
        .request(keyed_publish("stream", "while-down", "while-down"))
        .await;
    let Some(Kind::Error(error)) = reply.kind else {
        panic!("a publish to a stopped Redis succeeded: {reply:?}")
    };
    assert!(
        matches!(
            error.code(),
            ErrorCode::Unavailable | ErrorCode::OutcomeUnknown
        ),
        "{error:?}"
    );
    assert!(error.temporary, "unavailable is temporary");

    // It comes back with its data; the writer keeps going.
    redis.restart();
    for i in 100..200 {
        let (ack, _) = publish_until_acked(&mut writer, "stream", &format!("m{i}")).await;
        acked.push(ack);
    }
    assert!(
        acked.iter().all(|a| a.epoch == epoch),
        "the epoch survives a restart that kept the data"
    );
    let offsets: Vec<u64> = acked.iter().map(|a| a.offset).collect();
    assert_eq!(
        offsets,
        (1..=200).collect::<Vec<_>>(),
        "acknowledged offsets"
    );

    // Both readers saw every acknowledged message, in order, exactly once.
    for (name, reader) in [("a", reader_a), ("b", reader_b)] {
        let (_, messages) = collect(reader, 200).await;
        assert_contiguous(&messages, 1, &format!("reader on node {name}"));
        let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
        let acked_ids: Vec<u64> = acked.iter().map(|a| a.id).collect();
        assert_eq!(
            ids, acked_ids,
            "reader on node {name} saw the acknowledged messages"
        );
    }
    let mut checker = login(&b, "checker").await;
    let page = checker.history("stream", 1000, 0, 0).await;
    assert_eq!(
        page.messages.len(),
        200,
        "history kept every acknowledged message"
    );
    assert_eq!(page.position.expect("position").epoch, epoch);
}

#[tokio::test]
async fn lost_redis_state_closes_subscribers_and_rejoin_reports_not_recovered() {
    let redis = RedisServer::start();
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut writer = login(&a, "writer").await;
    let old_epoch = writer
        .join("fragile")
        .await
        .position
        .expect("position")
        .epoch;
    let mut reader = login(&b, "reader").await;
    reader.join("fragile").await;
    for i in 0..5 {
        writer.publish("fragile", &format!("m{i}")).await;
    }
    let (mut reader, seen) = collect(reader, 5).await;
    let last = seen.last().expect("messages").offset;

    // Redis loses everything (as a restart without persistence would).
    assert!(redis.command("FLUSHALL").starts_with("+OK"));
    let id = writer.send(publish("fragile", "new era")).await;

    // Neither node's live feed can continue gap-free: every subscriber of
    // the room, the writer included, is closed with 4004.
    let (frames, code) = reader.expect_close_with_frames().await;
    assert_eq!(code, 4004, "reader close code; frames {frames:?}");
    let (frames, code) = writer.expect_close_with_frames().await;
    assert_eq!(code, 4004, "writer close code");
    // The publish itself succeeded, in a new epoch (its ack may or may not
    // have made it out before the close).
    if let Some(frame) = frames.iter().find(|f| f.id == id) {
        let ack = expect_kind!(frame.clone(), Kind::Publish);
        assert_eq!(ack.offset, 1);
        assert_ne!(ack.epoch, old_epoch);
    }
    let mut again = login(&b, "reader").await;
    let rejoin = again.join_since("fragile", last, &old_epoch).await;
    assert!(
        !rejoin.recovered,
        "nothing can be recovered from a lost epoch"
    );
    let position = rejoin.position.expect("position");
    assert_ne!(
        position.epoch, old_epoch,
        "a new epoch began when Redis lost the room"
    );
    assert_eq!(
        position.offset, 1,
        "the new epoch holds the one new message"
    );
}

#[tokio::test]
async fn a_killed_node_leaves_no_ghosts_and_its_clients_recover_elsewhere() {
    let redis = RedisServer::start();
    let fast = [("SWITCHBOARD_REDIS__PRESENCE_TTL", "2s")];
    let a = redis.node(&fast);
    let c = redis.node(&fast);

    let mut alice = login(&a, "alice").await;
    alice.join_with_presence("room").await;
    let mut carol = login(&c, "carol").await;
    let carol_join = carol.join("room").await;
    let epoch = carol_join.position.expect("position").epoch;
    let push = alice.next_push().await;
    assert!(matches!(push.kind, Some(Kind::MemberJoined(_))), "{push:?}");
    alice.publish("room", "before").await;
    let last_seen = next_room_message(&mut carol).await.offset;

    c.signal("KILL");
    // Messages published while carol's node is dead.
    for i in 0..3 {
        alice.publish("room", &format!("missed {i}")).await;
    }
    // Carol's membership expires (2 s) and a live node announces it.
    let left = loop {
        let push: ServerFrame = alice.next_push().await;
        match push.kind {
            Some(Kind::MemberLeft(left)) => break left,
            Some(Kind::Message(_)) => continue,
            other => panic!("expected MemberLeft, got {other:?}"),
        }
    };
    assert_eq!(left.member.expect("member").user, "carol");
    let users: HashSet<String> = alice
        .presence("room")
        .await
        .members
        .into_iter()
        .map(|m| m.user)
        .collect();
    assert_eq!(
        users,
        HashSet::from(["alice".to_owned()]),
        "no ghost members"
    );

    // Carol reconnects to the surviving node and recovers what she missed.
    let mut carol = login(&a, "carol").await;
    let reply = carol
        .request(Command::Join(JoinRequest {
            room: "room".into(),
            since: Some(switchboard::proto::StreamPosition {
                offset: last_seen,
                epoch: epoch.clone(),
            }),
            presence_events: false,
        }))
        .await;
    let rejoin = expect_kind!(reply, Kind::Join);
    assert!(rejoin.recovered);
    let texts: Vec<String> = rejoin
        .messages
        .into_iter()
        .map(|m| m.payload.expect("payload").text)
        .collect();
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2"]);
}

#[tokio::test]
async fn messages_missed_on_pubsub_are_filled_from_the_stream() {
    let redis = RedisServer::start();
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut writer = login(&a, "writer").await;
    writer.join("gappy").await;
    let mut reader = login(&b, "reader").await;
    reader.join("gappy").await;
    writer.publish("gappy", "m0").await;
    let (mut reader, _) = collect(reader, 1).await;

    // Every node loses its pub/sub connection; publishes go on meanwhile,
    // so some are published while nobody is subscribed.
    for round in 0..3 {
        let killed = redis.command("CLIENT KILL TYPE pubsub");
        assert!(killed.starts_with(':'), "CLIENT KILL replied {killed:?}");
        for i in 0..20 {
            writer.publish("gappy", &format!("r{round}-{i}")).await;
        }
        let (back, messages) = collect(reader, 20).await;
        reader = back;
        assert_contiguous(&messages, 2 + round * 20, "reader after a pub/sub loss");
        let texts: Vec<String> = messages
            .into_iter()
            .map(|m| m.payload.expect("payload").text)
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("r{round}-{i}")).collect();
        assert_eq!(texts, expected);
    }
}

#[tokio::test]
async fn redis_losing_its_newest_writes_starts_a_new_epoch() {
    let redis = RedisServer::start();
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut writer = login(&a, "writer").await;
    let old_epoch = writer
        .join("rewound")
        .await
        .position
        .expect("position")
        .epoch;
    let mut reader = login(&b, "reader").await;
    reader.join("rewound").await;
    for i in 0..5 {
        writer.publish("rewound", &format!("m{i}")).await;
    }
    let (mut reader, _) = collect(reader, 5).await;

    // Redis comes back with an older offset in the same epoch (as after a
    // crash with `appendfsync everysec`), and the nodes reconnect.
    assert!(redis
        .command("HSET switchboard:r:{rewound}:m o 3")
        .starts_with(':'));
    assert!(redis.command("CLIENT KILL TYPE pubsub").starts_with(':'));

    // Offsets 4 and 5 must not be handed out again in the old epoch.
    let (_, code) = reader.expect_close_with_frames().await;
    assert_eq!(code, 4004);
    let mut again = login(&b, "reader").await;
    let rejoin = again.join_since("rewound", 5, &old_epoch).await;
    assert!(!rejoin.recovered);
    let position = rejoin.position.expect("position");
    assert_ne!(position.epoch, old_epoch, "a new epoch");
    let ack = again.publish("rewound", "fresh").await;
    assert_eq!(
        (ack.epoch.as_str(), ack.offset),
        (position.epoch.as_str(), position.offset + 1)
    );
}

/// `host:port` of a node.
fn addr_of_node(node: &ServerProcess) -> std::net::SocketAddr {
    addr_of(&node.ws_url())
}

/// A JSON request to the HTTP API of a node (development mode: no key).
async fn api_json(node: &ServerProcess, method: Method, path: &str, body: &str) -> Reply {
    call(
        addr_of_node(node),
        method,
        path,
        &[("content-type", "application/json")],
        body.as_bytes().to_vec(),
    )
    .await
}

#[tokio::test]
async fn the_http_api_on_one_node_reaches_users_and_rooms_on_another() {
    let redis = RedisServer::start();
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut alice = login(&b, "alice").await;
    alice.join("news").await;

    // A publish through node A's API reaches a member on node B.
    let ack: PublishReply = api_json(
        &a,
        Method::POST,
        "/api/v1/rooms/news/messages",
        r#"{"payload": {"text": "extra!"}}"#,
    )
    .await
    .ok();
    let got = next_room_message(&mut alice).await;
    assert_eq!(
        (got.offset, got.sender.as_str()),
        (ack.offset, "development")
    );

    // Presence and room listing through A see B's member.
    let members: PresenceReply = api_json(&a, Method::GET, "/api/v1/rooms/news/presence", "")
        .await
        .ok();
    assert_eq!(members.members.len(), 1);
    let list: ApiRoomList = api_json(&a, Method::GET, "/api/v1/rooms", "").await.ok();
    let news = list
        .rooms
        .iter()
        .find(|r| r.room == "news")
        .expect("news is listed");
    assert_eq!(news.members, 1);

    // A direct message, a user notification and a room notification.
    let _: ApiSendReply = api_json(
        &a,
        Method::POST,
        "/api/v1/users/alice/messages",
        r#"{"payload": {"text": "hi"}, "sender": "ops"}"#,
    )
    .await
    .ok();
    let push = alice.next_push().await;
    let Some(Kind::DirectMessage(dm)) = push.kind else {
        panic!("expected a direct message, got {push:?}");
    };
    assert_eq!(dm.sender, "ops");
    for (path, room) in [
        ("/api/v1/users/alice/notifications", ""),
        ("/api/v1/rooms/news/notifications", "news"),
    ] {
        let _: ApiNotifyReply =
            api_json(&a, Method::POST, path, r#"{"payload": {"text": "note"}}"#)
                .await
                .ok();
        let push = alice.next_push().await;
        let Some(Kind::Notification(n)) = push.kind else {
            panic!("expected a notification, got {push:?}");
        };
        assert_eq!(n.room, room);
    }

    // Server-side subscribe through A, then a kick.
    let _: ApiAccepted = api_json(&a, Method::PUT, "/api/v1/users/alice/rooms/sports", "")
        .await
        .ok();
    let push = alice.next_push().await;
    let Some(Kind::Subscribed(subscribed)) = push.kind else {
        panic!("expected Subscribed, got {push:?}");
    };
    assert_eq!(subscribed.room, "sports");
    let _: PublishReply = api_json(
        &a,
        Method::POST,
        "/api/v1/rooms/sports/messages",
        r#"{"payload": {"text": "goal"}}"#,
    )
    .await
    .ok();
    assert_eq!(next_room_message(&mut alice).await.room, "sports");
    let _: ApiAccepted = api_json(&a, Method::POST, "/api/v1/users/alice/disconnect", "")
        .await
        .ok();
    assert_eq!(alice.expect_close().await, 4500);
}

#[tokio::test]
async fn readiness_follows_redis() {
    let mut redis = RedisServer::start();
    let a = redis.node(&[]);
    let ready = |node: &ServerProcess| {
        let addr = addr_of_node(node);
        async move {
            call(addr, Method::GET, "/readyz", &[], Vec::new())
                .await
                .status
        }
    };
    let wait_for = |want: StatusCode| {
        let ready = &ready;
        let a = &a;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let status = ready(a).await;
                if status == want {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "/readyz stayed {status}, expected {want}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(StatusCode::OK).await;
    redis.stop();
    wait_for(StatusCode::SERVICE_UNAVAILABLE).await;
    let health = call(addr_of_node(&a), Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK, "alive while Redis is away");
    redis.restart();
    wait_for(StatusCode::OK).await;
}

#[tokio::test]
async fn a_join_waits_for_a_node_still_connecting_to_redis() {
    let mut redis = RedisServer::start();
    redis.stop();
    let a = redis.node(&[("SWITCHBOARD_REDIS__COMMAND_TIMEOUT", "15s")]);
    let mut alice = login(&a, "alice").await;
    let id = alice.send(join("lobby")).await;
    // The join is held while the node's pub/sub connection is down (it
    // used to fail at once as UNAVAILABLE) and answered once Redis is there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    let reply = alice.reply(id).await;
    let joined = expect_kind!(reply, Kind::Join);
    let position = joined.position.expect("a join reply has a position");
    assert_eq!(position.offset, 0);
    assert!(!position.epoch.is_empty());
}
