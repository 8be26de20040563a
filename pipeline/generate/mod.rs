//! Synthetic estates for tests and benchmarks, in the same formats as real inputs.
//!
//! Each tenant is a customer with its own AD domain (`tNNNN.example.test`, NetBIOS `TNNNN`),
//! as at an MSP. The mix follows what stale-device cleanups meet in practice: about a fifth of
//! the computers retired into a Disabled OU (some in a sub-OU), most of their endpoints long
//! silent but some seen again, re-imaged machines that left a second endpoint behind, FQDN
//! hostnames, names past NetBIOS's 15 characters, OS builds that disagree, endpoints that
//! never reported a last-seen time, VIP users behind nested groups, and an action log. The same
//! seed always writes the same bytes.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Endpoints per page file, the largest page Central serves.
const PAGE_SIZE: usize = 500;

/// The instant every generated estate is collected at, and its config's `as_of`.
pub const AS_OF: &str = "2026-12-01T00:00:00Z";

#[derive(Debug, Clone)]
pub struct Options {
    pub endpoints: usize,
    pub tenants: usize,
    pub seed: u64,
}

/// What was written, for the closing line of `lastseen generate`.
#[derive(Debug, Default)]
pub struct Written {
    pub out: PathBuf,
    pub tenants: usize,
    pub endpoints: usize,
    pub computers: usize,
    pub users: usize,
    pub page_files: usize,
    pub actions: usize,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} endpoints in {} page files, {} computers and {} users in {} domains, \
             {} actions, and {}/lastseen.toml",
            self.endpoints,
            self.page_files,
            self.computers,
            self.users,
            self.tenants,
            self.actions,
            self.out.display()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("--tenants must be at least 1 and at most --endpoints ({endpoints})")]
    Tenants { endpoints: usize },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes a whole estate into `out`.
pub fn write(out: &Path, options: &Options) -> Result<Written, GenerateError> {
    if options.tenants == 0 || options.tenants > options.endpoints.max(1) {
        return Err(GenerateError::Tenants {
            endpoints: options.endpoints,
        });
    }

    let as_of: DateTime<Utc> = AS_OF.parse().unwrap_or_default();
    let tenants: Vec<Tenant> = (0..options.tenants)
        .map(|index| Tenant::new(options, index))
        .collect();

    let results: Vec<Result<TenantWritten, GenerateError>> = tenants
        .par_iter()
        .map(|tenant| write_tenant(out, tenant, as_of))
        .collect();

    let mut written = Written {
        out: out.to_owned(),
        tenants: tenants.len(),
        ..Written::default()
    };
    let mut actions = Vec::new();
    for result in results {
        let part = result?;
        written.endpoints += part.endpoints;
        written.computers += part.computers;
        written.users += part.users;
        written.page_files += part.page_files;
        actions.extend(part.actions);
    }
    written.actions = actions.len();

    write_file(&out.join("actions.jsonl"), |sink| {
        for action in &actions {
            serde_json::to_writer(&mut *sink, action)?;
            sink.write_all(b"\n")?;
        }
        Ok(())
    })?;
    write_file(&out.join("central/tenants.json"), |sink| {
        let list: Vec<_> = tenants.iter().map(Tenant::listing).collect();
        serde_json::to_writer_pretty(&mut *sink, &list)?;
        Ok(sink.write_all(b"\n")?)
    })?;
    write_file(&out.join("lastseen.toml"), |sink| {
        Ok(sink.write_all(config(&tenants).as_bytes())?)
    })?;
    Ok(written)
}

/// One customer: a Central tenant and its AD domain.
struct Tenant {
    index: usize,
    id: String,
    name: String,
    endpoints: usize,
    seed: u64,
}

impl Tenant {
    fn new(options: &Options, index: usize) -> Tenant {
        // Endpoints are dealt as evenly as they go; the first tenants take the remainder.
        let base = options.endpoints / options.tenants;
        let extra = usize::from(index < options.endpoints % options.tenants);
        let seed = options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64 + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let id = uuid::Builder::from_random_bytes(rng.random())
            .into_uuid()
            .to_string();
        Tenant {
            index,
            id,
            name: format!("Customer {:04}", index + 1),
            endpoints: base + extra,
            seed,
        }
    }

    fn netbios(&self) -> String {
        format!("T{:04}", self.index + 1)
    }

    fn dns(&self) -> String {
        format!("t{:04}.example.test", self.index + 1)
    }

    fn base_dn(&self) -> String {
        format!("DC=t{:04},DC=example,DC=test", self.index + 1)
    }

    /// The objectGUID of a directory object that draws none from the random stream (OUs,
    /// users, groups): derived from the tenant and the DN, so the same seed gives the same
    /// GUID, and drawing it leaves the computers and endpoints as they were. In the bytes
    /// order AD sends, so that it decodes back to the same UUID.
    fn object_guid(&self, dn: &str) -> [u8; 16] {
        let namespace = uuid::Uuid::parse_str(&self.id).unwrap_or_default();
        uuid::Uuid::new_v5(&namespace, dn.as_bytes()).to_bytes_le()
    }

    fn listing(&self) -> serde_json::Value {
        let regions = ["eu01", "eu02", "us01", "us03"];
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "showAs": self.name,
            "dataRegion": regions[self.index % regions.len()],
            "dataGeography": if self.index % 4 < 2 { "DE" } else { "US" },
            "billingType": "term",
        })
    }
}

struct TenantWritten {
    endpoints: usize,
    computers: usize,
    users: usize,
    page_files: usize,
    actions: Vec<Action>,
}

/// One machine as both sides see it.
struct Machine {
    name: String,
    retired: bool,
    in_sub_ou: bool,
    /// The name AD holds, cut to 15 characters for names past NetBIOS's limit.
    ad_name: String,
    has_dns_host_name: bool,
    ad_build: Option<i64>,
    managed_by: Option<usize>,
    guid: [u8; 16],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    tenant: Id<'a>,
    hostname: String,
    health: Health,
    os: Os,
    ipv4_addresses: [String; 1],
    mac_addresses: [String; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_person: Option<Person>,
    tamper_protection_supported: bool,
    tamper_protection_enabled: bool,
    assigned_products: [Product; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen_at: Option<String>,
    online: bool,
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Health {
    overall: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Os {
    is_server: bool,
    platform: &'static str,
    name: &'static str,
    major_version: u32,
    minor_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Person {
    name: String,
    via_login: String,
}

#[derive(Serialize)]
struct Product {
    code: &'static str,
    version: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
struct Action {
    at: String,
    action: &'static str,
    tenant_id: String,
    endpoint_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<String>,
}

const BUILDS: [(i64, &str); 3] = [
    (19045, "Windows 10 Enterprise"),
    (22631, "Windows 11 Enterprise"),
    (26100, "Windows 11 Enterprise"),
];

const DEPARTMENTS: [&str; 6] = [
    "FINANCE",
    "ENGINEER",
    "MARKETING",
    "SUPPORT",
    "LOGISTICS",
    "LEGAL",
];

fn write_tenant(
    out: &Path,
    tenant: &Tenant,
    as_of: DateTime<Utc>,
) -> Result<TenantWritten, GenerateError> {
    let mut rng = ChaCha8Rng::seed_from_u64(tenant.seed);
    let users = (tenant.endpoints / 10).max(10);
    let vip_users = (users / 100).max(2);

    // Machines first: about 2% of endpoints are a re-imaged twin of another machine, so there
    // are slightly fewer machines than endpoints.
    let twins = tenant.endpoints / 50;
    let machine_count = tenant.endpoints - twins;
    let machines: Vec<Machine> = (0..machine_count)
        .map(|index| {
            let long = rng.random_bool(0.05);
            let name = if long {
                let department = DEPARTMENTS[index % DEPARTMENTS.len()];
                // Unique within its first 15 characters, as AD requires of the cut name.
                format!("LT-{index:06}-{department}-LAPTOP")
            } else {
                format!("{}-WS-{index:06}", tenant.netbios())
            };
            let ad_name: String = if long {
                name.chars().take(15).collect()
            } else {
                name.clone()
            };
            let build = BUILDS[rng.random_range(0..BUILDS.len())].0;
            Machine {
                retired: rng.random_bool(0.2),
                in_sub_ou: rng.random_bool(0.25),
                has_dns_host_name: !long,
                ad_build: (!rng.random_bool(0.02)).then_some(build),
                managed_by: rng.random_bool(0.02).then(|| rng.random_range(0..users)),
                guid: rng.random(),
                name,
                ad_name,
            }
        })
        .collect();

    // Endpoints: one per machine, then the twins.
    let mut endpoints = Vec::with_capacity(tenant.endpoints);
    let mut actions = Vec::new();
    let owners: Vec<usize> = (0..tenant.endpoints)
        .map(|_| rng.random_range(0..users))
        .collect();
    for (index, &owner) in owners.iter().enumerate() {
        let machine_index = if index < machine_count {
            index
        } else {
            rng.random_range(0..machine_count)
        };
        let machine = &machines[machine_index];
        let endpoint = endpoint(tenant, machine, owner, &mut rng, as_of);

        if machine.retired {
            let roll: f64 = rng.random();
            let action = |action, ticket: Option<String>, days| Action {
                at: instant(as_of - Duration::days(days)),
                action,
                tenant_id: tenant.id.clone(),
                endpoint_id: endpoint.id.clone(),
                ticket,
            };
            let ticket = || Some(format!("INC-{:07}", index));
            if roll < 0.03 {
                actions.push(action("deleted", None, 3));
            } else if roll < 0.05 {
                actions.push(action("ticket_opened", ticket(), 5));
            } else if roll < 0.06 {
                actions.push(action("ticket_opened", ticket(), 9));
                actions.push(action("ticket_closed", ticket(), 2));
            } else if roll < 0.07 {
                actions.push(action("delete_failed", None, 4));
            }
        }
        endpoints.push(endpoint);
    }

    let central = out.join("central").join(&tenant.id);
    std::fs::create_dir_all(&central).map_err(|source| GenerateError::Write {
        path: central.clone(),
        source,
    })?;
    let mut page_files = 0;
    let pages = endpoints.chunks(PAGE_SIZE).count();
    for (number, page) in endpoints.chunks(PAGE_SIZE).enumerate() {
        let path = central.join(format!("page-{:05}.json", number + 1));
        write_file(&path, |sink| {
            sink.write_all(b"{\"items\":[")?;
            for (i, endpoint) in page.iter().enumerate() {
                if i > 0 {
                    sink.write_all(b",")?;
                }
                serde_json::to_writer(&mut *sink, endpoint)?;
            }
            let next = (number + 1 < pages).then(|| page_key(tenant, number + 2));
            let envelope = serde_json::json!({"size": PAGE_SIZE, "maxSize": 500, "nextKey": next});
            write!(sink, "],\"pages\":{envelope}}}")?;
            Ok(())
        })?;
        page_files += 1;
    }
    let manifest = serde_json::json!({
        "tenant_id": tenant.id,
        "tenant_name": tenant.name,
        "collected_at": AS_OF,
        "pages": page_files,
        "endpoints": endpoints.len(),
        "complete": true,
    });
    write_file(&central.join("manifest.json"), |sink| {
        Ok(serde_json::to_writer(sink, &manifest)?)
    })?;

    let ldif = out
        .join("ad")
        .join(format!("t{:04}.ldif", tenant.index + 1));
    write_file(&ldif, |sink| {
        write_directory(sink, tenant, &machines, users, vip_users)
    })?;

    Ok(TenantWritten {
        endpoints: endpoints.len(),
        computers: machines.len(),
        users,
        page_files,
        actions,
    })
}

fn endpoint<'a>(
    tenant: &'a Tenant,
    machine: &Machine,
    owner: usize,
    rng: &mut ChaCha8Rng,
    as_of: DateTime<Utc>,
) -> Endpoint<'a> {
    // Retired machines are mostly long gone, some came back; live ones mostly report daily.
    let days_ago = if machine.retired {
        if rng.random_bool(0.8) {
            rng.random_range(31..400)
        } else {
            rng.random_range(0..30)
        }
    } else if rng.random_bool(0.9) {
        rng.random_range(0..10)
    } else {
        rng.random_range(30..200)
    };
    let seen = as_of - Duration::days(days_ago) - Duration::seconds(rng.random_range(0..86_400));
    let last_seen_at = (!rng.random_bool(0.02)).then(|| instant(seen));

    let hostname = if rng.random_bool(0.1) {
        format!("{}.{}", machine.name.to_lowercase(), tenant.dns())
    } else {
        machine.name.clone()
    };
    let build = match machine.ad_build {
        Some(build) if rng.random_bool(0.03) => Some(if build == 19045 { 22631 } else { 19045 }),
        Some(build) => Some(build),
        None => Some(BUILDS[0].0),
    };
    let build = if rng.random_bool(0.02) { None } else { build };
    let os_name = BUILDS
        .iter()
        .find(|(b, _)| Some(*b) == build)
        .map_or("Windows 11 Pro", |b| b.1);

    let login = match rng.random_range(0..10) {
        0..7 => Some(format!("{}\\user{owner:06}", tenant.netbios())),
        7..9 => Some(format!("user{owner:06}@{}", tenant.dns())),
        _ => None,
    };
    let associated_person = login.map(|via_login| Person {
        name: format!("User {owner:06}"),
        via_login,
    });

    let octets: [u8; 4] = rng.random();
    Endpoint {
        id: uuid::Builder::from_random_bytes(rng.random())
            .into_uuid()
            .to_string(),
        kind: "computer",
        tenant: Id { id: &tenant.id },
        hostname,
        health: Health {
            overall: if rng.random_bool(0.9) {
                "good"
            } else {
                "suspicious"
            },
        },
        os: Os {
            is_server: false,
            platform: "windows",
            name: os_name,
            major_version: 10,
            minor_version: 0,
            build,
        },
        ipv4_addresses: [format!("10.{}.{}.{}", octets[0], octets[1], octets[2])],
        mac_addresses: [format!(
            "3C:52:82:{:02X}:{:02X}:{:02X}",
            octets[1], octets[2], octets[3]
        )],
        associated_person,
        tamper_protection_supported: true,
        tamper_protection_enabled: true,
        assigned_products: [
            Product {
                code: "coreAgent",
                version: "2024.3.2.5",
                status: "installed",
            },
            Product {
                code: "interceptX",
                version: "2024.3.2.5",
                status: "installed",
            },
        ],
        last_seen_at,
        online: false,
    }
}

/// The domain's export: OUs, computers, users, and VIP groups nested two deep (Board inside
/// Executives inside VIP Users).
fn write_directory(
    sink: &mut dyn Write,
    tenant: &Tenant,
    machines: &[Machine],
    users: usize,
    vip_users: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let base = tenant.base_dn();
    writeln!(sink, "version: 1\n")?;
    for ou in [
        "OU=Disabled Computers",
        "OU=2025,OU=Disabled Computers",
        "OU=Workstations",
        "OU=Users",
        "OU=Groups",
    ] {
        let name = ou.split(',').next().unwrap_or(ou).trim_start_matches("OU=");
        let dn = format!("{ou},{base}");
        let guid = BASE64.encode(tenant.object_guid(&dn));
        writeln!(
            sink,
            "dn: {dn}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {name}\n\
             objectGUID:: {guid}\n"
        )?;
    }

    for machine in machines {
        let ou = match (machine.retired, machine.in_sub_ou) {
            (true, true) => "OU=2025,OU=Disabled Computers",
            (true, false) => "OU=Disabled Computers",
            (false, _) => "OU=Workstations",
        };
        let name = &machine.ad_name;
        writeln!(sink, "dn: CN={name},{ou},{base}")?;
        writeln!(
            sink,
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson"
        )?;
        writeln!(
            sink,
            "objectClass: user\nobjectClass: computer\ncn: {name}\nsAMAccountName: {name}$"
        )?;
        writeln!(
            sink,
            "userAccountControl: {}",
            if machine.retired { 4098 } else { 4096 }
        )?;
        writeln!(sink, "objectGUID:: {}", BASE64.encode(machine.guid))?;
        if machine.has_dns_host_name {
            writeln!(
                sink,
                "dNSHostName: {}.{}",
                machine.name.to_lowercase(),
                tenant.dns()
            )?;
        }
        match machine.ad_build {
            Some(build) => {
                let os = BUILDS
                    .iter()
                    .find(|(b, _)| *b == build)
                    .map_or("Windows", |b| b.1);
                writeln!(
                    sink,
                    "operatingSystem: {os}\noperatingSystemVersion: 10.0 ({build})"
                )?;
            }
            None => writeln!(sink, "operatingSystem: Windows 10 Enterprise")?,
        }
        if let Some(owner) = machine.managed_by {
            writeln!(sink, "managedBy: CN=User {owner:06},OU=Users,{base}")?;
        }
        writeln!(sink, "whenChanged: 20261104101500.0Z\n")?;
    }

    // The first users are the VIPs: half in Board (two levels down), half in Executives.
    for user in 0..users {
        let dn = format!("CN=User {user:06},OU=Users,{base}");
        writeln!(sink, "dn: {dn}")?;
        writeln!(
            sink,
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson"
        )?;
        writeln!(
            sink,
            "objectClass: user\ncn: User {user:06}\nsAMAccountName: user{user:06}"
        )?;
        writeln!(
            sink,
            "objectGUID:: {}",
            BASE64.encode(tenant.object_guid(&dn))
        )?;
        writeln!(sink, "userPrincipalName: user{user:06}@{}\n", tenant.dns())?;
    }
    let group = |sink: &mut dyn Write, name: &str, members: &mut dyn Iterator<Item = String>| {
        let dn = format!("CN={name},OU=Groups,{base}");
        writeln!(sink, "dn: {dn}\nobjectClass: top\nobjectClass: group")?;
        writeln!(sink, "cn: {name}")?;
        writeln!(
            sink,
            "objectGUID:: {}",
            BASE64.encode(tenant.object_guid(&dn))
        )?;
        for member in members {
            writeln!(sink, "member: {member}")?;
        }
        writeln!(sink)
    };
    group(
        sink,
        "VIP Users",
        &mut std::iter::once(format!("CN=Executives,OU=Groups,{base}")),
    )?;
    let executives = (vip_users / 2..vip_users).map(|u| format!("CN=User {u:06},OU=Users,{base}"));
    let mut executives = std::iter::once(format!("CN=Board,OU=Groups,{base}")).chain(executives);
    group(sink, "Executives", &mut executives)?;
    let mut board = (0..vip_users / 2).map(|u| format!("CN=User {u:06},OU=Users,{base}"));
    group(sink, "Board", &mut board)?;
    Ok(())
}

fn config(tenants: &[Tenant]) -> String {
    let mut text = format!(
        "# A synthetic estate written by `lastseen generate`.\nas_of = \"{AS_OF}\"\n\n\
         [inputs]\ncentral = [\"central\"]\nldif = [\n"
    );
    for tenant in tenants {
        text.push_str(&format!("    \"ad/t{:04}.ldif\",\n", tenant.index + 1));
    }
    text.push_str(
        "]\nactions = \"actions.jsonl\"\n\n[policy]\nmin_inactive_days = 30\ndisabled_ous = [\n",
    );
    for tenant in tenants {
        text.push_str(&format!(
            "    \"OU=Disabled Computers,{}\",\n",
            tenant.base_dn()
        ));
    }
    text.push_str("]\nvip_groups = [\n");
    for tenant in tenants {
        text.push_str(&format!(
            "    \"CN=VIP Users,OU=Groups,{}\",\n",
            tenant.base_dn()
        ));
    }
    text.push_str("]\nunknown_os_build = \"manual_review\"\n");
    for tenant in tenants {
        text.push_str(&format!(
            "\n[[domains]]\ndns = \"{}\"\nnetbios = \"{}\"\ntenants = [\"{}\"]\n",
            tenant.dns(),
            tenant.netbios(),
            tenant.id
        ));
    }
    text.push_str("\n[output]\npath = \"candidates.jsonl\"\n");
    text
}

/// Keys like Central's: opaque, and with the characters that break unencoded URLs.
fn page_key(tenant: &Tenant, page: usize) -> String {
    let raw = format!("{}:{page}", tenant.id);
    BASE64
        .encode(raw.as_bytes())
        .replace('A', "+")
        .replace('B', "/")
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn write_file(
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), GenerateError> {
    let fail = |source: std::io::Error| GenerateError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut sink = BufWriter::with_capacity(1 << 20, File::create(path).map_err(fail)?);
    body(&mut sink).map_err(|error| fail(std::io::Error::other(error)))?;
    sink.flush().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_counts_add_up() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let options = Options {
            endpoints: 1_203,
            tenants: 3,
            seed: 7,
        };
        let written = write(first.path(), &options).unwrap();
        write(second.path(), &options).unwrap();

        assert_eq!(written.endpoints, 1_203);
        assert_eq!(written.tenants, 3);
        // 401 endpoints per tenant in pages of 500: one page each.
        assert_eq!(written.page_files, 3);
        assert_eq!(written.computers, 3 * (401 - 401 / 50));

        for file in [
            "actions.jsonl",
            "lastseen.toml",
            "ad/t0002.ldif",
            "central/tenants.json",
        ] {
            let a = std::fs::read(first.path().join(file)).unwrap();
            let b = std::fs::read(second.path().join(file)).unwrap();
            assert!(a == b, "{file} differs between two runs with one seed");
        }
    }

    /// `publish` keys change records by objectGUID and refuses entries without one, so every
    /// entry written carries one, unique in its domain and the same on every run.
    #[tokio::test]
    async fn every_directory_entry_has_a_stable_guid_and_publishes() {
        let out = tempfile::tempdir().unwrap();
        let options = Options {
            endpoints: 300,
            tenants: 2,
            seed: 3,
        };
        write(out.path(), &options).unwrap();

        let text = std::fs::read_to_string(out.path().join("ad/t0001.ldif")).unwrap();
        let entries = text.matches("\ndn: ").count() + usize::from(text.starts_with("dn: "));
        let guids: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("objectGUID:: "))
            .collect();
        assert_eq!(entries, 5 + 147 + 15 + 3, "OUs, computers, users, groups");
        assert_eq!(guids.len(), entries, "one GUID per entry, none shared");

        let tenant = Tenant::new(&options, 0);
        let board = tenant.object_guid("CN=Board,OU=Groups,DC=t0001,DC=example,DC=test");
        assert!(guids.contains(BASE64.encode(board).as_str()));

        let bus = crate::bus::memory::MemoryBus::new();
        let topics = crate::bus::Topics::new("lastseen");
        let config = out.path().join("lastseen.toml");
        let (_, plan) = crate::run::Setup::from_arg(Some(config)).load().unwrap();
        let published = crate::bus::publish::publish(&bus, &topics, &plan)
            .await
            .unwrap();
        assert!(
            published.unpublished.is_empty(),
            "{:?}",
            &published.unpublished[..published.unpublished.len().min(3)]
        );
        assert_eq!(published.ad_changes, 2 * (147 + 15 + 3));
        assert_eq!(published.passed_over, 2 * 5);
    }

    #[test]
    fn tenants_must_fit_the_endpoints() {
        let out = tempfile::tempdir().unwrap();
        let error = write(
            out.path(),
            &Options {
                endpoints: 2,
                tenants: 3,
                seed: 1,
            },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--tenants must be at least 1 and at most --endpoints (2)"
        );
    }
}
