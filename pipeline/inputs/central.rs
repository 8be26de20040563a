//! Central endpoint pages: the bodies of `GET /endpoint/v1/endpoints?view=full`, one per file.
//!
//! A page is `{"items": [...], "pages": {...}}`. Every field of an item but `id` may be missing,
//! unknown fields are ignored and enum values are kept as text, because Central adds both over
//! time. An item that cannot be used (no `id`, a wrong type, a `lastSeenAt` that does not parse)
//! becomes a [`Reject`] naming the file, the item and the field; the rest of the page is kept.
//!
//! A folder written by `lastseen collect central` also holds one `manifest.json` per tenant. A
//! manifest that says the collection was not complete turns into a reject for that tenant, so
//! no endpoint of a half-collected tenant is ever decided `delete`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{InputError, InputKind, Reject, Source, schema, time};

/// Rows per record batch: large enough to keep per-batch overhead low, small enough that the
/// two cores share the work of the join evenly.
const BATCH_ROWS: usize = 64 * 1024;

/// File names in a pages folder that are not pages.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TENANTS_FILE: &str = "tenants.json";

/// What the reader made of a set of page files.
#[derive(Debug, Default)]
pub struct CentralInput {
    pub endpoints: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub files: usize,
    pub records: usize,
}

/// Reads every page under `sources`: files as they are, folders recursively (in name order).
pub fn read(sources: &[Source]) -> Result<CentralInput, InputError> {
    let mut pages = Vec::new();
    let mut manifests = Vec::new();
    for source in sources {
        match source {
            Source::File(path) => collect_files(path, &mut pages, &mut manifests)?,
            Source::Embedded { .. } | Source::Memory { .. } => {
                let name = source.name();
                let file = Path::new(&name).file_name().unwrap_or_default();
                if file == MANIFEST_FILE {
                    manifests.push(source.clone());
                } else if file != TENANTS_FILE {
                    pages.push(source.clone());
                }
            }
        }
    }

    // Manifests first: they say which tenant a folder holds and whether it is complete.
    let mut input = CentralInput::default();
    let mut folder_tenants = HashMap::new();
    for manifest in &manifests {
        read_manifest(manifest, &mut folder_tenants, &mut input.rejects);
    }

    let parts = pages
        .par_iter()
        .fold(PageReader::default, |mut reader, page| {
            let tenant = folder_of(page)
                .and_then(|folder| folder_tenants.get(&folder))
                .cloned();
            reader.read_page(page, tenant.as_deref());
            reader
        })
        .map(PageReader::finish)
        .collect::<Vec<_>>();

    input.files = pages.len();
    for part in parts {
        input.endpoints.extend(part.endpoints);
        input.rejects.extend(part.rejects);
        input.records += part.records;
    }
    Ok(input)
}

/// Endpoint items that arrive one by one (from Kafka, say) rather than in page files: each
/// item is the JSON of one endpoint, with the tenant to assume when it names none. `origin`
/// stands in for the file name in rejects.
pub fn read_items<'a>(
    origin: &str,
    items: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> CentralInput {
    let mut reader = PageReader::default();
    for (index, (item, tenant)) in items.into_iter().enumerate() {
        reader.read_item(origin, &format!("item {}", index + 1), item, tenant);
    }
    let part = reader.finish();
    CentralInput {
        endpoints: part.endpoints,
        rejects: part.rejects,
        files: 0,
        records: part.records,
    }
}

fn collect_files(
    path: &Path,
    pages: &mut Vec<Source>,
    manifests: &mut Vec<Source>,
) -> Result<(), InputError> {
    let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => InputError::Missing {
            path: path.to_owned(),
        },
        _ => InputError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    if !metadata.is_dir() {
        pages.push(Source::File(path.to_owned()));
        return Ok(());
    }

    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .and_then(|entries| entries.map(|entry| entry.map(|e| e.path())).collect())
        .map_err(|source| InputError::Read {
            path: path.to_owned(),
            source,
        })?;
    entries.sort();

    for entry in entries {
        let name = entry.file_name().unwrap_or_default();
        if entry.is_dir() {
            collect_files(&entry, pages, manifests)?;
        } else if name == MANIFEST_FILE {
            manifests.push(Source::File(entry));
        } else if name != TENANTS_FILE && entry.extension().is_some_and(|ext| ext == "json") {
            pages.push(Source::File(entry));
        }
    }
    Ok(())
}

/// The folder a source sits in, as a key shared by a manifest and its pages.
fn folder_of(source: &Source) -> Option<PathBuf> {
    match source {
        Source::File(path) => path.parent().map(Path::to_owned),
        Source::Embedded { name, .. } => Path::new(name).parent().map(Path::to_owned),
        Source::Memory { name, .. } => Path::new(name).parent().map(Path::to_owned),
    }
}

#[derive(Deserialize)]
struct Manifest {
    tenant_id: String,
    complete: bool,
    #[serde(default)]
    error: Option<String>,
}

fn read_manifest(
    source: &Source,
    folder_tenants: &mut HashMap<PathBuf, String>,
    rejects: &mut Vec<Reject>,
) {
    let reject = |problem: String, tenant_id: Option<String>, raw: Option<String>| Reject {
        input: InputKind::Manifest,
        file: source.name(),
        record: "the manifest".into(),
        field: None,
        problem,
        tenant_id,
        endpoint_id: None,
        raw,
    };

    let bytes = match source.read() {
        Ok(bytes) => bytes,
        Err(error) => return rejects.push(reject(error.to_string(), None, None)),
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(manifest) => manifest,
        Err(error) => {
            let raw = String::from_utf8_lossy(&bytes).into_owned();
            return rejects.push(reject(format!("not a manifest: {error}"), None, Some(raw)));
        }
    };

    if let Some(folder) = folder_of(source) {
        folder_tenants.insert(folder, manifest.tenant_id.clone());
    }
    if !manifest.complete {
        let why = manifest.error.unwrap_or_else(|| "no reason given".into());
        let problem = format!("the collection of this tenant was incomplete: {why}");
        rejects.push(reject(problem, Some(manifest.tenant_id), None));
    }
}

/// The page envelope; items stay raw so that one bad item rejects only itself.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// A page whose every item parses as an [`Endpoint`]: the one-pass reading of a clean page.
#[derive(Deserialize)]
struct CleanPage<'a> {
    #[serde(borrow)]
    items: Vec<Endpoint<'a>>,
}

/// The fields of an endpoint that the correlation uses. Strings borrow from the page where
/// they have no escapes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant: Option<Reference<'a>>,
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow)]
    health: Option<Health<'a>>,
    #[serde(borrow)]
    os: Option<Os<'a>>,
    #[serde(borrow)]
    associated_person: Option<Person<'a>>,
    #[serde(borrow)]
    group: Option<Group<'a>>,
    tamper_protection_enabled: Option<bool>,
    online: Option<bool>,
    #[serde(borrow)]
    last_seen_at: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Health<'a> {
    #[serde(borrow)]
    overall: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Os<'a> {
    #[serde(borrow)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    build: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Person<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    via_login: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Group<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// What can still be read of an item that was rejected, to scope the damage to its tenant.
#[derive(Deserialize)]
struct Identity {
    id: Option<serde_json::Value>,
    tenant: Option<serde_json::Value>,
}

/// One rayon worker's share: its own column builders, so workers never contend.
#[derive(Default)]
struct PageReader {
    columns: Option<EndpointColumns>,
    endpoints: Vec<RecordBatch>,
    rejects: Vec<Reject>,
    records: usize,
}

impl PageReader {
    fn read_page(&mut self, source: &Source, folder_tenant: Option<&str>) {
        let file = source.name();
        let whole_page = |problem: String, raw: Option<String>| Reject {
            input: InputKind::Central,
            file: file.clone(),
            record: "the page".into(),
            field: None,
            problem,
            tenant_id: folder_tenant.map(str::to_owned),
            endpoint_id: None,
            raw,
        };

        let bytes = match source.read() {
            Ok(bytes) => bytes,
            Err(error) => return self.rejects.push(whole_page(error.to_string(), None)),
        };
        // Most pages are clean and are read in one pass. A page with any item that cannot be
        // used is read again item by item, so that only those items are rejected.
        if let Ok(page) = serde_json::from_slice::<CleanPage<'_>>(&bytes) {
            let endpoints: Result<Vec<_>, _> = page.items.into_iter().map(check_item).collect();
            if let Ok(endpoints) = endpoints {
                let columns = self.columns.get_or_insert_with(EndpointColumns::default);
                for (endpoint, last_seen_at) in &endpoints {
                    columns.append(endpoint, *last_seen_at, folder_tenant);
                }
                self.records += endpoints.len();
                if columns.len() >= BATCH_ROWS {
                    self.flush();
                }
                return;
            }
        }

        let page: Page<'_> = match serde_json::from_slice(&bytes) {
            Ok(page) => page,
            Err(error) => {
                let problem = format!("not an endpoint page ({{\"items\": [...]}}): {error}");
                let raw = String::from_utf8_lossy(&bytes).into_owned();
                return self.rejects.push(whole_page(problem, Some(raw)));
            }
        };

        for (index, item) in page.items.iter().enumerate() {
            let record = format!("item {} of the page", index + 1);
            self.read_item(&file, &record, item.get(), folder_tenant);
        }
    }

    fn read_item(&mut self, file: &str, record: &str, item: &str, folder_tenant: Option<&str>) {
        self.records += 1;
        match parse_item(item) {
            Ok((endpoint, last_seen_at)) => {
                let columns = self.columns.get_or_insert_with(EndpointColumns::default);
                columns.append(&endpoint, last_seen_at, folder_tenant);
                if columns.len() >= BATCH_ROWS {
                    self.flush();
                }
            }
            Err((field, problem)) => {
                let identity: Option<Identity> = serde_json::from_str(item).ok();
                let id_of = |value: Option<&serde_json::Value>| {
                    value.and_then(serde_json::Value::as_str).map(str::to_owned)
                };
                let tenant_id = identity
                    .as_ref()
                    .and_then(|identity| id_of(identity.tenant.as_ref()?.get("id")))
                    .or_else(|| folder_tenant.map(str::to_owned));
                self.rejects.push(Reject {
                    input: InputKind::Central,
                    file: file.to_owned(),
                    record: record.to_owned(),
                    field,
                    problem,
                    tenant_id,
                    endpoint_id: identity.and_then(|identity| id_of(identity.id.as_ref())),
                    raw: Some(item.to_owned()),
                });
            }
        }
    }

    fn flush(&mut self) {
        if let Some(columns) = self.columns.take() {
            self.endpoints.push(columns.finish());
        }
    }

    fn finish(mut self) -> PageReader {
        self.flush();
        self
    }
}

/// Parses one item, or says which field is wrong and how.
fn parse_item(text: &str) -> Result<(Endpoint<'_>, Option<i64>), ItemProblem> {
    let endpoint: Endpoint<'_> = match serde_json::from_str(text) {
        Ok(endpoint) => endpoint,
        Err(_) => {
            // Parse again, slowly, only to learn the path of the field at fault.
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let error = match serde_path_to_error::deserialize::<_, Endpoint<'_>>(&mut deserializer)
            {
                Ok(_) => return Err((None, "the item does not parse".into())),
                Err(error) => error,
            };
            let path = error.path().to_string();
            let field = (path != ".").then_some(path);
            return Err((field, error.into_inner().to_string()));
        }
    };

    check_item(endpoint)
}

/// What parsing cannot check: an id that is there, and a `lastSeenAt` that is a time.
fn check_item(endpoint: Endpoint<'_>) -> Result<(Endpoint<'_>, Option<i64>), ItemProblem> {
    if endpoint.id.trim().is_empty() {
        return Err((Some("id".into()), "the endpoint id is empty".into()));
    }
    let last_seen_at = match endpoint.last_seen_at.as_deref() {
        Some(text) => Some(time::parse_rfc3339(text).map_err(|e| (Some("lastSeenAt".into()), e))?),
        None => None,
    };
    Ok((endpoint, last_seen_at))
}

/// The field at fault (a path such as `os.build`), when one is to blame, and the problem.
type ItemProblem = (Option<String>, String);

#[derive(Default)]
struct EndpointColumns {
    tenant_id: StringBuilder,
    endpoint_id: StringBuilder,
    hostname: StringBuilder,
    kind: StringBuilder,
    health: StringBuilder,
    os_platform: StringBuilder,
    os_name: StringBuilder,
    os_build: Int64Builder,
    associated_person: StringBuilder,
    via_login: StringBuilder,
    group_name: StringBuilder,
    tamper_protection_enabled: BooleanBuilder,
    online: BooleanBuilder,
    last_seen_at: TimestampMillisecondBuilder,
    rows: usize,
}

impl EndpointColumns {
    fn len(&self) -> usize {
        self.rows
    }

    fn append(&mut self, endpoint: &Endpoint<'_>, last_seen_at: Option<i64>, folder: Option<&str>) {
        let tenant = endpoint
            .tenant
            .as_ref()
            .and_then(|tenant| tenant.id.as_deref());
        let os = endpoint.os.as_ref();
        let person = endpoint.associated_person.as_ref();

        self.tenant_id.append_option(tenant.or(folder));
        self.endpoint_id.append_value(&endpoint.id);
        self.hostname.append_option(endpoint.hostname.as_deref());
        self.kind.append_option(endpoint.kind.as_deref());
        self.health
            .append_option(endpoint.health.as_ref().and_then(|h| h.overall.as_deref()));
        self.os_platform
            .append_option(os.and_then(|os| os.platform.as_deref()));
        self.os_name
            .append_option(os.and_then(|os| os.name.as_deref()));
        self.os_build.append_option(os.and_then(|os| os.build));
        self.associated_person
            .append_option(person.and_then(|p| p.name.as_deref()));
        self.via_login
            .append_option(person.and_then(|p| p.via_login.as_deref()));
        self.group_name
            .append_option(endpoint.group.as_ref().and_then(|g| g.name.as_deref()));
        self.tamper_protection_enabled
            .append_option(endpoint.tamper_protection_enabled);
        self.online.append_option(endpoint.online);
        self.last_seen_at.append_option(last_seen_at);
        self.rows += 1;
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.tenant_id.finish()),
            Arc::new(self.endpoint_id.finish()),
            Arc::new(self.hostname.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.health.finish()),
            Arc::new(self.os_platform.finish()),
            Arc::new(self.os_name.finish()),
            Arc::new(self.os_build.finish()),
            Arc::new(self.associated_person.finish()),
            Arc::new(self.via_login.finish()),
            Arc::new(self.group_name.finish()),
            Arc::new(self.tamper_protection_enabled.finish()),
            Arc::new(self.online.finish()),
            Arc::new(self.last_seen_at.finish().with_timezone("UTC")),
        ];
        RecordBatch::try_new(schema::endpoints(), columns)
            .expect("endpoint columns follow schema::endpoints")
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMillisecondType};

    use super::*;

    fn embedded(name: &'static str, text: &'static str) -> Source {
        Source::Embedded {
            name,
            bytes: text.as_bytes(),
        }
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a arrow::array::StringArray {
        batch.column_by_name(name).unwrap().as_string::<i32>()
    }

    #[test]
    fn reads_items_and_tolerates_missing_and_unknown_fields() {
        let page = embedded(
            "pages/t1/page-1.json",
            r#"{"items": [
                {"id": "e1", "type": "computer", "tenant": {"id": "t1"}, "hostname": "WS-01",
                 "os": {"platform": "windows", "name": "Windows 11 Pro", "build": 22631,
                        "futureField": {"x": 1}},
                 "associatedPerson": {"name": "Jana Novak", "viaLogin": "CORP\\jnovak"},
                 "lockdown": {"status": "locking"},
                 "lastSeenAt": "2025-03-02T07:14:09.318Z"},
                {"id": "e2"}
            ], "pages": {"size": 50, "maxSize": 500}}"#,
        );

        let input = read(&[page]).unwrap();
        assert!(input.rejects.is_empty(), "{:?}", input.rejects);
        assert_eq!((input.files, input.records), (1, 2));

        let batch = &input.endpoints[0];
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(column(batch, "endpoint_id").value(0), "e1");
        assert_eq!(column(batch, "via_login").value(0), r"CORP\jnovak");
        let build = batch
            .column_by_name("os_build")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(build.value(0), 22631);
        assert!(build.is_null(1));
        let seen = batch.column_by_name("last_seen_at").unwrap();
        let seen = seen.as_primitive::<TimestampMillisecondType>();
        assert_eq!(seen.value(0), 1_740_899_649_318);
        assert!(seen.is_null(1));
    }

    #[test]
    fn a_bad_item_is_rejected_with_its_field_and_the_page_goes_on() {
        let page = embedded(
            "pages/page-1.json",
            r#"{"items": [
                {"id": "e1", "tenant": {"id": "t1"}, "os": {"build": "19045"}},
                {"id": "e2", "tenant": {"id": "t1"}, "lastSeenAt": "2025-03-02 07:14"},
                {"tenant": {"id": "t2"}, "hostname": "WS-09"},
                {"id": "e4", "tenant": {"id": "t1"}, "hostname": "WS-04"}
            ]}"#,
        );

        let input = read(&[page]).unwrap();
        assert_eq!(
            input.endpoints.iter().map(|b| b.num_rows()).sum::<usize>(),
            1
        );
        assert_eq!(input.records, 4);

        let rejects = &input.rejects;
        assert_eq!(rejects.len(), 3);
        assert_eq!(rejects[0].record, "item 1 of the page");
        assert_eq!(rejects[0].field.as_deref(), Some("os.build"));
        assert!(
            rejects[0].problem.contains("invalid type: string"),
            "{}",
            rejects[0].problem
        );
        assert_eq!(rejects[0].endpoint_id.as_deref(), Some("e1"));
        assert_eq!(rejects[1].field.as_deref(), Some("lastSeenAt"));
        assert!(rejects[1].problem.contains("with a zone"));
        assert!(
            rejects[2].problem.contains("missing field `id`"),
            "{}",
            rejects[2].problem
        );
        assert_eq!(rejects[2].tenant_id.as_deref(), Some("t2"));
        assert!(rejects[2].raw.as_deref().unwrap().contains("WS-09"));
        assert_eq!(
            rejects[0].to_string(),
            "pages/page-1.json: item 1 of the page: field os.build: invalid type: string \
             \"19045\", expected i64 at line 1 column 60"
        );
    }

    #[test]
    fn a_page_that_parses_but_holds_a_bad_time_is_read_item_by_item() {
        // Every item parses, so the one-pass reading gets as far as checking the times; the
        // bad one must send the page to the item-by-item reading without counting it twice.
        let page = embedded(
            "pages/page-1.json",
            r#"{"items": [
                {"id": "e1", "tenant": {"id": "t1"}, "lastSeenAt": "2026-11-02T07:14:00Z"},
                {"id": "e2", "tenant": {"id": "t1"}, "lastSeenAt": "yesterday"},
                {"id": "e3", "tenant": {"id": "t1"}}
            ]}"#,
        );

        let input = read(&[page]).unwrap();
        let ids: Vec<_> = input
            .endpoints
            .iter()
            .flat_map(|batch| {
                let ids = batch
                    .column_by_name("endpoint_id")
                    .unwrap()
                    .as_string::<i32>();
                ids.iter()
                    .map(|id| id.unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, ["e1", "e3"]);
        assert_eq!(input.records, 3);
        assert_eq!(input.rejects.len(), 1);
        assert_eq!(input.rejects[0].record, "item 2 of the page");
        assert_eq!(input.rejects[0].field.as_deref(), Some("lastSeenAt"));
    }

    #[test]
    fn a_page_that_is_not_json_is_rejected_whole() {
        let input = read(&[embedded("p/page-1.json", "{\"items\": [")]).unwrap();
        assert_eq!(input.rejects.len(), 1);
        assert_eq!(input.rejects[0].record, "the page");
        assert!(input.rejects[0].problem.contains("EOF while parsing"));
        assert_eq!(input.rejects[0].tenant_id, None);
    }

    #[test]
    fn an_incomplete_manifest_marks_its_tenant_and_names_its_pages() {
        let manifest = embedded(
            "c/t9/manifest.json",
            r#"{"tenant_id": "t9", "tenant_name": "Nine", "collected_at": "2026-12-01T00:00:00Z",
                "pages": 1, "endpoints": 1, "complete": false, "error": "HTTP 503 on page 2"}"#,
        );
        let page = embedded("c/t9/page-00001.json", r#"{"items": [{"id": "e1"}]}"#);

        let input = read(&[manifest, page]).unwrap();
        assert_eq!(input.rejects.len(), 1);
        assert_eq!(input.rejects[0].input, InputKind::Manifest);
        assert_eq!(input.rejects[0].tenant_id.as_deref(), Some("t9"));
        assert!(input.rejects[0].problem.contains("HTTP 503 on page 2"));

        // An item without `tenant` takes the tenant of its folder's manifest.
        assert_eq!(column(&input.endpoints[0], "tenant_id").value(0), "t9");
    }

    #[test]
    fn a_missing_path_is_an_error() {
        let error = read(&[Source::File("/nonexistent/pages".into())]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/nonexistent/pages: no such file or directory"
        );
    }
}
