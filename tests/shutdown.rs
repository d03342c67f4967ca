//! Graceful shutdown, in process and of the real binary on SIGTERM/SIGINT;
//! the binary's startup line and `--config`.

#[macro_use]
mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_closes_every_connection_with_1001() {
    let server = TestServer::start_default().await;
    let addr = server.addr;
    let mut a = server.login("a").await;
    a.join("r").await;
    let mut b = server.login("b").await;
    let mut anonymous = server.client().await; // upgraded, never connected

    let stopping = tokio::spawn(server.shutdown());

    for c in [&mut a, &mut b] {
        let (frames, code) = c.expect_close_with_frames().await;
        assert_eq!(code, 1001);
        let d = last_disconnect(&frames);
        assert_eq!(d.code, 1001);
        assert!(d.reconnect, "going away: reconnect elsewhere");
    }
    assert_eq!(anonymous.expect_close().await, 1001);

    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("run returned")
        .expect("shutdown task");
    // The listener is gone.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "server still accepts connections after run returned"
    );
}

async fn binary_shuts_down_gracefully_on(signal: &str) {
    let mut server = ServerProcess::spawn(&[]);
    let mut c = Client::connect(&server.ws_url(), None).await;
    c.login("alice").await;
    c.join("r").await;
    assert_eq!(c.publish("r", "before shutdown").await.offset, 1);
    assert_eq!(c.next_message().await.offset, 1);
    let mut idle = Client::connect(&server.ws_url(), None).await;

    server.signal(signal);
    let (frames, code) = c.expect_close_with_frames().await;
    assert_eq!(code, 1001, "SIG{signal}: close code");
    let d = last_disconnect(&frames);
    assert_eq!(d.code, 1001);
    assert!(d.reconnect);
    assert_eq!(idle.expect_close().await, 1001);

    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "SIG{signal}: exit status {status:?}; stderr:\n{}",
        server.stderr()
    );
    let mut rest = String::new();
    server
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut rest)
        .expect("read stdout");
    assert_eq!(rest, "", "exactly one line on stdout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sigterm_closes_connections_with_1001_and_exits_0() {
    binary_shuts_down_gracefully_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sigint_closes_connections_with_1001_and_exits_0() {
    binary_shuts_down_gracefully_on("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reads_its_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("switchboard.toml");
    std::fs::write(
        &path,
        "development = false\n\
         [auth]\n\
         jwt_secret = \"from-the-file\"\n\
         [limits]\n\
         max_message_size = 1024\n",
    )
    .expect("write config");
    let mut server = ServerProcess::spawn(&["--config", path.to_str().expect("utf-8 path")]);

    // Anonymous logins are refused: development = false came from the file.
    let mut anon = Client::connect(&server.ws_url(), None).await;
    let reply = anon.request(connect_name("anon")).await;
    assert_error(&reply, reply.id, ErrorCode::Unauthorized);
    assert_eq!(anon.expect_close().await, 1008);

    // A token signed with the file's secret works, and the limit applies.
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "filed"}),
        &jsonwebtoken::EncodingKey::from_secret(b"from-the-file"),
    )
    .expect("sign");
    let mut c = Client::connect(&server.ws_url(), None).await;
    let connect = expect_kind!(c.connect_token(&token).await, Kind::Connect);
    assert_eq!(connect.user, "filed");
    assert_eq!(connect.max_message_size, 1024);

    server.signal("TERM");
    assert_eq!(c.expect_close().await, 1001);
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_rejects_a_missing_config_file() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--config", "/nonexistent/switchboard.toml"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn switchboard");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("switchboard kept running with a missing config file");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success(), "a missing config file is an error");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    assert_eq!(out, "", "no listening line when startup fails");
}
