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
    /// `redis-server` (for `switchboard-redis`).
    pub redis: PathBuf,
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
            redis: PathBuf::from("redis-server"),
        }
    }
}

/// A running target.
pub struct Running {
    /// Where it listens (the first node).
    pub addr: SocketAddr,
    /// The second node, for a two-node deployment.
    pub alt: Option<SocketAddr>,
    /// Process ids whose CPU and memory are measured: the target, or every
    /// node and Redis.
    pub pids: Vec<u32>,
    /// The processes, stopped in reverse order (nodes before their Redis).
    children: Vec<Child>,
    /// Redis's data directory, removed after the run.
    scratch: Option<PathBuf>,
}

impl Running {
    /// Stops the target: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) -> Result<()> {
        while let Some(mut child) = self.children.pop() {
            if let Some(pid) = child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                child.start_kill()?;
                child.wait().await?;
            }
        }
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

/// A Switchboard node on a free loopback port, with rate limits off, as in
/// the peers' configurations: the scenarios measure capacity, and one
/// publisher drives them.
fn switchboard_command(programs: &Programs) -> Command {
    let mut c = Command::new(&programs.switchboard);
    c.args(["serve", "--listen", "127.0.0.1:0"])
        .env("SWITCHBOARD_LOG__LEVEL", "warn")
        .env("RUST_LOG", "warn")
        .env("SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND", "0")
        .env("SWITCHBOARD_LIMITS__PUBLISHES_PER_SECOND", "0")
        .env("SWITCHBOARD_LIMITS__CONNECTS_PER_SECOND", "0");
    c
}

/// Starts `target` on a free loopback port and waits until it accepts
/// connections (bounded by `timeout`).
pub async fn start(target: Target, programs: &Programs, timeout: Duration) -> Result<Running> {
    if target == Target::SwitchboardRedis {
        return start_two_nodes(programs, timeout).await;
    }
    let mut chosen = None;
    let command = match target {
        Target::Switchboard | Target::SwitchboardRedis => switchboard_command(programs),
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
    let (child, addr) = launch(target.name(), command, chosen, timeout).await?;
    Ok(Running {
        addr,
        alt: None,
        pids: child.id().into_iter().collect(),
        children: vec![child],
        scratch: None,
    })
}

/// Starts a `redis-server` (no persistence, in a scratch directory) and two
/// Switchboard nodes using it.
async fn start_two_nodes(programs: &Programs, timeout: Duration) -> Result<Running> {
    let port = free_port()?;
    let scratch = std::env::temp_dir().join(format!("switchboard-bench-redis-{port}"));
    std::fs::create_dir_all(&scratch)?;
    let mut redis = Command::new(&programs.redis);
    redis
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--dir")
        .arg(&scratch)
        .args(["--save", "", "--appendonly", "no"]);
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (redis, _) = launch("redis-server", redis, Some(redis_addr), timeout).await?;
    let url = format!("redis://{redis_addr}");
    let mut children = vec![redis];
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let mut node = switchboard_command(programs);
        node.env("SWITCHBOARD_BROKER", "redis")
            .env("SWITCHBOARD_REDIS_URL", &url);
        let (child, addr) = launch("switchboard node", node, None, timeout).await?;
        children.push(child);
        addrs.push(addr);
    }
    Ok(Running {
        addr: addrs[0],
        alt: Some(addrs[1]),
        pids: children.iter().filter_map(Child::id).collect(),
        children,
        scratch: Some(scratch),
    })
}

/// Spawns `command` and waits until it listens: on `chosen` when given
/// (it accepts connections), otherwise on the address its output names.
async fn launch(
    name: &str,
    mut command: Command,
    chosen: Option<SocketAddr>,
    timeout: Duration,
) -> Result<(Child, SocketAddr)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
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
                    bail!("{name} exited ({status}); output:\n{}", seen.join("\n"));
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
            "{name} exited before listening; output:\n{}",
            seen.join("\n")
        )
    };
    let addr = tokio::time::timeout(timeout, wait)
        .await
        .with_context(|| format!("{name} did not start within {timeout:?}"))??;
    Ok((child, addr))
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
