//! `collect central --to kafka`: pages go onto the Central topic as they arrive, instead of
//! into tenant folders.
//!
//! Each endpoint of a page becomes one record, the same [`EndpointRecord`] that `lastseen
//! publish` writes from a folder (tenant id, snapshot id, `collected_at`, the endpoint as
//! Central sent it), keyed by tenant id so that a tenant's records stay in order on one
//! partition. The end of a tenant's snapshot is its [`SnapshotComplete`] marker, saying how
//! many endpoint records came before it and, when the tenant failed, `complete: false` with
//! the error: the correlator then decides nothing `delete` for it, as `run` does for an
//! incomplete manifest.
//!
//! Records go through the idempotent, `acks=all` producer behind [`Bus`], with a bounded
//! number in flight. A record the broker does not acknowledge fails the page or marker that
//! sent it, or [`KafkaSink::finish`] at the end, and with it the command.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::EndpointPage;
use super::collect::{PageSink, SinkError, TenantOutcome, TenantSnapshot};
use crate::bus::publish::{IN_FLIGHT, snapshot_id};
use crate::bus::records::{CentralRecordType, EndpointRecord, SnapshotComplete, encode_marker};
use crate::bus::{Bus, BusError, InFlight, OutRecord};

/// Publishes collected snapshots onto the Central topic.
pub struct KafkaSink<'b, B> {
    bus: &'b B,
    topic: String,
    /// Names the broker in errors, e.g. `Kafka at 127.0.0.1:9092`.
    place: String,
    in_flight: tokio::sync::Mutex<InFlight>,
    /// Endpoint records sent so far per tenant whose snapshot is running; the marker says how
    /// many the snapshot holds, so it counts what went out, not what Central announced.
    sent: Mutex<HashMap<String, u64>>,
}

/// A page body: only `items` is needed, each item kept as Central's bytes.
#[derive(Deserialize)]
struct Items<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

impl<'b, B: Bus> KafkaSink<'b, B> {
    pub fn new(bus: &'b B, topic: &str, place: &str) -> KafkaSink<'b, B> {
        KafkaSink {
            bus,
            topic: topic.to_owned(),
            place: place.to_owned(),
            in_flight: tokio::sync::Mutex::new(InFlight::new(IN_FLIGHT)),
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until the broker acknowledged every record sent; the count of records. Only
    /// then is the collection on Kafka.
    pub async fn finish(&self) -> Result<u64, SinkError> {
        let mut in_flight = self.in_flight.lock().await;
        in_flight.finish().await.map_err(|error| self.failed(error))
    }

    async fn send(&self, key: &str, payload: Vec<u8>) -> Result<(), SinkError> {
        let record = OutRecord::new(&self.topic, Some(key), payload);
        let mut in_flight = self.in_flight.lock().await;
        in_flight
            .send(self.bus, record)
            .await
            .map_err(|error| self.failed(error))
    }

    fn failed(&self, error: BusError) -> SinkError {
        SinkError {
            path: self.place.clone(),
            problem: error.to_string(),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<B: Bus> PageSink for KafkaSink<'_, B> {
    // TODO(a tenant-list record on the Central topic): a tenant Central no longer lists keeps
    // its last snapshot in the correlator until retention drops it, where `FileSink` marks its
    // folder incomplete; the sink cannot tell which tenants the topic still holds.

    async fn begin(&self, tenant: &TenantSnapshot) -> Result<(), SinkError> {
        // Nothing goes out yet: a snapshot is its records, and the correlator starts one when
        // the first record with a new snapshot id arrives.
        self.sent().insert(tenant.tenant_id.clone(), 0);
        Ok(())
    }

    async fn page(&self, tenant: &TenantSnapshot, page: EndpointPage) -> Result<(), SinkError> {
        // The client has parsed the page to count it, so this only fails on a client bug.
        let items: Items<'_> = serde_json::from_slice(&page.body).map_err(|error| SinkError {
            path: self.place.clone(),
            problem: format!(
                "page {} of tenant {} is not an endpoint page: {error}",
                page.number, tenant.tenant_id
            ),
        })?;

        let collected_at = tenant.collected_at_text();
        let snapshot_id = snapshot_id(&tenant.tenant_id, &collected_at);
        for item in &items.items {
            let record = EndpointRecord {
                kind: CentralRecordType::Endpoint,
                tenant_id: &tenant.tenant_id,
                snapshot_id: &snapshot_id,
                collected_at: &collected_at,
                endpoint: item,
            };
            let payload = serde_json::to_vec(&record).unwrap_or_default();
            self.send(&tenant.tenant_id, payload).await?;
        }

        *self.sent().entry(tenant.tenant_id.clone()).or_default() += items.items.len() as u64;
        Ok(())
    }

    async fn end(&self, tenant: &TenantSnapshot, outcome: &TenantOutcome) -> Result<(), SinkError> {
        let collected_at = tenant.collected_at_text();
        let endpoints = self.sent().remove(&tenant.tenant_id).unwrap_or(0);
        let marker = SnapshotComplete {
            tenant_id: tenant.tenant_id.clone(),
            snapshot_id: snapshot_id(&tenant.tenant_id, &collected_at),
            collected_at,
            endpoints,
            complete: outcome.error.is_none(),
            error: outcome.error.clone(),
        };
        self.send(&tenant.tenant_id, encode_marker(&marker)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::bus::records::{CentralRecord, decode_central};

    fn tenant(id: &str) -> TenantSnapshot {
        TenantSnapshot {
            tenant_id: id.to_owned(),
            tenant_name: None,
            collected_at: "2026-12-01T06:30:00.125Z".parse().unwrap(),
        }
    }

    fn page(number: u32, ids: &[&str]) -> EndpointPage {
        let items: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"id": "{id}", "hostname": "PC-{id}"}}"#))
            .collect();
        EndpointPage {
            tenant_id: "t".into(),
            number,
            body: format!(r#"{{"items": [{}], "pages": {{}}}}"#, items.join(", ")).into_bytes(),
            endpoints: ids.len(),
            next_key: None,
        }
    }

    #[tokio::test]
    async fn endpoints_then_the_marker_keyed_by_tenant() {
        let bus = MemoryBus::new();
        let sink = KafkaSink::new(&bus, "lastseen.central.endpoints", "Kafka at test");
        let acme = tenant("acme");

        sink.begin(&acme).await.unwrap();
        sink.page(&acme, page(1, &["e1", "e2"])).await.unwrap();
        sink.page(&acme, page(2, &["e3"])).await.unwrap();
        let outcome = TenantOutcome {
            pages: 2,
            endpoints: 3,
            error: None,
        };
        sink.end(&acme, &outcome).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), 4);

        let records = bus.records("lastseen.central.endpoints");
        assert!(records.iter().all(|r| r.key.as_deref() == Some(b"acme")));
        let snapshot = snapshot_id("acme", "2026-12-01T06:30:00.125Z");

        let mut hosts = Vec::new();
        for record in &records[..3] {
            let text = std::str::from_utf8(record.payload.as_deref().unwrap()).unwrap();
            assert!(
                text.starts_with(&format!(
                    r#"{{"type":"endpoint","tenant_id":"acme","snapshot_id":"{snapshot}","collected_at":"2026-12-01T06:30:00.125Z","endpoint":{{"id": "#
                )),
                "{text}"
            );
            match decode_central(record.payload.as_deref().unwrap()).unwrap() {
                CentralRecord::Endpoint { endpoint, .. } => hosts.push(endpoint.get().to_owned()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(hosts[2], r#"{"id": "e3", "hostname": "PC-e3"}"#);

        match decode_central(records[3].payload.as_deref().unwrap()).unwrap() {
            CentralRecord::SnapshotComplete(marker) => assert_eq!(
                marker,
                SnapshotComplete {
                    tenant_id: "acme".into(),
                    snapshot_id: snapshot,
                    collected_at: "2026-12-01T06:30:00.125Z".into(),
                    endpoints: 3,
                    complete: true,
                    error: None,
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failed_tenant_ends_incomplete_with_its_error() {
        let bus = MemoryBus::new();
        let sink = KafkaSink::new(&bus, "c", "Kafka at test");
        let field = tenant("field");

        sink.begin(&field).await.unwrap();
        sink.page(&field, page(1, &["e9"])).await.unwrap();
        let outcome = TenantOutcome {
            pages: 1,
            endpoints: 1,
            error: Some("HTTP 503 on page 2".into()),
        };
        sink.end(&field, &outcome).await.unwrap();
        sink.finish().await.unwrap();

        let records = bus.records("c");
        assert_eq!(records.len(), 2);
        match decode_central(records[1].payload.as_deref().unwrap()).unwrap() {
            CentralRecord::SnapshotComplete(marker) => {
                assert_eq!(marker.endpoints, 1);
                assert!(!marker.complete);
                assert_eq!(marker.error.as_deref(), Some("HTTP 503 on page 2"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// A folder that `FileSink` wrote and `publish` put on the topic later gives the very
    /// records a collection straight to Kafka gives: same bytes, keys and snapshot id.
    #[tokio::test]
    async fn a_published_folder_gives_the_same_records() {
        use crate::bus::Topics;
        use crate::central::collect::FileSink;
        use crate::inputs::{InputPlan, Source};

        let out = tempfile::tempdir().unwrap();
        let files = FileSink::new(out.path());
        let direct = MemoryBus::new();
        let kafka = KafkaSink::new(&direct, "p.central.endpoints", "Kafka at test");
        let acme = tenant("acme");
        let outcome = TenantOutcome {
            pages: 2,
            endpoints: 3,
            error: None,
        };

        files.begin(&acme).await.unwrap();
        kafka.begin(&acme).await.unwrap();
        for (number, ids) in [(1, &["e1", "e2"][..]), (2, &["e3"][..])] {
            files.page(&acme, page(number, ids)).await.unwrap();
            kafka.page(&acme, page(number, ids)).await.unwrap();
        }
        files.end(&acme, &outcome).await.unwrap();
        kafka.end(&acme, &outcome).await.unwrap();
        kafka.finish().await.unwrap();

        let later = MemoryBus::new();
        let plan = InputPlan {
            central: vec![Source::File(out.path().to_owned())],
            ldif: Vec::new(),
            actions: None,
        };
        crate::bus::publish::publish(&later, &Topics::new("p"), &plan)
            .await
            .unwrap();

        // Key and payload of each record, as text.
        let records = |bus: &MemoryBus| -> Vec<(String, String)> {
            let text = |bytes: Option<Vec<u8>>| String::from_utf8(bytes.unwrap()).unwrap();
            let records = bus.records("p.central.endpoints").into_iter();
            records.map(|r| (text(r.key), text(r.payload))).collect()
        };
        assert_eq!(records(&direct).len(), 4);
        assert_eq!(records(&direct), records(&later));
    }
}
