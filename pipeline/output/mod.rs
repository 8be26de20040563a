//! Candidate events for a SIEM, and the run summary.
//!
//! An event is one JSON object on one line (`schemas/candidate-event.schema.json`). Its
//! `event_id` is derived from the facts it reports, not from when it was made, so a SIEM or an
//! automation that sees the same candidate again from a later run, or twice from an at-least-once
//! pipeline, can drop the repeat.

pub mod summary;

use std::io::Write;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use chrono::{DateTime, SecondsFormat, Utc};
use rayon::prelude::*;
use serde::Serialize;
use uuid::Uuid;

/// Bumped when a field changes meaning or goes away; adding a field does not bump it.
pub const SCHEMA_VERSION: &str = "1";

pub const EVENT_TYPE: &str = "lastseen.candidate";

/// The namespace of `event_id`s (a UUIDv5 of the event's facts).
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6c61_7374_7365_656e_8000_0000_0000_0001);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateEvent {
    pub event_id: String,
    pub event_type: &'static str,
    pub schema_version: &'static str,
    pub as_of: String,
    pub tenant_id: Option<String>,
    pub endpoint_id: String,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    pub decision: String,
    pub reasons: Vec<String>,
    pub days_inactive: Option<i64>,
    pub last_seen_at: Option<String>,
    pub central: CentralEvidence,
    pub directory: DirectoryEvidence,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CentralEvidence {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub os_name: Option<String>,
    pub os_build: Option<i64>,
    pub associated_person: Option<String>,
    pub via_login: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectoryEvidence {
    pub dn: Option<String>,
    pub object_guid: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub os_build: Option<i64>,
    pub when_changed: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the candidates table has no column {0} of the expected type")]
    Column(&'static str),

    #[error("cannot write candidates to {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Turns rows of the `candidates` view into events.
pub fn events(
    batches: &[RecordBatch],
    as_of: DateTime<Utc>,
) -> Result<Vec<CandidateEvent>, OutputError> {
    let as_of = rfc3339(as_of.timestamp_millis());

    // Batches are independent and each event hashes its facts, so the cores share them; the
    // order of the batches, and so of the events, stays as the query sorted it.
    let per_batch: Vec<Vec<CandidateEvent>> = batches
        .par_iter()
        .map(|batch| batch_events(batch, &as_of))
        .collect::<Result<_, _>>()?;
    Ok(per_batch.into_iter().flatten().collect())
}

fn batch_events(batch: &RecordBatch, as_of: &str) -> Result<Vec<CandidateEvent>, OutputError> {
    let mut events = Vec::with_capacity(batch.num_rows());
    let text = |name| column(batch, name, |array| array.as_string_opt::<i32>());
    let int = |name| column(batch, name, |array| array.as_primitive_opt::<Int64Type>());
    let instant = |name| {
        column(batch, name, |array| {
            array.as_primitive_opt::<TimestampMillisecondType>()
        })
    };
    let reasons = column(batch, "reasons", |array| array.as_list_opt::<i32>())?;

    let (tenant_id, endpoint_id, hostname, domain, decision) = (
        text("tenant_id")?,
        text("endpoint_id")?,
        text("hostname")?,
        text("domain")?,
        text("decision")?,
    );
    let (days_inactive, last_seen_at, when_changed) = (
        int("days_inactive")?,
        instant("last_seen_at")?,
        instant("when_changed")?,
    );
    let (central_type, os_name, os_build, person, via_login) = (
        text("central_type")?,
        text("os_name")?,
        int("os_build")?,
        text("associated_person")?,
        text("via_login")?,
    );
    let (dn, object_guid, computer_os, computer_os_version, computer_os_build) = (
        text("dn")?,
        text("object_guid")?,
        text("computer_os")?,
        text("computer_os_version")?,
        int("computer_os_build")?,
    );

    for row in 0..batch.num_rows() {
        let get = |array: &arrow::array::StringArray| {
            array.is_valid(row).then(|| array.value(row).to_owned())
        };
        let number =
            |array: &arrow::array::Int64Array| array.is_valid(row).then(|| array.value(row));
        let time = |array: &arrow::array::TimestampMillisecondArray| {
            array.is_valid(row).then(|| rfc3339(array.value(row)))
        };

        let reasons_of_row = reasons.value(row);
        let reasons_of_row = reasons_of_row.as_string::<i32>();
        let mut row_reasons: Vec<String> = (0..reasons_of_row.len())
            .filter(|&i| reasons_of_row.is_valid(i) && !reasons_of_row.value(i).is_empty())
            .map(|i| reasons_of_row.value(i).to_owned())
            .collect();
        row_reasons.dedup();

        let mut event = CandidateEvent {
            event_id: String::new(),
            event_type: EVENT_TYPE,
            schema_version: SCHEMA_VERSION,
            as_of: as_of.to_owned(),
            tenant_id: get(tenant_id),
            endpoint_id: get(endpoint_id).unwrap_or_default(),
            hostname: get(hostname),
            domain: get(domain),
            decision: get(decision).unwrap_or_default(),
            reasons: row_reasons,
            days_inactive: number(days_inactive),
            last_seen_at: time(last_seen_at),
            central: CentralEvidence {
                kind: get(central_type),
                os_name: get(os_name),
                os_build: number(os_build),
                associated_person: get(person),
                via_login: get(via_login),
            },
            directory: DirectoryEvidence {
                dn: get(dn),
                object_guid: get(object_guid),
                os: get(computer_os),
                os_version: get(computer_os_version),
                os_build: number(computer_os_build),
                when_changed: time(when_changed),
            },
        };
        event.event_id = event_id(&event);
        events.push(event);
    }
    Ok(events)
}

/// The column `name` of the candidates, as the array type `cast` asks for.
fn column<'b, T: ?Sized>(
    batch: &'b RecordBatch,
    name: &'static str,
    cast: impl FnOnce(&'b dyn Array) -> Option<&'b T>,
) -> Result<&'b T, OutputError> {
    batch
        .column_by_name(name)
        .and_then(|array| cast(array.as_ref()))
        .ok_or(OutputError::Column(name))
}

/// A UUIDv5 over the facts of the event: who, what was seen, what AD says, and the decision
/// with its reasons. `as_of` and `days_inactive` are left out, so that tomorrow's run reports
/// an unchanged candidate under the same id.
///
/// The facts are hashed as one compact JSON array whose objects have their keys in byte order.
/// Those bytes are part of the contract: changing them changes every id a SIEM has seen.
fn event_id(event: &CandidateEvent) -> String {
    #[derive(Serialize)]
    struct Central<'a> {
        associated_person: &'a Option<String>,
        os_build: Option<i64>,
        os_name: &'a Option<String>,
        #[serde(rename = "type")]
        kind: &'a Option<String>,
        via_login: &'a Option<String>,
    }

    #[derive(Serialize)]
    struct Directory<'a> {
        dn: &'a Option<String>,
        object_guid: &'a Option<String>,
        os: &'a Option<String>,
        os_build: Option<i64>,
        os_version: &'a Option<String>,
        when_changed: &'a Option<String>,
    }

    let (central, directory) = (&event.central, &event.directory);
    let facts = (
        SCHEMA_VERSION,
        &event.tenant_id,
        &event.endpoint_id,
        &event.hostname,
        &event.domain,
        &event.last_seen_at,
        &event.decision,
        &event.reasons,
        Central {
            associated_person: &central.associated_person,
            os_build: central.os_build,
            os_name: &central.os_name,
            kind: &central.kind,
            via_login: &central.via_login,
        },
        Directory {
            dn: &directory.dn,
            object_guid: &directory.object_guid,
            os: &directory.os,
            os_build: directory.os_build,
            os_version: &directory.os_version,
            when_changed: &directory.when_changed,
        },
    );
    let bytes = serde_json::to_vec(&facts).unwrap_or_default();
    Uuid::new_v5(&EVENT_NAMESPACE, &bytes).to_string()
}

fn rfc3339(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|instant| instant.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Writes one event per line. `-` is standard output.
pub fn write_events(path: &std::path::Path, events: &[CandidateEvent]) -> Result<(), OutputError> {
    let shown = path.display().to_string();
    let fail = |source: std::io::Error| OutputError::Write {
        path: shown.clone(),
        source,
    };

    let sink: Box<dyn Write> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        Box::new(std::fs::File::create(path).map_err(fail)?)
    };

    // Serializing is the costly part, so chunks of events are turned into lines on all cores
    // and written in order, eight chunks at a time (some tens of megabytes held at once).
    let mut sink = std::io::BufWriter::new(sink);
    for chunks in events.chunks(EVENTS_PER_CHUNK * 8) {
        let lines: Vec<Vec<u8>> = chunks
            .par_chunks(EVENTS_PER_CHUNK)
            .map(json_lines)
            .collect::<Result<_, _>>()
            .map_err(|error| fail(error.into()))?;
        for chunk in lines {
            sink.write_all(&chunk).map_err(fail)?;
        }
    }
    sink.flush().map_err(fail)
}

/// Events serialized together by one core.
const EVENTS_PER_CHUNK: usize = 4096;

fn json_lines(events: &[CandidateEvent]) -> Result<Vec<u8>, serde_json::Error> {
    let mut lines = Vec::with_capacity(events.len() * 800);
    for event in events {
        serde_json::to_writer(&mut lines, event)?;
        lines.push(b'\n');
    }
    Ok(lines)
}
