//! AD change records to and from LDIF.
//!
//! `lastseen publish` turns an LDIF export into upsert change records, so that a directory
//! export feeds the AD topic just as `collect ad` does. The correlator keeps the latest change
//! per object and writes its state back as LDIF entries, which the same reader as `lastseen
//! run` turns into tables: one parser of directory data, whichever way it arrived.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::ad::changes::{ChangeRecord, Op};
use crate::ad::object::ObjectKind;
use crate::inputs::dn;

/// Attributes whose values are binary whatever their bytes, as `collect ad` writes them.
const BINARY_ATTRIBUTES: [&str; 2] = ["objectguid", "objectsid"];

/// An entry of an export that could not become a change record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// `entry at line N`.
    pub record: String,
    pub field: Option<String>,
    pub problem: String,
}

/// What an export turned into.
#[derive(Debug, Default)]
pub struct ExportChanges {
    pub changes: Vec<ChangeRecord>,
    pub problems: Vec<EntryProblem>,
    /// Entries that are not computers, users or groups (OUs, containers).
    pub passed_over: usize,
}

/// Turns an LDIF export into upserts (and deletes, for tombstones).
pub fn export_to_changes(text: &str) -> ExportChanges {
    let mut out = ExportChanges::default();
    let mut lines: Vec<&str> = Vec::new();
    let mut first_line = 1;

    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !lines.is_empty() {
                entry_to_change(&lines, first_line, &mut out);
                lines.clear();
            }
            continue;
        }
        if lines.is_empty() {
            first_line = index + 1;
        }
        lines.push(line);
    }
    if !lines.is_empty() {
        entry_to_change(&lines, first_line, &mut out);
    }
    out
}

fn entry_to_change(lines: &[&str], first_line: usize, out: &mut ExportChanges) {
    let problem = |field: Option<&str>, problem: String| EntryProblem {
        record: format!("entry at line {first_line}"),
        field: field.map(str::to_owned),
        problem,
    };

    // Unfold, and drop comments and the version line.
    let mut logical: Vec<String> = Vec::new();
    let mut in_comment = false;
    for line in lines {
        if let Some(rest) = line.strip_prefix(' ') {
            if !in_comment && let Some(last) = logical.last_mut() {
                last.push_str(rest);
            }
            continue;
        }
        in_comment = line.starts_with('#');
        let version = logical.is_empty() && line.starts_with("version:");
        if !in_comment && !version {
            logical.push((*line).to_owned());
        }
    }
    if logical.is_empty() {
        return;
    }

    let mut dn_value = None;
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &logical {
        let Some((name, rest)) = line.split_once(':') else {
            let shown: String = line.chars().take(40).collect();
            return out
                .problems
                .push(problem(None, format!("line {shown:?} has no ':'")));
        };
        let base_name = name.split(';').next().unwrap_or(name);
        let bytes = match rest.strip_prefix(':') {
            Some(encoded) => match BASE64.decode(encoded.trim()) {
                Ok(bytes) => bytes,
                Err(error) => {
                    return out
                        .problems
                        .push(problem(Some(name), format!("bad base64: {error}")));
                }
            },
            None => rest.trim_start().as_bytes().to_vec(),
        };

        if base_name.eq_ignore_ascii_case("dn") {
            match String::from_utf8(bytes) {
                Ok(text) => dn_value = Some(text),
                Err(_) => {
                    return out
                        .problems
                        .push(problem(Some("dn"), "not UTF-8 text".into()));
                }
            }
            continue;
        }

        let binary = BINARY_ATTRIBUTES.contains(&base_name.to_ascii_lowercase().as_str())
            || name.contains(";binary")
            || std::str::from_utf8(&bytes).is_err();
        let (key, value) = if binary {
            (format!("{base_name};binary"), BASE64.encode(&bytes))
        } else {
            let text = String::from_utf8(bytes).unwrap_or_default();
            (base_name.to_owned(), text)
        };
        attributes.entry(key).or_default().push(value);
    }

    let Some(dn_text) = dn_value else {
        return out
            .problems
            .push(problem(None, "the entry has no dn line".into()));
    };

    let classes = attributes
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("objectClass"))
        .flat_map(|(_, values)| values);
    let Some(kind) = ObjectKind::from_classes(classes) else {
        out.passed_over += 1;
        return;
    };

    let guid = attributes
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("objectGUID;binary"))
        .and_then(|(_, values)| values.first())
        .and_then(|value| BASE64.decode(value).ok());
    let object_guid = match guid.as_deref().map(<[u8; 16]>::try_from) {
        Some(Ok(bytes)) => uuid::Uuid::from_bytes_le(bytes),
        Some(Err(_)) => {
            return out.problems.push(problem(
                Some("objectGUID"),
                "not 16 bytes, so not a GUID".into(),
            ));
        }
        None => {
            return out.problems.push(problem(
                Some("objectGUID"),
                "missing; change records are keyed by it".into(),
            ));
        }
    };

    let Some(domain) = dn::domain_of(&dn_text) else {
        return out.problems.push(problem(
            Some("dn"),
            format!("{dn_text:?} names no domain (no DC= part)"),
        ));
    };
    let usn_changed = attributes
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("uSNChanged"))
        .and_then(|(_, values)| values.first()?.parse().ok())
        .unwrap_or(0);
    let deleted = attributes
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("isDeleted"))
        .and_then(|(_, values)| values.first())
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));

    out.changes.push(ChangeRecord {
        op: if deleted { Op::Delete } else { Op::Upsert },
        kind,
        object_guid,
        domain,
        dn: dn_text,
        usn_changed,
        attributes: (!deleted).then_some(attributes),
    });
}

/// Writes an upsert back as one LDIF entry (with its trailing blank line).
pub fn render_entry(dn_text: &str, attributes: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::with_capacity(64 + 48 * attributes.len());
    push_line(&mut out, "dn", dn_text);
    for (name, values) in attributes {
        for value in values {
            match name.strip_suffix(";binary") {
                Some(base_name) => {
                    out.push_str(base_name);
                    out.push_str(":: ");
                    out.push_str(value);
                    out.push('\n');
                }
                None => push_line(&mut out, name, value),
            }
        }
    }
    out.push('\n');
    out
}

/// `name: value`, or `name:: base64` when the value is not safe as it is (RFC 2849).
fn push_line(out: &mut String, name: &str, value: &str) {
    let safe = !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| b.is_ascii() && b != 0 && b != b'\n' && b != b'\r');
    out.push_str(name);
    if safe {
        out.push_str(": ");
        out.push_str(value);
    } else {
        out.push_str(":: ");
        out.push_str(&BASE64.encode(value));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = "version: 1\n\n# a comment\n\
        dn: OU=Disabled,DC=corp,DC=example,DC=test\nobjectClass: organizationalUnit\n\n\
        dn: CN=PC1,OU=Disabled,DC=corp,DC=example,DC=test\nobjectClass: top\n\
        objectClass: computer\ncn: PC1\noperatingSystemVersion: 10.0 (19045)\n\
        objectGUID:: AAECAwQFBgcICQoLDA0ODw==\ndescription:: IHN0YXJ0cyB3aXRoIGEgc3BhY2U=\n\
        managedBy: CN=Jana Nov\n ak,OU=Users,DC=corp,DC=example,DC=test\nuSNChanged: 42\n\n\
        dn: CN=nogood,DC=corp,DC=example,DC=test\nobjectClass: user\n";

    #[test]
    fn export_becomes_upserts_keyed_by_guid() {
        let out = export_to_changes(EXPORT);
        assert_eq!(out.passed_over, 1);
        assert_eq!(out.changes.len(), 1);

        let change = &out.changes[0];
        assert_eq!(change.op, Op::Upsert);
        assert_eq!(change.kind, ObjectKind::Computer);
        assert_eq!(
            change.object_guid.to_string(),
            "03020100-0504-0706-0809-0a0b0c0d0e0f"
        );
        assert_eq!(change.domain, "corp.example.test");
        assert_eq!(change.usn_changed, 42);
        let attributes = change.attributes.as_ref().unwrap();
        assert_eq!(
            attributes["objectGUID;binary"],
            ["AAECAwQFBgcICQoLDA0ODw=="]
        );
        assert_eq!(attributes["description"], [" starts with a space"]);
        assert_eq!(
            attributes["managedBy"],
            ["CN=Jana Novak,OU=Users,DC=corp,DC=example,DC=test"]
        );

        assert_eq!(
            out.problems,
            [EntryProblem {
                record: "entry at line 18".into(),
                field: Some("objectGUID".into()),
                problem: "missing; change records are keyed by it".into(),
            }]
        );
    }

    #[test]
    fn rendered_entry_reads_back_the_same() {
        let out = export_to_changes(EXPORT);
        let change = &out.changes[0];
        let text = render_entry(&change.dn, change.attributes.as_ref().unwrap());
        assert!(
            text.contains("objectGUID:: AAECAwQFBgcICQoLDA0ODw==\n"),
            "{text}"
        );
        assert!(
            text.contains("description:: IHN0YXJ0cyB3aXRoIGEgc3BhY2U=\n"),
            "{text}"
        );

        let again = export_to_changes(&text);
        assert_eq!(again.changes, out.changes);
    }

    #[test]
    fn tombstones_become_deletes() {
        let text = "dn: CN=PC2\\0ADEL:x,CN=Deleted Objects,DC=lab,DC=test\nobjectClass: computer\n\
                    objectGUID:: AAECAwQFBgcICQoLDA0ODw==\nisDeleted: TRUE\n";
        let out = export_to_changes(text);
        assert_eq!(out.changes[0].op, Op::Delete);
        assert_eq!(out.changes[0].attributes, None);
        assert_eq!(out.changes[0].domain, "lab.test");
    }
}
