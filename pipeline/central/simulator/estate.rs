//! The data a simulator serves: tenants and their endpoints, from page files on disk, from
//! values built in code, or made up at random for load tests.
//!
//! Each endpoint is kept as the JSON text it came in (so a page is served by copying bytes)
//! next to the few fields the list filters look at.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::central::model::Tenant;

/// Regions handed to tenants whose records do not name one, picked by a hash of the id so that
/// a partner's tenants spread over several regional hosts.
const REGIONS: [&str; 4] = ["eu01", "us03", "eu02", "us01"];

/// Why an estate could not be loaded; every message names the file and the record.
#[derive(Debug, thiserror::Error)]
pub enum EstateError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{where_}: {problem}")]
    Invalid { where_: String, problem: String },
}

fn invalid(where_: impl Into<String>, problem: impl Into<String>) -> EstateError {
    EstateError::Invalid {
        where_: where_.into(),
        problem: problem.into(),
    }
}

/// One endpoint: its JSON as served with `view=full`, and what the filters need.
#[derive(Debug)]
pub struct SimEndpoint {
    pub id: String,
    pub tenant_id: Option<String>,
    pub hostname: Option<String>,
    /// Lower case, for `hostnameContains`.
    pub hostname_lower: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub health: Option<String>,
    pub kind: Option<String>,
    pub tamper_protection_enabled: Option<bool>,
    pub online: Option<bool>,
    pub raw: Box<RawValue>,
}

/// The fields read out of an endpoint's JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Indexed {
    id: Option<Value>,
    #[serde(default)]
    tenant: Option<TenantRef>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    last_seen_at: Option<String>,
    #[serde(default)]
    health: Option<HealthRef>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    tamper_protection_enabled: Option<bool>,
    #[serde(default)]
    online: Option<bool>,
}

#[derive(Deserialize)]
struct TenantRef {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct HealthRef {
    #[serde(default)]
    overall: Option<String>,
}

impl SimEndpoint {
    /// Indexes an endpoint's JSON; it must be an object with a string `id`.
    pub fn from_raw(raw: Box<RawValue>) -> Result<SimEndpoint, String> {
        let indexed: Indexed = serde_json::from_str(raw.get())
            .map_err(|error| format!("not an endpoint object: {error}"))?;
        let id = match indexed.id {
            Some(Value::String(id)) if !id.is_empty() => id,
            Some(other) => return Err(format!("field id is not a non-empty string: {other}")),
            None => return Err("field id is missing".to_owned()),
        };

        // A lastSeenAt that does not parse is served as it is, but no lastSeen filter matches it.
        let last_seen_at = indexed
            .last_seen_at
            .as_deref()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|instant| instant.with_timezone(&Utc));

        Ok(SimEndpoint {
            id,
            tenant_id: indexed.tenant.and_then(|tenant| tenant.id),
            hostname_lower: indexed.hostname.as_deref().map(str::to_lowercase),
            hostname: indexed.hostname,
            last_seen_at,
            health: indexed.health.and_then(|health| health.overall),
            kind: indexed.kind,
            tamper_protection_enabled: indexed.tamper_protection_enabled,
            online: indexed.online,
            raw,
        })
    }
}

/// A tenant and its endpoints, keyed by id (the order the list pages in).
#[derive(Debug)]
pub struct EstateTenant {
    /// As the tenant list serves it, without `apiHost` (the server adds its own).
    pub record: Tenant,
    pub endpoints: BTreeMap<String, SimEndpoint>,
}

impl EstateTenant {
    fn new(record: Tenant) -> EstateTenant {
        EstateTenant {
            record,
            endpoints: BTreeMap::new(),
        }
    }

    /// The data region code this tenant is served from.
    pub fn region(&self) -> String {
        self.record
            .data_region
            .clone()
            .unwrap_or_else(|| region_for(&self.record.id))
    }
}

fn region_for(tenant_id: &str) -> String {
    let hash = super::query::fnv1a(tenant_id.as_bytes());
    REGIONS[(hash % REGIONS.len() as u64) as usize].to_owned()
}

fn bare_tenant(id: &str) -> Tenant {
    Tenant {
        id: id.to_owned(),
        name: None,
        show_as: None,
        data_region: None,
        data_geography: None,
        billing_type: None,
        api_host: None,
        status: None,
        partner: None,
        organization: None,
    }
}

/// Everything a simulator serves.
#[derive(Debug, Default)]
pub struct Estate {
    pub tenants: Vec<EstateTenant>,
}

impl Estate {
    /// Builds an estate from tenant records (as the partner tenant list returns them) and
    /// endpoint items (as the endpoint list returns them, each with `tenant.id`). Tenants that
    /// items name but `tenants` lacks are added with just their id.
    pub fn from_values(tenants: Vec<Value>, items: Vec<Value>) -> Result<Estate, EstateError> {
        let mut builder = Builder::default();
        for (index, tenant) in tenants.into_iter().enumerate() {
            let record: Tenant = serde_json::from_value(tenant)
                .map_err(|error| invalid(format!("tenant {index}"), error.to_string()))?;
            builder.add_tenant(record, &format!("tenant {index}"))?;
        }
        for (index, item) in items.into_iter().enumerate() {
            let where_ = format!("endpoint item {index}");
            let raw = serde_json::value::to_raw_value(&item)
                .map_err(|error| invalid(&where_, error.to_string()))?;
            let endpoint =
                SimEndpoint::from_raw(raw).map_err(|problem| invalid(&where_, problem))?;
            builder.add_endpoint(endpoint, None, &where_)?;
        }
        Ok(builder.finish())
    }

    /// Loads an estate folder: the estate root holding `central/`, the `central/` folder
    /// itself, or any folder of recorded pages. Every `*.json` below it except `manifest.json`
    /// and `tenants.json` is an endpoint list body; an item without `tenant.id` belongs to the
    /// tenant its folder is named after. `tenants.json`, if present, lists the tenant records;
    /// otherwise a tenant's name comes from its `manifest.json`, if any.
    pub fn load(dir: &Path) -> Result<Estate, EstateError> {
        let root = if dir.join("central").is_dir() {
            dir.join("central")
        } else {
            dir.to_owned()
        };
        let mut builder = Builder::default();

        let tenants_file = root.join("tenants.json");
        if tenants_file.is_file() {
            let text = read(&tenants_file)?;
            let records: Vec<Tenant> = serde_json::from_slice(&text).map_err(|error| {
                invalid(
                    tenants_file.display().to_string(),
                    format!("not a tenant array: {error}"),
                )
            })?;
            for (index, record) in records.into_iter().enumerate() {
                builder.add_tenant(record, &format!("{} item {index}", tenants_file.display()))?;
            }
        }

        let mut files = Vec::new();
        walk(&root, &mut files)?;
        files.sort();

        for file in files {
            let name = file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            let folder_tenant = file
                .parent()
                .filter(|parent| *parent != root)
                .and_then(Path::file_name)
                .map(|name| name.to_string_lossy().into_owned());

            if name.as_deref() == Some("manifest.json") {
                builder.note_manifest(&file, folder_tenant.as_deref())?;
                continue;
            }
            if name.as_deref() == Some("tenants.json") {
                continue;
            }
            load_page(&mut builder, &file, folder_tenant.as_deref())?;
        }
        Ok(builder.finish())
    }

    /// A made-up estate for load tests: `tenants` tenants of `endpoints_per_tenant` endpoints
    /// each, shaped like `view=full` answers, the same for the same seed (but for `lastSeenAt`,
    /// which is spread over the 180 days before now).
    pub fn synthetic(tenants: usize, endpoints_per_tenant: usize, seed: u64) -> Estate {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let now = Utc::now();
        let mut builder = Builder::default();

        for tenant_index in 0..tenants {
            let tenant_id = uuid_from(&mut rng);
            let mut record = bare_tenant(&tenant_id);
            record.name = Some(format!("Synthetic Tenant {tenant_index:03}"));
            record.show_as = Some(format!("Synthetic {tenant_index:03}"));
            record.billing_type = Some("term".to_owned());
            // The record was built here, so its id is unique and the add cannot fail.
            let _ = builder.add_tenant(record, "synthetic");

            for endpoint_index in 0..endpoints_per_tenant {
                let item = synthetic_endpoint(&mut rng, &tenant_id, endpoint_index, now);
                if let Ok(raw) = serde_json::value::to_raw_value(&item)
                    && let Ok(endpoint) = SimEndpoint::from_raw(raw)
                {
                    let _ = builder.add_endpoint(endpoint, None, "synthetic");
                }
            }
        }
        builder.finish()
    }

    pub fn endpoint_count(&self) -> usize {
        self.tenants
            .iter()
            .map(|tenant| tenant.endpoints.len())
            .sum()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EstateError> {
    std::fs::read(path).map_err(|source| EstateError::Read {
        path: path.to_owned(),
        source,
    })
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), EstateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EstateError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| EstateError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}

fn load_page(
    builder: &mut Builder,
    file: &Path,
    folder_tenant: Option<&str>,
) -> Result<(), EstateError> {
    #[derive(Deserialize)]
    struct Body {
        items: Vec<Box<RawValue>>,
    }

    let text = read(file)?;
    let body: Body = serde_json::from_slice(&text).map_err(|error| {
        invalid(
            file.display().to_string(),
            format!("not an endpoint list body: {error}"),
        )
    })?;
    for (index, raw) in body.items.into_iter().enumerate() {
        let where_ = format!("{} item {index}", file.display());
        let endpoint = SimEndpoint::from_raw(raw).map_err(|problem| invalid(&where_, problem))?;
        builder.add_endpoint(endpoint, folder_tenant, &where_)?;
    }
    Ok(())
}

/// Gathers tenants and endpoints, refusing duplicates.
#[derive(Default)]
struct Builder {
    tenants: Vec<EstateTenant>,
    index: HashMap<String, usize>,
}

impl Builder {
    fn add_tenant(&mut self, record: Tenant, where_: &str) -> Result<(), EstateError> {
        if self.index.contains_key(&record.id) {
            return Err(invalid(
                where_,
                format!("tenant {} is listed twice", record.id),
            ));
        }
        self.index.insert(record.id.clone(), self.tenants.len());
        self.tenants.push(EstateTenant::new(record));
        Ok(())
    }

    fn tenant(&mut self, id: &str) -> &mut EstateTenant {
        let position = match self.index.get(id) {
            Some(position) => *position,
            None => {
                self.index.insert(id.to_owned(), self.tenants.len());
                self.tenants.push(EstateTenant::new(bare_tenant(id)));
                self.tenants.len() - 1
            }
        };
        &mut self.tenants[position]
    }

    fn add_endpoint(
        &mut self,
        endpoint: SimEndpoint,
        folder_tenant: Option<&str>,
        where_: &str,
    ) -> Result<(), EstateError> {
        let Some(tenant_id) = endpoint
            .tenant_id
            .clone()
            .or(folder_tenant.map(str::to_owned))
        else {
            return Err(invalid(
                where_,
                "no tenant.id, and the file is not in a tenant folder",
            ));
        };
        let tenant = self.tenant(&tenant_id);
        if tenant.endpoints.contains_key(&endpoint.id) {
            return Err(invalid(
                where_,
                format!(
                    "endpoint {} appears twice in tenant {tenant_id}",
                    endpoint.id
                ),
            ));
        }
        tenant.endpoints.insert(endpoint.id.clone(), endpoint);
        Ok(())
    }

    /// Takes a tenant's name from a manifest when no tenant list gave one.
    fn note_manifest(
        &mut self,
        file: &Path,
        folder_tenant: Option<&str>,
    ) -> Result<(), EstateError> {
        #[derive(Deserialize)]
        struct ManifestNames {
            tenant_id: Option<String>,
            tenant_name: Option<String>,
        }
        let text = read(file)?;
        let Ok(names) = serde_json::from_slice::<ManifestNames>(&text) else {
            return Ok(());
        };
        let Some(id) = names.tenant_id.or(folder_tenant.map(str::to_owned)) else {
            return Ok(());
        };
        let tenant = self.tenant(&id);
        if tenant.record.name.is_none() {
            tenant.record.name = names.tenant_name;
        }
        Ok(())
    }

    fn finish(self) -> Estate {
        Estate {
            tenants: self.tenants,
        }
    }
}

fn uuid_from(rng: &mut impl rand::Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// One endpoint in the shape of the reference's `view=full` example.
fn synthetic_endpoint(
    rng: &mut rand::rngs::StdRng,
    tenant_id: &str,
    index: usize,
    now: DateTime<Utc>,
) -> Value {
    let id = uuid_from(rng);
    let seconds_ago = rng.random_range(0..180 * 86_400i64);
    let millis = rng.random_range(0..1000i64);
    let last_seen =
        now - chrono::Duration::seconds(seconds_ago) - chrono::Duration::milliseconds(millis);
    let health = ["good", "good", "good", "suspicious", "bad", "unknown"][rng.random_range(0..6)];
    let server = rng.random_range(0..10) == 0;
    let build = [19045, 22621, 22631, 26100][rng.random_range(0..4)];
    let octets: [u8; 2] = [rng.random_range(0..=255), rng.random_range(1..=254)];
    let mac: Vec<String> = (0..6)
        .map(|_| format!("{:02X}", rng.random_range(0..=255u8)))
        .collect();

    serde_json::json!({
        "id": id,
        "type": if server { "server" } else { "computer" },
        "tenant": { "id": tenant_id },
        "hostname": format!("{}-{:05}", if server { "SRV" } else { "WS" }, index),
        "health": {
            "overall": health,
            "threats": { "status": "good" },
            "services": {
                "status": health,
                "serviceDetails": [
                    { "name": "Sophos Endpoint Defense Service", "status": "running" },
                    { "name": "Sophos MCS Client", "status": "running" }
                ]
            }
        },
        "os": {
            "isServer": server,
            "platform": "windows",
            "name": if server { "Windows Server 2022 Standard" } else { "Windows 11 Pro" },
            "majorVersion": 10,
            "minorVersion": 0,
            "build": build
        },
        "ipv4Addresses": [format!("10.{}.{}.{}", index % 200, octets[0], octets[1])],
        "macAddresses": [mac.join(":")],
        "associatedPerson": {
            "id": uuid_from(rng),
            "name": format!("User {index:05}"),
            "viaLogin": format!("CORP\\user{index:05}")
        },
        "tamperProtectionSupported": true,
        "tamperProtectionEnabled": rng.random_range(0..20) != 0,
        "assignedProducts": [
            { "code": "coreAgent", "version": "2024.3.2.5", "status": "installed" },
            { "code": "interceptX", "version": "2024.3.2.5", "status": "installed" }
        ],
        "lastSeenAt": last_seen.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "online": seconds_ago < 600,
        "isolation": { "status": "notIsolated", "adminIsolated": false, "selfIsolated": false },
        "cloned": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_go_to_their_tenants_and_duplicates_are_refused() {
        let estate = Estate::from_values(
            vec![json!({"id": "t1", "name": "One", "dataRegion": "eu02"})],
            vec![
                json!({"id": "b", "tenant": {"id": "t1"}, "hostname": "PC-B"}),
                json!({"id": "a", "tenant": {"id": "t1"}, "lastSeenAt": "2025-01-01T00:00:00.000Z"}),
                json!({"id": "c", "tenant": {"id": "t2"}}),
            ],
        )
        .unwrap();

        assert_eq!(estate.tenants.len(), 2);
        let first = &estate.tenants[0];
        assert_eq!(first.region(), "eu02");
        assert_eq!(first.endpoints.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(first.endpoints["b"].hostname_lower.as_deref(), Some("pc-b"));
        assert!(first.endpoints["a"].last_seen_at.is_some());
        assert_eq!(estate.tenants[1].record.id, "t2");

        let error = Estate::from_values(
            vec![],
            vec![
                json!({"id": "a", "tenant": {"id": "t"}}),
                json!({"id": "a", "tenant": {"id": "t"}}),
            ],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "endpoint item 1: endpoint a appears twice in tenant t"
        );

        let error = Estate::from_values(vec![], vec![json!({"hostname": "x"})]).unwrap_err();
        assert_eq!(error.to_string(), "endpoint item 0: field id is missing");
    }

    #[test]
    fn load_reads_a_folder_tree_and_names_bad_files() {
        let root = tempfile::tempdir().unwrap();
        let central = root.path().join("central");
        std::fs::create_dir_all(central.join("t-9")).unwrap();
        std::fs::write(
            central.join("t-9/page-00001.json"),
            r#"{"items":[{"id":"e1"},{"id":"e2","tenant":{"id":"t-9"}}],"pages":{}}"#,
        )
        .unwrap();
        std::fs::write(
            central.join("t-9/manifest.json"),
            r#"{"tenant_id":"t-9","tenant_name":"Nine","complete":true}"#,
        )
        .unwrap();

        let estate = Estate::load(root.path()).unwrap();
        assert_eq!(estate.tenants.len(), 1);
        assert_eq!(estate.tenants[0].record.name.as_deref(), Some("Nine"));
        assert_eq!(estate.endpoint_count(), 2);

        // Pointing at central/ itself gives the same estate.
        assert_eq!(Estate::load(&central).unwrap().endpoint_count(), 2);

        std::fs::write(
            central.join("t-9/page-00002.json"),
            r#"{"items":[{"id":3}]}"#,
        )
        .unwrap();
        let error = Estate::load(root.path()).unwrap_err().to_string();
        assert!(error.contains("page-00002.json item 0"), "{error}");
        assert!(
            error.contains("field id is not a non-empty string"),
            "{error}"
        );
    }

    #[test]
    fn synthetic_estates_are_repeatable() {
        let one = Estate::synthetic(3, 20, 7);
        let two = Estate::synthetic(3, 20, 7);
        assert_eq!(one.endpoint_count(), 60);
        let ids = |estate: &Estate| -> Vec<String> {
            estate
                .tenants
                .iter()
                .flat_map(|t| t.endpoints.keys().cloned())
                .collect()
        };
        assert_eq!(ids(&one), ids(&two));
        let endpoint = one.tenants[0].endpoints.values().next().unwrap();
        assert!(endpoint.last_seen_at.is_some());
        assert!(endpoint.raw.get().contains("\"viaLogin\""));
    }
}
