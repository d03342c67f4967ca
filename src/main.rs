//! The `switchboard` binary: parses the command line, sets up logging, binds
//! and hands over to [`switchboard::server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchboard::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Schema-first real-time API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file. Every key is optional.
    #[arg(long, env = "SWITCHBOARD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on; overrides `listen` from the file and environment.
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
}

/// mimalloc instead of the system allocator: glibc's malloc keeps the memory
/// of a reconnect storm (thousands of connections' buffers freed at once) in
/// its per-thread arenas, so a node stayed ~17 MiB above its baseline after
/// every client had left; mimalloc returns freed pages to the system.
/// `switchboard-bench run --scenario churn` measures it (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => ServeArgs {
            config: args.config.or(cli.serve.config),
            listen: args.listen.or(cli.serve.listen),
        },
        None => cli.serve,
    };
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    init_tracing(&config);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        println!("switchboard listening on http://{addr}");
        tracing::info!(
            %addr,
            development = config.development,
            websocket = %format!("ws://{addr}/ws"),
            "listening"
        );
        switchboard::server::run(listener, config, switchboard::shutdown::signal()).await?;
        tracing::info!("shut down");
        Ok(())
    })
}

/// Log directives that always apply, whatever `RUST_LOG` says.
const QUIET_DEPENDENCIES: [&str; 6] = [
    "tungstenite=info",
    "tokio_tungstenite=info",
    "hyper=info",
    "hyper_util=info",
    "redis=info",
    "rustls=info",
];

fn init_tracing(config: &Config) {
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.log.level.as_str()));
    // These libraries log frame payloads, commands or headers (message
    // contents, tokens, keys) below `info`; keep them out of any log.
    for directive in QUIET_DEPENDENCIES {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
