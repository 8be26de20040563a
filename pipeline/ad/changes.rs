//! Change records for the Kafka stage: JSON lines, one upsert or delete per object, keyed by
//! objectGUID. The form is documented as JSON Schema in `schemas/ad-change.schema.json`.
//! These are the records of the AD topic too, whoever writes them (`collect ad`, `publish` from
//! LDIF) and whoever reads them (the correlator through `bus::records::decode_ad`).
//!
//! An upsert carries every attribute that was read. Values are strings; an attribute whose
//! syntax is binary (objectGUID, objectSid), or any of whose values is not UTF-8, appears as
//! `<name>;binary` with base64 values instead, as LDAP's `;binary` option names binary
//! transfer. A delete says that the object left what lastseen collects: it was deleted (a
//! tombstone), moved out of the base DNs, or, for users and groups, no VIP group reaches it
//! any more.

use std::collections::BTreeMap;
use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::object::{AdObject, ObjectKind, is_binary};

/// What a change does to the object it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Upsert,
    Delete,
}

/// One line of the change file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub op: Op,
    pub kind: ObjectKind,
    /// Written lower-case with hyphens; read in any form `Uuid::parse_str` takes.
    #[serde(deserialize_with = "guid_from_text")]
    pub object_guid: Uuid,
    /// The DNS domain, from the `DC=` parts of the DN.
    pub domain: String,
    /// The current DN for an upsert; the last DN lastseen saw for a delete.
    pub dn: String,
    /// The object's uSNChanged on the controller that was read; for an object that left the
    /// collected set without changing itself, the controller's highest committed USN.
    pub usn_changed: u64,
    /// Upserts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
}

impl ChangeRecord {
    pub fn upsert(object: &AdObject) -> ChangeRecord {
        ChangeRecord {
            op: Op::Upsert,
            kind: object.kind,
            object_guid: object.object_guid,
            domain: object.domain(),
            dn: object.dn.clone(),
            usn_changed: object.usn_changed,
            attributes: Some(attribute_map(object)),
        }
    }

    pub fn delete(kind: ObjectKind, object_guid: Uuid, dn: &str, usn_changed: u64) -> ChangeRecord {
        ChangeRecord {
            op: Op::Delete,
            kind,
            object_guid,
            domain: crate::inputs::dn::domain_of(dn).unwrap_or_default(),
            dn: dn.to_owned(),
            usn_changed,
            attributes: None,
        }
    }
}

/// A GUID that does not parse is named in the error, so that a dead letter says which value
/// was wrong rather than only that one was.
fn guid_from_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
    let text = String::deserialize(deserializer)?;
    Uuid::parse_str(&text).map_err(|_| serde::de::Error::custom(format!("{text:?} is not a GUID")))
}

fn attribute_map(object: &AdObject) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for (name, values) in &object.attributes {
        let texts: Option<Vec<String>> = if is_binary(name) {
            None
        } else {
            values
                .iter()
                .map(|value| String::from_utf8(value.clone()).ok())
                .collect()
        };
        match texts {
            Some(texts) => map.insert(name.clone(), texts),
            None => map.insert(
                format!("{name};binary"),
                values.iter().map(|value| STANDARD.encode(value)).collect(),
            ),
        };
    }
    map
}

/// Writes records as JSON lines.
pub fn write_records(out: &mut impl Write, records: &[ChangeRecord]) -> io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_puts_binary_values_under_binary_names() {
        let object = AdObject {
            kind: ObjectKind::Computer,
            dn: "CN=WS-0001,OU=Workstations,DC=corp,DC=example,DC=test".into(),
            object_guid: "e98a2843-79d1-4191-8545-a15db6b7606a".parse().unwrap(),
            usn_changed: 3961,
            is_deleted: false,
            attributes: vec![
                ("cn".into(), vec![b"WS-0001".to_vec()]),
                ("objectGUID".into(), vec![b"0123456789abcdef".to_vec()]),
                ("description".into(), vec![b"ok".to_vec(), vec![0xff]]),
            ],
        };
        let line = serde_json::to_string(&ChangeRecord::upsert(&object)).unwrap();
        assert_eq!(
            line,
            r#"{"op":"upsert","kind":"computer","object_guid":"e98a2843-79d1-4191-8545-a15db6b7606a","domain":"corp.example.test","dn":"CN=WS-0001,OU=Workstations,DC=corp,DC=example,DC=test","usn_changed":3961,"attributes":{"cn":["WS-0001"],"description;binary":["b2s=","/w=="],"objectGUID;binary":["MDEyMzQ1Njc4OWFiY2RlZg=="]}}"#
        );
    }

    #[test]
    fn delete_has_no_attributes_and_reads_back() {
        let guid = Uuid::from_u128(7);
        let record = ChangeRecord::delete(
            ObjectKind::User,
            guid,
            "CN=Bob,OU=People,DC=corp,DC=test",
            4200,
        );
        let mut out = Vec::new();
        write_records(&mut out, std::slice::from_ref(&record)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"op\":\"delete\",\"kind\":\"user\",\"object_guid\":\"00000000-0000-0000-0000-000000000007\",\
             \"domain\":\"corp.test\",\"dn\":\"CN=Bob,OU=People,DC=corp,DC=test\",\"usn_changed\":4200}\n"
        );
        let back: ChangeRecord = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, record);
    }

    /// The schema's constraints, checked by hand on records the code produces, so that the
    /// documented form and the written one cannot drift apart.
    fn conforms(record: &ChangeRecord) -> Result<(), String> {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/ad-change.schema.json")).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let value = serde_json::to_value(record).unwrap();
        let object = value.as_object().unwrap();

        for required in schema["required"].as_array().unwrap() {
            let name = required.as_str().unwrap();
            object.get(name).ok_or(format!("{name} is missing"))?;
        }
        for (name, field) in object {
            let property = properties
                .get(name)
                .ok_or(format!("{name} is not in the schema"))?;
            if let Some(allowed) = property["enum"].as_array() {
                allowed
                    .contains(field)
                    .then_some(())
                    .ok_or(format!("{name}={field}"))?;
            }
        }

        let guid = object["object_guid"].as_str().unwrap();
        let hex_and_hyphens = guid.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
        (guid.len() == 36 && hex_and_hyphens && guid == guid.to_lowercase())
            .then_some(())
            .ok_or("object_guid is not a lower-case UUID")?;

        match (object["op"].as_str(), object.get("attributes")) {
            (Some("upsert"), Some(attributes)) => {
                for (name, values) in attributes.as_object().unwrap() {
                    let values = values.as_array().ok_or(format!("{name} is not an array"))?;
                    (!values.is_empty() && values.iter().all(serde_json::Value::is_string))
                        .then_some(())
                        .ok_or(format!("{name} must be a non-empty array of strings"))?;
                }
                Ok(())
            }
            (Some("delete"), None) => Ok(()),
            _ => Err("attributes must come with upserts and only with them".into()),
        }
    }

    #[test]
    fn records_conform_to_the_schema() {
        let object = AdObject {
            kind: ObjectKind::Group,
            dn: "CN=VIP,OU=Groups,DC=corp,DC=test".into(),
            object_guid: "E98A2843-79D1-4191-8545-A15DB6B7606A".parse().unwrap(),
            usn_changed: 12,
            is_deleted: false,
            attributes: vec![
                ("member".into(), vec![b"CN=a,DC=corp,DC=test".to_vec()]),
                ("objectSid".into(), vec![vec![1, 5, 0, 0]]),
            ],
        };
        conforms(&ChangeRecord::upsert(&object)).unwrap();
        let delete = ChangeRecord::delete(ObjectKind::Computer, object.object_guid, &object.dn, 1);
        conforms(&delete).unwrap();

        let mut broken = delete.clone();
        broken.attributes = Some(BTreeMap::new());
        assert!(conforms(&broken).is_err());
    }
}
