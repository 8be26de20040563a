//! The `[kafka]` section of the config file.
//!
//! ```toml
//! [kafka]
//! brokers = ["kafka-1.example.net:9093", "kafka-2.example.net:9093"]
//! topic_prefix = "lastseen"
//! group_id = "lastseen-correlate"
//! correlate_interval_secs = 3600
//!
//! [kafka.librdkafka]
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanisms" = "SCRAM-SHA-512"
//! "sasl.username" = "lastseen"
//! # the password comes from LASTSEEN_KAFKA_SASL_PASSWORD, not from this file
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Environment variables that set librdkafka secrets, so they never sit in the config file.
pub const SECRET_ENV: [(&str, &str); 3] = [
    ("LASTSEEN_KAFKA_SASL_PASSWORD", "sasl.password"),
    ("LASTSEEN_KAFKA_SSL_KEY_PASSWORD", "ssl.key.password"),
    (
        "LASTSEEN_KAFKA_OAUTHBEARER_CLIENT_SECRET",
        "sasl.oauthbearer.client.secret",
    ),
];

/// The environment variable that replaces `brokers`.
pub const BROKERS_ENV: &str = "LASTSEEN_KAFKA_BROKERS";

/// Settings librdkafka must not take from passthrough, because lastseen's delivery guarantees
/// rest on them.
const FIXED: [&str; 4] = [
    "acks",
    "enable.idempotence",
    "enable.auto.commit",
    "group.id",
];

/// Where a collector sends what it read (`--to`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Destination {
    /// Files that `lastseen run` reads.
    #[default]
    Files,
    /// Records on the Kafka topics that `lastseen correlate` reads.
    Kafka,
}

/// How lastseen reaches Kafka.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers as `host:port`. `LASTSEEN_KAFKA_BROKERS` (comma-separated) replaces
    /// them.
    pub brokers: Vec<String>,

    /// Prefix of every topic name: `<prefix>.central.endpoints`, `<prefix>.ad.changes`,
    /// `<prefix>.actions`, `<prefix>.candidates`, `<prefix>.dlq`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,

    /// The consumer group of `lastseen correlate`. Instances in one group share out the
    /// Central topic's partitions, and with them the tenants.
    #[serde(default = "default_group_id")]
    pub group_id: String,

    /// Seconds between correlations when no snapshot completes, so that AD changes and
    /// actions reach the SIEM topic even between Central collections.
    #[serde(default = "default_correlate_interval_secs")]
    pub correlate_interval_secs: u64,

    /// Milliseconds the correlator waits for more input after a snapshot completes before it
    /// correlates, so that a burst of tenants finishing together costs one correlation.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,

    /// librdkafka settings passed through as they are, for security (`security.protocol`,
    /// `sasl.mechanisms`, `sasl.username`, `ssl.ca.location`, ...) and tuning. Secrets come
    /// from the environment: `LASTSEEN_KAFKA_SASL_PASSWORD` (`sasl.password`),
    /// `LASTSEEN_KAFKA_SSL_KEY_PASSWORD` (`ssl.key.password`) and
    /// `LASTSEEN_KAFKA_OAUTHBEARER_CLIENT_SECRET` (`sasl.oauthbearer.client.secret`). `acks`,
    /// `enable.idempotence`, `enable.auto.commit` and `group.id` are lastseen's and refused
    /// here.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

fn default_topic_prefix() -> String {
    "lastseen".into()
}

fn default_group_id() -> String {
    "lastseen-correlate".into()
}

const fn default_correlate_interval_secs() -> u64 {
    3600
}

const fn default_settle_ms() -> u64 {
    500
}

impl KafkaConfig {
    /// A config with defaults for everything but the brokers.
    pub fn new(brokers: Vec<String>) -> KafkaConfig {
        KafkaConfig {
            brokers,
            topic_prefix: default_topic_prefix(),
            group_id: default_group_id(),
            correlate_interval_secs: default_correlate_interval_secs(),
            settle_ms: default_settle_ms(),
            librdkafka: BTreeMap::new(),
        }
    }

    /// The settings a Kafka command runs with: the config's `[kafka]` section, then `brokers`
    /// from the command line (which clap also fills from `LASTSEEN_KAFKA_BROKERS`), then the
    /// secrets from the environment; checked.
    pub fn resolve(
        section: Option<&KafkaConfig>,
        brokers: &[String],
    ) -> Result<KafkaConfig, String> {
        let mut kafka = match (section, brokers.is_empty()) {
            (Some(section), _) => section.clone(),
            (None, false) => KafkaConfig::new(Vec::new()),
            (None, true) => {
                return Err(format!(
                    "no Kafka brokers: give --brokers (or {BROKERS_ENV}), or a [kafka] section \
                     in the config"
                ));
            }
        };
        kafka = kafka.with_env();
        if !brokers.is_empty() {
            kafka.brokers = brokers.to_vec();
        }
        kafka.check()?;
        Ok(kafka)
    }

    /// Applies the environment overrides: brokers and secrets.
    pub fn with_env(mut self) -> KafkaConfig {
        self.apply_env(|name| std::env::var(name).ok());
        self
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(brokers) = var(BROKERS_ENV).filter(|b| !b.trim().is_empty()) {
            self.brokers = brokers.split(',').map(|b| b.trim().to_owned()).collect();
        }
        for (name, key) in SECRET_ENV {
            if let Some(value) = var(name) {
                self.librdkafka.insert(key.to_owned(), value);
            }
        }
    }

    pub fn topics(&self) -> super::Topics {
        super::Topics::new(&self.topic_prefix)
    }

    /// What TOML types alone cannot catch.
    pub fn check(&self) -> Result<(), String> {
        if self.brokers.iter().all(|b| b.trim().is_empty()) {
            return Err("kafka: brokers is empty; give at least one host:port".into());
        }
        if self.topic_prefix.is_empty() || !self.topic_prefix.chars().all(topic_char) {
            return Err(format!(
                "kafka: topic_prefix {:?} may only hold letters, digits, '.', '_' and '-'",
                self.topic_prefix
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err("kafka: group_id is empty".into());
        }
        if self.correlate_interval_secs == 0 {
            return Err("kafka: correlate_interval_secs must be at least 1".into());
        }
        if let Some(key) = self
            .librdkafka
            .keys()
            .find(|key| FIXED.contains(&key.as_str()))
        {
            return Err(format!(
                "kafka.librdkafka: {key} is set by lastseen for its delivery guarantees and \
                 cannot be overridden"
            ));
        }
        Ok(())
    }

    /// The bootstrap list as librdkafka takes it.
    pub fn bootstrap(&self) -> String {
        self.brokers.join(",")
    }
}

fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Whether a librdkafka key holds a secret, whose value must never be shown.
pub fn is_secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret") || key.ends_with(".pem")
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let librdkafka: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret(key) { "<redacted>" } else { value };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("group_id", &self.group_id)
            .field("correlate_interval_secs", &self.correlate_interval_secs)
            .field("settle_ms", &self.settle_ms)
            .field("librdkafka", &librdkafka)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KafkaConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_topic_names() {
        let config = parse("brokers = [\"127.0.0.1:9092\"]");
        assert_eq!(config.topic_prefix, "lastseen");
        assert_eq!(config.group_id, "lastseen-correlate");
        assert_eq!(config.correlate_interval_secs, 3600);
        let topics = config.topics();
        assert_eq!(topics.central, "lastseen.central.endpoints");
        assert_eq!(topics.ad, "lastseen.ad.changes");
        assert_eq!(topics.candidates, "lastseen.candidates");
        assert_eq!(config.check(), Ok(()));
    }

    #[test]
    fn secrets_come_from_the_environment_and_never_show() {
        let mut config = parse("brokers = [\"a:1\"]\n[librdkafka]\n\"sasl.username\" = \"ls\"\n");
        config.apply_env(|name| match name {
            "LASTSEEN_KAFKA_SASL_PASSWORD" => Some("hunter2".into()),
            "LASTSEEN_KAFKA_BROKERS" => Some("b:1, c:2".into()),
            _ => None,
        });
        assert_eq!(config.librdkafka["sasl.password"], "hunter2");
        assert_eq!(config.brokers, ["b:1", "c:2"]);

        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password\": \"<redacted>"), "{shown}");
        assert!(shown.contains("\"ls\""), "{shown}");
    }

    #[test]
    fn brokers_from_the_command_line_win_and_some_are_needed() {
        let section = parse("brokers = [\"a:1\"]\ntopic_prefix = \"estate\"");
        let kafka = KafkaConfig::resolve(Some(&section), &["b:2".into()]).unwrap();
        assert_eq!(
            (kafka.brokers, kafka.topic_prefix),
            (vec!["b:2".into()], "estate".into())
        );

        let kafka = KafkaConfig::resolve(None, &["c:3".into()]).unwrap();
        assert_eq!(kafka.topics().central, "lastseen.central.endpoints");

        if std::env::var_os(BROKERS_ENV).is_none() {
            let error = KafkaConfig::resolve(None, &[]).unwrap_err();
            assert!(
                error.starts_with("no Kafka brokers: give --brokers"),
                "{error}"
            );
        }
    }

    #[test]
    fn delivery_settings_cannot_be_overridden() {
        let config = parse("brokers = [\"a:1\"]\n[librdkafka]\nacks = \"1\"\n");
        let error = config.check().unwrap_err();
        assert!(error.contains("acks is set by lastseen"), "{error}");
    }

    #[test]
    fn bad_prefix_and_empty_brokers_are_named() {
        let config = parse("brokers = []");
        assert!(config.check().unwrap_err().contains("brokers is empty"));
        let config = parse("brokers = [\"a:1\"]\ntopic_prefix = \"my topics\"");
        assert!(config.check().unwrap_err().contains("\"my topics\""));
    }
}
