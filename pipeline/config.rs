//! The TOML configuration every command reads.
//!
//! The keys of `[inputs]`, `[policy]`, `[[domains]]` and `[output]` are a contract: other tools
//! write these files, so a key is never renamed and an unknown key is an error that names it.
//! Relative paths are resolved against the folder of the config file, so a config can travel
//! with the data it describes.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A whole configuration file, with every path already made absolute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub inputs: Inputs,

    #[serde(default)]
    pub policy: Policy,

    /// Which Central tenants belong to which Active Directory domain.
    #[serde(default)]
    pub domains: Vec<Domain>,

    #[serde(default)]
    pub output: Output,

    /// How `collect central` reaches Sophos Central, and where it writes.
    #[serde(default)]
    pub central: Option<crate::central::CentralConfig>,

    /// How `collect ad` reaches the domain controller.
    #[serde(default)]
    pub ad: Option<crate::ad::AdConfig>,

    /// Evaluate as of this instant instead of now. Fixtures and replays pin it so that their
    /// results do not drift as days pass; `--as-of` overrides it.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,

    /// Kafka, for `lastseen publish` and `lastseen correlate`.
    #[serde(default)]
    pub kafka: Option<crate::bus::KafkaConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Files or directories of Central endpoint pages (`GET /endpoint/v1/endpoints` bodies).
    #[serde(default)]
    pub central: Vec<PathBuf>,

    /// LDIF exports of Active Directory, as `ldapsearch -LLL` writes them.
    #[serde(default)]
    pub ldif: Vec<PathBuf>,

    /// The action log: JSON lines of deletions, failed deletions and tickets.
    #[serde(default)]
    pub actions: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Days without contact before a retired computer's endpoint becomes a candidate.
    #[serde(default = "default_min_inactive_days")]
    pub min_inactive_days: u32,

    /// Distinguished names of the OUs that hold retired computers; sub-OUs count too.
    #[serde(default)]
    pub disabled_ous: Vec<String>,

    /// Distinguished names of groups whose members, direct or nested, are VIP users.
    #[serde(default)]
    pub vip_groups: Vec<String>,

    /// What a missing OS build on either side means.
    #[serde(default)]
    pub unknown_os_build: UnknownOsBuild,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_inactive_days: default_min_inactive_days(),
            disabled_ous: Vec::new(),
            vip_groups: Vec::new(),
            unknown_os_build: UnknownOsBuild::default(),
        }
    }
}

/// Thirty days sits above the up to 14 days by which AD's replicated logon time can trail.
const fn default_min_inactive_days() -> u32 {
    30
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownOsBuild {
    /// A missing build is a reason for manual review.
    #[default]
    ManualReview,
    /// A missing build is no reason on its own.
    Ignore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The DNS name of the domain, as in the `DC=` parts of its DNs.
    pub dns: String,

    /// The NetBIOS name, as in `CORP\user` logons.
    #[serde(default)]
    pub netbios: Option<String>,

    /// Central tenant ids whose endpoints belong to this domain.
    #[serde(default)]
    pub tenants: Vec<String>,

    /// Further UPN suffixes of the domain's users (`user@example.com`); the DNS name always
    /// counts as one.
    #[serde(default)]
    pub upn_suffixes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Where candidate events go; `-` is standard output.
    #[serde(default = "default_output_path")]
    pub path: PathBuf,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            path: default_output_path(),
        }
    }
}

fn default_output_path() -> PathBuf {
    PathBuf::from("-")
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },

    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads and checks a config file, resolving its relative paths against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Parses config text; `name` is used in messages and `base` resolves relative paths.
    pub fn parse(text: &str, name: &Path, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: name.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;

        config.resolve_paths(base);
        config.check().map_err(|message| ConfigError::Invalid {
            path: name.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && path.as_os_str() != "-" {
                *path = base.join(&*path);
            }
        };

        self.inputs.central.iter_mut().for_each(resolve);
        self.inputs.ldif.iter_mut().for_each(resolve);
        self.inputs.actions.iter_mut().for_each(resolve);
        resolve(&mut self.output.path);
        if let Some(central) = &mut self.central {
            central.resolve_paths(&resolve);
        }
        self.ad.iter_mut().for_each(|ad| ad.resolve_paths(base));
    }

    /// Catches what TOML types alone cannot: DNs that do not parse, a tenant given to two
    /// domains, a domain named twice.
    fn check(&self) -> Result<(), String> {
        if let Some(central) = &self.central {
            central.check()?;
        }

        self.ad
            .as_ref()
            .map_or(Ok(()), crate::ad::AdConfig::check)?;
        for dn in self
            .policy
            .disabled_ous
            .iter()
            .chain(&self.policy.vip_groups)
        {
            crate::inputs::dn::normalize(dn)
                .map_err(|problem| format!("policy: DN {dn:?} does not parse: {problem}"))?;
        }

        let mut owner = std::collections::HashMap::new();
        for domain in &self.domains {
            if domain.dns.trim().is_empty() || domain.dns.contains(char::is_whitespace) {
                return Err(format!("domains: dns {:?} is not a DNS name", domain.dns));
            }
            for tenant in &domain.tenants {
                if let Some(other) = owner.insert(tenant.to_ascii_lowercase(), &domain.dns) {
                    return Err(format!(
                        "domains: tenant {tenant} is given to both {other} and {}",
                        domain.dns
                    ));
                }
            }
        }

        let mut names: Vec<_> = self
            .domains
            .iter()
            .map(|d| d.dns.to_ascii_lowercase())
            .collect();
        names.sort();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("domains: {} is listed twice", pair[0]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"), Path::new("/data"))
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let config = parse(
            r#"
            [inputs]
            central = ["central", "/abs/pages"]
            ldif = ["ad/corp.ldif"]
            actions = "actions.jsonl"
            [output]
            path = "out/candidates.jsonl"
            "#,
        )
        .unwrap();

        assert_eq!(config.inputs.central[0], Path::new("/data/central"));
        assert_eq!(config.inputs.central[1], Path::new("/abs/pages"));
        assert_eq!(config.inputs.ldif[0], Path::new("/data/ad/corp.ldif"));
        assert_eq!(
            config.inputs.actions.as_deref(),
            Some(Path::new("/data/actions.jsonl"))
        );
        assert_eq!(config.output.path, Path::new("/data/out/candidates.jsonl"));
    }

    #[test]
    fn stdout_stays_stdout_and_defaults_apply() {
        let config = parse("[output]\npath = \"-\"\n").unwrap();
        assert_eq!(config.output.path, Path::new("-"));
        assert_eq!(config.policy.min_inactive_days, 30);
        assert_eq!(config.policy.unknown_os_build, UnknownOsBuild::ManualReview);
    }

    #[test]
    fn unknown_key_is_named() {
        let error = parse("[policy]\nmin_inactve_days = 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("test.toml"), "{error}");
        assert!(error.contains("min_inactve_days"), "{error}");
    }

    #[test]
    fn unknown_policy_value_is_named() {
        let error = parse("[policy]\nunknown_os_build = \"delete\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown variant `delete`"), "{error}");
    }

    #[test]
    fn tenant_in_two_domains_is_refused() {
        let error = parse(
            r#"
            [[domains]]
            dns = "a.test"
            tenants = ["t1"]
            [[domains]]
            dns = "b.test"
            tenants = ["T1"]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("tenant T1 is given to both a.test and b.test"),
            "{error}"
        );
    }

    #[test]
    fn bad_disabled_ou_is_refused() {
        let error = parse("[policy]\ndisabled_ous = [\"OU=Disabled,DC\"]\n").unwrap_err();
        assert!(error.to_string().contains("OU=Disabled,DC"), "{error}");
    }
}
