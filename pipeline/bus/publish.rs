//! `lastseen publish`: put files on the topics, so the streaming pipeline runs from Central
//! page folders, LDIF exports and an action log before (or instead of) the collectors.
//!
//! - Central: each tenant folder (its `manifest.json` and pages) becomes one snapshot: one
//!   record per endpoint keyed by tenant id, then the snapshot-complete marker.
//! - LDIF: each computer, user and group becomes an upsert change record keyed by domain.
//! - Actions: each line becomes one record keyed by its tenant id.
//!
//! The command succeeds only when every record was acknowledged by the broker; an entry that
//! cannot be turned into a record is named and makes it fail after the rest went out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{info, warn};

use super::records::{CentralRecordType, EndpointRecord, SnapshotComplete, encode_marker};
use super::{Bus, BusError, InFlight, OutRecord, Topics, ldif};
use crate::ad::changes::ChangeRecord;
use crate::inputs::central::{MANIFEST_FILE, TENANTS_FILE};
use crate::inputs::{InputError, InputPlan, Source};

/// Records awaiting acknowledgement at once; enough to keep the producer's batches full.
pub const IN_FLIGHT: usize = 50_000;

/// The namespace of snapshot ids derived from a manifest.
const SNAPSHOT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c61_7374_7365_656e_8000_0000_0000_0002);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Input(#[from] InputError),

    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A record that could not be published, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpublished {
    pub file: String,
    pub record: String,
    pub problem: String,
}

impl fmt::Display for Unpublished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.record, self.problem)
    }
}

/// What went out.
#[derive(Debug, Default)]
pub struct Published {
    pub endpoints: u64,
    pub snapshots: u64,
    pub ad_changes: u64,
    pub actions: u64,
    /// LDIF entries that are not computers, users or groups.
    pub passed_over: u64,
    pub unpublished: Vec<Unpublished>,
}

impl Published {
    pub fn records(&self) -> u64 {
        self.endpoints + self.snapshots + self.ad_changes + self.actions
    }
}

impl fmt::Display for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "published {} endpoint records in {} snapshots, {} AD changes ({} other entries \
             passed over), {} actions",
            self.endpoints, self.snapshots, self.ad_changes, self.passed_over, self.actions
        )?;
        if !self.unpublished.is_empty() {
            write!(
                f,
                "; {} records could not be published",
                self.unpublished.len()
            )?;
        }
        Ok(())
    }
}

/// Publishes everything `plan` names.
pub async fn publish<B: Bus>(
    bus: &B,
    topics: &Topics,
    plan: &InputPlan,
) -> Result<Published, PublishError> {
    let mut out = Publisher {
        bus,
        topics,
        in_flight: InFlight::new(IN_FLIGHT),
        published: Published::default(),
        progress: progress_bar(),
    };

    // Directory and actions first: a correlator that sees a snapshot complete should find
    // the directory it is judged against already there.
    for source in &plan.ldif {
        out.ldif(source).await?;
    }
    if let Some(source) = &plan.actions {
        out.actions(source).await?;
    }
    for folder in central_folders(&plan.central)? {
        out.snapshot(&folder).await?;
    }

    out.in_flight.finish().await?;
    out.progress.finish_and_clear();
    for problem in &out.published.unpublished {
        warn!(%problem, "Could not publish a record.");
    }
    info!(
        endpoints = out.published.endpoints,
        snapshots = out.published.snapshots,
        ad_changes = out.published.ad_changes,
        actions = out.published.actions,
        unpublished = out.published.unpublished.len(),
        "Published."
    );
    Ok(out.published)
}

/// Puts AD change records onto the AD topic and waits until the broker acknowledged every
/// one; the count sent. `collect ad --to kafka` saves its USN state only after this returns.
pub async fn publish_changes<B: Bus>(
    bus: &B,
    topic: &str,
    changes: &[ChangeRecord],
) -> Result<u64, BusError> {
    let mut in_flight = InFlight::new(IN_FLIGHT);
    for change in changes {
        in_flight.send(bus, change_record(topic, change)).await?;
    }
    in_flight.finish().await
}

/// The record of one AD change, keyed by its domain so that a domain's changes stay in order
/// on one partition.
pub fn change_record(topic: &str, change: &ChangeRecord) -> OutRecord {
    let payload = serde_json::to_vec(change).unwrap_or_default();
    OutRecord::new(topic, Some(&change.domain), payload)
}

struct Publisher<'a, B> {
    bus: &'a B,
    topics: &'a Topics,
    in_flight: InFlight,
    published: Published,
    progress: ProgressBar,
}

impl<B: Bus> Publisher<'_, B> {
    async fn send(&mut self, topic: &str, key: &str, payload: Vec<u8>) -> Result<(), BusError> {
        self.send_record(OutRecord::new(topic, Some(key), payload))
            .await
    }

    async fn send_record(&mut self, record: OutRecord) -> Result<(), BusError> {
        self.in_flight.send(self.bus, record).await?;
        self.progress.inc(1);
        Ok(())
    }

    async fn ldif(&mut self, source: &Source) -> Result<(), PublishError> {
        let bytes = source.read()?;
        let file = source.name();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.published.unpublished.push(Unpublished {
                file,
                record: "the file".into(),
                problem: "not UTF-8 text".into(),
            });
            return Ok(());
        };

        let export = ldif::export_to_changes(text);
        self.published.passed_over += export.passed_over as u64;
        for problem in export.problems {
            let field = problem
                .field
                .map(|f| format!("field {f}: "))
                .unwrap_or_default();
            self.published.unpublished.push(Unpublished {
                file: file.clone(),
                record: problem.record,
                problem: format!("{field}{}", problem.problem),
            });
        }
        for change in export.changes {
            self.send_record(change_record(&self.topics.ad, &change))
                .await?;
            self.published.ad_changes += 1;
        }
        Ok(())
    }

    async fn actions(&mut self, source: &Source) -> Result<(), PublishError> {
        #[derive(Deserialize)]
        struct Tenant {
            tenant_id: Option<String>,
        }

        let bytes = source.read()?;
        for line in bytes.split(|&byte| byte == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // The line goes as it is; the correlator judges its fields as `run` would.
            let tenant = serde_json::from_slice::<Tenant>(line)
                .ok()
                .and_then(|t| t.tenant_id)
                .unwrap_or_default();
            self.send(&self.topics.actions.clone(), &tenant, line.to_vec())
                .await?;
            self.published.actions += 1;
        }
        Ok(())
    }

    async fn snapshot(&mut self, folder: &Folder) -> Result<(), PublishError> {
        let manifest = match &folder.manifest {
            Some(source) => Some(read_manifest(source)?),
            None => None,
        };
        let collected_at = manifest
            .as_ref()
            .and_then(|m| m.collected_at.clone())
            .unwrap_or_else(|| Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));

        // Without a manifest each item names its tenant, and each tenant is a snapshot.
        let mut snapshots: BTreeMap<String, u64> = BTreeMap::new();
        let topic = self.topics.central.clone();
        for page in &folder.pages {
            let file = page.name();
            let bytes = page.read()?;
            let items = match serde_json::from_slice::<Page<'_>>(&bytes) {
                Ok(page) => page.items,
                Err(error) => {
                    self.published.unpublished.push(Unpublished {
                        file,
                        record: "the page".into(),
                        problem: format!("not an endpoint page ({{\"items\": [...]}}): {error}"),
                    });
                    continue;
                }
            };

            for (index, item) in items.iter().enumerate() {
                let tenant_id = match (&manifest, item_tenant(item)) {
                    (Some(manifest), _) => manifest.tenant_id.clone(),
                    (None, Some(tenant)) => tenant,
                    (None, None) => {
                        self.published.unpublished.push(Unpublished {
                            file: file.clone(),
                            record: format!("item {} of the page", index + 1),
                            problem: "no tenant.id and no manifest.json beside the page".into(),
                        });
                        continue;
                    }
                };
                let snapshot_id = snapshot_id(&tenant_id, &collected_at);
                let record = EndpointRecord {
                    kind: CentralRecordType::Endpoint,
                    tenant_id: &tenant_id,
                    snapshot_id: &snapshot_id,
                    collected_at: &collected_at,
                    endpoint: item,
                };
                let payload = serde_json::to_vec(&record).unwrap_or_default();
                self.send(&topic, &tenant_id, payload).await?;
                self.published.endpoints += 1;
                *snapshots.entry(tenant_id).or_default() += 1;
            }
        }

        // A manifest with no pages is still a snapshot: a tenant with no endpoints left.
        if let Some(manifest) = &manifest {
            snapshots.entry(manifest.tenant_id.clone()).or_default();
        }
        for (tenant_id, endpoints) in snapshots {
            let marker = SnapshotComplete {
                snapshot_id: snapshot_id(&tenant_id, &collected_at),
                tenant_id: tenant_id.clone(),
                collected_at: collected_at.clone(),
                endpoints,
                complete: manifest.as_ref().is_none_or(|m| m.complete),
                error: manifest.as_ref().and_then(|m| m.error.clone()),
            };
            self.send(&topic, &tenant_id, encode_marker(&marker))
                .await?;
            self.published.snapshots += 1;
        }
        Ok(())
    }
}

/// The same tenant and collection time always give the same snapshot id, so publishing the
/// same folder twice repeats one snapshot rather than making two, and a folder that `collect
/// central` wrote gives the ids its collection straight to Kafka would have.
pub fn snapshot_id(tenant_id: &str, collected_at: &str) -> String {
    let name = format!("{tenant_id}\n{collected_at}");
    uuid::Uuid::new_v5(&SNAPSHOT_NAMESPACE, name.as_bytes()).to_string()
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Manifest {
    tenant_id: String,
    #[serde(default)]
    collected_at: Option<String>,
    complete: bool,
    #[serde(default)]
    error: Option<String>,
}

fn read_manifest(source: &Source) -> Result<Manifest, InputError> {
    let bytes = source.read()?;
    serde_json::from_slice(&bytes).map_err(|error| InputError::Read {
        path: source.name().into(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a manifest (tenant_id, complete): {error}"),
        ),
    })
}

fn item_tenant(item: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Item {
        tenant: Option<Reference>,
    }
    #[derive(Deserialize)]
    struct Reference {
        id: Option<String>,
    }
    serde_json::from_str::<Item>(item.get()).ok()?.tenant?.id
}

/// The pages of one folder and its manifest, if it has one.
#[derive(Debug, Default)]
struct Folder {
    manifest: Option<Source>,
    pages: Vec<Source>,
}

/// Groups the Central sources by the folder they sit in, in name order.
fn central_folders(sources: &[Source]) -> Result<Vec<Folder>, InputError> {
    let mut folders: BTreeMap<PathBuf, Folder> = BTreeMap::new();
    let mut add = |source: Source| {
        let name = PathBuf::from(source.name());
        let folder = folders
            .entry(name.parent().map(Path::to_owned).unwrap_or_default())
            .or_default();
        match name.file_name().and_then(|n| n.to_str()) {
            Some(MANIFEST_FILE) => folder.manifest = Some(source),
            Some(TENANTS_FILE) => {}
            _ => folder.pages.push(source),
        }
    };

    for source in sources {
        match source {
            Source::File(path) if path.is_dir() => {
                for file in json_files(path)? {
                    add(Source::File(file));
                }
            }
            Source::File(path) if !path.exists() => {
                return Err(InputError::Missing { path: path.clone() });
            }
            other => add(other.clone()),
        }
    }
    let mut folders: Vec<Folder> = folders.into_values().collect();
    for folder in &mut folders {
        folder.pages.sort_by_key(Source::name);
    }
    Ok(folders)
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let read_error = |source| InputError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            files.extend(json_files(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn progress_bar() -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} published {pos} records ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::bus::records::{self, CentralRecord};

    #[tokio::test]
    async fn the_demo_goes_out_as_snapshots_changes_and_actions() {
        let bus = MemoryBus::new();
        let topics = Topics::new("lastseen");
        let published = publish(&bus, &topics, &crate::demo::inputs())
            .await
            .unwrap();

        assert_eq!(published.endpoints, 51);
        assert_eq!(published.snapshots, 3);
        assert_eq!(published.actions, 5);
        assert_eq!(published.ad_changes, 63);
        assert!(
            published.unpublished.is_empty(),
            "{:?}",
            published.unpublished
        );

        let central = bus.records(&topics.central);
        assert_eq!(central.len(), 54);

        // Every record of a tenant carries its key, and its marker comes after its endpoints.
        let mut open: BTreeMap<String, u64> = BTreeMap::new();
        for record in &central {
            let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
            match records::decode_central(record.payload.as_deref().unwrap()).unwrap() {
                CentralRecord::Endpoint { tenant_id, .. } => {
                    assert_eq!(tenant_id, key);
                    *open.entry(tenant_id).or_default() += 1;
                }
                CentralRecord::SnapshotComplete(marker) => {
                    assert_eq!(marker.tenant_id, key);
                    assert_eq!(open.remove(&key), Some(marker.endpoints));
                    assert!(marker.complete);
                    assert_eq!(marker.collected_at, "2026-12-01T00:00:00Z");
                }
            }
        }
        assert!(open.is_empty());

        let ad = bus.records(&topics.ad);
        let keys: std::collections::BTreeSet<_> =
            ad.iter().map(|r| r.key.clone().unwrap()).collect();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            [b"corp.example.test".to_vec(), b"lab.example.test".to_vec()]
        );
    }

    #[test]
    fn snapshot_ids_are_stable() {
        let a = snapshot_id("t1", "2026-12-01T00:00:00Z");
        assert_eq!(a, snapshot_id("t1", "2026-12-01T00:00:00Z"));
        assert_ne!(a, snapshot_id("t2", "2026-12-01T00:00:00Z"));
    }
}
