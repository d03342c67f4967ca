//! `switchboard-bench`: drives one target at a time over loopback and
//! measures deliveries per second, server CPU per delivery, end-to-end
//! latency, server memory per connection and connects per second.
//!
//! ```text
//! switchboard-bench run --target switchboard --scenario fanout --subscribers 1000
//! switchboard-bench report --results target/bench/results.jsonl --out docs/BENCHMARKS.md
//! ```
//!
//! `scripts/bench.sh` runs every target side by side and writes the report.

mod client;
mod payload;
mod procfs;
mod report;
mod scenario;
mod target;
mod wire;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::client::Endpoint;
use crate::scenario::{Params, Scenario};
use crate::target::Programs;
use crate::wire::Target;

/// Command line.
#[derive(Parser)]
#[command(version, about = "Benchmarks Switchboard and its peers over loopback")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one scenario against one target and prints the outcome as JSON.
    Run {
        /// The target.
        #[arg(long, value_enum)]
        target: Target,
        /// The scenario.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Use a target that is already running at this address (with
        /// `--pid`) instead of starting one.
        #[arg(long, requires = "pid")]
        addr: Option<SocketAddr>,
        /// Process id of the already running target.
        #[arg(long, requires = "addr")]
        pid: Option<u32>,
        /// Repository root (where the targets' programs are).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
        repo: PathBuf,
        /// The Switchboard binary to start (default: the release build in
        /// `--repo`); e.g. an older build for a before/after comparison.
        #[arg(long)]
        switchboard_bin: Option<PathBuf>,
        /// Append the outcome as one JSON line to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Extra note stored with the outcome (e.g. the run number).
        #[arg(long, default_value = "")]
        tag: String,
        #[command(flatten)]
        params: Params,
    },
    /// Writes the Markdown report and the chart from collected outcomes.
    Report(report::Args),
    /// Prints this machine's CPU, memory and kernel in one line.
    Machine,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Report(args) => report::write(&args),
        Cmd::Machine => {
            println!("{}", procfs::machine());
            Ok(())
        }
        Cmd::Run {
            target,
            scenario,
            addr,
            pid,
            repo,
            switchboard_bin,
            out,
            tag,
            params,
        } => {
            raise_open_file_limit();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let outcome = runtime.block_on(async {
                let mut programs = Programs::in_repo(&repo);
                if let Some(bin) = switchboard_bin {
                    programs.switchboard = bin;
                }
                let (running, endpoint, pids) = match (addr, pid) {
                    (Some(addr), Some(pid)) => {
                        let endpoint = Endpoint {
                            target,
                            addr,
                            alt: None,
                        };
                        (None, endpoint, vec![pid])
                    }
                    _ => {
                        let running =
                            target::start(target, &programs, Duration::from_secs(30)).await?;
                        let endpoint = Endpoint {
                            target,
                            addr: running.addr,
                            alt: running.alt,
                        };
                        let pids = running.pids.clone();
                        (Some(running), endpoint, pids)
                    }
                };
                let result = scenario::run(scenario, endpoint, &pids, &params).await;
                if let Some(running) = running {
                    running.stop(Duration::from_secs(5)).await?;
                }
                result
            })?;
            let mut value = serde_json::to_value(&outcome)?;
            value["tag"] = serde_json::Value::String(tag);
            value["params"] = serde_json::to_value(&params)?;
            let line = serde_json::to_string(&value)?;
            println!("{line}");
            if let Some(path) = out {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                writeln!(file, "{line}")?;
            }
            Ok(())
        }
    }
}

/// Raises the soft open-file limit to the hard one, for us and the targets we
/// start (they inherit it).
fn raise_open_file_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}
