//! Starting and stopping the targets: each one a child process on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::wire::Target;

/// Where the targets' programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    /// The repository root.
    pub repo: PathBuf,
    /// The Switchboard server binary (release build).
    pub switchboard: PathBuf,
    /// The yardstick binary.
    pub yardstick: PathBuf,
    /// The Centrifugo binary.
    pub centrifugo: PathBuf,
    /// `node`.
    pub node: PathBuf,
}

impl Programs {
    /// The default locations inside a checkout at `repo`.
    pub fn in_repo(repo: &Path) -> Self {
        Self {
            repo: repo.to_owned(),
            switchboard: repo.join("target/release/switchboard"),
            yardstick: repo.join("target/release/yardstick"),
            centrifugo: repo.join(".tools/bench/bin/centrifugo"),
            node: PathBuf::from("node"),
        }
    }
}

/// A running target.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id (the process whose CPU and memory are measured).
    pub pid: u32,
    child: Child,
}

impl Running {
    /// Stops the target: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) -> Result<()> {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.child.start_kill()?;
            self.child.wait().await?;
        }
        Ok(())
    }
}

/// Starts `target` on a free loopback port and waits until it accepts
/// connections (bounded by `timeout`).
pub async fn start(target: Target, programs: &Programs, timeout: Duration) -> Result<Running> {
    let mut chosen = None;
    let mut command = match target {
        Target::Switchboard => {
            let mut c = Command::new(&programs.switchboard);
            // Rate limits off, as in the peers' configurations: the
            // scenarios measure capacity, and one publisher drives them.
            c.args(["serve", "--listen", "127.0.0.1:0"])
                .env("SWITCHBOARD_LOG__LEVEL", "warn")
                .env("RUST_LOG", "warn")
                .env("SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND", "0")
                .env("SWITCHBOARD_LIMITS__PUBLISHES_PER_SECOND", "0")
                .env("SWITCHBOARD_LIMITS__CONNECTS_PER_SECOND", "0");
            c
        }
        Target::Yardstick => {
            let mut c = Command::new(&programs.yardstick);
            c.args(["--listen", "127.0.0.1:0"]);
            c
        }
        Target::Centrifugo => {
            // Centrifugo does not report the port it bound: pick one.
            let port = free_port()?;
            chosen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
            let config =
                std::path::absolute(programs.repo.join("bench/peers/centrifugo/config.json"))?;
            if !config.is_file() {
                bail!("missing {}", config.display());
            }
            let mut c = Command::new(&programs.centrifugo);
            c.arg("--config")
                .arg(&config)
                .args(["--http_server.address", "127.0.0.1"])
                .arg("--http_server.port")
                .arg(port.to_string());
            c
        }
        Target::Socketio => {
            let mut c = Command::new(&programs.node);
            c.arg(programs.repo.join("bench/peers/socketio/server.js"))
                .env("PORT", "0")
                .env("NODE_ENV", "production");
            c
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", target.name()))?;
    let pid = child.id().context("target exited at once")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    for stream in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Keep draining after startup so the pipe never fills up.
                let _ = tx.try_send(line);
            }
        });
    }
    drop(tx);
    let wait = async {
        if let Some(addr) = chosen {
            // Ready once it accepts connections (its output stays quiet).
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Ok(addr);
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let mut seen = Vec::new();
                    while let Ok(line) = rx.try_recv() {
                        seen.push(line);
                    }
                    bail!(
                        "{} exited ({status}); output:\n{}",
                        target.name(),
                        seen.join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut seen = Vec::new();
        while let Some(line) = rx.recv().await {
            if let Some(addr) = listening_addr(&line) {
                return Ok(addr);
            }
            seen.push(line);
        }
        bail!(
            "{} exited before listening; output:\n{}",
            target.name(),
            seen.join("\n")
        )
    };
    let addr = tokio::time::timeout(timeout, wait)
        .await
        .with_context(|| format!("{} did not start within {timeout:?}", target.name()))??;
    Ok(Running { addr, pid, child })
}

/// Parses `... listening on http://127.0.0.1:PORT` (or `ws://`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    let rest = rest
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("ws://");
    let end = rest.find(['/', ' ']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A loopback port that is free right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_lines() {
        assert_eq!(
            listening_addr("switchboard listening on http://127.0.0.1:8080"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            listening_addr("yardstick listening on ws://127.0.0.1:9/"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(listening_addr("nothing here"), None);
    }
}
