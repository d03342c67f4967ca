//! Graceful shutdown, in process and of the real binary on SIGTERM/SIGINT;
//! the binary's startup line and `--config`.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// The real binary, killed on drop if a test fails half-way.
struct ServerProcess {
    child: Child,
    addr: String,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    fn spawn(extra: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra);
        for (key, _) in std::env::vars() {
            if key.starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard binary");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr");
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .expect("stderr lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        // Read the first line on a thread so a silent binary cannot hang us.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let n = reader.read_line(&mut line);
            tx.send((n.map_err(|e| e.to_string()), line, reader)).ok();
        });
        let mut process = ServerProcess {
            child,
            addr: String::new(),
            stdout: None,
            stderr,
        };
        let (n, line, reader) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(got) => got,
            Err(_) => panic!("no startup line within 30 s; stderr:\n{}", process.stderr()),
        };
        assert!(
            matches!(n, Ok(len) if len > 0),
            "stdout closed before the startup line ({n:?}); stderr:\n{}",
            process.stderr()
        );
        let addr = line
            .trim_end()
            .strip_prefix("switchboard listening on http://")
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
        let parsed: std::net::SocketAddr = addr.parse().expect("ADDR is IP:port");
        assert_eq!(parsed.ip().to_string(), "127.0.0.1");
        assert_ne!(parsed.port(), 0, "the actual bound port is printed");
        process.addr = addr.to_owned();
        process.stdout = Some(reader);
        process
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; returns its status.
    async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "switchboard did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
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
