//! Distinguished names in one canonical form, so that SQL can compare them as plain strings.
//!
//! Active Directory compares DNs without regard to case, and the same DN can be written with
//! different escapes (`\,` or `\2C`) and spacing. [`normalize`] parses a DN per RFC 4514 and
//! writes it back lower-cased, with every special character inside a value escaped as hex.
//! That keeps the only raw commas the ones between RDNs, so "in or below this OU" is a suffix
//! test that an escaped comma in a computer's name cannot fool.

use std::fmt::Write;

/// What the readers need of a DN, from one parse: its canonical form, its domain and the value
/// of its first RDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnParts {
    pub canonical: String,
    pub domain: Option<String>,
    pub first_value: Option<String>,
}

/// Parses `dn` once for [`normalize`], [`domain_of`] and [`first_value`] together.
pub fn analyze(dn: &str) -> Result<DnParts, String> {
    let Some(canonical) = plain_canonical(dn) else {
        return analyze_any(dn);
    };

    // A plain canonical DN has no escapes, so its commas and equals signs are all structure.
    let rdns = canonical.split(',').filter_map(|rdn| rdn.split_once('='));
    let first_value = rdns.clone().next().map(|(_, value)| value.to_owned());
    let labels: Vec<&str> = rdns
        .filter(|(attribute, _)| *attribute == "dc")
        .map(|(_, value)| value)
        .collect();
    let domain = (!labels.is_empty()).then(|| labels.join("."));
    Ok(DnParts {
        canonical,
        domain,
        first_value,
    })
}

/// [`analyze`] by the general parser, for any DN RFC 4514 allows.
fn analyze_any(dn: &str) -> Result<DnParts, String> {
    let rdns = parse(dn)?;
    Ok(DnParts {
        canonical: canonical(&rdns, dn.len()),
        domain: domain_from(&rdns),
        first_value: rdns
            .first()
            .and_then(|rdn| rdn.first())
            .map(|(_, value)| value.clone()),
    })
}

/// Parses `dn` and returns its canonical form, or why it does not parse.
pub fn normalize(dn: &str) -> Result<String, String> {
    match plain_canonical(dn) {
        Some(canonical) => Ok(canonical),
        None => Ok(canonical(&parse(dn)?, dn.len())),
    }
}

/// The common case without the general parser: an ASCII DN with no escapes, no quoting, no
/// multi-valued RDNs and nothing that needs escaping, whose canonical form is the DN itself
/// lower-cased with the spaces around its names and values dropped. A million-entry export
/// spends most of its DN time here. Anything else, including every DN that would be refused,
/// is left to [`parse`] (`None`).
fn plain_canonical(dn: &str) -> Option<String> {
    let special = |byte: &u8| matches!(byte, b'\\' | b'"' | b'+' | b';' | b'<' | b'>' | b'#');
    let dn = dn.trim();
    if dn.is_empty() || !dn.is_ascii() || dn.as_bytes().iter().any(special) {
        return None;
    }

    let mut canonical = String::with_capacity(dn.len());
    for (index, rdn) in dn.split(',').enumerate() {
        let (attribute, value) = rdn.split_once('=')?;
        let attribute = attribute.trim();
        let value = value.trim_matches(' ');
        if attribute.is_empty() || !attribute.bytes().all(|b| is_attribute_char(b as char)) {
            return None;
        }
        if value.contains('=') {
            return None;
        }

        if index > 0 {
            canonical.push(',');
        }
        let start = canonical.len();
        canonical.push_str(attribute);
        canonical.push('=');
        canonical.push_str(value);
        canonical[start..].make_ascii_lowercase();
    }
    Some(canonical)
}

fn canonical(rdns: &[Rdn], capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    for (index, rdn) in rdns.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        for (part, (attribute, value)) in rdn.iter().enumerate() {
            if part > 0 {
                out.push('+');
            }
            out.push_str(attribute);
            out.push('=');
            escape_into(&mut out, value);
        }
    }
    out
}

/// The DNS domain named by the `DC=` parts of a DN, lower-cased: `CN=x,DC=Corp,DC=Test` gives
/// `corp.test`. `None` when the DN has no `DC=` part.
pub fn domain_of(dn: &str) -> Option<String> {
    domain_from(&parse(dn).ok()?)
}

fn domain_from(rdns: &[Rdn]) -> Option<String> {
    let labels: Vec<&str> = rdns
        .iter()
        .flat_map(|rdn| rdn.iter())
        .filter(|(attribute, _)| attribute == "dc")
        .map(|(_, value)| value.as_str())
        .collect();
    (!labels.is_empty()).then(|| labels.join("."))
}

/// The value of the first RDN (`CN=WS-01,OU=x` gives `ws-01`), unescaped and lower-cased.
pub fn first_value(dn: &str) -> Option<String> {
    let rdns = parse(dn).ok()?;
    rdns.into_iter()
        .next()?
        .into_iter()
        .next()
        .map(|(_, value)| value)
}

type Rdn = Vec<(String, String)>;

/// Splits a DN into RDNs of (attribute, value) pairs, both lower-cased, values unescaped and
/// with unescaped surrounding spaces removed. Multi-valued RDNs are sorted by attribute.
fn parse(dn: &str) -> Result<Vec<Rdn>, String> {
    let dn = dn.trim();
    if dn.is_empty() {
        return Err("the DN is empty".into());
    }

    let mut rdns = Vec::new();
    let mut rdn: Rdn = Vec::new();
    let mut chars = dn.chars().peekable();

    loop {
        // The attribute type runs up to '='.
        let mut attribute = String::new();
        let mut has_equals = false;
        for c in chars.by_ref() {
            if c == '=' {
                has_equals = true;
                break;
            }
            attribute.push(c);
        }
        let attribute = attribute.trim().to_ascii_lowercase();
        if !has_equals || attribute.is_empty() || !attribute.chars().all(is_attribute_char) {
            return Err(format!("{attribute:?} is not an attribute type before '='"));
        }

        // The value runs up to an unescaped ',', ';' or '+'; trailing spaces that were not
        // escaped do not belong to it.
        let mut value = Vec::<u8>::new();
        let mut kept = 0;
        let mut separator = None;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let escaped = chars.next().ok_or("the DN ends inside an escape")?;
                    if escaped.is_ascii_hexdigit() {
                        let low = chars
                            .next()
                            .filter(char::is_ascii_hexdigit)
                            .ok_or(format!("'\\{escaped}' is not a two-digit hex escape"))?;
                        let byte = u8::from_str_radix(&format!("{escaped}{low}"), 16)
                            .map_err(|error| error.to_string())?;
                        value.push(byte);
                    } else {
                        push_char(&mut value, escaped);
                    }
                    kept = value.len();
                }
                ',' | ';' | '+' => {
                    separator = Some(c);
                    break;
                }
                ' ' if value.is_empty() => {}
                c => {
                    push_char(&mut value, c);
                    if c != ' ' {
                        kept = value.len();
                    }
                }
            }
        }
        value.truncate(kept);
        let value = String::from_utf8(value)
            .map_err(|_| format!("the value of {attribute} is not UTF-8 after unescaping"))?;

        rdn.push((attribute, value.to_lowercase()));
        match separator {
            Some('+') => continue,
            Some(_) => {
                rdn.sort();
                rdns.push(std::mem::take(&mut rdn));
            }
            None => {
                rdn.sort();
                rdns.push(rdn);
                return Ok(rdns);
            }
        }
    }
}

fn is_attribute_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.'
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buffer = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' | ',' | '+' | '"' | '<' | '>' | ';' | '=' | '#' => {
                let _ = write!(out, "\\{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_shortcut_agrees_with_the_parser() {
        // Plain DNs take the shortcut. Escapes, quoting, multi-valued RDNs, '=' in a value,
        // non-ASCII and every malformed DN go to the parser, and fail the same way either road.
        let cases = [
            (
                "CN=WS-01,OU=Disabled Computers,DC=Corp,DC=Example,DC=Test",
                true,
            ),
            ("  cn = ws-01 ,  ou=Disabled Computers  ,dc=corp  ", true),
            ("CN=,DC=x", true),
            ("OU=Groups,O=Example", true),
            ("CN=a\tb,DC=t", true),
            (r"CN=Novak\, Jana,OU=Users,DC=corp,DC=test", false),
            ("CN=a+UID=b,DC=t", false),
            ("CN=a=b,DC=t", false),
            ("CN=Zoë,DC=t", false),
            ("CN=a,,DC=t", false),
            ("CN=a,", false),
            ("=a,DC=t", false),
            ("CN a,DC=t", false),
            ("", false),
        ];
        for (dn, plain) in cases {
            assert_eq!(
                plain_canonical(dn).is_some(),
                plain,
                "{dn:?}: shortcut or parser"
            );
            assert_eq!(analyze(dn), analyze_any(dn), "{dn:?}");
        }
    }

    #[test]
    fn case_and_spacing_do_not_matter() {
        let a = normalize("CN=WS-01, OU=Disabled Computers ,DC=Corp,DC=Example,DC=Test").unwrap();
        let b = normalize("cn=ws-01,ou=disabled computers,dc=corp,dc=example,dc=test").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a,
            "cn=ws-01,ou=disabled computers,dc=corp,dc=example,dc=test"
        );
    }

    #[test]
    fn escaped_comma_stays_inside_its_value() {
        let dn = normalize(r"CN=Novak\, Jana,OU=Users,DC=corp,DC=test").unwrap();
        assert_eq!(dn, r"cn=novak\2c jana,ou=users,dc=corp,dc=test");

        // The hex form of the same escape gives the same canonical DN.
        let hex = normalize(r"CN=Novak\2C Jana,OU=Users,DC=corp,DC=test").unwrap();
        assert_eq!(dn, hex);
    }

    #[test]
    fn escaped_comma_cannot_fake_an_ou() {
        // A computer whose name contains ",OU=Disabled" is not inside OU=Disabled.
        let ou = normalize("OU=Disabled,DC=corp,DC=test").unwrap();
        let computer = normalize(r"CN=a\,OU=Disabled,DC=corp,DC=test").unwrap();
        assert!(!computer.ends_with(&format!(",{ou}")));

        let inside = normalize("CN=a,OU=Disabled,DC=corp,DC=test").unwrap();
        assert!(inside.ends_with(&format!(",{ou}")));
    }

    #[test]
    fn escaped_spaces_and_utf8_hex_survive() {
        assert_eq!(normalize(r"CN=\ lead,DC=t").unwrap(), "cn= lead,dc=t");
        assert_eq!(normalize(r"CN=trail\ ,DC=t").unwrap(), "cn=trail ,dc=t");
        assert_eq!(
            normalize(r"CN=J\C3\A9r\C3\B4me,DC=t").unwrap(),
            "cn=jérôme,dc=t"
        );
    }

    #[test]
    fn multi_valued_rdns_are_ordered() {
        let a = normalize("CN=x+UID=7,DC=t").unwrap();
        let b = normalize("uid=7+cn=X,DC=t").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn domain_comes_from_dc_parts() {
        let dn = "CN=WS-01,OU=Disabled,DC=Corp,DC=Example,DC=Test";
        assert_eq!(domain_of(dn).as_deref(), Some("corp.example.test"));
        assert_eq!(domain_of("CN=x,O=acme"), None);
        assert_eq!(first_value(dn).as_deref(), Some("ws-01"));
    }

    #[test]
    fn broken_dns_say_why() {
        assert_eq!(normalize("").unwrap_err(), "the DN is empty");
        assert!(
            normalize("CN=x,")
                .unwrap_err()
                .contains("not an attribute type")
        );
        assert!(
            normalize(r"CN=x\")
                .unwrap_err()
                .contains("ends inside an escape")
        );
        assert!(normalize(r"CN=x\4").unwrap_err().contains("hex escape"));
        assert!(
            normalize("novalue")
                .unwrap_err()
                .contains("not an attribute type")
        );
    }
}
