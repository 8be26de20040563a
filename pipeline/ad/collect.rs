//! What `collect ad` reads, and the command itself.
//!
//! A full collection reads every computer in or below the base DNs, and the groups and users
//! that the configured VIP groups reach, nested ones included (AD's IN_CHAIN matching rule
//! `1.2.840.113556.1.4.1941` resolves the nesting on the controller). That is the LDIF a
//! `lastseen run` needs.
//!
//! An incremental collection (change records with a state file) asks the same controller for
//! computers whose `uSNChanged` is above the last run's `highestCommittedUSN`, with the Show
//! Deleted control so that deletions come back as tombstones. It reads only what changed, plus
//! the VIP closure, which is small and re-read whole because membership changes do not touch a
//! user's own USN. Another controller, a new `invocationId`, other base DNs or VIP groups, or
//! `--full` make it a full resync, which also reports as deleted every object the state knew
//! and the directory no longer has.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ldap3::Scope;
use uuid::Uuid;

use super::changes::{ChangeRecord, Op};
use super::connect::{Connection, connect, load_password};
use super::object::{ATTRIBUTES, AdObject, ObjectKind, decode_guid};
use super::search::{DecodeProblem, Query, RawEntry, SearchStats, paged_search};
use super::state::{Known, STATE_VERSION, SyncState, write_atomically};
use super::{AdConfig, AdError};
use crate::bus::kafka::KafkaBus;
use crate::bus::publish::publish_changes;
use crate::bus::{Destination, KafkaConfig};
use crate::config::Config;

/// Read computers, and the users and groups behind VIP groups, from an Active Directory
/// domain controller over LDAPS or StartTLS.
///
/// The `[ad]` section of the config says where and how (see its keys' docs). By default the
/// result is LDIF, written where `lastseen run` reads it (ad.out, else the first inputs.ldif),
/// so `collect ad` then `run` works with one config. With --changes it writes change records
/// (JSON lines, schemas/ad-change.schema.json) for the Kafka stage instead; with ad.state_file
/// set those runs are incremental: only what changed since the last run, deletions included.
/// With --to kafka the same change records go onto the AD topic.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// The config file with an [ad] section.
    #[arg(short, long, env = "LASTSEEN_CONFIG")]
    pub config: PathBuf,

    /// Write the LDIF here instead; `-` is standard output.
    #[arg(short, long, value_name = "PATH", conflicts_with = "changes")]
    pub out: Option<PathBuf>,

    /// Write change records (JSON lines) here instead of LDIF; `-` is standard output.
    #[arg(long, value_name = "PATH")]
    pub changes: Option<PathBuf>,

    /// With --changes or --to kafka: ignore the state file's USN and read everything (a full
    /// resync).
    #[arg(long)]
    pub full: bool,

    /// Where the directory goes. `files` (the default): LDIF, or change records with
    /// --changes. `kafka`: change records on `<prefix>.ad.changes`, keyed by domain: the whole
    /// directory as upserts, or, with ad.state_file set, what changed since the last run
    /// (upserts and deletes). The state file is saved only once the brokers acknowledged
    /// every record, so a failed run is read again next time. Kafka settings come from the
    /// config's [kafka] section, --brokers or LASTSEEN_KAFKA_BROKERS.
    #[arg(long, value_enum, default_value_t, value_name = "WHERE")]
    pub to: Destination,

    /// With --to kafka: bootstrap brokers (host:port, comma-separated), instead of the
    /// config's.
    #[arg(long, env = "LASTSEEN_KAFKA_BROKERS", value_delimiter = ',')]
    pub brokers: Vec<String>,
}

/// The controller a collection read, from its rootDSE and NTDS Settings object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcIdentity {
    /// `dsServiceName`: the DN of the controller's NTDS Settings object.
    pub ds_service_name: String,
    pub dns_host_name: String,
    pub invocation_id: Uuid,
    pub highest_committed_usn: u64,
    /// The naming context of the domain the controller serves.
    pub default_naming_context: String,
}

/// Counts for logs and tests; each search is listed with what it saw.
#[derive(Debug, Clone, Default)]
pub struct CollectStats {
    pub searches: Vec<(String, SearchStats)>,
    /// Connection attempts that failed and were retried.
    pub retries: u32,
}

impl CollectStats {
    pub fn entries(&self) -> usize {
        self.searches.iter().map(|(_, stats)| stats.entries).sum()
    }

    pub fn undecodable(&self) -> usize {
        self.searches
            .iter()
            .map(|(_, stats)| stats.undecodable)
            .sum()
    }
}

/// A full collection.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dc: DcIdentity,
    /// Computers, then groups, then users, each sorted by DN.
    pub objects: Vec<AdObject>,
    pub stats: CollectStats,
}

/// How a change run went about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeMode {
    Incremental { since_usn: u64 },
    Full { reason: String },
}

/// The outcome of a change run: the records, and the state to save once they are written.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub mode: ChangeMode,
    pub records: Vec<ChangeRecord>,
    pub state: SyncState,
    pub stats: CollectStats,
}

/// `lastseen collect ad`.
pub async fn run_collect(args: CollectArgs) -> Result<(), AdError> {
    let config = Config::load(&args.config).map_err(|error| AdError::Config(error.to_string()))?;
    let ad = config
        .ad
        .as_ref()
        .ok_or_else(|| AdError::Config(format!("{} has no [ad] section", args.config.display())))?;
    let vip_groups = &config.policy.vip_groups;

    let kafka = match args.to {
        Destination::Kafka => {
            if let Some(path) = args.out.as_ref().or(args.changes.as_ref()) {
                return Err(AdError::Config(format!(
                    "{} names a file, but --to kafka writes none",
                    path.display()
                )));
            }
            let kafka = KafkaConfig::resolve(config.kafka.as_ref(), &args.brokers)
                .map_err(AdError::Config)?;
            Some(kafka)
        }
        Destination::Files => None,
    };
    if args.full && args.changes.is_none() && kafka.is_none() {
        return Err(AdError::Config(
            "--full needs --changes or --to kafka: LDIF is always a full read".into(),
        ));
    }
    let progress = progress_bar();

    if let Some(kafka) = &kafka {
        let state = match &ad.state_file {
            Some(state_file) => SyncState::load(state_file)?,
            None => None,
        };
        let changes = collect_changes(ad, vip_groups, state, args.full, &progress).await?;
        progress.finish_and_clear();

        let topic = kafka.topics().ad;
        let bus = KafkaBus::new(kafka)?;
        let sent = publish_changes(&bus, &topic, &changes.records).await?;
        // Saved only after every record is acknowledged: a failure before that leaves the old
        // USN, so the next run reads and sends the same changes again, which upserts and
        // deletes keyed by objectGUID tolerate.
        if let Some(state_file) = &ad.state_file {
            changes.state.save(state_file)?;
        }
        log_changes(&changes, &format!("{topic} ({sent} records acknowledged)"));
        return Ok(());
    }

    if let Some(path) = &args.changes {
        let state = match &ad.state_file {
            Some(state_file) => SyncState::load(state_file)?,
            None => None,
        };
        let changes = collect_changes(ad, vip_groups, state, args.full, &progress).await?;
        progress.finish_and_clear();

        let mut text = Vec::new();
        super::changes::write_records(&mut text, &changes.records).map_err(|source| {
            AdError::Output {
                path: path.clone(),
                source,
            }
        })?;
        write_output(path, &text)?;
        // Saved only after the records are out: a crash in between repeats them next time,
        // which upserts and deletes keyed by objectGUID tolerate.
        if let Some(state_file) = &ad.state_file {
            changes.state.save(state_file)?;
        }
        log_changes(&changes, &path.display().to_string());
        return Ok(());
    }

    let out = args
        .out
        .clone()
        .or_else(|| ad.out.clone())
        .or_else(|| config.inputs.ldif.first().cloned())
        .ok_or_else(|| {
            AdError::Config(
                "no place for the LDIF: set ad.out or inputs.ldif, or pass --out".into(),
            )
        })?;
    let snapshot = collect_snapshot(ad, vip_groups, &progress).await?;
    progress.finish_and_clear();

    let mut text = Vec::new();
    for object in &snapshot.objects {
        super::ldif::write_entry(&mut text, object).map_err(|source| AdError::Output {
            path: out.clone(),
            source,
        })?;
    }
    write_output(&out, &text)?;
    log_snapshot(&snapshot, &out);
    Ok(())
}

/// Reads a full snapshot, retrying dropped connections.
pub async fn collect_snapshot(
    config: &AdConfig,
    vip_groups: &[String],
    progress: &ProgressBar,
) -> Result<Snapshot, AdError> {
    let password = &load_password(config)?;
    with_retries(config, |retries| async move {
        progress.set_position(0);
        let mut connection = connect(config, password).await?;
        let mut stats = CollectStats {
            retries,
            ..CollectStats::default()
        };
        let dc = read_dc(&mut connection, config, &mut stats).await?;
        check_scope(config, &dc)?;

        let objects = read_everything(
            &mut connection,
            config,
            vip_groups,
            &dc,
            &mut stats,
            progress,
        )
        .await?;
        connection.close().await;
        Ok(Snapshot {
            dc,
            objects: sorted(objects),
            stats,
        })
    })
    .await
}

/// Reads what changed since `state`, or everything when there is no usable state.
pub async fn collect_changes(
    config: &AdConfig,
    vip_groups: &[String],
    state: Option<SyncState>,
    force_full: bool,
    progress: &ProgressBar,
) -> Result<ChangeSet, AdError> {
    let password = &load_password(config)?;
    let state = &state;
    with_retries(config, |retries| async move {
        progress.set_position(0);
        let mut connection = connect(config, password).await?;
        let mut stats = CollectStats {
            retries,
            ..CollectStats::default()
        };
        let dc = read_dc(&mut connection, config, &mut stats).await?;
        check_scope(config, &dc)?;

        let reason = resync_reason(state.as_ref(), &dc, config, vip_groups, force_full);
        let change_set = match (reason, state) {
            (None, Some(previous)) => {
                incremental(
                    &mut connection,
                    config,
                    vip_groups,
                    &dc,
                    previous,
                    stats,
                    progress,
                )
                .await?
            }
            (reason, previous) => {
                let reason = reason.unwrap_or_else(|| "no state".into());
                let objects = read_everything(
                    &mut connection,
                    config,
                    vip_groups,
                    &dc,
                    &mut stats,
                    progress,
                )
                .await?;
                full_change_set(
                    config,
                    vip_groups,
                    &dc,
                    previous.as_ref(),
                    objects,
                    reason,
                    stats,
                )
            }
        };
        connection.close().await;
        Ok(change_set)
    })
    .await
}

/// Why the state cannot be used for an incremental run, if it cannot.
fn resync_reason(
    state: Option<&SyncState>,
    dc: &DcIdentity,
    config: &AdConfig,
    vip_groups: &[String],
    force_full: bool,
) -> Option<String> {
    let Some(state) = state else {
        return Some("no state file yet".into());
    };
    if force_full {
        Some("--full was given".into())
    } else if state.version != STATE_VERSION {
        Some(format!(
            "the state file has version {}, not {STATE_VERSION}",
            state.version
        ))
    } else if state.dc != dc.ds_service_name {
        Some(format!(
            "the state is from controller {}, not {}",
            state.dc, dc.ds_service_name
        ))
    } else if state.invocation_id != dc.invocation_id {
        Some(format!(
            "controller {} has a new invocationId ({} instead of {}), as after a restore",
            dc.dns_host_name, dc.invocation_id, state.invocation_id
        ))
    } else if state.highest_committed_usn > dc.highest_committed_usn {
        Some(format!(
            "controller {} is at USN {}, behind the {} the state has seen",
            dc.dns_host_name, dc.highest_committed_usn, state.highest_committed_usn
        ))
    } else if state.base_dns != config.base_dns || state.vip_groups != vip_groups {
        Some("ad.base_dns or policy.vip_groups changed".into())
    } else {
        None
    }
}

/// Retries `attempt` on dropped or refused connections, with a doubling backoff from 1 s.
async fn with_retries<T, F, Fut>(config: &AdConfig, mut attempt: F) -> Result<T, AdError>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, AdError>>,
{
    let mut backoff = Duration::from_secs(1);
    let mut retries = 0;
    loop {
        match attempt(retries).await {
            Err(error) if error.is_retryable() && retries < config.retries => {
                retries += 1;
                tracing::warn!(%error, retry = retries, of = config.retries,
                    backoff_ms = backoff.as_millis() as u64,
                    "Directory read failed; starting it over after a pause.");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            other => return other,
        }
    }
}

/// Reads the rootDSE and the controller's NTDS Settings object.
async fn read_dc(
    connection: &mut Connection,
    config: &AdConfig,
    stats: &mut CollectStats,
) -> Result<DcIdentity, AdError> {
    const ROOT_DSE: &[&str] = &[
        "dsServiceName",
        "dnsHostName",
        "highestCommittedUSN",
        "defaultNamingContext",
    ];
    let root = read_one(connection, config, "", ROOT_DSE, "rootDSE", stats).await?;
    let text = |name: &str| {
        root.first_text(name)
            .map(str::to_owned)
            .ok_or_else(|| AdError::Search {
                base: "rootDSE".into(),
                detail: format!(
                    "the rootDSE has no {name}; is this an Active Directory controller?"
                ),
            })
    };
    let ds_service_name = text("dsServiceName")?;
    let dns_host_name = text("dnsHostName")?;
    let default_naming_context = text("defaultNamingContext")?;
    let highest_committed_usn = text("highestCommittedUSN")?
        .parse::<u64>()
        .map_err(|error| AdError::Search {
            base: "rootDSE".into(),
            detail: format!("highestCommittedUSN: {error}"),
        })?;

    let settings = read_one(
        connection,
        config,
        &ds_service_name,
        &["invocationId"],
        "NTDS Settings",
        stats,
    )
    .await?;
    let invocation_id = match settings.values("invocationId") {
        Some([id]) => decode_guid(id),
        _ => Err("missing".into()),
    }
    .map_err(|problem| AdError::Search {
        base: ds_service_name.clone(),
        detail: format!("invocationId: {problem}"),
    })?;

    Ok(DcIdentity {
        ds_service_name,
        dns_host_name,
        invocation_id,
        highest_committed_usn,
        default_naming_context,
    })
}

/// A base search that must find its entry.
async fn read_one(
    connection: &mut Connection,
    config: &AdConfig,
    dn: &str,
    attributes: &[&str],
    label: &str,
    stats: &mut CollectStats,
) -> Result<RawEntry, AdError> {
    let query = Query {
        base: dn,
        scope: Scope::Base,
        filter: "(objectClass=*)",
        attributes,
        show_deleted: false,
    };
    let mut found = None;
    let search = run_search(connection, config, &query, label, stats, |entry| {
        found = Some(entry);
        Ok(())
    });
    search.await?;
    found.ok_or_else(|| AdError::Search {
        base: label.into(),
        detail: "nothing came back".into(),
    })
}

/// One paged search, recorded in the stats.
async fn run_search(
    connection: &mut Connection,
    config: &AdConfig,
    query: &Query<'_>,
    label: &str,
    stats: &mut CollectStats,
    sink: impl FnMut(RawEntry) -> Result<(), DecodeProblem>,
) -> Result<(), AdError> {
    let url = connection.url.clone();
    let timeout = config.operation_timeout();
    let result = paged_search(
        &mut connection.ldap,
        &url,
        query,
        config.page_size,
        timeout,
        sink,
    )
    .await?;
    stats.searches.push((label.to_owned(), result));
    Ok(())
}

/// The base DNs must lie in the domain this controller serves, or the searches would only
/// come back with referrals.
fn check_scope(config: &AdConfig, dc: &DcIdentity) -> Result<(), AdError> {
    let domain = normalized(&dc.default_naming_context);
    for base in &config.base_dns {
        if !is_within(&normalized(base), &domain) {
            return Err(AdError::BaseDn {
                base: base.clone(),
                detail: format!(
                    "it is not in the domain {} serves ({})",
                    dc.dns_host_name, dc.default_naming_context
                ),
            });
        }
    }
    Ok(())
}

fn normalized(dn: &str) -> String {
    crate::inputs::dn::normalize(dn).unwrap_or_else(|_| dn.to_ascii_lowercase())
}

/// Whether canonical DN `dn` is `base` or lies below it.
fn is_within(dn: &str, base: &str) -> bool {
    dn == base
        || dn
            .strip_suffix(base)
            .is_some_and(|head| head.ends_with(','))
}

/// The computer filter, with the config's extra filter ANDed in.
fn computer_filter(config: &AdConfig, since_usn: Option<u64>) -> String {
    let mut filter = String::from("(&(objectClass=computer)");
    if let Some(usn) = since_usn {
        filter.push_str(&format!("(uSNChanged>={})", usn + 1));
    }
    if let Some(extra) = &config.filter {
        filter.push_str(extra.trim());
    }
    filter.push(')');
    filter
}

/// Computers under the base DNs, then the VIP closure.
async fn read_everything(
    connection: &mut Connection,
    config: &AdConfig,
    vip_groups: &[String],
    dc: &DcIdentity,
    stats: &mut CollectStats,
    progress: &ProgressBar,
) -> Result<BTreeMap<Uuid, AdObject>, AdError> {
    let mut objects = BTreeMap::new();
    let filter = computer_filter(config, None);
    for base in &config.base_dns {
        let query = Query {
            base,
            scope: Scope::Subtree,
            filter: &filter,
            attributes: ATTRIBUTES,
            show_deleted: false,
        };
        let label = format!("computers under {base}");
        run_search(connection, config, &query, &label, stats, |entry| {
            progress.inc(1);
            let object = to_object(entry)?;
            objects.insert(object.object_guid, object);
            Ok(())
        })
        .await?;
    }

    objects.extend(read_vip_closure(connection, config, vip_groups, dc, stats, progress).await?);
    Ok(objects)
}

/// The VIP groups themselves, the groups nested in them and the users they reach.
async fn read_vip_closure(
    connection: &mut Connection,
    config: &AdConfig,
    vip_groups: &[String],
    dc: &DcIdentity,
    stats: &mut CollectStats,
    progress: &ProgressBar,
) -> Result<BTreeMap<Uuid, AdObject>, AdError> {
    let domain = normalized(&dc.default_naming_context);
    let mut objects = BTreeMap::new();

    for vip in vip_groups {
        if !is_within(&normalized(vip), &domain) {
            tracing::info!(group = %vip, domain = %dc.default_naming_context,
                "VIP group belongs to another domain; this controller cannot resolve it.");
            continue;
        }

        // The group itself: it must exist, or VIP protection would silently vanish.
        let query = Query {
            base: vip,
            scope: Scope::Base,
            filter: "(objectClass=group)",
            attributes: ATTRIBUTES,
            show_deleted: false,
        };
        let mut found = false;
        let label = format!("VIP group {vip}");
        let search = run_search(connection, config, &query, &label, stats, |e| {
            found = true;
            let object = to_object(e)?;
            objects.insert(object.object_guid, object);
            Ok(())
        });
        search.await.map_err(|error| vip_error(vip, error))?;
        if !found {
            return Err(vip_error(
                vip,
                AdError::BaseDn {
                    base: vip.clone(),
                    detail: "it exists but is not a group".into(),
                },
            ));
        }

        let in_chain = format!(
            "(memberOf:1.2.840.113556.1.4.1941:={})",
            ldap3::ldap_escape(vip)
        );
        let nested_groups = format!("(&(objectClass=group){in_chain})");
        let users = format!("(&(objectClass=user)(!(objectClass=computer)){in_chain})");
        for (what, filter) in [("groups in", nested_groups), ("users in", users)] {
            let query = Query {
                base: &dc.default_naming_context,
                scope: Scope::Subtree,
                filter: &filter,
                attributes: ATTRIBUTES,
                show_deleted: false,
            };
            run_search(
                connection,
                config,
                &query,
                &format!("{what} {vip}"),
                stats,
                |entry| {
                    progress.inc(1);
                    let object = to_object(entry)?;
                    objects.insert(object.object_guid, object);
                    Ok(())
                },
            )
            .await?;
        }
    }
    Ok(objects)
}

/// A VIP group that is missing is a config problem, and says so.
fn vip_error(vip: &str, error: AdError) -> AdError {
    match error {
        AdError::BaseDn { detail, .. } => AdError::Config(format!(
            "policy.vip_groups: {vip:?} cannot be read: {detail}; check the DN"
        )),
        other => other,
    }
}

fn to_object(entry: RawEntry) -> Result<AdObject, DecodeProblem> {
    let dn = entry.dn.clone();
    AdObject::from_entry(entry).map_err(|problem| DecodeProblem { dn, problem })
}

fn sorted(objects: BTreeMap<Uuid, AdObject>) -> Vec<AdObject> {
    let mut objects: Vec<AdObject> = objects.into_values().collect();
    objects.sort_by_cached_key(|object| (object.kind, object.dn.to_ascii_lowercase()));
    objects
}

/// The change set of a full run: everything as upserts, and deletes for what the previous
/// state knew and the directory no longer has.
fn full_change_set(
    config: &AdConfig,
    vip_groups: &[String],
    dc: &DcIdentity,
    previous: Option<&SyncState>,
    objects: BTreeMap<Uuid, AdObject>,
    reason: String,
    stats: CollectStats,
) -> ChangeSet {
    let mut records: Vec<ChangeRecord> = sorted(objects.clone())
        .iter()
        .map(ChangeRecord::upsert)
        .collect();
    if let Some(previous) = previous {
        for (guid, known) in &previous.objects {
            if !objects.contains_key(guid) {
                records.push(ChangeRecord::delete(
                    known.kind,
                    *guid,
                    &known.dn,
                    dc.highest_committed_usn,
                ));
            }
        }
    }

    let known = objects
        .values()
        .map(|object| (object.object_guid, known_of(object)))
        .collect();
    ChangeSet {
        mode: ChangeMode::Full { reason },
        records,
        state: new_state(config, vip_groups, dc, known),
        stats,
    }
}

/// The change set of an incremental run.
async fn incremental(
    connection: &mut Connection,
    config: &AdConfig,
    vip_groups: &[String],
    dc: &DcIdentity,
    previous: &SyncState,
    mut stats: CollectStats,
    progress: &ProgressBar,
) -> Result<ChangeSet, AdError> {
    let since = previous.highest_committed_usn;
    let mut known = previous.objects.clone();
    let bases: Vec<String> = config
        .base_dns
        .iter()
        .map(|base| normalized(base))
        .collect();
    let in_scope = |dn: &str| {
        let dn = normalized(dn);
        bases.iter().any(|base| is_within(&dn, base))
    };

    // Changed computers anywhere in the domain: a computer that moved out of the base DNs
    // must be seen to be reported as gone.
    let filter = computer_filter(config, Some(since));
    let query = Query {
        base: &dc.default_naming_context,
        scope: Scope::Subtree,
        filter: &filter,
        attributes: ATTRIBUTES,
        show_deleted: true,
    };
    let mut changed = Vec::new();
    run_search(
        connection,
        config,
        &query,
        "changed computers",
        &mut stats,
        |entry| {
            progress.inc(1);
            changed.push(to_object(entry)?);
            Ok(())
        },
    )
    .await?;

    let mut records = Vec::new();
    for object in changed {
        let guid = object.object_guid;
        if !object.is_deleted && in_scope(&object.dn) {
            known.insert(guid, known_of(&object));
            records.push(ChangeRecord::upsert(&object));
        } else if let Some(gone) = known.remove(&guid) {
            records.push(ChangeRecord::delete(
                gone.kind,
                guid,
                &gone.dn,
                object.usn_changed,
            ));
        }
    }

    // The VIP closure, compared with what was reported before.
    let closure =
        read_vip_closure(connection, config, vip_groups, dc, &mut stats, progress).await?;
    for object in closure.values() {
        let unchanged = known.get(&object.object_guid).is_some_and(|before| {
            before.usn_changed == object.usn_changed && before.dn == object.dn
        });
        if !unchanged {
            known.insert(object.object_guid, known_of(object));
            records.push(ChangeRecord::upsert(object));
        }
    }
    let left: Vec<Uuid> = known
        .iter()
        .filter(|(guid, entry)| entry.kind != ObjectKind::Computer && !closure.contains_key(guid))
        .map(|(guid, _)| *guid)
        .collect();
    for guid in left {
        if let Some(gone) = known.remove(&guid) {
            records.push(ChangeRecord::delete(
                gone.kind,
                guid,
                &gone.dn,
                dc.highest_committed_usn,
            ));
        }
    }

    records.sort_by_key(|record| (record.usn_changed, record.kind, record.object_guid));
    Ok(ChangeSet {
        mode: ChangeMode::Incremental { since_usn: since },
        records,
        state: new_state(config, vip_groups, dc, known),
        stats,
    })
}

fn known_of(object: &AdObject) -> Known {
    Known {
        kind: object.kind,
        dn: object.dn.clone(),
        usn_changed: object.usn_changed,
    }
}

fn new_state(
    config: &AdConfig,
    vip_groups: &[String],
    dc: &DcIdentity,
    objects: BTreeMap<Uuid, Known>,
) -> SyncState {
    SyncState {
        version: STATE_VERSION,
        dc: dc.ds_service_name.clone(),
        dc_host: dc.dns_host_name.clone(),
        invocation_id: dc.invocation_id,
        highest_committed_usn: dc.highest_committed_usn,
        base_dns: config.base_dns.clone(),
        vip_groups: vip_groups.to_vec(),
        objects,
    }
}

/// A spinner counting entries, on a terminal only.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {pos} directory entries read {elapsed}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Writes a file atomically, or to standard output for `-`.
fn write_output(path: &Path, bytes: &[u8]) -> Result<(), AdError> {
    if path.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(|source| AdError::Output {
                path: path.to_owned(),
                source,
            });
    }
    write_atomically(path, bytes)
}

fn log_undecodable(stats: &CollectStats) {
    let undecodable = stats.undecodable();
    if undecodable > 0 {
        tracing::error!(
            undecodable,
            "Directory entries could not be decoded and are missing from the output; \
             each was logged above with its DN."
        );
    }
}

fn log_snapshot(snapshot: &Snapshot, out: &Path) {
    log_undecodable(&snapshot.stats);
    let count = |kind| {
        snapshot
            .objects
            .iter()
            .filter(|object| object.kind == kind)
            .count()
    };
    tracing::info!(
        dc = %snapshot.dc.dns_host_name,
        computers = count(ObjectKind::Computer),
        groups = count(ObjectKind::Group),
        users = count(ObjectKind::User),
        entries_read = snapshot.stats.entries(),
        searches = snapshot.stats.searches.len(),
        retries = snapshot.stats.retries,
        out = %out.display(),
        "Directory collected."
    );
}

fn log_changes(changes: &ChangeSet, out: &str) {
    log_undecodable(&changes.stats);
    let (mode, since) = match &changes.mode {
        ChangeMode::Incremental { since_usn } => ("incremental".to_owned(), Some(*since_usn)),
        ChangeMode::Full { reason } => (format!("full ({reason})"), None),
    };
    let upserts = changes
        .records
        .iter()
        .filter(|record| record.op == Op::Upsert)
        .count();
    tracing::info!(
        %mode,
        since_usn = since,
        highest_committed_usn = changes.state.highest_committed_usn,
        dc = %changes.state.dc_host,
        upserts,
        deletes = changes.records.len() - upserts,
        entries_read = changes.stats.entries(),
        searches = changes.stats.searches.len(),
        retries = changes.stats.retries,
        out,
        "Directory changes collected."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdConfig {
        toml::from_str(
            "url = \"ldaps://dc1\"\nbase_dns = [\"OU=Estate,DC=corp,DC=test\"]\nbind_dn = \"x\"\n",
        )
        .unwrap()
    }

    fn dc() -> DcIdentity {
        DcIdentity {
            ds_service_name: "CN=NTDS Settings,CN=DC1,DC=corp,DC=test".into(),
            dns_host_name: "dc1.corp.test".into(),
            invocation_id: Uuid::from_u128(1),
            highest_committed_usn: 500,
            default_naming_context: "DC=corp,DC=test".into(),
        }
    }

    #[test]
    fn within_needs_a_whole_rdn() {
        let base = normalized("OU=Estate,DC=corp,DC=test");
        assert!(is_within(
            &normalized("CN=a,OU=Estate,DC=corp,DC=test"),
            &base
        ));
        assert!(is_within(&base, &base));
        assert!(!is_within(
            &normalized("OU=RealEstate,DC=corp,DC=test"),
            &base
        ));
        // An escaped comma is part of the name, not an RDN boundary.
        assert!(!is_within(
            &normalized(r"CN=a\,OU=Estate,DC=corp,DC=test"),
            &base
        ));
    }

    #[test]
    fn filters_combine_usn_and_the_extra_filter() {
        let mut config = config();
        assert_eq!(computer_filter(&config, None), "(&(objectClass=computer))");
        config.filter = Some(" (!(operatingSystem=Samba)) ".into());
        assert_eq!(
            computer_filter(&config, Some(4000)),
            "(&(objectClass=computer)(uSNChanged>=4001)(!(operatingSystem=Samba)))"
        );
    }

    #[test]
    fn base_dn_outside_the_domain_is_refused() {
        let mut config = config();
        check_scope(&config, &dc()).unwrap();
        config.base_dns.push("OU=x,DC=other,DC=test".into());
        let error = check_scope(&config, &dc()).unwrap_err().to_string();
        assert!(error.contains("OU=x,DC=other,DC=test"), "{error}");
        assert!(
            error.contains("not in the domain dc1.corp.test serves"),
            "{error}"
        );
    }

    #[test]
    fn resync_reasons() {
        let config = config();
        let state = new_state(&config, &[], &dc(), BTreeMap::new());
        assert_eq!(
            resync_reason(Some(&state), &dc(), &config, &[], false),
            None
        );
        assert_eq!(
            resync_reason(None, &dc(), &config, &[], false).as_deref(),
            Some("no state file yet")
        );
        assert!(resync_reason(Some(&state), &dc(), &config, &[], true).is_some());

        let restored = DcIdentity {
            invocation_id: Uuid::from_u128(2),
            ..dc()
        };
        let reason = resync_reason(Some(&state), &restored, &config, &[], false).unwrap();
        assert!(reason.contains("new invocationId"), "{reason}");

        let other = DcIdentity {
            ds_service_name: "CN=NTDS Settings,CN=DC2".into(),
            ..dc()
        };
        let reason = resync_reason(Some(&state), &other, &config, &[], false).unwrap();
        assert!(reason.contains("not CN=NTDS Settings,CN=DC2"), "{reason}");

        let vip = ["CN=VIP,DC=corp,DC=test".to_owned()];
        assert!(resync_reason(Some(&state), &dc(), &config, &vip, false).is_some());
    }

    #[test]
    fn full_resync_deletes_what_vanished() {
        let config = config();
        let mut before = BTreeMap::new();
        before.insert(
            Uuid::from_u128(9),
            Known {
                kind: ObjectKind::Computer,
                dn: "CN=gone,OU=Estate,DC=corp,DC=test".into(),
                usn_changed: 7,
            },
        );
        let previous = new_state(&config, &[], &dc(), before);
        let set = full_change_set(
            &config,
            &[],
            &dc(),
            Some(&previous),
            BTreeMap::new(),
            "t".into(),
            CollectStats::default(),
        );
        assert_eq!(set.records.len(), 1);
        assert_eq!(set.records[0].op, Op::Delete);
        assert_eq!(set.records[0].dn, "CN=gone,OU=Estate,DC=corp,DC=test");
        assert_eq!(set.records[0].usn_changed, 500);
        assert!(set.state.objects.is_empty());
    }
}
