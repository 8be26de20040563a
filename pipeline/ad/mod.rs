//! `lastseen collect ad`: reads computers, and the users and groups behind VIP groups, from an
//! Active Directory domain controller over LDAP, and writes them either as LDIF for `lastseen
//! run` or as change records for the Kafka stage.
//!
//! The stage is split by concern:
//! - [`connect`] opens a verified TLS connection (LDAPS or StartTLS) and binds;
//! - [`search`] runs paged searches and decodes entries without trusting the wire;
//! - [`object`] turns a decoded entry into an [`object::AdObject`] keyed by its objectGUID;
//! - [`collect`] decides what to read: a full snapshot, or the changes since the last run by
//!   polling `uSNChanged` on one domain controller, with tombstones for deletions;
//! - [`ldif`] and [`changes`] write the two output forms, and [`state`] keeps what an
//!   incremental run needs between runs; with `--to kafka` the change records go onto the AD
//!   topic instead of a file.
//!
//! A connection that drops is retried with backoff: nothing is written until a whole collection
//! has been read, so a retry starts over cleanly.

pub mod changes;
pub mod collect;
pub mod connect;
pub mod ldif;
pub mod object;
pub mod search;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use collect::{CollectArgs, run_collect};

/// The `[ad]` section of the config: how to reach and read one domain controller.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdConfig {
    /// The domain controller: `ldaps://dc1.corp.example.test` (port 636 unless given), or
    /// `ldap://...` (port 389) together with `starttls = true`. Plain LDAP without StartTLS is
    /// refused, since a simple bind would send the password in clear.
    pub url: String,

    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,

    /// Where computers are read: every computer in or below one of these DNs. Users and groups
    /// are read from the whole domain, but only those that VIP groups reach.
    pub base_dns: Vec<String>,

    /// The account for the simple bind, as a DN or `user@domain`. Reading deleted objects
    /// (tombstones) for incremental runs needs an account allowed to list `CN=Deleted Objects`.
    pub bind_dn: String,

    /// A file holding the bind password (one trailing newline is ignored). The environment
    /// variable `LASTSEEN_AD_PASSWORD`, when set, is used instead.
    #[serde(default)]
    pub password_file: Option<PathBuf>,

    /// PEM file of the CA certificates that may sign the controller's certificate. Without it,
    /// the system's trust store is used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,

    /// Accept any server certificate. Only for a lab: anyone on the path can then read the
    /// bind password. Every run with it logs a warning.
    #[serde(default)]
    pub insecure_skip_verify: bool,

    /// Entries per page of the paged-results control, which is always sent. AD caps pages at
    /// 1000 (its `MaxPageSize`).
    #[serde(default = "default_page_size")]
    pub page_size: u32,

    /// Where incremental runs keep the highest USN they have seen, the controller it came
    /// from and the objects already reported. Without it, every `--changes` run is a full one.
    #[serde(default)]
    pub state_file: Option<PathBuf>,

    /// Where the LDIF goes; by default the first entry of `inputs.ldif`, so `collect ad` and
    /// then `run` work with one config. `-` is standard output.
    #[serde(default)]
    pub out: Option<PathBuf>,

    /// An extra LDAP filter ANDed with the computer search, e.g. `(!(operatingSystem=Samba))`.
    /// In incremental runs a computer that stops matching it is reported at the next full run.
    #[serde(default)]
    pub filter: Option<String>,

    /// Seconds to wait for the TCP and TLS connection.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,

    /// Seconds to wait for each LDAP operation, each page of a search included.
    #[serde(default = "default_operation_timeout_secs")]
    pub operation_timeout_secs: u64,

    /// How many times a dropped or refused connection is retried, with a backoff that doubles
    /// from one second, before the run fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

/// AD's default `MaxPageSize`.
const fn default_page_size() -> u32 {
    1000
}

const fn default_connect_timeout_secs() -> u64 {
    10
}

const fn default_operation_timeout_secs() -> u64 {
    120
}

const fn default_retries() -> u32 {
    3
}

impl std::fmt::Debug for AdConfig {
    // Written out so that a future secret field cannot slip into logs through a derive.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdConfig")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("base_dns", &self.base_dns)
            .field("bind_dn", &self.bind_dn)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("page_size", &self.page_size)
            .field("state_file", &self.state_file)
            .field("out", &self.out)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl AdConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn operation_timeout(&self) -> Duration {
        Duration::from_secs(self.operation_timeout_secs)
    }

    /// Makes the section's relative paths absolute against the config file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && path.as_os_str() != "-" {
                *path = base.join(&*path);
            }
        };
        self.password_file.iter_mut().for_each(resolve);
        self.ca_file.iter_mut().for_each(resolve);
        self.state_file.iter_mut().for_each(resolve);
        self.out.iter_mut().for_each(resolve);
    }

    /// Catches what types alone cannot: a URL that is not LDAPS or StartTLS, base DNs that do
    /// not parse, a filter that does not parse, a page size AD would not honour.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.url)
            .map_err(|error| format!("ad.url {:?} is not a URL: {error}", self.url))?;
        match (url.scheme(), self.starttls) {
            ("ldaps", false) | ("ldap", true) => {}
            ("ldaps", true) => {
                return Err("ad.starttls = true needs an ldap:// url, not ldaps://".into());
            }
            ("ldap", false) => {
                return Err(format!(
                    "ad.url {:?} is plain LDAP, which would send the bind password in clear: \
                     use ldaps:// or set ad.starttls = true",
                    self.url
                ));
            }
            (scheme, _) => {
                return Err(format!(
                    "ad.url scheme {scheme:?} is neither ldaps nor ldap"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("ad.url {:?} names no host", self.url));
        }

        if self.base_dns.is_empty() {
            return Err("ad.base_dns is empty: name at least one DN to read computers from".into());
        }
        for dn in &self.base_dns {
            crate::inputs::dn::normalize(dn)
                .map_err(|problem| format!("ad.base_dns: {dn:?} does not parse: {problem}"))?;
        }
        if self.bind_dn.trim().is_empty() {
            return Err("ad.bind_dn is empty".into());
        }

        if let Some(filter) = &self.filter {
            check_filter(filter).map_err(|problem| format!("ad.filter {filter:?}: {problem}"))?;
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(format!(
                "ad.page_size {} is outside 1..=1000 (AD caps pages at 1000)",
                self.page_size
            ));
        }
        if self.connect_timeout_secs == 0 || self.operation_timeout_secs == 0 {
            return Err("ad timeouts must be at least one second".into());
        }
        Ok(())
    }
}

/// A filter must parse and be one parenthesised item, so that ANDing it with ours cannot
/// change what the rest of our filter means.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let trimmed = filter.trim();
    if !(trimmed.starts_with('(') && trimmed.ends_with(')')) {
        return Err("a filter must be wrapped in parentheses, like (cn=ws-*)".into());
    }
    ldap3::parse_filter(trimmed)
        .map(|_| ())
        .map_err(|()| "is not a valid LDAP filter (RFC 4515)".into())
}

/// Why a collection failed. Each message says what failed and what to check.
#[derive(Debug, thiserror::Error)]
pub enum AdError {
    #[error("ad config: {0}")]
    Config(String),

    #[error("bind password: {0}")]
    Password(String),

    #[error("ad.ca_file {path}: {problem}")]
    CaFile { path: PathBuf, problem: String },

    #[error(
        "cannot connect to {url}: {detail} (check ad.url, that the controller is up and that \
         nothing blocks the port)"
    )]
    Connect { url: String, detail: String },

    #[error(
        "TLS with {url} failed: {detail} (check ad.ca_file holds the CA that signed the \
         controller's certificate, and that ad.url names the host the certificate is for)"
    )]
    Tls { url: String, detail: String },

    #[error(
        "bind as {bind_dn:?} failed: {detail} (check ad.bind_dn and the password in \
         ad.password_file or LASTSEEN_AD_PASSWORD)"
    )]
    Bind { bind_dn: String, detail: String },

    #[error("the search filter {filter:?} was refused: {detail} (check ad.filter)")]
    Filter { filter: String, detail: String },

    #[error("base DN {base:?}: {detail} (check ad.base_dns and policy.vip_groups)")]
    BaseDn { base: String, detail: String },

    #[error("search under {base:?} failed: {detail}")]
    Search { base: String, detail: String },

    #[error("the connection to {url} dropped: {detail}")]
    Dropped { url: String, detail: String },

    #[error("state file {path}: {problem}")]
    State { path: PathBuf, problem: String },

    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A change record the brokers did not take; the state file was left as it was.
    #[error("{0}; nothing was marked as sent, so the next run sends these changes again")]
    Kafka(#[from] crate::bus::BusError),
}

impl AdError {
    /// Whether trying again later can help: a dropped or refused connection or a busy
    /// controller can; a wrong password, CA, filter or DN cannot.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AdError::Connect { .. } | AdError::Dropped { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, starttls: bool) -> AdConfig {
        let text = format!(
            "url = {url:?}\nstarttls = {starttls}\nbase_dns = [\"DC=corp,DC=test\"]\n\
             bind_dn = \"svc@corp.test\"\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn ldaps_and_starttls_pass_and_defaults_apply() {
        let ldaps = config("ldaps://dc1.corp.test", false);
        ldaps.check().unwrap();
        assert_eq!(ldaps.page_size, 1000);
        assert_eq!(ldaps.retries, 3);
        assert!(!ldaps.insecure_skip_verify);
        config("ldap://dc1.corp.test", true).check().unwrap();
    }

    #[test]
    fn plain_ldap_is_refused_with_the_reason() {
        let error = config("ldap://dc1.corp.test", false).check().unwrap_err();
        assert!(error.contains("in clear"), "{error}");
        let error = config("ldaps://dc1.corp.test", true).check().unwrap_err();
        assert!(error.contains("needs an ldap:// url"), "{error}");
        let error = config("https://dc1.corp.test", false).check().unwrap_err();
        assert!(error.contains("\"https\""), "{error}");
    }

    #[test]
    fn bad_filter_and_base_dn_are_named() {
        let mut bad = config("ldaps://dc1", false);
        bad.filter = Some("(cn=ws-*".into());
        let error = bad.check().unwrap_err();
        assert!(error.starts_with("ad.filter \"(cn=ws-*\""), "{error}");

        bad.filter = Some("cn=ws-*".into());
        assert!(bad.check().unwrap_err().contains("wrapped in parentheses"));

        bad.filter = None;
        bad.base_dns = vec!["OU=x,DC".into()];
        assert!(
            bad.check()
                .unwrap_err()
                .starts_with("ad.base_dns: \"OU=x,DC\"")
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let error = toml::from_str::<AdConfig>(
            "url = \"ldaps://dc\"\nbase_dns = []\nbind_dn = \"x\"\npage_sise = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("page_sise"), "{error}");
    }

    #[test]
    fn page_size_over_ad_cap_is_refused() {
        let mut big = config("ldaps://dc1", false);
        big.page_size = 5000;
        assert!(big.check().unwrap_err().contains("outside 1..=1000"));
    }

    #[test]
    fn paths_resolve_against_the_config_folder() {
        let mut ad = config("ldaps://dc1", false);
        ad.ca_file = Some("tls/ca.pem".into());
        ad.state_file = Some("/var/lib/lastseen/ad.json".into());
        ad.out = Some("-".into());
        ad.resolve_paths(Path::new("/etc/lastseen"));
        assert_eq!(
            ad.ca_file.as_deref(),
            Some(Path::new("/etc/lastseen/tls/ca.pem"))
        );
        assert_eq!(
            ad.state_file.as_deref(),
            Some(Path::new("/var/lib/lastseen/ad.json"))
        );
        assert_eq!(ad.out.as_deref(), Some(Path::new("-")));
    }
}
