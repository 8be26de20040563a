//! The `lastseen` command line: one binary for every stage.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use lastseen::bus::KafkaConfig;
use lastseen::inputs::InputPlan;
use lastseen::run::{self, Setup};

// A run allocates and frees gigabytes in large blocks (pages, column builders, join tables).
// The system allocator hands each back to the kernel and faults it in again zeroed, which
// cost a million-endpoint run as much time in the kernel as in the work itself.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages make every such fault zero 2 MiB: on a million-endpoint run they
/// tripled the time spent in the kernel (6.6 s against 2.7 s of system time).
fn disable_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    #[cfg(target_os = "linux")]
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "Could not turn transparent huge pages off.");
    }
}

/// Finds Sophos Central endpoints whose computers are retired in Active Directory, and emits
/// candidate-deletion events for a SIEM with the evidence behind each decision.
///
/// A candidate's decision is `delete` only when nothing argues against it; otherwise it is
/// `manual_review` with every reason that applies.
#[derive(Debug, Parser)]
#[command(name = "lastseen", version, propagate_version = true)]
struct Cli {
    /// More log detail on standard error (-v debug, -vv trace). LASTSEEN_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only errors on standard error.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Correlate Central pages, LDIF exports and the action log into candidate events.
    ///
    /// Without --config it runs on the demo estate built into the binary (the same files as
    /// fixtures/demo), so it works anywhere with no Kafka or directory. Candidates go to the
    /// config's output path (standard output by default); a summary of counts by decision and
    /// reason goes to standard error. Bad records are skipped, counted and listed; they never
    /// lead to a `delete`.
    Run(RunArgs),

    /// Ad hoc SQL over the tables a run builds.
    ///
    /// Tables: endpoints, computers, users, groups, memberships, actions, rejects, domains,
    /// tenant_domains and candidates. With no QUERY, statements separated by `;` are read from
    /// standard input.
    Sql(SqlArgs),

    /// Write a synthetic estate (Central pages, LDIF, action log and a config) to a folder.
    ///
    /// The mix is realistic: retired computers, VIP users reached through nested groups,
    /// duplicate hostnames, OS build mismatches, FQDN and over-long NetBIOS names, actions. The
    /// same seed always gives the same files.
    Generate(GenerateArgs),

    /// Publish Central pages, LDIF exports and the action log onto the Kafka topics.
    ///
    /// Each tenant folder of Central pages becomes a snapshot (one record per endpoint keyed
    /// by tenant id, then a snapshot-complete marker); each computer, user and group of an
    /// LDIF export an upsert change record keyed by domain; each action line a record. Without
    /// --config it publishes the demo estate. It fails unless every record was acknowledged
    /// by all in-sync replicas, and names any entry it could not turn into a record.
    Publish(PublishArgs),

    /// Stream the topics into state and produce candidate events onto the SIEM topic.
    ///
    /// State is rebuilt by reading the topics from the beginning. After each complete Central
    /// snapshot (once input settles) and every `correlate_interval_secs`, the same SQL as
    /// `run` decides, and the events go to `<prefix>.candidates` keyed by endpoint id. Offsets
    /// are committed only after the events they caused were acknowledged. Several instances in
    /// one consumer group split the tenants; each reads all of AD and the actions. SIGTERM or
    /// Ctrl-C stops it cleanly.
    Correlate(CorrelateArgs),

    /// Fetch inputs from their live sources into the files `run` reads, or onto the Kafka
    /// topics `correlate` reads (--to kafka).
    Collect {
        #[command(subcommand)]
        source: CollectSource,
    },

    /// Serve a recorded or generated estate as a live API, to rehearse against.
    Simulate {
        #[command(subcommand)]
        service: SimulateService,
    },
}

#[derive(Debug, Subcommand)]
enum CollectSource {
    /// Every reachable Sophos Central tenant's endpoint list, page by page.
    ///
    /// Credentials come from LASTSEEN_CENTRAL_CLIENT_ID and LASTSEEN_CENTRAL_CLIENT_SECRET, or
    /// from the files the config's [central] section names. Each tenant gets a folder of
    /// page-NNNNN.json files and a manifest.json saying whether its snapshot is complete; with
    /// --to kafka its endpoints and a snapshot-complete marker go onto the Central topic
    /// instead. Exit status: 0 when every tenant is complete, 2 when some tenant failed (its
    /// manifest or marker says why), 1 when nothing could be collected or a record could not
    /// be delivered.
    Central(lastseen::central::collect::CentralCollectArgs),

    // The help text is the doc comment of `CollectArgs`, next to the code it describes.
    Ad(lastseen::ad::CollectArgs),
}

#[derive(Debug, Subcommand)]
enum SimulateService {
    /// The Sophos Central API (token, whoami, tenants, endpoints) on 127.0.0.1.
    ///
    /// Prints its base URL on standard output, then serves until interrupted. Point
    /// `central.auth_url` at <URL>/api/v2/oauth2/token and `central.global_url` at <URL>.
    Central(Box<lastseen::central::simulator::SimulateCentralArgs>),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The config file; without it, the built-in demo estate.
    #[arg(short, long, env = "LASTSEEN_CONFIG")]
    config: Option<PathBuf>,

    /// Evaluate as of this RFC 3339 instant instead of now (or the config's `as_of`).
    #[arg(long, value_name = "RFC3339")]
    as_of: Option<DateTime<Utc>>,

    /// Write rejected records here as JSON lines (file, record, field, problem, raw text).
    #[arg(long, value_name = "PATH")]
    rejects: Option<PathBuf>,

    /// Write candidates here instead of the config's output path; `-` is standard output.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SqlArgs {
    /// The config file; without it, the built-in demo estate.
    #[arg(short, long, env = "LASTSEEN_CONFIG")]
    config: Option<PathBuf>,

    /// Evaluate as of this RFC 3339 instant instead of now (or the config's `as_of`).
    #[arg(long, value_name = "RFC3339")]
    as_of: Option<DateTime<Utc>>,

    /// The SQL to run; without it, statements are read from standard input.
    query: Option<String>,
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// How many Central endpoints to write.
    #[arg(long, default_value_t = 1000)]
    endpoints: usize,

    /// How many tenants share them.
    #[arg(long, default_value_t = 4)]
    tenants: usize,

    /// The seed; the same seed gives the same estate.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// The folder to write into; it is created if missing.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct KafkaArgs {
    /// The config file; its `[kafka]` section says how to reach Kafka.
    #[arg(short, long, env = "LASTSEEN_CONFIG")]
    config: Option<PathBuf>,

    /// Bootstrap brokers (host:port, comma-separated), instead of the config's.
    #[arg(long, env = "LASTSEEN_KAFKA_BROKERS", value_delimiter = ',')]
    brokers: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    #[command(flatten)]
    kafka: KafkaArgs,

    /// Create missing topics first, with this many partitions each.
    #[arg(long, value_name = "PARTITIONS")]
    create_topics: Option<i32>,
}

#[derive(Debug, clap::Args)]
struct CorrelateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,

    /// The consumer group, instead of the config's `group_id`.
    #[arg(long)]
    group_id: Option<String>,

    /// Evaluate as of this RFC 3339 instant instead of now (or the config's `as_of`).
    #[arg(long, value_name = "RFC3339")]
    as_of: Option<DateTime<Utc>>,

    /// Serve Prometheus metrics on this address (for example 127.0.0.1:9464) at /metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Stop once everything on the topics was read and correlated, instead of running on.
    #[arg(long)]
    stop_when_idle: bool,
}

/// The config and Kafka settings a Kafka command runs with: the config's `[kafka]` section,
/// then --brokers, then the environment.
fn kafka_setup(
    args: &KafkaArgs,
) -> anyhow::Result<(lastseen::config::Config, InputPlan, KafkaConfig)> {
    let setup = Setup::from_arg(args.config.clone());
    let (config, plan) = setup.load()?;
    let kafka =
        KafkaConfig::resolve(config.kafka.as_ref(), &args.brokers).map_err(anyhow::Error::msg)?;
    Ok((config, plan, kafka))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lastseen::logging::init(cli.verbose, cli.quiet);
    disable_huge_pages();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lastseen: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(dispatch(cli.command, cli.quiet)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lastseen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, quiet: bool) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => {
            let setup = Setup::from_arg(args.config);
            let report = run::run(
                &setup,
                args.as_of,
                args.output.as_deref(),
                args.rejects.as_deref(),
            )
            .await?;
            if !quiet {
                eprint!("{}", report.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql(args) => {
            let setup = Setup::from_arg(args.config);
            let correlation = run::correlate(&setup, args.as_of).await?;
            let text = match args.query {
                Some(query) => query,
                None => {
                    use std::io::IsTerminal;
                    if std::io::stdin().is_terminal() {
                        eprintln!("Reading SQL from standard input; end it with Ctrl-D.");
                    }
                    std::io::read_to_string(std::io::stdin())?
                }
            };
            lastseen::sql::print(&correlation.ctx, &text).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            let options = lastseen::generate::Options {
                endpoints: args.endpoints,
                tenants: args.tenants,
                seed: args.seed,
            };
            let written = lastseen::generate::write(&args.out, &options)?;
            if !quiet {
                eprintln!("{written}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Collect {
            source: CollectSource::Central(args),
        } => lastseen::central::collect::run(args).await,
        Command::Collect {
            source: CollectSource::Ad(args),
        } => {
            lastseen::ad::run_collect(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            service: SimulateService::Central(args),
        } => lastseen::central::simulator::run(*args).await,
        Command::Publish(args) => {
            let (_, plan, kafka) = kafka_setup(&args.kafka)?;
            if let Some(partitions) = args.create_topics {
                lastseen::bus::kafka::ensure_topics(&kafka, partitions).await?;
            }
            let bus = lastseen::bus::kafka::KafkaBus::new(&kafka)?;
            let published = lastseen::bus::publish::publish(&bus, &kafka.topics(), &plan).await?;
            if !quiet {
                eprintln!("{published}");
            }
            if !published.unpublished.is_empty() {
                for problem in &published.unpublished {
                    eprintln!("lastseen: not published: {problem}");
                }
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Correlate(args) => {
            let (config, _, mut kafka) = kafka_setup(&args.kafka)?;
            if let Some(group_id) = args.group_id {
                kafka.group_id = group_id;
            }
            let metrics = lastseen::bus::metrics::Metrics::new();
            if let Some(addr) = args.metrics_addr {
                lastseen::bus::metrics::serve(addr, metrics.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
            }
            let options = lastseen::bus::correlator::Options {
                config,
                kafka,
                as_of: args.as_of,
                metrics,
                stop_when_idle: args.stop_when_idle,
            };
            let summary = lastseen::bus::correlator::run(options, shutdown_signal()).await?;
            if !quiet {
                eprintln!(
                    "read {} records, sent {} dead letters ({} more were on the dead-letter \
                     topic already), ran {} correlations, produced {} candidate events",
                    summary.records_in,
                    summary.dead_letters,
                    summary.dead_letters_known,
                    summary.correlations,
                    summary.events_out
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
