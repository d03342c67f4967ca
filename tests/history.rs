//! History paging.

mod common;

use common::*;

async fn publish_n(server: &TestServer, room: &str, n: u64) -> String {
    let mut p = server.login("publisher").await;
    p.join(room).await;
    let mut epoch = String::new();
    for i in 1..=n {
        let ack = p.publish(room, &format!("m{i}")).await;
        assert_eq!(ack.offset, i);
        epoch = ack.epoch;
    }
    epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_backwards_with_before() {
    let server = TestServer::start_default().await;
    let epoch = publish_n(&server, "h", 25).await;
    // History does not require joining.
    let mut reader = server.login("reader").await;

    let page = reader.history("h", 10, 0, 0).await;
    assert_eq!(offsets(&page.messages), (16..=25).collect::<Vec<_>>());
    assert!(page.has_more);
    let pos = page.position.expect("position");
    assert_eq!((pos.offset, pos.epoch.as_str()), (25, epoch.as_str()));
    for m in &page.messages {
        assert_eq!(m.room, "h");
        assert_eq!(m.sender, "publisher");
        assert_eq!(
            m.payload.as_ref().expect("payload").text,
            format!("m{}", m.offset)
        );
    }

    let page = reader.history("h", 10, 16, 0).await;
    assert_eq!(offsets(&page.messages), (6..=15).collect::<Vec<_>>());
    assert!(page.has_more);

    let page = reader.history("h", 10, 6, 0).await;
    assert_eq!(offsets(&page.messages), (1..=5).collect::<Vec<_>>());
    assert!(!page.has_more, "nothing before offset 1");

    // Exactly one page's worth left: has_more is false.
    let page = reader.history("h", 5, 6, 0).await;
    assert_eq!(offsets(&page.messages), (1..=5).collect::<Vec<_>>());
    assert!(!page.has_more);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_forwards_with_after() {
    let server = TestServer::start_default().await;
    publish_n(&server, "h", 25).await;
    let mut reader = server.login("reader").await;

    let page = reader.history("h", 10, 0, 10).await;
    assert_eq!(offsets(&page.messages), (11..=20).collect::<Vec<_>>());
    assert!(page.has_more);

    let page = reader.history("h", 10, 0, 20).await;
    assert_eq!(offsets(&page.messages), (21..=25).collect::<Vec<_>>());
    assert!(!page.has_more);

    let page = reader.history("h", 10, 0, 25).await;
    assert!(page.messages.is_empty());
    assert!(!page.has_more);

    // after + before: a window, oldest first.
    let page = reader.history("h", 3, 20, 10).await;
    assert_eq!(offsets(&page.messages), vec![11, 12, 13]);
    assert!(page.has_more, "14..=19 remain inside the window");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_and_maximum_page_sizes() {
    let mut config = test_config();
    config.history.default_page = 7;
    config.history.max_page = 12;
    let server = TestServer::start(config).await;
    publish_n(&server, "h", 25).await;
    let mut reader = server.login("reader").await;

    let page = reader.history("h", 0, 0, 0).await;
    assert_eq!(
        offsets(&page.messages),
        (19..=25).collect::<Vec<_>>(),
        "limit 0 = default page"
    );
    assert!(page.has_more);

    let page = reader.history("h", 1000, 0, 0).await;
    assert_eq!(
        offsets(&page.messages),
        (14..=25).collect::<Vec<_>>(),
        "limit capped at max_page"
    );
    assert!(page.has_more);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_bounded_and_empty_rooms_are_empty() {
    let mut config = test_config();
    config.history.max_messages = 10;
    let server = TestServer::start(config).await;
    publish_n(&server, "h", 15).await;
    let mut reader = server.login("reader").await;

    let page = reader.history("h", 100, 0, 0).await;
    assert_eq!(
        offsets(&page.messages),
        (6..=15).collect::<Vec<_>>(),
        "only the newest 10 kept"
    );
    assert!(!page.has_more, "older messages are gone, not pageable");

    let empty = reader.history("never-used", 10, 0, 0).await;
    assert!(empty.messages.is_empty());
    assert!(!empty.has_more);
    assert_eq!(empty.position.map(|p| p.offset).unwrap_or(0), 0);
    server.shutdown().await;
}
