//! Sophos Central: the API client, the `collect central` stage that saves every tenant's
//! endpoint pages for `lastseen run`, and a simulator of the API to rehearse against.
//!
//! - [`client`] talks to Central (token, whoami, tenants, endpoint pages, get, delete, tamper
//!   protection) with retries and token refresh.
//! - [`collect`] walks every reachable tenant concurrently and hands each page to a
//!   [`PageSink`](collect::PageSink); [`FileSink`](collect::FileSink) writes the folder tree
//!   `run` reads, with a manifest per tenant that says whether its snapshot is complete, and
//!   [`KafkaSink`](kafka_sink::KafkaSink) publishes the same snapshots onto the Central topic.
//! - [`simulator`] serves an estate of recorded or generated pages as the Central API on
//!   127.0.0.1, with faults on demand.
//! - [`model`] holds the tolerant serde shapes.
//!
//! The `[central]` section of the config file is [`CentralConfig`].

pub mod client;
pub mod collect;
pub mod kafka_sink;
pub mod model;
pub mod simulator;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use client::{ClientSettings, EndpointQuery, MAX_ENDPOINT_PAGE_SIZE, RetryPolicy};
use model::Secret;

/// Environment variable that overrides `client_id` and `client_id_file`.
pub const CLIENT_ID_ENV: &str = "LASTSEEN_CENTRAL_CLIENT_ID";

/// Environment variable that overrides `client_secret_file`.
pub const CLIENT_SECRET_ENV: &str = "LASTSEEN_CENTRAL_CLIENT_SECRET";

/// Query parameters the collector sets itself; a filter may not override them.
const RESERVED_PARAMETERS: [&str; 4] = ["pageSize", "pageFromKey", "pageTotal", "view"];

/// The `[central]` section: how `collect central` reaches Sophos Central and where it writes.
///
/// The client secret is never a key of its own: it comes from `LASTSEEN_CENTRAL_CLIENT_SECRET`
/// or from the file `client_secret_file` names, so that a config can be shared safely.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// The API credential's client id. `LASTSEEN_CENTRAL_CLIENT_ID` overrides it.
    #[serde(default)]
    pub client_id: Option<String>,

    /// A file whose first line is the client id, used when `client_id` is not set.
    #[serde(default)]
    pub client_id_file: Option<PathBuf>,

    /// A file whose first line is the client secret. `LASTSEEN_CENTRAL_CLIENT_SECRET` overrides
    /// it.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,

    /// The token endpoint; the default is Sophos's. Point it at `lastseen simulate central`
    /// (`http://127.0.0.1:PORT/api/v2/oauth2/token`) to rehearse.
    #[serde(default = "default_auth_url")]
    pub auth_url: String,

    /// The global API host, where whoami and the tenant lists live; the default is Sophos's.
    /// Regional hosts are never configured: they come from whoami and the tenant list.
    #[serde(default = "default_global_url")]
    pub global_url: String,

    /// How many tenants are collected at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,

    /// Endpoints per page, 1 to 500.
    #[serde(default = "default_page_size")]
    pub page_size: u32,

    /// Extra server-side filters sent on every page, by their API names, for example
    /// `filters = { lastSeenBefore = "-P30D" }`. Lists are comma-separated strings.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,

    /// The folder the pages go to; the default is the first entry of `inputs.central`, so that
    /// `collect central` and then `run` work with one config.
    #[serde(default)]
    pub out: Option<PathBuf>,

    /// Seconds one HTTP request may take, from connecting to the last byte.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,

    /// Attempts per request on throttling (429), gateway errors (500, 502, 503, 504) and broken
    /// connections, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,

    /// The first backoff in milliseconds; it doubles per attempt, with jitter, up to 30 s.
    #[serde(default = "default_retry_base_delay_ms")]
    pub retry_base_delay_ms: u64,

    /// Seconds after which a request still being retried fails instead.
    #[serde(default = "default_retry_max_elapsed_secs")]
    pub retry_max_elapsed_secs: u64,
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig {
            client_id: None,
            client_id_file: None,
            client_secret_file: None,
            auth_url: default_auth_url(),
            global_url: default_global_url(),
            concurrency: default_concurrency(),
            page_size: default_page_size(),
            filters: BTreeMap::new(),
            out: None,
            request_timeout_secs: default_request_timeout_secs(),
            max_attempts: default_max_attempts(),
            retry_base_delay_ms: default_retry_base_delay_ms(),
            retry_max_elapsed_secs: default_retry_max_elapsed_secs(),
        }
    }
}

fn default_auth_url() -> String {
    client::DEFAULT_AUTH_URL.to_owned()
}

fn default_global_url() -> String {
    client::DEFAULT_GLOBAL_URL.to_owned()
}

const fn default_concurrency() -> usize {
    4
}

const fn default_page_size() -> u32 {
    MAX_ENDPOINT_PAGE_SIZE
}

const fn default_request_timeout_secs() -> u64 {
    60
}

const fn default_max_attempts() -> u32 {
    8
}

const fn default_retry_base_delay_ms() -> u64 {
    500
}

const fn default_retry_max_elapsed_secs() -> u64 {
    300
}

impl CentralConfig {
    /// Makes the file paths absolute against the config file's folder.
    pub fn resolve_paths(&mut self, resolve: &dyn Fn(&mut PathBuf)) {
        self.client_id_file.iter_mut().for_each(resolve);
        self.client_secret_file.iter_mut().for_each(resolve);
        self.out.iter_mut().for_each(resolve);
    }

    /// Catches values TOML types cannot: ranges, URLs, filters that clash with paging.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.concurrency) {
            return Err(format!(
                "central: concurrency {} is not 1 to 64",
                self.concurrency
            ));
        }
        if !(1..=MAX_ENDPOINT_PAGE_SIZE).contains(&self.page_size) {
            return Err(format!(
                "central: page_size {} is not 1 to 500",
                self.page_size
            ));
        }
        if self.max_attempts == 0 {
            return Err("central: max_attempts must be at least 1".to_owned());
        }
        parse_url("auth_url", &self.auth_url)?;
        parse_url("global_url", &self.global_url)?;
        if let Some(reserved) = self
            .filters
            .keys()
            .find(|key| RESERVED_PARAMETERS.contains(&key.as_str()))
        {
            return Err(format!(
                "central: filters.{reserved} is set by the collector itself and cannot be a filter"
            ));
        }
        Ok(())
    }

    /// Client settings with credentials from the environment (through `env`) or the files.
    pub fn client_settings(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClientSettings, String> {
        let client_id = match env(CLIENT_ID_ENV).filter(|id| !id.trim().is_empty()) {
            Some(id) => id.trim().to_owned(),
            None => match (&self.client_id, &self.client_id_file) {
                (Some(id), _) => id.trim().to_owned(),
                (None, Some(file)) => first_line(file, "client_id_file")?,
                (None, None) => {
                    return Err(format!(
                        "central: no client id: set {CLIENT_ID_ENV}, central.client_id or \
                         central.client_id_file"
                    ));
                }
            },
        };

        let client_secret = match env(CLIENT_SECRET_ENV).filter(|secret| !secret.is_empty()) {
            Some(secret) => secret.trim().to_owned(),
            None => match &self.client_secret_file {
                Some(file) => first_line(file, "client_secret_file")?,
                None => {
                    return Err(format!(
                        "central: no client secret: set {CLIENT_SECRET_ENV} or \
                         central.client_secret_file"
                    ));
                }
            },
        };

        Ok(ClientSettings {
            auth_url: parse_url("auth_url", &self.auth_url)?,
            global_url: parse_url("global_url", &self.global_url)?,
            client_id,
            client_secret: Secret::new(client_secret),
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                base_delay: Duration::from_millis(self.retry_base_delay_ms),
                max_delay: Duration::from_secs(30),
                max_elapsed: Duration::from_secs(self.retry_max_elapsed_secs),
            },
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        })
    }

    /// The endpoint query every page of every tenant is sent with.
    pub fn endpoint_query(&self) -> EndpointQuery {
        EndpointQuery {
            page_size: self.page_size,
            view: "full".to_owned(),
            filters: self
                .filters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

fn parse_url(key: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("central: {key} {text:?}: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "central: {key} {text:?} is not an http or https URL"
        ));
    }
    Ok(url)
}

/// The first line of a credential file, trimmed; its content never reaches an error message.
fn first_line(path: &Path, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("central: {key} {}: {error}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!("central: {key} {} is empty", path.display()));
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn environment_wins_over_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "from-file\n").unwrap();
        let config = CentralConfig {
            client_id: Some("config-id".into()),
            client_secret_file: Some(secret_file),
            ..CentralConfig::default()
        };

        let settings = config.client_settings(&no_env).unwrap();
        assert_eq!(settings.client_id, "config-id");
        assert_eq!(settings.client_secret.expose(), "from-file");

        let env = |name: &str| match name {
            CLIENT_ID_ENV => Some("env-id".to_owned()),
            CLIENT_SECRET_ENV => Some("env-secret".to_owned()),
            _ => None,
        };
        let settings = config.client_settings(&env).unwrap();
        assert_eq!(settings.client_id, "env-id");
        assert_eq!(settings.client_secret.expose(), "env-secret");
    }

    #[test]
    fn missing_credentials_are_named() {
        let error = CentralConfig::default()
            .client_settings(&no_env)
            .unwrap_err();
        assert!(error.contains(CLIENT_ID_ENV), "{error}");

        let config = CentralConfig {
            client_id: Some("id".into()),
            ..CentralConfig::default()
        };
        let error = config.client_settings(&no_env).unwrap_err();
        assert!(error.contains(CLIENT_SECRET_ENV), "{error}");

        let config = CentralConfig {
            client_id: Some("id".into()),
            client_secret_file: Some(PathBuf::from("/nonexistent/secret")),
            ..CentralConfig::default()
        };
        let error = config.client_settings(&no_env).unwrap_err();
        assert!(
            error.contains("client_secret_file /nonexistent/secret"),
            "{error}"
        );
    }

    #[test]
    fn check_refuses_bad_values() {
        let mut config = CentralConfig {
            page_size: 501,
            ..CentralConfig::default()
        };
        assert!(config.check().unwrap_err().contains("page_size 501"));

        config.page_size = 500;
        config.filters.insert("pageSize".into(), "10".into());
        assert!(config.check().unwrap_err().contains("filters.pageSize"));

        config.filters.clear();
        config.global_url = "ftp://x".into();
        assert!(config.check().unwrap_err().contains("global_url"));

        config.global_url = default_global_url();
        config.concurrency = 0;
        assert!(config.check().unwrap_err().contains("concurrency 0"));
    }
}
