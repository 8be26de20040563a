//! LDIF as `ldapsearch -LLL` writes it (RFC 2849), which is what `lastseen run` reads.
//!
//! One `name: value` line per value; `name:: base64` when the value is not a safe string
//! (a NUL, CR or LF anywhere, a leading space, colon or `<`, a trailing space, or any byte
//! outside ASCII) and always for binary attributes such as objectGUID; the same rule for the
//! DN. Lines longer than 76 columns fold, each continuation line starting with one space
//! (OpenLDAP 2.5's `ldapsearch` folds at 78; RFC 2849 readers unfold any width).
//! Entries are separated by one blank line; there is no `version:` line.

use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::object::{AdObject, is_binary};

/// `ldapsearch` folds at 76 columns.
const LINE_WIDTH: usize = 76;

/// Writes one entry, followed by the blank line that ends it.
pub fn write_entry(out: &mut impl Write, object: &AdObject) -> io::Result<()> {
    write_line(out, "dn", object.dn.as_bytes(), false)?;
    for (name, values) in &object.attributes {
        for value in values {
            write_line(out, name, value, is_binary(name))?;
        }
    }
    out.write_all(b"\n")
}

/// Writes `name: value` or `name:: base64`, folded.
fn write_line(out: &mut impl Write, name: &str, value: &[u8], binary: bool) -> io::Result<()> {
    let mut line = String::with_capacity(name.len() + 3 + value.len() * 4 / 3 + 4);
    line.push_str(name);
    if binary || !is_safe_string(value) {
        line.push_str(":: ");
        STANDARD.encode_string(value, &mut line);
    } else if value.is_empty() {
        line.push(':');
    } else {
        line.push_str(": ");
        // Safe strings are ASCII, so this is lossless.
        line.extend(value.iter().map(|&byte| char::from(byte)));
    }
    write_folded(out, &line)
}

/// Folds an ASCII line: the first 76 bytes, then a space and up to 75 more on each line.
fn write_folded(out: &mut impl Write, line: &str) -> io::Result<()> {
    let bytes = line.as_bytes();
    let (first, mut rest) = bytes.split_at(bytes.len().min(LINE_WIDTH));
    out.write_all(first)?;
    out.write_all(b"\n")?;
    while !rest.is_empty() {
        let (chunk, remainder) = rest.split_at(rest.len().min(LINE_WIDTH - 1));
        out.write_all(b" ")?;
        out.write_all(chunk)?;
        out.write_all(b"\n")?;
        rest = remainder;
    }
    Ok(())
}

/// RFC 2849's SAFE-STRING, plus OpenLDAP's rule that a trailing space also needs base64 (a
/// reader would otherwise drop it).
pub fn is_safe_string(value: &[u8]) -> bool {
    let Some((&first, _)) = value.split_first() else {
        return true;
    };
    let safe_char = |byte: u8| byte != 0 && byte != b'\n' && byte != b'\r' && byte < 0x80;
    let safe_init = safe_char(first) && first != b' ' && first != b':' && first != b'<';
    safe_init && value.iter().all(|&byte| safe_char(byte)) && value.last() != Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ad::object::ObjectKind;

    fn object(dn: &str, attributes: &[(&str, &[&[u8]])]) -> AdObject {
        AdObject {
            kind: ObjectKind::Computer,
            dn: dn.into(),
            object_guid: uuid::Uuid::nil(),
            usn_changed: 1,
            is_deleted: false,
            attributes: attributes
                .iter()
                .map(|(name, values)| ((*name).into(), values.iter().map(|v| v.to_vec()).collect()))
                .collect(),
        }
    }

    fn render(object: &AdObject) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, object).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_ldapsearch_writes() {
        // Values as `ldapsearch -LLL` printed this entry from the test DC. (Its OpenLDAP 2.5
        // folds at 78 columns; the interface asks for 76, and readers unfold either.)
        let guid: &[u8] = &[
            0x43, 0x28, 0x8a, 0xe9, 0xd1, 0x79, 0x91, 0x41, 0x85, 0x45, 0xa1, 0x5d, 0xb6, 0xb7,
            0x60, 0x6a,
        ];
        let entry = object(
            "CN=KIOSK-LOBBY-TERMINAL-07,OU=Retired 2024,OU=Disabled Computers,OU=Estate,DC=corp,DC=example,DC=test",
            &[
                ("objectClass", &[b"top", b"computer"]),
                ("objectGUID", &[guid]),
                (
                    "managedBy",
                    &[b"CN=VIP-Board,OU=Groups,OU=Estate,DC=corp,DC=example,DC=test"],
                ),
            ],
        );
        assert_eq!(
            render(&entry),
            "dn: CN=KIOSK-LOBBY-TERMINAL-07,OU=Retired 2024,OU=Disabled Computers,OU=Esta\n \
             te,DC=corp,DC=example,DC=test\n\
             objectClass: top\n\
             objectClass: computer\n\
             objectGUID:: QyiK6dF5kUGFRaFdtrdgag==\n\
             managedBy: CN=VIP-Board,OU=Groups,OU=Estate,DC=corp,DC=example,DC=test\n\n"
        );
    }

    #[test]
    fn unsafe_values_and_dns_go_base64() {
        let entry = object(
            "CN=Jérôme,DC=t",
            &[
                (
                    "cn",
                    &[
                        b"WS-9\nDEL:x",
                        b" lead",
                        b"trail ",
                        b":colon",
                        b"<angle",
                        b"",
                    ],
                ),
                ("objectSid", &[b"printable-but-binary"]),
            ],
        );
        assert_eq!(
            render(&entry),
            "dn:: Q049SsOpcsO0bWUsREM9dA==\n\
             cn:: V1MtOQpERUw6eA==\n\
             cn:: IGxlYWQ=\n\
             cn:: dHJhaWwg\n\
             cn:: OmNvbG9u\n\
             cn:: PGFuZ2xl\n\
             cn:\n\
             objectSid:: cHJpbnRhYmxlLWJ1dC1iaW5hcnk=\n\n"
        );
    }

    #[test]
    fn long_lines_fold_at_76_columns() {
        let value = "x".repeat(200);
        let text = render(&object("CN=a", &[("description", &[value.as_bytes()])]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].len(), 76);
        assert!(lines[2].starts_with(' ') && lines[2].len() == 76);
        assert!(lines[3].starts_with(' ') && lines[3].len() == 1 + (213 - 76 - 75));

        // Unfolding gives the line back.
        let unfolded = format!("{}{}{}", lines[1], &lines[2][1..], &lines[3][1..]);
        assert_eq!(unfolded, format!("description: {value}"));
    }

    #[test]
    fn safe_string_rule() {
        assert!(is_safe_string(b"Windows 10 Enterprise"));
        assert!(is_safe_string(b"10.0 (19045)"));
        assert!(is_safe_string(b"a:b<c"));
        assert!(!is_safe_string(b"caf\xc3\xa9"));
        assert!(!is_safe_string(b"a\0b"));
        assert!(!is_safe_string(b"a\rb"));
    }

    /// A column of the first batch as strings, nulls as `None`.
    fn column(batches: &[arrow::array::RecordBatch], name: &str) -> Vec<Option<String>> {
        let array = batches[0].column_by_name(name).unwrap();
        let array = arrow::compute::cast(array, &arrow::datatypes::DataType::Utf8).unwrap();
        let strings = array
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        strings
            .iter()
            .map(|value| value.map(str::to_owned))
            .collect()
    }

    #[test]
    fn the_run_reader_reads_back_what_is_written() {
        let guid: [u8; 16] = *b"\x43\x28\x8a\xe9\xd1\x79\x91\x41\x85\x45\xa1\x5d\xb6\xb7\x60\x6a";
        let long_ou = "OU=Retired in the second half of 2024 after the office move";
        let computer_dn =
            format!("CN=Jérôme-PC,{long_ou},OU=Disabled Computers,DC=corp,DC=example,DC=test");
        let group_dn = "CN=VIP,OU=Groups,DC=corp,DC=example,DC=test";
        let user_dn = "CN=Novak\\, Jana,OU=People,DC=corp,DC=example,DC=test";

        let mut computer = object(
            &computer_dn,
            &[
                ("objectClass", &[b"top", b"user", b"computer"]),
                ("cn", &["Jérôme-PC".as_bytes()]),
                ("sAMAccountName", &[b"JEROME-PC$"]),
                ("dNSHostName", &[b"jerome-pc.corp.example.test"]),
                ("operatingSystem", &[b"Windows 11 Enterprise"]),
                ("operatingSystemVersion", &[b"10.0 (22631)"]),
                ("objectGUID", &[&guid]),
                ("managedBy", &[user_dn.as_bytes()]),
                ("userAccountControl", &[b"4098"]),
            ],
        );
        computer.kind = ObjectKind::Computer;
        let mut group = object(
            group_dn,
            &[
                ("objectClass", &[b"top", b"group"]),
                ("cn", &[b"VIP"]),
                ("member", &[user_dn.as_bytes()]),
            ],
        );
        group.kind = ObjectKind::Group;
        let mut user = object(
            user_dn,
            &[
                ("objectClass", &[b"top", b"person", b"user"]),
                ("sAMAccountName", &[b"jnovak"]),
                ("userPrincipalName", &[b"jnovak@corp.example.test"]),
            ],
        );
        user.kind = ObjectKind::User;

        let mut text = Vec::new();
        for object in [&computer, &group, &user] {
            write_entry(&mut text, object).unwrap();
        }
        assert!(
            text.split(|&b| b == b'\n')
                .all(|line| line.len() <= LINE_WIDTH)
        );

        let source = crate::inputs::Source::Memory {
            name: "corp.ldif".into(),
            bytes: text.into(),
        };
        let input = crate::inputs::ldif::read(&[source]).unwrap();
        assert!(input.rejects.is_empty(), "{:?}", input.rejects);
        assert_eq!(input.entries, 3);

        assert_eq!(column(&input.computers, "dn"), [Some(computer_dn.clone())]);
        assert_eq!(
            column(&input.computers, "cn"),
            [Some("Jérôme-PC".to_owned())]
        );
        assert_eq!(
            column(&input.computers, "object_guid"),
            [Some("e98a2843-79d1-4191-8545-a15db6b7606a".to_owned())]
        );
        assert_eq!(
            column(&input.computers, "os_build"),
            [Some("22631".to_owned())]
        );
        assert_eq!(
            column(&input.computers, "user_account_control"),
            [Some("4098".to_owned())]
        );
        assert_eq!(
            column(&input.computers, "managed_by"),
            [Some(user_dn.to_owned())]
        );
        assert_eq!(
            column(&input.users, "user_principal_name"),
            [Some("jnovak@corp.example.test".to_owned())]
        );
        assert_eq!(
            column(&input.memberships, "member_dn_norm"),
            [Some(crate::inputs::dn::normalize(user_dn).unwrap())]
        );
    }
}
