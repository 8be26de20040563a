//! The `lastseen` command line: one binary for every stage.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use lastseen::run::{self, Setup};

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

    /// Fetch inputs from their live sources into the files `run` reads (or change records).
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
    /// page-NNNNN.json files and a manifest.json saying whether its snapshot is complete. Exit
    /// status: 0 when every tenant is complete, 2 when some tenant failed (its manifest says
    /// why), 1 when nothing could be collected.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    lastseen::logging::init(cli.verbose, cli.quiet);

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
    }
}
