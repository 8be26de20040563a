//! The action log: JSON lines of what downstream automation did about candidates.
//!
//! `{"at": RFC 3339, "action": "deleted" | "delete_failed" | "ticket_opened" | "ticket_closed",
//! "tenant_id": ..., "endpoint_id": ..., "ticket": optional, "detail": optional}`
//!
//! An action the policy does not know is kept (SQL ignores it) rather than rejected, so that a
//! newer automation can log more kinds of action without breaking older correlators.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use serde::Deserialize;

use super::{InputError, InputKind, Reject, Source, schema, time};

/// The actions the policy reads.
pub const KNOWN_ACTIONS: [&str; 4] = ["deleted", "delete_failed", "ticket_opened", "ticket_closed"];

#[derive(Debug, Default)]
pub struct ActionInput {
    pub actions: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub records: usize,
    /// Records whose action is not one of [`KNOWN_ACTIONS`].
    pub unknown_actions: usize,
}

/// Fields beyond these are ignored: automation may log more than the policy reads.
#[derive(Deserialize)]
struct Action {
    at: String,
    action: String,
    tenant_id: String,
    endpoint_id: String,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// A rejected line keeps what can still be read of its ids, to scope the damage.
#[derive(Deserialize)]
struct Identity {
    tenant_id: Option<serde_json::Value>,
    endpoint_id: Option<serde_json::Value>,
}

pub fn read(source: &Source) -> Result<ActionInput, InputError> {
    let bytes = source.read()?;
    let file = source.name();

    let mut input = ActionInput::default();
    let mut at = TimestampMillisecondBuilder::new();
    let mut action = StringBuilder::new();
    let mut tenant_id = StringBuilder::new();
    let mut endpoint_id = StringBuilder::new();
    let mut ticket = StringBuilder::new();
    let mut detail = StringBuilder::new();
    let mut line_numbers = Int64Builder::new();

    for (index, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        input.records += 1;

        let parsed = parse_line(line);
        let (record, instant) = match parsed {
            Ok(parsed) => parsed,
            Err((field, problem)) => {
                let identity: Option<Identity> = serde_json::from_slice(line).ok();
                let text = |value: Option<serde_json::Value>| value?.as_str().map(str::to_owned);
                let (tenant, endpoint) = match identity {
                    Some(identity) => (text(identity.tenant_id), text(identity.endpoint_id)),
                    None => (None, None),
                };
                input.rejects.push(Reject {
                    input: InputKind::Actions,
                    file: file.clone(),
                    record: format!("line {}", index + 1),
                    field,
                    problem,
                    tenant_id: tenant,
                    endpoint_id: endpoint,
                    raw: Some(String::from_utf8_lossy(line).into_owned()),
                });
                continue;
            }
        };

        if !KNOWN_ACTIONS.contains(&record.action.as_str()) {
            input.unknown_actions += 1;
        }
        at.append_value(instant);
        action.append_value(&record.action);
        tenant_id.append_value(&record.tenant_id);
        endpoint_id.append_value(&record.endpoint_id);
        ticket.append_option(record.ticket.as_deref());
        detail.append_option(record.detail.as_deref());
        line_numbers.append_value(index as i64 + 1);
    }

    let columns: Vec<ArrayRef> = vec![
        Arc::new(at.finish().with_timezone("UTC")),
        Arc::new(action.finish()),
        Arc::new(tenant_id.finish()),
        Arc::new(endpoint_id.finish()),
        Arc::new(ticket.finish()),
        Arc::new(detail.finish()),
        Arc::new(line_numbers.finish()),
    ];
    let batch = RecordBatch::try_new(schema::actions(), columns)
        .expect("action columns follow schema::actions");
    input.actions.push(batch);
    Ok(input)
}

fn parse_line(line: &[u8]) -> Result<(Action, i64), (Option<String>, String)> {
    let mut deserializer = serde_json::Deserializer::from_slice(line);
    let record: Action = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = (path != ".").then_some(path);
        (field, error.into_inner().to_string())
    })?;

    for (name, value) in [
        ("tenant_id", &record.tenant_id),
        ("endpoint_id", &record.endpoint_id),
    ] {
        if value.trim().is_empty() {
            return Err((Some(name.into()), "the value is empty".into()));
        }
    }
    let instant =
        time::parse_rfc3339(&record.at).map_err(|problem| (Some("at".into()), problem))?;
    Ok((record, instant))
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;

    use super::*;

    #[test]
    fn reads_actions_and_rejects_bad_lines_with_their_ids() {
        let log = r#"{"at": "2026-11-20T10:00:00Z", "action": "ticket_opened", "tenant_id": "t1", "endpoint_id": "e1", "ticket": "INC-1"}

{"at": "2026-11-21T10:00:00Z", "action": "quarantined", "tenant_id": "t1", "endpoint_id": "e1"}
{"at": "20 Nov 2026", "action": "deleted", "tenant_id": "t1", "endpoint_id": "e2"}
{"at": "2026-11-21T10:00:00Z", "action": "deleted", "tenant_id": "t1"}
not json
{"at": "2026-11-21T10:00:00Z", "action": "deleted", "tenant_id": "t1", "endpoint_id": "e3", "who": "x"}
"#;
        let source = Source::Embedded {
            name: "actions.jsonl",
            bytes: log.as_bytes(),
        };
        let input = read(&source).unwrap();

        assert_eq!(input.records, 6);
        assert_eq!(input.unknown_actions, 1);
        let batch = &input.actions[0];
        assert_eq!(batch.num_rows(), 3);
        let line = batch.column_by_name("line").unwrap();
        let line = line.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((line.value(0), line.value(1), line.value(2)), (1, 3, 7));

        let rejects: Vec<_> = input.rejects.iter().map(ToString::to_string).collect();
        assert_eq!(rejects.len(), 3);
        assert!(rejects[0].starts_with("actions.jsonl: line 4: field at: \"20 Nov 2026\""));
        assert_eq!(input.rejects[0].endpoint_id.as_deref(), Some("e2"));
        assert!(
            rejects[1].contains("missing field `endpoint_id`"),
            "{}",
            rejects[1]
        );
        assert_eq!(input.rejects[1].tenant_id.as_deref(), Some("t1"));
        assert!(
            rejects[2].starts_with("actions.jsonl: line 6: expected ident"),
            "{}",
            rejects[2]
        );
        assert_eq!(input.rejects[2].tenant_id, None);
        let action = batch.column_by_name("action").unwrap().as_string::<i32>();
        assert_eq!(action.value(0), "ticket_opened");
    }
}
