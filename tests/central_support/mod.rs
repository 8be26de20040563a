//! Helpers shared by the Central integration tests: estates built in code, a client pointed at
//! a simulator, and reading back what `collect central` wrote.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use lastseen::central::client::{CentralClient, ClientSettings, RetryPolicy};
use lastseen::central::model::Secret;
use lastseen::central::simulator::{Estate, Simulator, SimulatorConfig};
use serde_json::{Value, json};
use url::Url;

pub const LOOPBACK: &str = "127.0.0.1:0";

pub fn loopback() -> SocketAddr {
    LOOPBACK.parse().unwrap()
}

/// A tenant id that sorts and reads well: `t-007`.
pub fn tenant_id(index: usize) -> String {
    format!("7e1a0000-0000-4000-8000-{index:012}")
}

/// An endpoint id unique across tenants.
pub fn endpoint_id(tenant: usize, index: usize) -> String {
    format!("e0000000-{tenant:04}-4000-8000-{index:012}")
}

/// Tenant records spread over three regions.
pub fn tenant_records(count: usize) -> Vec<Value> {
    let regions = ["eu01", "us03", "eu02"];
    (0..count)
        .map(|index| {
            json!({
                "id": tenant_id(index),
                "name": format!("Tenant {index}"),
                "showAs": format!("T{index}"),
                "dataRegion": regions[index % regions.len()],
                "dataGeography": "IE",
                "billingType": "term",
            })
        })
        .collect()
}

/// An endpoint last seen `days_ago` days before `now`, with optional blocks left out on some.
pub fn endpoint(tenant: usize, index: usize, now: DateTime<Utc>, days_ago: i64) -> Value {
    let seen = now - Span::days(days_ago) - Span::milliseconds(index as i64 % 1000);
    let health = ["good", "bad", "suspicious", "unknown"][index % 4];
    let platform = if index.is_multiple_of(5) {
        "macOS"
    } else {
        "windows"
    };
    let mut item = json!({
        "id": endpoint_id(tenant, index),
        "type": if index.is_multiple_of(7) { "server" } else { "computer" },
        "tenant": { "id": tenant_id(tenant) },
        // Duplicate hostnames on purpose: ids, not names, identify endpoints.
        "hostname": format!("PC-{:04}", index / 2),
        "health": { "overall": health },
        "os": { "isServer": index.is_multiple_of(7), "platform": platform,
                "name": "Windows 11 Pro", "majorVersion": 10, "minorVersion": 0, "build": 22631 },
        "lastSeenAt": seen.to_rfc3339_opts(SecondsFormat::Millis, true),
        "tamperProtectionEnabled": !index.is_multiple_of(3),
        "online": index.is_multiple_of(2),
    });
    if index.is_multiple_of(4) {
        item["associatedPerson"] =
            json!({ "name": format!("User {index}"), "viaLogin": format!("CORP\\u{index}") });
    }
    if index.is_multiple_of(9) {
        item["lockdown"] = json!({ "status": "locking" });
    }
    item
}

/// `tenants` tenants with `per_tenant` endpoints each, last seen 0 to 99 days ago.
pub fn estate_values(tenants: usize, per_tenant: usize) -> (Vec<Value>, Vec<Value>) {
    let now = Utc::now();
    let items = (0..tenants)
        .flat_map(|tenant| {
            (0..per_tenant).map(move |index| endpoint(tenant, index, now, (index % 100) as i64))
        })
        .collect();
    (tenant_records(tenants), items)
}

pub async fn start(tenants: usize, per_tenant: usize, config: SimulatorConfig) -> Simulator {
    let (records, items) = estate_values(tenants, per_tenant);
    let estate = Estate::from_values(records, items).unwrap();
    Simulator::start(estate, config, loopback()).await.unwrap()
}

/// Retries fast enough for tests, still bounded.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(30),
    }
}

pub fn settings(sim: &Simulator, secret: &str) -> ClientSettings {
    ClientSettings {
        auth_url: Url::parse(&sim.auth_url()).unwrap(),
        global_url: Url::parse(sim.base_url()).unwrap(),
        client_id: SimulatorConfig::default().client_id,
        client_secret: Secret::new(secret),
        retry: fast_retry(),
        request_timeout: Duration::from_secs(30),
    }
}

pub fn client(sim: &Simulator) -> CentralClient {
    CentralClient::new(settings(sim, "simulator-secret")).unwrap()
}

/// What a collection folder holds: per tenant, the endpoint ids of its pages in order, and the
/// manifest.
pub struct Collected {
    pub ids: BTreeMap<String, Vec<String>>,
    pub manifests: BTreeMap<String, Value>,
    pub pages: BTreeMap<String, usize>,
}

pub fn read_collected(out: &Path) -> Collected {
    let mut collected = Collected {
        ids: BTreeMap::new(),
        manifests: BTreeMap::new(),
        pages: BTreeMap::new(),
    };
    for entry in std::fs::read_dir(out).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let tenant = dir.file_name().unwrap().to_string_lossy().into_owned();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        collected.manifests.insert(tenant.clone(), manifest);

        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("page-"))
            .collect();
        names.sort();
        let mut ids = Vec::new();
        for name in &names {
            let body: Value =
                serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
            for item in body["items"].as_array().unwrap() {
                ids.push(item["id"].as_str().unwrap().to_owned());
            }
        }
        collected.pages.insert(tenant.clone(), names.len());
        collected.ids.insert(tenant, ids);
    }
    collected
}

/// Asserts a tenant's collected ids equal the simulator's, each exactly once.
pub fn assert_exact(sim: &Simulator, collected: &Collected, tenant: &str) {
    let got = &collected.ids[tenant];
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "tenant {tenant}: an endpoint was collected twice"
    );
    assert_eq!(
        *got,
        sim.endpoint_ids(tenant),
        "tenant {tenant}: collected ids differ"
    );
}
