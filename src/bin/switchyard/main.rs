//! The `switchyard` command line. Thin: flags and wiring; the work lives in the library
//! (`switchyard::server`, `switchyard::config`, `switchyard::cli`).

mod alloc;
mod serve;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchyard::auth::{HashAlgorithm, PasswordHash};
use switchyard::cli::{self, parse_key_value, Target};
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
    /// Run the broker: AMQP 0-9-1 and the HTTP admin API.
    Serve(serve::ServeArgs),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Publish a message through an exchange (over the admin API).
    Publish {
        #[command(flatten)]
        args: cli::PublishArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Take messages from a queue (over the admin API).
    Consume {
        #[command(flatten)]
        args: cli::ConsumeArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Queues: list, show, declare, delete, purge, ack, nack.
    Queue {
        #[command(subcommand)]
        cmd: cli::QueueCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Exchanges and bindings.
    Exchange {
        #[command(subcommand)]
        cmd: cli::ExchangeCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Plugins: test offline, or deploy/list/rollback/remove/stats on a running broker.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Dead letters: list with reasons, redrive.
    Dlq {
        #[command(subcommand)]
        cmd: cli::DlqCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Hash a password for a definitions file's `password_hash` (RabbitMQ's format). Reads the
    /// password from the first line of stdin, so it stays out of shell history.
    HashPassword {
        /// `rabbit_password_hashing_sha256` or `rabbit_password_hashing_sha512`.
        #[arg(long, default_value = "rabbit_password_hashing_sha256")]
        algorithm: String,
    },
    /// Export or import definitions (exchanges, queues, bindings, plugins).
    Definitions {
        #[command(subcommand)]
        cmd: cli::DefinitionsCommand,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (defaults, file, environment, flags) as TOML.
    Print(serve::ConfigArgs),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run JSON-lines messages through a plugin offline and print one JSON verdict per line.
    Test(TestArgs),
    #[command(flatten)]
    Remote(cli::PluginRemoteCommand),
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

fn hash_password(algorithm: &str) -> anyhow::Result<()> {
    let algorithm = HashAlgorithm::from_name(algorithm)?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        anyhow::bail!("no password on stdin: run `echo 'PASSWORD' | switchyard hash-password`");
    }
    println!("{}", PasswordHash::new(password, algorithm).encode());
    eprintln!("hashing_algorithm: {}", algorithm.name());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let out = match cli.command {
        Some(Command::Serve(args)) => return serve::serve(args),
        Some(Command::Config(ConfigCommand::Print(args))) => {
            print!("{}", serve::resolve(&args)?.to_toml());
            return Ok(());
        }
        Some(Command::Plugin {
            cmd: PluginCommand::Test(args),
            ..
        }) => {
            serve::init_logs(switchyard::config::LogFormat::Text);
            return plugin_test(args);
        }
        Some(Command::Plugin {
            cmd: PluginCommand::Remote(cmd),
            target,
        }) => cli::plugin(&target, &cmd),
        Some(Command::Publish { args, target }) => cli::publish(&target, &args),
        Some(Command::Consume { args, target }) => cli::consume(&target, &args),
        Some(Command::Queue { cmd, target }) => cli::queue(&target, &cmd),
        Some(Command::Exchange { cmd, target }) => cli::exchange(&target, &cmd),
        Some(Command::Dlq { cmd, target }) => cli::dlq(&target, &cmd),
        Some(Command::Definitions { cmd, target }) => cli::definitions(&target, &cmd),
        Some(Command::HashPassword { algorithm }) => return hash_password(&algorithm),
        None => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
    };
    match out {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e) => {
            eprintln!("switchyard: {e}");
            std::process::exit(1);
        }
    }
}
