//! Keep-alive: server pings, idle timeout (4002).

mod common;

use std::time::Duration;

use common::*;

fn keepalive_config() -> switchboard::config::Config {
    let mut config = test_config();
    config.limits.ping_interval = Duration::from_millis(100);
    config.limits.idle_timeout = Duration::from_millis(400);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_pings_stays_connected() {
    let server = TestServer::start(keepalive_config()).await;
    let mut c = server.login("alive").await;
    // Keep reading (tungstenite answers the server's pings) but send nothing
    // for several idle timeouts: no frame and no close may arrive.
    match c.rx.next_raw_timeout(Duration::from_millis(1500)).await {
        Err(ReadError::TimedOut(_)) => {}
        other => panic!("expected silence while idle but answering pings, got {other:?}"),
    }
    c.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_with_4002() {
    let mut config = keepalive_config();
    // The server waits this long for the Close reply before dropping TCP.
    // Keep it longer than the sleep below, so that our client, whose reads
    // first flush pongs for the pings it missed, finds the socket still open
    // and reads the Disconnect and Close frames.
    config.limits.close_timeout = Duration::from_secs(5);
    let server = TestServer::start(config).await;
    let mut c = server.login("silent").await;
    // Neither read (so no pongs) nor write for well over the idle timeout.
    // The sleep creates the dead client; the close code decides the test.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (frames, code) = c.expect_close_with_frames().await;
    assert_eq!(code, 4002);
    let d = last_disconnect(&frames);
    assert_eq!(d.code, 4002);
    assert!(d.reconnect, "an idle timeout may reconnect");
    server.shutdown().await;
}
