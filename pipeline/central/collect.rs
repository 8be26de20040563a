//! `lastseen collect central`: every reachable tenant's endpoint list, page by page, into a sink.
//!
//! The walk is separate from where pages go. [`collect`] lists the tenants and fetches several
//! at once; each page is handed to a [`PageSink`] as it arrives, framed by a begin and an end
//! call per tenant. The end call carries the snapshot-complete marker: either every page was
//! delivered, or the error that stopped the tenant. [`FileSink`] writes the folder tree that
//! `lastseen run` reads; [`KafkaSink`] publishes each endpoint onto the Central topic as its
//! page arrives (`--to kafka`).
//!
//! One tenant's failure (a 403, retries running out) never stops the others: its manifest says
//! `complete: false` with the error, `run` refuses to delete for it, and the exit status is 2.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};

use super::CentralConfig;
use super::client::{CentralClient, CentralError, EndpointPage, EndpointQuery, TenantTarget};
use super::kafka_sink::KafkaSink;
use crate::bus::kafka::KafkaBus;
use crate::bus::{Destination, KafkaConfig};
use crate::config::Config;

/// The manifest's file name in each tenant folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Arguments of `lastseen collect central`.
#[derive(Debug, clap::Args)]
pub struct CentralCollectArgs {
    /// The config file: its `[central]` section says how to reach Central, and the first entry
    /// of `inputs.central` is the default output folder. Without it, defaults apply and --out
    /// is required.
    #[arg(short, long, env = "LASTSEEN_CONFIG")]
    pub config: Option<PathBuf>,

    /// Write the pages here instead of `central.out` or `inputs.central`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Tenants collected at once, instead of `central.concurrency` (default 4).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Where the pages go. `files` (the default): a folder per tenant that `lastseen run`
    /// reads. `kafka`: each endpoint as a record on `<prefix>.central.endpoints`, keyed by
    /// tenant id, each tenant closed by a snapshot-complete marker (`complete: false` with the
    /// error when the tenant failed), as `lastseen publish` would put the folder there. Kafka
    /// settings come from the config's [kafka] section, --brokers or LASTSEEN_KAFKA_BROKERS;
    /// a record the brokers do not acknowledge fails the command.
    #[arg(long, value_enum, default_value_t, value_name = "WHERE")]
    pub to: Destination,

    /// With --to kafka: bootstrap brokers (host:port, comma-separated), instead of the
    /// config's.
    #[arg(long, env = "LASTSEEN_KAFKA_BROKERS", value_delimiter = ',')]
    pub brokers: Vec<String>,
}

/// Why a collection stopped as a whole (as opposed to one tenant failing).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// whoami or the tenant list failed, so nothing could be collected.
    #[error("cannot list Central tenants: {0}")]
    Central(#[from] CentralError),

    /// The sink could not store a page; a disk that refuses one page refuses the rest.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// A sink could not take a page or a marker.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SinkError {
    pub path: String,
    pub problem: String,
}

/// Who a snapshot is of, and when it started. `collected_at` is taken before the first page is
/// asked for, so that every `lastSeenAt` in it is older than that instant.
#[derive(Debug, Clone)]
pub struct TenantSnapshot {
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub collected_at: DateTime<Utc>,
}

impl TenantSnapshot {
    /// `collected_at` as the manifest and the Central topic's records write it (RFC 3339, UTC,
    /// milliseconds), so that a folder published later gives the snapshot the same id as a
    /// collection straight to Kafka.
    pub fn collected_at_text(&self) -> String {
        self.collected_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// How a tenant's snapshot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOutcome {
    pub pages: u32,
    pub endpoints: u64,
    /// `None` when every page was delivered.
    pub error: Option<String>,
}

/// Where collected pages go. Calls for one tenant come in order (begin, pages, end); calls for
/// different tenants interleave.
pub trait PageSink: Send + Sync {
    /// The tenants Central listed, before any snapshot begins.
    fn tenants_listed(
        &self,
        _tenant_ids: &[String],
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    /// A tenant's snapshot starts: whatever the sink held for it is about to be replaced.
    fn begin(&self, tenant: &TenantSnapshot) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The next page of the tenant, in order.
    fn page(
        &self,
        tenant: &TenantSnapshot,
        page: EndpointPage,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The snapshot is over: complete when `outcome.error` is `None`.
    fn end(
        &self,
        tenant: &TenantSnapshot,
        outcome: &TenantOutcome,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// `manifest.json` of a tenant folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    /// RFC 3339 UTC.
    pub collected_at: String,
    pub pages: u32,
    pub endpoints: u64,
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Manifest {
    fn new(tenant: &TenantSnapshot, outcome: &TenantOutcome) -> Manifest {
        Manifest {
            tenant_id: tenant.tenant_id.clone(),
            tenant_name: tenant.tenant_name.clone(),
            collected_at: tenant.collected_at_text(),
            pages: outcome.pages,
            endpoints: outcome.endpoints,
            complete: outcome.error.is_none(),
            error: outcome.error.clone(),
        }
    }
}

/// Writes `OUT/<tenant_id>/page-00001.json`, ... and `OUT/<tenant_id>/manifest.json`.
///
/// Every file is written to a temporary name and renamed, so a reader never sees half a page.
/// A tenant's manifest is first rewritten as incomplete, then its old pages are removed, then
/// the new pages are written, and only the last write marks it complete: a run cut short
/// leaves a folder that `run` treats as incomplete, never a silent mix of old and new pages.
#[derive(Debug, Clone)]
pub struct FileSink {
    out: PathBuf,
}

impl FileSink {
    pub fn new(out: impl Into<PathBuf>) -> FileSink {
        FileSink { out: out.into() }
    }

    fn tenant_dir(&self, tenant_id: &str) -> Result<PathBuf, SinkError> {
        // The id becomes a folder name, so it must not climb out of OUT.
        let safe = !tenant_id.is_empty()
            && !tenant_id.starts_with('.')
            && tenant_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !safe {
            return Err(SinkError {
                path: self.out.display().to_string(),
                problem: format!("tenant id {tenant_id:?} cannot be a folder name"),
            });
        }
        Ok(self.out.join(tenant_id))
    }

    async fn write_manifest(&self, dir: PathBuf, manifest: Manifest) -> Result<(), SinkError> {
        let mut text = serde_json::to_vec_pretty(&manifest).map_err(|error| SinkError {
            path: dir.display().to_string(),
            problem: error.to_string(),
        })?;
        text.push(b'\n');
        blocking(move || write_atomically(&dir.join(MANIFEST_FILE), &text)).await
    }
}

impl PageSink for FileSink {
    async fn tenants_listed(&self, tenant_ids: &[String]) -> Result<(), SinkError> {
        let out = self.out.clone();
        let listed: Vec<String> = tenant_ids.to_vec();
        blocking(move || mark_unlisted_tenants(&out, &listed)).await
    }

    async fn begin(&self, tenant: &TenantSnapshot) -> Result<(), SinkError> {
        let dir = self.tenant_dir(&tenant.tenant_id)?;
        let create = dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&create).map_err(|error| io_error(&create, error))
        })
        .await?;

        let started = TenantOutcome {
            pages: 0,
            endpoints: 0,
            error: Some("collection in progress or interrupted".to_owned()),
        };
        self.write_manifest(dir.clone(), Manifest::new(tenant, &started))
            .await?;
        blocking(move || remove_pages(&dir)).await
    }

    async fn page(&self, tenant: &TenantSnapshot, page: EndpointPage) -> Result<(), SinkError> {
        let path = self
            .tenant_dir(&tenant.tenant_id)?
            .join(page_file_name(page.number));
        blocking(move || write_atomically(&path, &page.body)).await
    }

    async fn end(&self, tenant: &TenantSnapshot, outcome: &TenantOutcome) -> Result<(), SinkError> {
        let dir = self.tenant_dir(&tenant.tenant_id)?;
        self.write_manifest(dir, Manifest::new(tenant, outcome))
            .await
    }
}

/// `page-00001.json` for page 1.
pub fn page_file_name(number: u32) -> String {
    format!("page-{number:05}.json")
}

async fn blocking(
    work: impl FnOnce() -> Result<(), SinkError> + Send + 'static,
) -> Result<(), SinkError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join_error| {
            Err(SinkError {
                path: "(writer task)".to_owned(),
                problem: join_error.to_string(),
            })
        })
}

fn io_error(path: &Path, error: std::io::Error) -> SinkError {
    SinkError {
        path: path.display().to_string(),
        problem: error.to_string(),
    }
}

/// Writes to `.<name>.tmp` beside `path`, then renames over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temp).map_err(|error| io_error(&temp, error))?;
    file.write_all(bytes)
        .map_err(|error| io_error(&temp, error))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|error| io_error(path, error))
}

/// Removes a tenant folder's page files and temporary leftovers, keeping anything else.
fn remove_pages(dir: &Path) -> Result<(), SinkError> {
    let entries = std::fs::read_dir(dir).map_err(|error| io_error(dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_page = name.starts_with("page-") && name.ends_with(".json");
        let is_leftover = name.starts_with(".page-") && name.ends_with(".tmp");
        if is_page || is_leftover {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|error| io_error(&path, error))?;
        }
    }
    Ok(())
}

/// A tenant folder from an earlier collection whose tenant Central no longer lists keeps its
/// pages, but its manifest is marked incomplete so that `run` proposes no deletion from data
/// nobody refreshed.
fn mark_unlisted_tenants(out: &Path, listed: &[String]) -> Result<(), SinkError> {
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error(out, error)),
    };

    for entry in entries {
        let entry = entry.map_err(|error| io_error(out, error))?;
        let manifest_path = entry.path().join(MANIFEST_FILE);
        let Ok(text) = std::fs::read(&manifest_path) else {
            continue;
        };
        let Ok(mut manifest) = serde_json::from_slice::<Manifest>(&text) else {
            warn!(path = %manifest_path.display(), "Ignoring a manifest that does not parse.");
            continue;
        };
        if listed.contains(&manifest.tenant_id) || !manifest.complete {
            continue;
        }

        warn!(
            tenant = %manifest.tenant_id,
            folder = %entry.path().display(),
            "Central no longer lists this tenant; marking its old pages incomplete."
        );
        manifest.complete = false;
        manifest.error = Some("Central no longer lists this tenant".to_owned());
        let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(|error| SinkError {
            path: manifest_path.display().to_string(),
            problem: error.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomically(&manifest_path, &bytes)?;
    }
    Ok(())
}

/// What happened to each tenant.
#[derive(Debug, Clone)]
pub struct CollectReport {
    pub tenants: Vec<TenantReport>,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct TenantReport {
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub outcome: TenantOutcome,
}

impl CollectReport {
    pub fn endpoints(&self) -> u64 {
        self.tenants
            .iter()
            .map(|tenant| tenant.outcome.endpoints)
            .sum()
    }

    pub fn pages(&self) -> u64 {
        self.tenants
            .iter()
            .map(|tenant| u64::from(tenant.outcome.pages))
            .sum()
    }

    pub fn failed(&self) -> impl Iterator<Item = &TenantReport> {
        self.tenants
            .iter()
            .filter(|tenant| tenant.outcome.error.is_some())
    }

    pub fn is_complete(&self) -> bool {
        self.failed().next().is_none()
    }
}

/// Counts shown while collecting.
pub struct Progress {
    bar: ProgressBar,
    endpoints: AtomicU64,
}

impl Progress {
    /// A bar on standard error when it is a terminal, nothing otherwise.
    pub fn for_terminal() -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} tenants, {msg} endpoints",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            endpoints: AtomicU64::new(0),
        }
    }

    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            endpoints: AtomicU64::new(0),
        }
    }

    fn add_endpoints(&self, count: usize) {
        let total = self.endpoints.fetch_add(count as u64, Ordering::Relaxed) + count as u64;
        self.bar.set_message(total.to_string());
    }
}

/// Collects every tenant the credentials reach, `concurrency` at a time, into `sink`.
///
/// Returns an error only when nothing could be collected (whoami or the tenant list failed) or
/// the sink failed; a tenant that fails is in the report with its error.
pub async fn collect<S: PageSink>(
    client: &CentralClient,
    sink: &S,
    query: &EndpointQuery,
    concurrency: usize,
    progress: &Progress,
) -> Result<CollectReport, CollectError> {
    let started = Instant::now();
    let whoami = client.whoami().await?;
    let tenants = client.tenants(&whoami).await?;
    let ids: Vec<String> = tenants.iter().map(|tenant| tenant.id.clone()).collect();
    sink.tenants_listed(&ids).await?;
    progress.bar.set_length(tenants.len() as u64);

    let reports: Vec<TenantReport> = futures::stream::iter(tenants)
        .map(|tenant| async move {
            let snapshot = TenantSnapshot {
                tenant_id: tenant.id.clone(),
                tenant_name: tenant.show_as.clone().or_else(|| tenant.name.clone()),
                collected_at: Utc::now(),
            };
            let outcome = match TenantTarget::from_tenant(&tenant) {
                Ok(target) => {
                    collect_tenant(client, sink, &snapshot, target, query, progress).await?
                }
                Err(error) => {
                    sink.begin(&snapshot).await?;
                    let outcome = TenantOutcome {
                        pages: 0,
                        endpoints: 0,
                        error: Some(error.to_string()),
                    };
                    sink.end(&snapshot, &outcome).await?;
                    outcome
                }
            };

            if let Some(problem) = &outcome.error {
                error!(
                    tenant = %snapshot.tenant_id,
                    name = snapshot.tenant_name.as_deref().unwrap_or(""),
                    pages = outcome.pages,
                    error = %problem,
                    "Tenant not collected completely; its snapshot is marked incomplete."
                );
            }
            progress.bar.inc(1);
            Ok::<_, CollectError>(TenantReport {
                tenant_id: snapshot.tenant_id,
                tenant_name: snapshot.tenant_name,
                outcome,
            })
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;

    progress.bar.finish_and_clear();
    Ok(CollectReport {
        tenants: reports,
        elapsed: started.elapsed(),
    })
}

/// One tenant's pages into the sink. Central errors end the tenant (reported in its outcome);
/// sink errors end the whole collection.
async fn collect_tenant<S: PageSink>(
    client: &CentralClient,
    sink: &S,
    snapshot: &TenantSnapshot,
    target: TenantTarget,
    query: &EndpointQuery,
    progress: &Progress,
) -> Result<TenantOutcome, CollectError> {
    sink.begin(snapshot).await?;
    let mut outcome = TenantOutcome {
        pages: 0,
        endpoints: 0,
        error: None,
    };
    let mut pager = client.endpoint_pages(target, query.clone());

    loop {
        match pager.next_page().await {
            Ok(Some(page)) => {
                outcome.pages += 1;
                outcome.endpoints += page.endpoints as u64;
                progress.add_endpoints(page.endpoints);
                sink.page(snapshot, page).await?;
            }
            Ok(None) => break,
            Err(error) => {
                outcome.error = Some(error.to_string());
                break;
            }
        }
    }

    sink.end(snapshot, &outcome).await?;
    if outcome.error.is_none() {
        debug!(
            tenant = %snapshot.tenant_id,
            pages = outcome.pages,
            endpoints = outcome.endpoints,
            "Collected tenant."
        );
    }
    Ok(outcome)
}

/// `lastseen collect central`: 0 when every tenant is complete, 2 when some failed.
pub async fn run(args: CentralCollectArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let (mut central, first_input, kafka_section) = match config {
        Some(config) => (
            config.central.unwrap_or_default(),
            config.inputs.central.first().cloned(),
            config.kafka,
        ),
        None => (CentralConfig::default(), None, None),
    };
    if let Some(concurrency) = args.concurrency {
        central.concurrency = concurrency;
    }
    central.check().map_err(anyhow::Error::msg)?;

    let settings = central
        .client_settings(&|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    let client = CentralClient::new(settings)?;
    let query = central.endpoint_query();
    let progress = Progress::for_terminal();

    let report = match args.to {
        Destination::Files => {
            let out = args
                .out
                .or(central.out.clone())
                .or(first_input)
                .ok_or_else(|| {
                    anyhow::anyhow!("no output folder: give --out, central.out or inputs.central")
                })?;
            info!(
                out = %out.display(),
                concurrency = central.concurrency,
                page_size = central.page_size,
                filters = central.filters.len(),
                "Collecting Central endpoints."
            );
            let sink = FileSink::new(&out);
            let report = collect(&client, &sink, &query, central.concurrency, &progress).await?;
            print_summary(&report, &out.display().to_string());
            report
        }
        Destination::Kafka => {
            if let Some(out) = &args.out {
                anyhow::bail!(
                    "--out {} names a folder, but --to kafka writes no files",
                    out.display()
                );
            }
            let kafka = KafkaConfig::resolve(kafka_section.as_ref(), &args.brokers)
                .map_err(anyhow::Error::msg)?;
            let topic = kafka.topics().central;
            info!(
                topic = %topic,
                brokers = %kafka.bootstrap(),
                concurrency = central.concurrency,
                page_size = central.page_size,
                filters = central.filters.len(),
                "Collecting Central endpoints onto Kafka."
            );

            let bus = KafkaBus::new(&kafka)?;
            let sink = KafkaSink::new(&bus, &topic, &format!("Kafka at {}", kafka.bootstrap()));
            let report = collect(&client, &sink, &query, central.concurrency, &progress).await?;
            let records = sink.finish().await?;
            print_summary(
                &report,
                &format!("{topic} ({records} records acknowledged)"),
            );
            report
        }
    };

    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The closing lines on standard error; `out` says where the pages went.
fn print_summary(report: &CollectReport, out: &str) {
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    let failed: Vec<&TenantReport> = report.failed().collect();
    info!(
        tenants = report.tenants.len(),
        failed = failed.len(),
        pages = report.pages(),
        endpoints = report.endpoints(),
        elapsed_s = format!("{seconds:.2}"),
        "Central collection finished."
    );

    eprintln!(
        "collected {} endpoints in {} pages from {} of {} tenants into {} ({:.1} s, {:.0} endpoints/s)",
        report.endpoints(),
        report.pages(),
        report.tenants.len() - failed.len(),
        report.tenants.len(),
        out,
        seconds,
        report.endpoints() as f64 / seconds,
    );
    for tenant in &failed {
        eprintln!(
            "incomplete: tenant {} ({}): {}",
            tenant.tenant_id,
            tenant.tenant_name.as_deref().unwrap_or("no name"),
            tenant.outcome.error.as_deref().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str) -> TenantSnapshot {
        TenantSnapshot {
            tenant_id: id.to_owned(),
            tenant_name: Some("Acme".to_owned()),
            collected_at: DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
                .unwrap()
                .into(),
        }
    }

    fn page(tenant: &str, number: u32, body: &str) -> EndpointPage {
        EndpointPage {
            tenant_id: tenant.to_owned(),
            number,
            body: body.as_bytes().to_vec(),
            endpoints: 1,
            next_key: None,
        }
    }

    fn read_manifest(dir: &Path) -> Manifest {
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn file_sink_replaces_old_pages_and_marks_completion_last() {
        let out = tempfile::tempdir().unwrap();
        let sink = FileSink::new(out.path());
        let tenant = snapshot("t-1");
        let dir = out.path().join("t-1");

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("page-00007.json"), "old").unwrap();
        std::fs::write(dir.join("notes.txt"), "kept").unwrap();

        sink.begin(&tenant).await.unwrap();
        let during = read_manifest(&dir);
        assert!(!during.complete);
        assert!(!dir.join("page-00007.json").exists());
        assert!(dir.join("notes.txt").exists());

        sink.page(
            &tenant,
            page("t-1", 1, r#"{"items":[{"id":"a"}],"pages":{}}"#),
        )
        .await
        .unwrap();
        let outcome = TenantOutcome {
            pages: 1,
            endpoints: 1,
            error: None,
        };
        sink.end(&tenant, &outcome).await.unwrap();

        let manifest = read_manifest(&dir);
        assert_eq!(
            manifest,
            Manifest {
                tenant_id: "t-1".into(),
                tenant_name: Some("Acme".into()),
                collected_at: "2025-03-01T10:00:00.000Z".into(),
                pages: 1,
                endpoints: 1,
                complete: true,
                error: None,
            }
        );
        let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        assert!(!text.contains("\"error\""), "{text}");
        assert_eq!(
            std::fs::read_to_string(dir.join("page-00001.json")).unwrap(),
            r#"{"items":[{"id":"a"}],"pages":{}}"#
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|name| !name.ends_with(".tmp")),
            "{names:?}"
        );
    }

    #[test]
    fn manifests_match_their_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/central-manifest.schema.json"))
                .unwrap();
        let properties: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();

        let failed = TenantOutcome {
            pages: 0,
            endpoints: 0,
            error: Some("HTTP 403".into()),
        };
        let complete = TenantOutcome {
            pages: 2,
            endpoints: 700,
            error: None,
        };
        for outcome in [failed, complete] {
            let manifest = serde_json::to_value(Manifest::new(&snapshot("t"), &outcome)).unwrap();
            let fields = manifest.as_object().unwrap();
            assert!(
                fields.keys().all(|key| properties.contains(&key)),
                "{manifest}"
            );
            assert!(
                required.iter().all(|key| fields.contains_key(*key)),
                "{manifest}"
            );
            assert_eq!(
                fields.contains_key("error"),
                manifest["complete"] == false,
                "{manifest}"
            );
            assert!(manifest["collected_at"].as_str().unwrap().ends_with('Z'));
        }
    }

    #[tokio::test]
    async fn failed_tenant_gets_an_incomplete_manifest_with_the_error() {
        let out = tempfile::tempdir().unwrap();
        let sink = FileSink::new(out.path());
        let tenant = snapshot("t-2");
        sink.begin(&tenant).await.unwrap();
        let outcome = TenantOutcome {
            pages: 3,
            endpoints: 1500,
            error: Some("HTTP 403".into()),
        };
        sink.end(&tenant, &outcome).await.unwrap();

        let manifest = read_manifest(&out.path().join("t-2"));
        assert!(!manifest.complete);
        assert_eq!(manifest.error.as_deref(), Some("HTTP 403"));
        assert_eq!((manifest.pages, manifest.endpoints), (3, 1500));
    }

    #[tokio::test]
    async fn unsafe_tenant_ids_are_refused() {
        let out = tempfile::tempdir().unwrap();
        let sink = FileSink::new(out.path());
        for id in ["../x", "", ".hidden", "a/b"] {
            let error = sink.begin(&snapshot(id)).await.unwrap_err();
            assert!(error.problem.contains("cannot be a folder name"), "{error}");
        }
    }

    #[tokio::test]
    async fn tenants_no_longer_listed_are_marked_incomplete() {
        let out = tempfile::tempdir().unwrap();
        let sink = FileSink::new(out.path());
        for id in ["kept", "gone"] {
            let tenant = snapshot(id);
            sink.begin(&tenant).await.unwrap();
            sink.end(
                &tenant,
                &TenantOutcome {
                    pages: 0,
                    endpoints: 0,
                    error: None,
                },
            )
            .await
            .unwrap();
        }

        sink.tenants_listed(&["kept".to_owned()]).await.unwrap();
        assert!(read_manifest(&out.path().join("kept")).complete);
        let gone = read_manifest(&out.path().join("gone"));
        assert!(!gone.complete);
        assert_eq!(
            gone.error.as_deref(),
            Some("Central no longer lists this tenant")
        );
    }
}
