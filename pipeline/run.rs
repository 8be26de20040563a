//! `lastseen run` and `lastseen sql`: read the estate, correlate it, and report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

use crate::config::Config;
use crate::correlate;
use crate::inputs::{Estate, InputPlan, Reject};
use crate::output::summary::Summary;
use crate::output::{self, CandidateEvent};

/// Rejects listed one by one on standard error; the rest are counted (and all go to
/// `--rejects`).
const REJECTS_LISTED: usize = 20;

/// Where a run takes its config and inputs from.
#[derive(Debug, Clone)]
pub enum Setup {
    /// The demo estate built into the binary.
    Demo,
    /// A config file and the inputs it names.
    File(PathBuf),
}

impl Setup {
    pub fn from_arg(config: Option<PathBuf>) -> Setup {
        config.map_or(Setup::Demo, Setup::File)
    }

    pub fn load(&self) -> anyhow::Result<(Config, InputPlan)> {
        match self {
            Setup::Demo => Ok((crate::demo::config()?, crate::demo::inputs())),
            Setup::File(path) => {
                let config = Config::load(path)?;
                let plan = InputPlan::from_config(&config);
                Ok((config, plan))
            }
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Report {
    pub events: Vec<CandidateEvent>,
    pub summary: Summary,
    pub rejects: Vec<Reject>,
    pub as_of: DateTime<Utc>,
}

/// A correlated estate: the session with every table and view, and what was read.
pub struct Correlation {
    pub ctx: SessionContext,
    pub estate: Estate,
    pub config: Config,
    pub as_of: DateTime<Utc>,
}

/// Reads and correlates. `as_of` wins over the config's; without either it is now.
pub async fn correlate(setup: &Setup, as_of: Option<DateTime<Utc>>) -> anyhow::Result<Correlation> {
    let (config, plan) = setup.load()?;
    let as_of = as_of.or(config.as_of).unwrap_or_else(Utc::now);
    let progress = Progress::start();

    progress.stage("reading inputs");
    let started = Instant::now();
    let estate = tokio::task::spawn_blocking(move || Estate::load(&plan)).await??;
    info!(
        endpoints = estate.central.records,
        ldif_entries = estate.directory.entries,
        actions = estate.actions.records,
        rejects = estate.rejects.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Read the inputs."
    );

    progress.stage("correlating");
    let started = Instant::now();
    let ctx = correlate::session(&estate, &config, as_of).await?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Correlated."
    );
    progress.finish();

    Ok(Correlation {
        ctx,
        estate,
        config,
        as_of,
    })
}

/// `lastseen run`: correlate, write the events, and return them with the summary.
pub async fn run(
    setup: &Setup,
    as_of: Option<DateTime<Utc>>,
    output_override: Option<&Path>,
    rejects_path: Option<&Path>,
) -> anyhow::Result<Report> {
    let correlation = correlate(setup, as_of).await?;
    let Correlation {
        ctx,
        estate,
        config,
        as_of,
    } = correlation;

    report_rejects(&estate.rejects, rejects_path)?;

    let batches = correlate::candidates(&ctx).await?;
    let events = output::events(&batches, as_of)?;
    let path = output_override.unwrap_or(&config.output.path);
    output::write_events(path, &events)?;

    let mut summary = Summary::new(&estate, &events);
    let left_out = correlate::run_script(
        &ctx,
        "left-out counts",
        "SELECT
            count(*) FILTER (WHERE e.already_deleted),
            count(*) FILTER (WHERE NOT e.already_deleted AND e.ticket_open),
            count(*) FILTER (WHERE NOT e.already_deleted AND NOT e.ticket_open
                AND e.days_inactive < p.min_inactive_days)
         FROM evaluated e CROSS JOIN policy p",
    )
    .await?;
    if let Some(batch) = left_out.first().filter(|batch| batch.num_rows() == 1) {
        let count = |column: usize| {
            batch
                .column(column)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map_or(0, |array| array.value(0).max(0) as u64)
        };
        summary.left_out_deleted = count(0);
        summary.left_out_ticket = count(1);
        summary.left_out_recent = count(2);
    }

    info!(
        candidates = events.len(),
        delete = summary.by_decision.get("delete").copied().unwrap_or(0),
        manual_review = summary.by_decision.get("manual_review").copied().unwrap_or(0),
        output = %path.display(),
        "Wrote candidate events."
    );
    Ok(Report {
        events,
        summary,
        rejects: estate.rejects,
        as_of,
    })
}

/// Lists rejects on standard error and, when asked, writes all of them as JSON lines.
fn report_rejects(rejects: &[Reject], path: Option<&Path>) -> anyhow::Result<()> {
    for reject in rejects.iter().take(REJECTS_LISTED) {
        warn!("Rejected {reject}");
    }
    if rejects.len() > REJECTS_LISTED {
        warn!(
            more = rejects.len() - REJECTS_LISTED,
            "More rejected records; --rejects PATH writes them all."
        );
    }

    if let Some(path) = path {
        use std::io::Write;
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot write rejects to {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for reject in rejects {
            serde_json::to_writer(&mut out, reject)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(())
}

/// A spinner on a terminal, nothing elsewhere: large estates take seconds per stage.
struct Progress(ProgressBar);

impl Progress {
    fn start() -> Progress {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(bar)
    }

    fn stage(&self, message: &'static str) {
        self.0.set_message(message);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
