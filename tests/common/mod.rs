//! Helpers shared by the directory tests: the test DC's address from the environment that
//! `tests/services/samba.sh up` prints, configs pointing at it, and small LDIF readers; and
//! the demo config rewritten for tests that collect the demo estate themselves.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lastseen::ad::AdConfig;
use lastseen::ad::object::AdObject;
use lastseen::central::simulator::Simulator;

pub const ESTATE: &str = "OU=Estate,DC=corp,DC=example,DC=test";
pub const VIP_GROUP: &str = "CN=VIP-Executives,OU=Groups,OU=Estate,DC=corp,DC=example,DC=test";

/// What `tests/services/samba.sh up` exports.
#[derive(Debug, Clone)]
pub struct TestDc {
    pub url: String,
    pub starttls_url: String,
    pub bind_dn: String,
    pub password_file: PathBuf,
    pub ca_file: PathBuf,
    pub wrong_ca_file: PathBuf,
    pub base_dn: String,
    pub seed: PathBuf,
}

impl TestDc {
    pub fn from_env() -> TestDc {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: start the test DC with `tests/services/samba.sh up` and \
                     source target/samba-dc/env (or run .ci/run)"
                )
            })
        };
        TestDc {
            url: var("LASTSEEN_TEST_AD_URL"),
            starttls_url: var("LASTSEEN_TEST_AD_STARTTLS_URL"),
            bind_dn: var("LASTSEEN_TEST_AD_BIND_DN"),
            password_file: var("LASTSEEN_TEST_AD_PASSWORD_FILE").into(),
            ca_file: var("LASTSEEN_TEST_AD_CA_FILE").into(),
            wrong_ca_file: var("LASTSEEN_TEST_AD_WRONG_CA_FILE").into(),
            base_dn: var("LASTSEEN_TEST_AD_BASE_DN"),
            seed: var("LASTSEEN_TEST_AD_SEED").into(),
        }
    }

    /// The `[ad]` section as TOML, so tests go through the same parsing and checks as users.
    pub fn ad_section(&self, base_dns: &[&str], extra: &str) -> String {
        format!(
            "[ad]\nurl = {:?}\nbase_dns = {:?}\nbind_dn = {:?}\npassword_file = {:?}\n\
             ca_file = {:?}\n{extra}\n",
            self.url, base_dns, self.bind_dn, self.password_file, self.ca_file
        )
    }

    pub fn ad_config(&self, base_dns: &[&str], extra: &str) -> AdConfig {
        let text = self.ad_section(base_dns, extra);
        let config =
            lastseen::config::Config::parse(&text, "test.toml".as_ref(), "/".as_ref()).unwrap();
        config.ad.unwrap()
    }
}

/// An LDIF entry: its DN and attribute values, names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifEntry {
    pub dn: String,
    pub attributes: BTreeMap<String, Vec<Vec<u8>>>,
}

impl LdifEntry {
    pub fn text(&self, name: &str) -> Vec<String> {
        self.attributes
            .get(&name.to_ascii_lowercase())
            .map(|values| {
                values
                    .iter()
                    .map(|v| String::from_utf8(v.clone()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads RFC 2849 content records: unfolds, decodes `::` base64, skips comments and
/// `version:`. Enough for the seed file and for checking what `collect ad` wrote.
pub fn read_ldif(text: &str) -> Vec<LdifEntry> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(continuation) = line.strip_prefix(' ') {
            lines
                .last_mut()
                .expect("a continuation line opens the file")
                .push_str(continuation);
        } else {
            lines.push(line.to_owned());
        }
    }

    let mut entries = Vec::new();
    let mut current: Option<LdifEntry> = None;
    for line in lines {
        if line.is_empty() {
            entries.extend(current.take());
            continue;
        }
        if line.starts_with('#') || line.starts_with("version:") {
            continue;
        }
        let (name, value) = line.split_once(':').expect("an attribute line has a colon");
        let value = match value.strip_prefix(':') {
            Some(encoded) => STANDARD.decode(encoded.trim()).expect("valid base64"),
            None => value.strip_prefix(' ').unwrap_or(value).as_bytes().to_vec(),
        };
        if name.eq_ignore_ascii_case("dn") {
            entries.extend(current.take());
            let dn = String::from_utf8(value).unwrap();
            current = Some(LdifEntry {
                dn,
                attributes: BTreeMap::new(),
            });
        } else {
            let entry = current.as_mut().expect("an attribute before any dn");
            entry
                .attributes
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(value);
        }
    }
    entries.extend(current);
    entries
}

/// The seeded estate, from the seed file.
pub fn seed(dc: &TestDc) -> Vec<LdifEntry> {
    read_ldif(&std::fs::read_to_string(&dc.seed).unwrap())
}

/// The text values of an object's attribute.
pub fn texts(object: &AdObject, name: &str) -> Vec<String> {
    object
        .values(name)
        .unwrap_or_default()
        .iter()
        .map(|value| String::from_utf8(value.clone()).unwrap())
        .collect()
}

/// The demo estate in the repository.
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
}

/// The demo config with its LDIF exports and action log as absolute paths, `inputs.central`
/// at the relative folder `collected`, the output at `candidates.jsonl`, and a `[central]`
/// section for `sim` whose secret is written into `dir`, for a test that writes the config
/// into `dir` and collects the Central side there. Pages of 7 where the fixture has 20 and
/// 50, so tenants span several pages.
pub fn demo_config_for_simulator(dir: &Path, sim: &Simulator) -> toml::Table {
    let text = std::fs::read_to_string(demo().join("lastseen.toml")).unwrap();
    let mut config: toml::Table = toml::from_str(&text).unwrap();

    let inputs = config["inputs"].as_table_mut().unwrap();
    inputs.insert(
        "central".into(),
        vec![toml::Value::from("collected")].into(),
    );
    let absolute = |path: &toml::Value| -> toml::Value {
        demo()
            .join(path.as_str().unwrap())
            .display()
            .to_string()
            .into()
    };
    let ldif: Vec<toml::Value> = inputs["ldif"]
        .as_array()
        .unwrap()
        .iter()
        .map(absolute)
        .collect();
    inputs.insert("ldif".into(), ldif.into());
    let actions = absolute(&inputs["actions"]);
    inputs.insert("actions".into(), actions);

    let output = config["output"].as_table_mut().unwrap();
    output.insert("path".into(), "candidates.jsonl".into());

    std::fs::write(dir.join("secret"), "simulator-secret").unwrap();
    let central: toml::Table = toml::from_str(&format!(
        r#"
        client_id = "lastseen-simulator"
        client_secret_file = "secret"
        auth_url = "{}"
        global_url = "{}"
        page_size = 7
        retry_base_delay_ms = 5
        "#,
        sim.auth_url(),
        sim.base_url()
    ))
    .unwrap();
    config.insert("central".into(), toml::Value::Table(central));
    config
}
