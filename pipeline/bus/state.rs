//! The correlator's state: what the topics say now, rebuilt record by record.
//!
//! - Central: per tenant, the latest complete snapshot. Endpoint records collect under their
//!   snapshot id and replace the tenant's endpoints only when the snapshot-complete marker
//!   arrives, so endpoints that left Central disappear and a half-read collection never shows.
//! - AD: the latest change per object GUID; a delete removes the object.
//! - Actions: every action, in order, as the action log is.
//!
//! [`State::estate`] turns the state into the same [`Estate`] that `lastseen run` builds from
//! files, through the same readers, so both paths decide alike. Anything that cast doubt on
//! the data (a record that could not be decoded, a snapshot shorter than announced, a
//! collection that stopped early) becomes a reject for its tenant, or for everything when the
//! tenant is unknown, so no affected endpoint is decided `delete`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::records::{self, CentralRecord, SnapshotComplete};
use super::{InRecord, Topics, ldif};
use crate::ad::changes::Op;
use crate::ad::object::ObjectKind;
use crate::inputs::{self, Estate, InputError, InputKind, Reject, Source};

/// LDIF rendered per source handed to the reader, so that it parses on all cores.
const LDIF_CHUNK_BYTES: usize = 8 << 20;

/// The endpoint fields the correlation reads; the rest of Central's JSON is dropped on
/// arrival to keep state small.
const ENDPOINT_FIELDS: [&str; 11] = [
    "id",
    "type",
    "tenant",
    "hostname",
    "health",
    "os",
    "associatedPerson",
    "group",
    "tamperProtectionEnabled",
    "online",
    "lastSeenAt",
];

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// An endpoint joined a snapshot in progress.
    Endpoint,
    /// A tenant's snapshot is complete and now stands for the tenant.
    SnapshotComplete {
        tenant_id: String,
    },
    /// An AD object changed or went away.
    Directory,
    Action,
    /// The record could not be decoded; it belongs on the dead-letter topic.
    Dead {
        error: String,
    },
    /// A record of a topic the state does not read.
    Ignored,
}

/// Row counts per state table, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateRows {
    pub tenants: usize,
    pub endpoints: usize,
    pub pending_endpoints: usize,
    pub computers: usize,
    pub users: usize,
    pub groups: usize,
    pub actions: usize,
    pub rejects: usize,
}

#[derive(Debug, Default)]
struct Snapshot {
    id: String,
    /// Slimmed endpoint JSON by endpoint id; items without a usable id sit in `unkeyed`, so
    /// the reader still rejects them as it would in a file.
    endpoints: HashMap<String, Box<str>>,
    unkeyed: Vec<Box<str>>,
    /// Why this snapshot cannot be trusted to decide `delete`, if anything.
    rejects: Vec<Reject>,
}

impl Snapshot {
    fn len(&self) -> usize {
        self.endpoints.len() + self.unkeyed.len()
    }
}

#[derive(Debug, Default)]
struct TenantState {
    partition: i32,
    current: Option<Snapshot>,
    pending: Option<Snapshot>,
    /// Dead letters keyed to this tenant since its last complete snapshot: they taint the
    /// snapshot they most likely belonged to.
    taint: Vec<Reject>,
}

#[derive(Debug)]
struct DirectoryObject {
    kind: ObjectKind,
    ldif: Box<str>,
}

/// What the topics say now.
#[derive(Debug)]
pub struct State {
    topics: Topics,
    tenants: HashMap<String, TenantState>,
    directory: HashMap<uuid::Uuid, DirectoryObject>,
    actions: Vec<Box<str>>,
    /// Dead letters that no tenant can own: they make every decision a manual review.
    dead_letters: Vec<Reject>,
}

impl State {
    pub fn new(topics: Topics) -> State {
        State {
            topics,
            tenants: HashMap::new(),
            directory: HashMap::new(),
            actions: Vec::new(),
            dead_letters: Vec::new(),
        }
    }

    /// Applies one record of any of the input topics.
    pub fn apply(&mut self, record: &InRecord) -> Applied {
        let payload = record.payload.as_deref().unwrap_or_default();
        let result = if record.topic == self.topics.central {
            self.apply_central(record.partition, payload)
        } else if record.topic == self.topics.ad {
            self.apply_ad(payload)
        } else if record.topic == self.topics.actions {
            records::decode_action(payload).map(|line| {
                self.actions.push(line.into());
                Applied::Action
            })
        } else {
            Ok(Applied::Ignored)
        };

        result.unwrap_or_else(|error| {
            self.dead_letter(record, &error);
            Applied::Dead { error }
        })
    }

    fn apply_central(&mut self, partition: i32, payload: &[u8]) -> Result<Applied, String> {
        match records::decode_central(payload)? {
            CentralRecord::Endpoint {
                tenant_id,
                snapshot_id,
                endpoint,
            } => {
                let tenant = self.tenants.entry(tenant_id).or_default();
                tenant.partition = partition;

                // A new snapshot id means a new collection; one left unfinished is dropped.
                let pending = tenant
                    .pending
                    .take()
                    .filter(|pending| pending.id == snapshot_id);
                let pending = tenant.pending.insert(pending.unwrap_or_else(|| Snapshot {
                    id: snapshot_id,
                    ..Snapshot::default()
                }));

                let (id, slim) = slim_endpoint(endpoint);
                match id {
                    Some(id) => {
                        pending.endpoints.insert(id, slim);
                    }
                    None => pending.unkeyed.push(slim),
                }
                Ok(Applied::Endpoint)
            }
            CentralRecord::SnapshotComplete(marker) => {
                let tenant_id = marker.tenant_id.clone();
                let tenant = self.tenants.entry(tenant_id.clone()).or_default();
                tenant.partition = partition;
                complete_snapshot(&self.topics.central, tenant, marker);
                Ok(Applied::SnapshotComplete { tenant_id })
            }
        }
    }

    fn apply_ad(&mut self, payload: &[u8]) -> Result<Applied, String> {
        let change = records::decode_ad(payload)?;
        match (change.op, change.attributes) {
            (Op::Upsert, Some(attributes)) => {
                let ldif = ldif::render_entry(&change.dn, &attributes).into_boxed_str();
                let object = DirectoryObject {
                    kind: change.kind,
                    ldif,
                };
                self.directory.insert(change.object_guid, object);
            }
            _ => {
                self.directory.remove(&change.object_guid);
            }
        }
        Ok(Applied::Directory)
    }

    fn dead_letter(&mut self, record: &InRecord, error: &str) {
        let tenant_key = record
            .key
            .as_deref()
            .and_then(|key| std::str::from_utf8(key).ok())
            .filter(|_| record.topic == self.topics.central || record.topic == self.topics.actions)
            .map(str::to_owned);
        let reject = Reject {
            input: if record.topic == self.topics.ad {
                InputKind::Ldif
            } else if record.topic == self.topics.actions {
                InputKind::Actions
            } else {
                InputKind::Central
            },
            file: record.topic.clone(),
            record: format!("partition {} offset {}", record.partition, record.offset),
            field: None,
            problem: format!("sent to the dead-letter topic: {error}"),
            tenant_id: tenant_key.clone(),
            endpoint_id: None,
            raw: record
                .payload
                .as_deref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
        };

        // A Central record taints only its tenant's snapshot in progress; anything else may
        // have been about any tenant.
        match tenant_key.filter(|_| record.topic == self.topics.central) {
            Some(tenant_id) => {
                let tenant = self.tenants.entry(tenant_id).or_default();
                tenant.partition = record.partition;
                tenant.taint.push(reject);
            }
            None => self.dead_letters.push(reject),
        }
    }

    /// Forgets the tenants of Central partitions this instance no longer owns; their new owner
    /// rebuilds them.
    pub fn drop_partitions(&mut self, partitions: &[i32]) -> usize {
        let before = self.tenants.len();
        self.tenants
            .retain(|_, tenant| !partitions.contains(&tenant.partition));
        before - self.tenants.len()
    }

    pub fn has_tenant(&self, tenant_id: &str) -> bool {
        self.tenants.contains_key(tenant_id)
    }

    pub fn rows(&self) -> StateRows {
        let mut rows = StateRows {
            tenants: self.tenants.len(),
            actions: self.actions.len(),
            rejects: self.dead_letters.len(),
            ..StateRows::default()
        };
        for tenant in self.tenants.values() {
            if let Some(current) = &tenant.current {
                rows.endpoints += current.len();
                rows.rejects += current.rejects.len();
            }
            rows.pending_endpoints += tenant.pending.as_ref().map_or(0, Snapshot::len);
        }
        for object in self.directory.values() {
            match object.kind {
                ObjectKind::Computer => rows.computers += 1,
                ObjectKind::User => rows.users += 1,
                ObjectKind::Group => rows.groups += 1,
            }
        }
        rows
    }

    /// The estate the state stands for, read by the same readers as `lastseen run`'s files.
    pub fn estate(&self) -> Result<Estate, InputError> {
        let mut tenant_ids: Vec<&String> = self.tenants.keys().collect();
        tenant_ids.sort();
        let items = tenant_ids.iter().flat_map(|tenant_id| {
            let current = self.tenants[*tenant_id].current.as_ref();
            current.into_iter().flat_map(move |snapshot| {
                let keyed = snapshot.endpoints.values();
                keyed
                    .chain(&snapshot.unkeyed)
                    .map(move |item| (item.as_ref(), Some(tenant_id.as_str())))
            })
        });
        let central = inputs::central::read_items(&self.topics.central, items);

        let directory = inputs::ldif::read(&self.ldif_sources())?;

        let mut log = String::with_capacity(self.actions.iter().map(|a| a.len() + 1).sum());
        for action in &self.actions {
            log.push_str(action);
            log.push('\n');
        }
        let actions = inputs::actions::read(&Source::Memory {
            name: self.topics.actions.clone(),
            bytes: Arc::from(log.into_bytes()),
        })?;

        let mut rejects = central.rejects.clone();
        rejects.extend(directory.rejects.iter().cloned());
        rejects.extend(actions.rejects.iter().cloned());
        for tenant_id in tenant_ids {
            if let Some(current) = &self.tenants[tenant_id].current {
                rejects.extend(current.rejects.iter().cloned());
            }
        }
        rejects.extend(self.dead_letters.iter().cloned());

        Ok(Estate {
            central,
            directory,
            actions,
            rejects,
        })
    }

    /// The directory as LDIF, cut into sources of a few megabytes.
    fn ldif_sources(&self) -> Vec<Source> {
        let mut objects: Vec<(&uuid::Uuid, &DirectoryObject)> = self.directory.iter().collect();
        objects.sort_by_key(|(guid, _)| *guid);

        let mut sources = Vec::new();
        let mut chunk = String::new();
        for (_, object) in objects {
            chunk.push_str(&object.ldif);
            if chunk.len() >= LDIF_CHUNK_BYTES {
                sources.push(self.ldif_source(std::mem::take(&mut chunk), sources.len()));
            }
        }
        if !chunk.is_empty() || sources.is_empty() {
            sources.push(self.ldif_source(chunk, sources.len()));
        }
        sources
    }

    fn ldif_source(&self, text: String, index: usize) -> Source {
        Source::Memory {
            name: format!("{} (part {})", self.topics.ad, index + 1),
            bytes: Arc::from(text.into_bytes()),
        }
    }
}

/// A tenant's snapshot is complete: it replaces what the tenant had, with the doubts
/// collected on the way.
fn complete_snapshot(topic: &str, tenant: &mut TenantState, marker: SnapshotComplete) {
    let mut snapshot = tenant
        .pending
        .take()
        .filter(|pending| pending.id == marker.snapshot_id)
        .unwrap_or_else(|| Snapshot {
            id: marker.snapshot_id.clone(),
            ..Snapshot::default()
        });

    let reject = |problem: String| Reject {
        input: InputKind::Manifest,
        file: topic.to_owned(),
        record: format!("snapshot {}", marker.snapshot_id),
        field: None,
        problem,
        tenant_id: Some(marker.tenant_id.clone()),
        endpoint_id: None,
        raw: None,
    };
    if !marker.complete {
        let why = marker.error.as_deref().unwrap_or("no reason given");
        snapshot.rejects.push(reject(format!(
            "the collection of this tenant was incomplete: {why}"
        )));
    }
    if snapshot.len() as u64 != marker.endpoints {
        snapshot.rejects.push(reject(format!(
            "the snapshot announced {} endpoints but {} arrived",
            marker.endpoints,
            snapshot.len()
        )));
    }
    snapshot.rejects.append(&mut tenant.taint);
    tenant.current = Some(snapshot);
}

/// The endpoint's id and its JSON cut down to the fields the correlation reads. JSON that is
/// not a plain object is kept whole, so the reader rejects it just as it would in a file.
fn slim_endpoint(endpoint: &RawValue) -> (Option<String>, Box<str>) {
    let Ok(fields) = serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(endpoint.get())
    else {
        return (None, endpoint.get().into());
    };
    let id = fields
        .get("id")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());

    let mut slim = String::with_capacity(endpoint.get().len() / 2);
    slim.push('{');
    for name in ENDPOINT_FIELDS {
        let Some(raw) = fields.get(name) else {
            continue;
        };
        if slim.len() > 1 {
            slim.push(',');
        }
        slim.push('"');
        slim.push_str(name);
        slim.push_str("\":");
        match name {
            "health" => slim.push_str(&slim_health(raw)),
            _ => slim.push_str(raw.get()),
        }
    }
    slim.push('}');
    (id, slim.into_boxed_str())
}

/// Only `health.overall` is read; threats and service details are the bulk of an endpoint.
fn slim_health(raw: &RawValue) -> Cow<'_, str> {
    match serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(raw.get()) {
        Ok(health) => match health.get("overall") {
            Some(overall) => Cow::Owned(format!("{{\"overall\":{}}}", overall.get())),
            None => Cow::Borrowed("{}"),
        },
        Err(_) => Cow::Borrowed(raw.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::records::{CentralRecordType, EndpointRecord, encode_marker};

    const TENANT: &str = "11111111-1111-1111-1111-111111111111";

    fn topics() -> Topics {
        Topics::new("lastseen")
    }

    fn record(topic: &str, key: &str, payload: Vec<u8>) -> InRecord {
        InRecord {
            topic: topic.into(),
            partition: 1,
            offset: 0,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(payload),
            headers: Vec::new(),
        }
    }

    fn endpoint(snapshot: &str, id: &str, host: &str) -> InRecord {
        let json = format!(
            r#"{{"id":"{id}","hostname":"{host}","health":{{"overall":"good",
                "services":{{"status":"good"}}}},"ipv4Addresses":["10.0.0.1"]}}"#
        );
        let raw = RawValue::from_string(json).unwrap();
        let payload = serde_json::to_vec(&EndpointRecord {
            kind: CentralRecordType::Endpoint,
            tenant_id: TENANT,
            snapshot_id: snapshot,
            collected_at: "2026-12-01T00:00:00Z",
            endpoint: &raw,
        })
        .unwrap();
        record(&topics().central, TENANT, payload)
    }

    fn marker(snapshot: &str, endpoints: u64, complete: bool) -> InRecord {
        let payload = encode_marker(&SnapshotComplete {
            tenant_id: TENANT.into(),
            snapshot_id: snapshot.into(),
            collected_at: "2026-12-01T00:00:00Z".into(),
            endpoints,
            complete,
            error: (!complete).then(|| "HTTP 503".into()),
        });
        record(&topics().central, TENANT, payload)
    }

    fn hostnames(state: &State) -> Vec<String> {
        let estate = state.estate().unwrap();
        let mut names = Vec::new();
        for batch in &estate.central.endpoints {
            let column = batch.column_by_name("hostname").unwrap();
            let column = arrow::array::AsArray::as_string::<i32>(column);
            names.extend(column.iter().flatten().map(str::to_owned));
        }
        names.sort();
        names
    }

    #[test]
    fn a_snapshot_shows_only_once_complete_and_replaces_the_last() {
        let mut state = State::new(topics());
        assert_eq!(state.apply(&endpoint("s1", "e1", "PC1")), Applied::Endpoint);
        state.apply(&endpoint("s1", "e2", "PC2"));
        assert!(hostnames(&state).is_empty(), "nothing before the marker");

        let applied = state.apply(&marker("s1", 2, true));
        assert_eq!(
            applied,
            Applied::SnapshotComplete {
                tenant_id: TENANT.into()
            }
        );
        assert_eq!(hostnames(&state), ["PC1", "PC2"]);

        // The next collection no longer has PC1: once complete, PC1 is gone.
        state.apply(&endpoint("s2", "e2", "PC2"));
        state.apply(&endpoint("s2", "e3", "PC3"));
        assert_eq!(hostnames(&state), ["PC1", "PC2"]);
        state.apply(&marker("s2", 2, true));
        assert_eq!(hostnames(&state), ["PC2", "PC3"]);
        assert!(state.estate().unwrap().rejects.is_empty());
    }

    #[test]
    fn doubts_become_rejects_of_the_tenant() {
        let mut state = State::new(topics());
        state.apply(&endpoint("s1", "e1", "PC1"));
        let mut poison = record(
            &topics().central,
            TENANT,
            b"{\"type\":\"endpoint\"".to_vec(),
        );
        poison.offset = 7;
        let Applied::Dead { error } = state.apply(&poison) else {
            panic!("poison was applied");
        };
        assert!(error.starts_with("not a Central record"), "{error}");
        state.apply(&marker("s1", 3, false));

        let rejects = state.estate().unwrap().rejects;
        let problems: Vec<_> = rejects.iter().map(|r| r.problem.as_str()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("incomplete: HTTP 503"));
        assert!(problems[1].contains("announced 3 endpoints but 1 arrived"));
        assert!(problems[2].starts_with("sent to the dead-letter topic"));
        assert_eq!(rejects[2].record, "partition 1 offset 7");
        assert!(
            rejects
                .iter()
                .all(|r| r.tenant_id.as_deref() == Some(TENANT))
        );

        // A clean snapshot clears them.
        state.apply(&endpoint("s2", "e1", "PC1"));
        state.apply(&marker("s2", 1, true));
        assert!(state.estate().unwrap().rejects.is_empty());
    }

    #[test]
    fn endpoints_are_slimmed_to_what_the_correlation_reads() {
        let raw = RawValue::from_string(
            r#"{"id":"e1","health":{"overall":"bad","threats":{"status":"good"}},
                "ipv4Addresses":["10.0.0.1"],"os":{"build":19045}}"#
                .into(),
        )
        .unwrap();
        let (id, slim) = slim_endpoint(&raw);
        assert_eq!(id.as_deref(), Some("e1"));
        assert_eq!(
            &*slim,
            r#"{"id":"e1","health":{"overall":"bad"},"os":{"build":19045}}"#
        );

        let odd = RawValue::from_string("[1,2]".into()).unwrap();
        assert_eq!(slim_endpoint(&odd), (None, "[1,2]".into()));
    }

    #[test]
    fn ad_deletes_remove_and_revoked_tenants_go() {
        let mut state = State::new(topics());
        let upsert = br#"{"op":"upsert","kind":"computer",
            "object_guid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","domain":"corp.example.test",
            "dn":"CN=PC1,DC=corp,DC=example,DC=test","usn_changed":7,
            "attributes":{"objectClass":["computer"],"cn":["PC1"]}}"#;
        state.apply(&record(&topics().ad, "corp.example.test", upsert.to_vec()));
        assert_eq!(state.rows().computers, 1);
        assert_eq!(state.estate().unwrap().directory.entries, 1);

        let delete = br#"{"op":"delete","kind":"computer",
            "object_guid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","domain":"corp.example.test",
            "dn":"CN=PC1,DC=corp,DC=example,DC=test","usn_changed":9}"#;
        state.apply(&record(&topics().ad, "corp.example.test", delete.to_vec()));
        assert_eq!(state.rows().computers, 0);

        state.apply(&endpoint("s1", "e1", "PC1"));
        state.apply(&marker("s1", 1, true));
        assert_eq!(state.rows().endpoints, 1);
        assert_eq!(state.drop_partitions(&[0]), 0);
        assert_eq!(state.drop_partitions(&[1]), 1);
        assert_eq!(state.rows().endpoints, 0);
    }

    #[test]
    fn an_undecodable_ad_change_doubts_everything() {
        let mut state = State::new(topics());
        let applied = state.apply(&record(&topics().ad, "corp", b"garbage".to_vec()));
        assert!(matches!(applied, Applied::Dead { .. }));
        let rejects = state.estate().unwrap().rejects;
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].tenant_id, None);
    }
}
