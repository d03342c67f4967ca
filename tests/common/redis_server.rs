//! A real `redis-server` for multi-node tests: its own free loopback port
//! and temporary directory, append-only persistence with an fsync per write
//! (so a restart keeps everything acknowledged), stopped when dropped.
//!
//! The binary is `redis-server` from `PATH` (or `SWITCHBOARD_TEST_REDIS_SERVER`);
//! `scripts/test.sh` installs it with apt-get when it is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ServerProcess;

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("SWITCHBOARD_TEST_REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "redis-server is not installed: run scripts/test.sh (it installs it), \
             or `apt-get install redis-server`, or set SWITCHBOARD_TEST_REDIS_SERVER"
        )
    })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a fresh server and waits until it answers.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            binary: binary(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self
                .try_command("PING")
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the first line of the reply.
    pub fn try_command(&self, command: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    pub fn command(&self, command: &str) -> String {
        self.try_command(command)
            .unwrap_or_else(|e| panic!("redis command {command:?} failed: {e}"))
    }

    /// Stops the server gracefully (SIGTERM: it flushes the append-only
    /// file) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .expect("kill -TERM redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().expect("try_wait").is_none() {
                if Instant::now() > deadline {
                    child.kill().ok();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Freezes the server with SIGSTOP: its sockets stay open and nothing
    /// is answered, as with a hung process. [`RedisServer::resume`] undoes it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a server frozen by [`RedisServer::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill redis-server");
        assert!(status.success(), "kill {signal} redis-server failed");
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A `switchboard` node using this Redis, with rate limits off (the
    /// tests publish in bulk) and `extra` environment overrides.
    pub fn node(&self, extra: &[(&str, &str)]) -> ServerProcess {
        let url = self.url();
        let mut vars = vec![
            ("SWITCHBOARD_BROKER", "redis"),
            ("SWITCHBOARD_REDIS_URL", url.as_str()),
            ("SWITCHBOARD_LIMITS__PUBLISHES_PER_SECOND", "0"),
            ("SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND", "0"),
            ("SWITCHBOARD_LIMITS__CONNECTS_PER_SECOND", "0"),
        ];
        vars.extend_from_slice(extra);
        ServerProcess::spawn_with_env(&[], &vars)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
