//! The `switchyard` command line. Thin: parsing and wiring only; the work lives in the library.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchyard::plugin::harness::{self, TestOptions};
use switchyard::plugin::{PluginKind, PluginLimits};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A message broker programmable with WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the broker: open the data directory and serve AMQP 0-9-1.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The data directory (created when missing).
    #[arg(long, default_value = "./switchyard-data", env = "SWITCHYARD_DATA_DIR")]
    data_dir: PathBuf,
    /// Where the AMQP listener binds.
    #[arg(long, default_value = "127.0.0.1:5673", env = "SWITCHYARD_AMQP_LISTEN")]
    amqp_listen: std::net::SocketAddr,
    /// A directory of plugins to deploy and watch for hot reload: every `<name>.wasm` is plugin
    /// `<name>`, with optional config in `<name>.config.json`.
    #[arg(long, env = "SWITCHYARD_PLUGINS_DIR")]
    plugins_dir: Option<PathBuf>,
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    use switchyard::amqp::ServerConfig;
    use switchyard::broker::{Broker, BrokerConfig};

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let broker = Arc::new(Broker::open(&args.data_dir, BrokerConfig::default())?);
        let _watcher = match &args.plugins_dir {
            Some(dir) => {
                for (name, result) in broker.plugins().scan_dir(dir) {
                    match result {
                        Ok(version) => eprintln!("switchyard: plugin {name} at {version}"),
                        Err(e) => eprintln!("switchyard: plugin {name} not loaded: {e}"),
                    }
                }
                let watcher = broker.plugins().watch_dir(dir, Duration::from_secs(1))?;
                eprintln!("switchyard: watching {} for plugin changes", dir.display());
                Some(watcher)
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(args.amqp_listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}: {e}; choose another address with --amqp-listen",
                    args.amqp_listen
                )
            })?;
        eprintln!("switchyard: AMQP on {}", listener.local_addr()?);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        switchyard::amqp::run(listener, broker, ServerConfig::default(), shutdown).await;
        Ok(())
    })
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run JSON-lines messages through a plugin offline and print one JSON verdict per line.
    Test(TestArgs),
}

#[derive(Debug, Args)]
struct TestArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// Messages, one JSON object per line (`-` for stdin). Format: see `plugin::harness` docs
    /// or the README.
    #[arg(long)]
    input: PathBuf,
    /// Deployment config, `key=value`; repeatable.
    #[arg(long = "config", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// The world to check against (default: inferred from the component's export).
    #[arg(long)]
    world: Option<PluginKind>,
    /// Per-call deadline in milliseconds.
    #[arg(long, default_value_t = PluginLimits::default().timeout.as_millis() as u64)]
    timeout_ms: u64,
    /// Memory cap in MiB.
    #[arg(long, default_value_t = PluginLimits::default().max_memory_bytes >> 20)]
    max_memory_mib: usize,
    /// Output cap in bytes.
    #[arg(long, default_value_t = PluginLimits::default().max_output_bytes)]
    max_output_bytes: usize,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn plugin_test(args: TestArgs) -> anyhow::Result<()> {
    let opts = TestOptions {
        config: args.config.into_iter().collect::<BTreeMap<_, _>>(),
        kind: args.world,
        limits: Some(PluginLimits {
            max_memory_bytes: args.max_memory_mib << 20,
            timeout: Duration::from_millis(args.timeout_ms),
            max_output_bytes: args.max_output_bytes,
        }),
    };
    let stdout = std::io::stdout().lock();
    let summary = if args.input.as_os_str() == "-" {
        harness::run_file(&args.file, std::io::stdin().lock(), stdout, opts)?
    } else {
        let input = std::fs::File::open(&args.input)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
        harness::run_file(&args.file, BufReader::new(input), stdout, opts)?
    };
    eprintln!("{} messages, {} errors", summary.messages, summary.errors);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Some(Command::Plugin(PluginCommand::Test(args))) => plugin_test(args),
        Some(Command::Serve(args)) => serve(args),
        None => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
