//! The records on lastseen's topics, as Rust types: how they are written and how they are
//! decoded. `schemas/kafka-*.schema.json` describe the same records for other tools.
//!
//! Decoding is strict about the envelope (which record it is, for which tenant and snapshot)
//! and lenient about the content: a Central endpoint or an action with a bad field still
//! decodes, and the readers of `inputs` reject it exactly as `lastseen run` would. Only a
//! record whose envelope cannot be read goes to the dead-letter topic.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ad::changes::{ChangeRecord, Op};

/// The `type` of a record on the Central topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentralRecordType {
    Endpoint,
    SnapshotComplete,
}

/// One endpoint of a tenant's snapshot, as written.
#[derive(Debug, Serialize)]
pub struct EndpointRecord<'a> {
    #[serde(rename = "type")]
    pub kind: CentralRecordType,
    pub tenant_id: &'a str,
    pub snapshot_id: &'a str,
    pub collected_at: &'a str,
    /// The endpoint exactly as Central returned it.
    pub endpoint: &'a RawValue,
}

/// The end of a tenant's snapshot: every endpoint record of it was sent before this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotComplete {
    pub tenant_id: String,
    pub snapshot_id: String,
    pub collected_at: String,
    /// How many endpoint records the snapshot holds.
    pub endpoints: u64,
    /// False when the collection of the tenant stopped early: the snapshot still replaces the
    /// tenant's endpoints, but none of them can be decided `delete`.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A record of the Central topic, decoded.
#[derive(Debug)]
pub enum CentralRecord<'a> {
    Endpoint {
        tenant_id: String,
        snapshot_id: String,
        endpoint: &'a RawValue,
    },
    SnapshotComplete(SnapshotComplete),
}

/// Every field either kind may carry; which are required depends on `type`.
#[derive(Deserialize)]
struct CentralEnvelope<'a> {
    #[serde(rename = "type")]
    kind: CentralRecordType,
    tenant_id: String,
    snapshot_id: String,
    collected_at: String,
    #[serde(borrow, default)]
    endpoint: Option<&'a RawValue>,
    #[serde(default)]
    endpoints: Option<u64>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    error: Option<String>,
}

/// Decodes a Central record, or says what is wrong with its envelope.
pub fn decode_central(payload: &[u8]) -> Result<CentralRecord<'_>, String> {
    let envelope: CentralEnvelope<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("not a Central record: {e}"))?;
    if envelope.tenant_id.trim().is_empty() {
        return Err("field tenant_id: empty".into());
    }
    if envelope.snapshot_id.trim().is_empty() {
        return Err("field snapshot_id: empty".into());
    }

    match envelope.kind {
        CentralRecordType::Endpoint => {
            let endpoint = envelope
                .endpoint
                .filter(|raw| raw.get().starts_with('{'))
                .ok_or("field endpoint: missing or not an object")?;
            Ok(CentralRecord::Endpoint {
                tenant_id: envelope.tenant_id,
                snapshot_id: envelope.snapshot_id,
                endpoint,
            })
        }
        CentralRecordType::SnapshotComplete => {
            Ok(CentralRecord::SnapshotComplete(SnapshotComplete {
                tenant_id: envelope.tenant_id,
                snapshot_id: envelope.snapshot_id,
                collected_at: envelope.collected_at,
                endpoints: envelope.endpoints.ok_or("field endpoints: missing")?,
                complete: envelope.complete.ok_or("field complete: missing")?,
                error: envelope.error,
            }))
        }
    }
}

/// Encodes a snapshot-complete marker.
pub fn encode_marker(marker: &SnapshotComplete) -> Vec<u8> {
    #[derive(Serialize)]
    struct Tagged<'a> {
        #[serde(rename = "type")]
        kind: CentralRecordType,
        #[serde(flatten)]
        marker: &'a SnapshotComplete,
    }
    let tagged = Tagged {
        kind: CentralRecordType::SnapshotComplete,
        marker,
    };
    serde_json::to_vec(&tagged).unwrap_or_default()
}

/// Decodes an AD change record (`schemas/ad-change.schema.json`, the records `collect ad`
/// writes), or says what is wrong with it.
pub fn decode_ad(payload: &[u8]) -> Result<ChangeRecord, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let change: ChangeRecord =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("not an AD change record: {}", e.into_inner())
            } else {
                format!("field {path}: {}", e.into_inner())
            }
        })?;

    if change.dn.trim().is_empty() {
        return Err("field dn: empty".into());
    }
    match (change.op, &change.attributes) {
        (Op::Upsert, None) => Err("field attributes: an upsert needs them".into()),
        _ => Ok(change),
    }
}

/// Checks that an action record is one JSON object; its fields are the action reader's to
/// judge, as in a file.
pub fn decode_action(payload: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8 text".to_owned())?;
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| format!("not an action record: {e}"))?;
    if !raw.get().starts_with('{') {
        return Err("not an action record: not a JSON object".into());
    }
    Ok(raw.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_record_round_trips_with_the_central_json_untouched() {
        let endpoint = RawValue::from_string(r#"{"id": "e1", "hostname": "PC1"}"#.into()).unwrap();
        let record = EndpointRecord {
            kind: CentralRecordType::Endpoint,
            tenant_id: "t1",
            snapshot_id: "s1",
            collected_at: "2026-12-01T00:00:00Z",
            endpoint: &endpoint,
        };
        let bytes = serde_json::to_vec(&record).unwrap();

        let CentralRecord::Endpoint {
            tenant_id,
            snapshot_id,
            endpoint,
        } = decode_central(&bytes).unwrap()
        else {
            panic!("not an endpoint");
        };
        assert_eq!((tenant_id.as_str(), snapshot_id.as_str()), ("t1", "s1"));
        assert_eq!(endpoint.get(), r#"{"id": "e1", "hostname": "PC1"}"#);
    }

    #[test]
    fn marker_round_trips() {
        let marker = SnapshotComplete {
            tenant_id: "t1".into(),
            snapshot_id: "s1".into(),
            collected_at: "2026-12-01T00:00:00Z".into(),
            endpoints: 12,
            complete: false,
            error: Some("HTTP 503 on page 3".into()),
        };
        let bytes = encode_marker(&marker);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"type":"snapshot_complete","tenant_id":"t1""#),
            "{text}"
        );
        match decode_central(&bytes).unwrap() {
            CentralRecord::SnapshotComplete(back) => assert_eq!(back, marker),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_envelopes_say_what_is_wrong() {
        let error = decode_central(b"not json").unwrap_err();
        assert!(error.starts_with("not a Central record"), "{error}");

        let error = decode_central(
            br#"{"type":"endpoint","tenant_id":"t","snapshot_id":"s","collected_at":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(error, "field endpoint: missing or not an object");

        let error = decode_central(
            br#"{"type":"snapshot_complete","tenant_id":"t","snapshot_id":"s","collected_at":"x",
                "complete":true}"#,
        )
        .unwrap_err();
        assert_eq!(error, "field endpoints: missing");
    }

    #[test]
    fn ad_changes_are_checked() {
        let good = br#"{"op":"upsert","kind":"computer",
            "object_guid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","domain":"corp.example.test",
            "dn":"CN=PC1,DC=corp,DC=example,DC=test","usn_changed":7,
            "attributes":{"cn":["PC1"]}}"#;
        let change = decode_ad(good).unwrap();
        assert_eq!(change.kind, crate::ad::object::ObjectKind::Computer);
        assert_eq!(
            change.object_guid.to_string(),
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        );
        assert_eq!(change.attributes.unwrap()["cn"], ["PC1"]);

        let error = decode_ad(br#"{"op":"rename","kind":"computer"}"#).unwrap_err();
        assert!(
            error.starts_with("field op: unknown variant `rename`"),
            "{error}"
        );

        let no_attributes = br#"{"op":"upsert","kind":"user",
            "object_guid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","domain":"d","dn":"CN=u",
            "usn_changed":1}"#;
        assert_eq!(
            decode_ad(no_attributes).unwrap_err(),
            "field attributes: an upsert needs them"
        );

        let bad_guid = br#"{"op":"delete","kind":"user","object_guid":"nope","domain":"d",
            "dn":"CN=u","usn_changed":1}"#;
        assert!(
            decode_ad(bad_guid)
                .unwrap_err()
                .contains("\"nope\" is not a GUID")
        );
    }

    /// Keys written are keys the schema describes, and the schema's required keys are
    /// written, for both kinds of record.
    #[test]
    fn central_records_follow_their_schema() {
        let schema: serde_json::Value = serde_json::from_str(include_str!(
            "../../schemas/kafka-central-record.schema.json"
        ))
        .unwrap();
        let known: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let required = |path: &[&str]| -> Vec<String> {
            let mut node = &schema;
            for step in path {
                node = &node[*step];
            }
            serde_json::from_value(node["required"].clone()).unwrap()
        };

        let endpoint = RawValue::from_string(r#"{"id":"e1"}"#.into()).unwrap();
        let written = serde_json::to_value(EndpointRecord {
            kind: CentralRecordType::Endpoint,
            tenant_id: "t",
            snapshot_id: "s",
            collected_at: "2026-12-01T00:00:00Z",
            endpoint: &endpoint,
        })
        .unwrap();
        let marker: serde_json::Value = serde_json::from_slice(&encode_marker(&SnapshotComplete {
            tenant_id: "t".into(),
            snapshot_id: "s".into(),
            collected_at: "2026-12-01T00:00:00Z".into(),
            endpoints: 1,
            complete: false,
            error: Some("stopped".into()),
        }))
        .unwrap();

        for (record, branch) in [(written, "then"), (marker, "else")] {
            let keys: Vec<&str> = record
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            for key in &keys {
                assert!(known.contains(key), "{key} is not in the schema");
            }
            for key in required(&[]).iter().chain(&required(&[branch])) {
                assert!(
                    keys.contains(&key.as_str()),
                    "{key} is required but not written"
                );
            }
        }
    }

    #[test]
    fn actions_must_be_objects() {
        assert_eq!(
            decode_action(br#" {"action":"deleted"} "#).unwrap(),
            r#"{"action":"deleted"}"#
        );
        assert!(
            decode_action(b"[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(decode_action(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }
}
