//! Paged searches, and decoding of their entries without trusting the wire.
//!
//! Every search carries the paged-results control (`1.2.840.113556.1.4.319`) through ldap3's
//! `PagedResults` adapter. AD caps unpaged searches at 1000 entries; Samba does not, so a
//! forgotten control would pass every test against Samba and lose computers against AD. The
//! [`PageGuard`] adapter sits between `PagedResults` and the wire: it records the page size
//! each search really asked for and counts the pages the server answered, which is what tests
//! check, and it validates each paged response control before `PagedResults` parses it, since
//! ldap3's parser panics on a malformed one.
//!
//! Entries are decoded here instead of with `SearchEntry::construct`, which panics on a
//! malformed entry and splits values into text and binary maps by content. [`RawEntry`] keeps
//! every value as bytes and reports a bad entry as an error that names its DN.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::asn1::{StructureTag, TagClass, Types, parse_tag};
use ldap3::controls::{Control, ControlType, RawControl};
use ldap3::result::{LdapError, LdapResult, Result as LdapResultT};
use ldap3::{Ldap, ResultEntry, Scope, SearchStream};

use super::AdError;
use super::connect::describe_rc;

/// The OID of the paged-results control (RFC 2696).
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// The OID of AD's Show Deleted control, which makes tombstones visible.
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";

/// One search: where, how deep, what, and whether tombstones count.
#[derive(Debug, Clone)]
pub struct Query<'q> {
    pub base: &'q str,
    pub scope: Scope,
    pub filter: &'q str,
    pub attributes: &'q [&'q str],
    pub show_deleted: bool,
}

/// Attributes with their values, as raw bytes.
pub type Attributes = Vec<(String, Vec<Vec<u8>>)>;

/// An entry as the server sent it: the DN and each attribute's values as raw bytes, in the
/// server's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attributes: Attributes,
}

impl RawEntry {
    /// The values of an attribute, matched without regard to case.
    pub fn values(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.attributes
            .iter()
            .find(|(attribute, _)| attribute.eq_ignore_ascii_case(name))
            .map(|(_, values)| values.as_slice())
    }

    /// The first value of an attribute as text, if it is UTF-8.
    pub fn first_text(&self, name: &str) -> Option<&str> {
        let value = self.values(name)?.first()?;
        std::str::from_utf8(value).ok()
    }
}

/// What one search saw, for logs, the run summary and the paging test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Entries the server returned, decodable or not.
    pub entries: usize,
    /// Entries that could not be decoded, each reported with its DN.
    pub undecodable: usize,
    /// Search requests that carried the paged-results control, i.e. pages asked for.
    pub paged_requests: usize,
    /// The page size the first request asked for.
    pub requested_page_size: Option<i32>,
    /// Search results that came back with a paged-results control.
    pub paged_responses: usize,
    /// Continuation references (referrals) the server sent; they are not chased.
    pub referrals: usize,
}

/// Runs a paged search and hands each decoded entry to `sink`. An entry that cannot be decoded,
/// or that `sink` refuses with a reason, is logged with its DN, counted and skipped; a failed
/// search is an error that names the base.
pub async fn paged_search(
    ldap: &mut Ldap,
    url: &str,
    query: &Query<'_>,
    page_size: u32,
    timeout: std::time::Duration,
    mut sink: impl FnMut(RawEntry) -> Result<(), DecodeProblem>,
) -> Result<SearchStats, AdError> {
    let guard = PageGuard::default();
    let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(i32::try_from(page_size).unwrap_or(1000))),
        Box::new(guard.clone()),
    ];

    let mut ldap = ldap.clone();
    ldap.with_timeout(timeout);
    if query.show_deleted {
        ldap.with_controls(RawControl {
            ctype: SHOW_DELETED_OID.into(),
            crit: true,
            val: None,
        });
    }
    let mut stream = ldap
        .streaming_search_with(
            adapters,
            query.base,
            query.scope,
            query.filter,
            query.attributes.to_vec(),
        )
        .await
        .map_err(|error| search_error(url, query, error))?;

    let mut stats = SearchStats::default();
    loop {
        let entry = match stream.next().await {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(error) => {
                let _ = stream.finish().await;
                return Err(search_error(url, query, error));
            }
        };
        stats.entries += 1;
        match decode_entry(entry.0).and_then(&mut sink) {
            Ok(()) => {}
            Err(problem) => {
                stats.undecodable += 1;
                tracing::warn!(dn = %problem.dn, problem = %problem.problem, base = query.base,
                    "Skipped an entry that cannot be decoded; it is missing from the output.");
            }
        }
    }

    let result = stream.finish().await;
    stats.paged_requests = guard.requests.load(Ordering::Relaxed);
    stats.paged_responses = guard.responses.load(Ordering::Relaxed);
    stats.requested_page_size = guard.first_size();
    stats.referrals = result.refs.len();
    check_result(url, query, &result)?;

    tracing::debug!(
        base = query.base,
        filter = query.filter,
        entries = stats.entries,
        pages = stats.paged_responses,
        referrals = stats.referrals,
        "Search done."
    );
    Ok(stats)
}

/// Turns a finished search's result code into an error that says what to check.
fn check_result(url: &str, query: &Query<'_>, result: &LdapResult) -> Result<(), AdError> {
    let detail = describe_rc(result.rc, &result.text);
    match result.rc {
        0 => Ok(()),
        32 | 34 => Err(AdError::BaseDn {
            base: query.base.to_owned(),
            detail,
        }),
        87 => Err(AdError::Filter {
            filter: query.filter.to_owned(),
            detail,
        }),
        51 | 52 => Err(AdError::Dropped {
            url: url.to_owned(),
            detail,
        }),
        _ => Err(AdError::Search {
            base: query.base.to_owned(),
            detail,
        }),
    }
}

fn search_error(url: &str, query: &Query<'_>, error: LdapError) -> AdError {
    match error {
        LdapError::FilterParsing => AdError::Filter {
            filter: query.filter.to_owned(),
            detail: "it does not parse as an LDAP filter".into(),
        },
        LdapError::AdapterInit(detail) => AdError::Search {
            base: query.base.to_owned(),
            detail,
        },
        LdapError::LdapResult { result } => {
            check_result(url, query, &result)
                .err()
                .unwrap_or_else(|| AdError::Search {
                    base: query.base.to_owned(),
                    detail: "the server ended the search early".into(),
                })
        }
        other => AdError::Dropped {
            url: url.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// Why an entry could not be decoded, with its DN when that much was readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeProblem {
    pub dn: String,
    pub problem: String,
}

/// Decodes a SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes }`).
pub fn decode_entry(tag: StructureTag) -> Result<RawEntry, DecodeProblem> {
    let problem = |dn: &str, problem: &str| DecodeProblem {
        dn: dn.into(),
        problem: problem.into(),
    };

    let mut parts = tag
        .match_class(TagClass::Application)
        .and_then(|tag| tag.match_id(4))
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| problem("?", "not a search result entry"))?
        .into_iter();

    let dn_bytes = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or_else(|| problem("?", "the entry has no DN"))?;
    let dn = String::from_utf8(dn_bytes).map_err(|error| {
        let lossy = String::from_utf8_lossy(error.as_bytes()).into_owned();
        problem(&lossy, "the DN is not UTF-8")
    })?;

    let attribute_list = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| problem(&dn, "the attribute list is missing"))?;

    let mut attributes = Vec::with_capacity(attribute_list.len());
    for attribute in attribute_list {
        let mut pair = attribute
            .expect_constructed()
            .ok_or_else(|| problem(&dn, "an attribute is not a sequence"))?
            .into_iter();
        let name = pair
            .next()
            .and_then(StructureTag::expect_primitive)
            .and_then(|name| String::from_utf8(name).ok())
            .ok_or_else(|| problem(&dn, "an attribute has no UTF-8 name"))?;
        let values = pair
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| problem(&dn, &format!("attribute {name} has no value set")))?
            .into_iter()
            .map(StructureTag::expect_primitive)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| problem(&dn, &format!("attribute {name} has a structured value")))?;
        attributes.push((name, values));
    }
    Ok(RawEntry { dn, attributes })
}

/// Checks that a paged-results response control holds `SEQUENCE { INTEGER, OCTET STRING }`,
/// the shape ldap3's parser assumes without checking.
pub fn validate_paged_control(control: &RawControl) -> Result<(), String> {
    let value = control
        .val
        .as_deref()
        .ok_or("the paged-results control has no value")?;
    let (rest, tag) =
        parse_tag(value).map_err(|_| "the paged-results control value is not BER".to_owned())?;
    if !rest.is_empty() {
        return Err("the paged-results control value has trailing bytes".into());
    }

    let mut parts = tag
        .expect_constructed()
        .ok_or("the paged-results control value is not a sequence")?
        .into_iter();
    parts
        .next()
        .and_then(|size| size.match_class(TagClass::Universal))
        .and_then(|size| size.match_id(Types::Integer as u64))
        .and_then(StructureTag::expect_primitive)
        .filter(|size| (1..=8).contains(&size.len()))
        .ok_or("the paged-results size is not an integer")?;
    parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or("the paged-results cookie is not an octet string")?;
    Ok(())
}

/// The adapter behind `PagedResults`: counts paged requests and responses and validates each
/// paged response control before `PagedResults` parses it.
#[derive(Debug, Clone, Default)]
struct PageGuard {
    requests: Arc<AtomicUsize>,
    responses: Arc<AtomicUsize>,
    first_size: Arc<std::sync::Mutex<Option<i32>>>,
}

impl PageGuard {
    fn first_size(&self) -> Option<i32> {
        self.first_size.lock().ok().and_then(|size| *size)
    }

    /// The page size inside a request's paged control, as this crate encoded it.
    fn record_request(&self, controls: Option<&Vec<RawControl>>) {
        let Some(control) = controls
            .into_iter()
            .flatten()
            .find(|c| c.ctype == PAGED_RESULTS_OID)
        else {
            return;
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        if validate_paged_control(control).is_ok()
            && let Ok(mut first) = self.first_size.lock()
            && first.is_none()
        {
            let parsed: ldap3::controls::PagedResults = control.parse();
            *first = Some(parsed.size);
        }
    }
}

#[async_trait]
impl<'a, S, A> Adapter<'a, S, A> for PageGuard
where
    S: AsRef<str> + Send + Sync + 'a,
    A: AsRef<[S]> + Send + Sync + 'a,
{
    async fn start(
        &mut self,
        stream: &mut SearchStream<'a, S, A>,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: A,
    ) -> LdapResultT<()> {
        // `PagedResults` has just put its control into the handle this search is sent with.
        self.record_request(stream.ldap_handle().controls.as_ref());
        stream.start(base, scope, filter, attrs).await
    }

    async fn next(
        &mut self,
        stream: &mut SearchStream<'a, S, A>,
    ) -> LdapResultT<Option<ResultEntry>> {
        let item = stream.next().await?;
        if item.is_some() {
            return Ok(item);
        }

        // One page is done. `PagedResults` will parse its control next, and send the following
        // page request through a handle whose controls we see on the next page's end.
        let Some(result) = stream.res.as_ref() else {
            return Ok(None);
        };
        for Control(known, raw) in &result.ctrls {
            if matches!(known, Some(ControlType::PagedResults)) {
                validate_paged_control(raw).map_err(|problem| {
                    LdapError::AdapterInit(format!("malformed response from the server: {problem}"))
                })?;
                self.responses.fetch_add(1, Ordering::Relaxed);
                if !paged_cookie_is_empty(raw) {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(None)
    }

    async fn finish(&mut self, stream: &mut SearchStream<'a, S, A>) -> LdapResult {
        stream.finish().await
    }
}

/// Whether a (validated) paged response ends the search; a non-empty cookie asks for more.
fn paged_cookie_is_empty(control: &RawControl) -> bool {
    let parsed: ldap3::controls::PagedResults = control.parse();
    parsed.cookie.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{ASNTag, OctetString, Sequence, Tag};

    fn octets(bytes: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: bytes.to_vec(),
            ..Default::default()
        })
    }

    fn entry(dn: &[u8], attributes: Vec<Tag>) -> StructureTag {
        Tag::Sequence(Sequence {
            id: 4,
            class: TagClass::Application,
            inner: vec![
                octets(dn),
                Tag::Sequence(Sequence {
                    inner: attributes,
                    ..Default::default()
                }),
            ],
        })
        .into_structure()
    }

    fn attribute(name: &str, values: &[&[u8]]) -> Tag {
        let values = values.iter().map(|value| octets(value)).collect();
        Tag::Sequence(Sequence {
            inner: vec![
                octets(name.as_bytes()),
                Tag::Set(ldap3::asn1::Set {
                    inner: values,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn entry_keeps_binary_and_text_values_as_bytes() {
        let guid: &[u8] = &[
            0x43, 0x28, 0x8a, 0xe9, 0xd1, 0x79, 0x91, 0x41, 0, 1, 2, 3, 4, 5, 6, 7,
        ];
        let tag = entry(
            b"CN=WS-0001,OU=Workstations,DC=corp,DC=test",
            vec![
                attribute("objectGUID", &[guid]),
                attribute("cn", &[b"WS-0001"]),
            ],
        );
        let entry = decode_entry(tag).unwrap();
        assert_eq!(entry.dn, "CN=WS-0001,OU=Workstations,DC=corp,DC=test");
        assert_eq!(entry.values("objectguid"), Some(&[guid.to_vec()][..]));
        assert_eq!(entry.first_text("CN"), Some("WS-0001"));
    }

    #[test]
    fn undecodable_entries_name_their_dn() {
        let nested = Tag::Sequence(Sequence {
            inner: vec![
                octets(b"cn"),
                Tag::Set(ldap3::asn1::Set {
                    inner: vec![Tag::Sequence(Sequence::default())],
                    ..Default::default()
                }),
            ],
            ..Default::default()
        });
        let problem = decode_entry(entry(b"CN=odd,DC=corp,DC=test", vec![nested])).unwrap_err();
        assert_eq!(problem.dn, "CN=odd,DC=corp,DC=test");
        assert_eq!(problem.problem, "attribute cn has a structured value");

        let problem = decode_entry(entry(b"CN=\xff,DC=t", vec![])).unwrap_err();
        assert_eq!(problem.problem, "the DN is not UTF-8");
        assert_eq!(problem.dn, "CN=\u{fffd},DC=t");
    }

    #[test]
    fn malformed_paged_controls_are_refused_not_parsed() {
        let control = |val: Option<Vec<u8>>| RawControl {
            ctype: PAGED_RESULTS_OID.into(),
            crit: false,
            val,
        };
        let good: RawControl = ldap3::controls::PagedResults {
            size: 0,
            cookie: b"c".to_vec(),
        }
        .into();
        assert_eq!(validate_paged_control(&good), Ok(()));

        assert!(
            validate_paged_control(&control(None))
                .unwrap_err()
                .contains("no value")
        );
        assert!(validate_paged_control(&control(Some(vec![0x30, 0x05, 0x02]))).is_err());

        // SEQUENCE { INTEGER 5 }
        let size_only = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        assert!(
            validate_paged_control(&control(Some(size_only)))
                .unwrap_err()
                .contains("cookie")
        );

        // SEQUENCE { OCTET STRING "abc", INTEGER 5 }
        let swapped = vec![0x30, 0x08, 0x04, 0x03, b'a', b'b', b'c', 0x02, 0x01, 0x05];
        assert!(
            validate_paged_control(&control(Some(swapped)))
                .unwrap_err()
                .contains("size")
        );
    }

    #[test]
    fn request_size_is_recorded_from_the_sent_control() {
        let guard = PageGuard::default();
        guard.record_request(Some(&vec![
            RawControl {
                ctype: SHOW_DELETED_OID.into(),
                crit: true,
                val: None,
            },
            ldap3::controls::PagedResults {
                size: 3,
                cookie: vec![],
            }
            .into(),
        ]));
        assert_eq!(guard.requests.load(Ordering::Relaxed), 1);
        assert_eq!(guard.first_size(), Some(3));

        let unpaged = PageGuard::default();
        unpaged.record_request(Some(&vec![]));
        assert_eq!(unpaged.requests.load(Ordering::Relaxed), 0);
    }
}
