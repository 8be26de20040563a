//! The shapes Sophos Central sends and receives, as tolerant serde models.
//!
//! Central adds fields and enum members without notice (the lockdown status `locking` broke
//! clients with closed enums), so every field but `id` is optional, unknown fields are ignored,
//! and every enum keeps a value it does not know as a string instead of failing. Field names are
//! case-exact (`macOS`, `volumeId`, `creatingWhitelist`).
//!
//! Endpoint lists are not decoded into these models while collecting: the pages are passed on as
//! the bytes received (see [`EndpointPage`](super::client::EndpointPage)). The typed
//! [`Endpoint`] serves the single-endpoint calls a later action stage makes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A string that must never reach a log line: a client secret, a bearer token, a tamper
/// protection password. `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Declares an enum of the documented wire values plus `Other(String)` for anything else, with
/// serde that round-trips the exact string.
macro_rules! tolerant_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this version does not know, kept as sent.
            Other(String),
        }

        impl $name {
            /// The value as Central writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok($name::from(value.as_ref()))
            }
        }
    };
}

tolerant_enum!(
    /// What kind of caller the credentials belong to.
    IdType { Tenant = "tenant", Partner = "partner", Organization = "organization" }
);

tolerant_enum!(
    /// `health.overall` and the status of its parts.
    HealthStatus { Good = "good", Suspicious = "suspicious", Bad = "bad", Unknown = "unknown" }
);

tolerant_enum!(
    /// The kind of endpoint.
    EndpointType { Computer = "computer", Server = "server", SecurityVm = "securityVm" }
);

tolerant_enum!(
    /// `os.platform`; note the camel case of `macOS`.
    Platform { Windows = "windows", Linux = "linux", MacOs = "macOS" }
);

tolerant_enum!(
    /// Server lockdown state, including the newer `locking`.
    LockdownStatus {
        CreatingWhitelist = "creatingWhitelist",
        Installing = "installing",
        Locked = "locked",
        Locking = "locking",
        NotInstalled = "notInstalled",
        Registering = "registering",
        Starting = "starting",
        Stopping = "stopping",
        Unavailable = "unavailable",
        Uninstalled = "uninstalled",
        Unlocked = "unlocked",
    }
);

tolerant_enum!(
    /// Isolation state of an endpoint.
    IsolationStatus { Isolated = "isolated", NotIsolated = "notIsolated" }
);

/// The token endpoint's answer. The token is a [`Secret`]; the rest is bookkeeping.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    #[serde(rename = "access_token")]
    pub access_token: Secret,

    /// Lifetime in seconds; Central says 3600.
    #[serde(rename = "expires_in", default)]
    pub expires_in: Option<u64>,

    #[serde(rename = "token_type", default)]
    pub token_type: Option<String>,

    #[serde(default)]
    pub error_code: Option<String>,

    #[serde(default)]
    pub message: Option<String>,

    #[serde(default)]
    pub tracking_id: Option<String>,
}

/// The token endpoint's error body: `{"errorCode", "message", "trackingId"}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenErrorBody {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub tracking_id: Option<String>,
}

/// The error body of the API hosts (global and regional).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorBody {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_url: Option<String>,
}

/// `GET /whoami/v1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Whoami {
    pub id: String,
    pub id_type: IdType,
    #[serde(default)]
    pub api_hosts: ApiHosts,
}

/// The hosts whoami points at. `data_region` is null or absent for partners and organizations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiHosts {
    #[serde(default)]
    pub global: Option<String>,
    #[serde(default)]
    pub data_region: Option<String>,
}

/// A tenant as the partner or organization tenant list returns it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_geography: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<IdRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<IdRef>,
}

/// `{"id": "..."}` references to a tenant, partner, organization or group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct IdRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `pages` object of a page-number list (tenants).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberedPages {
    #[serde(default)]
    pub current: Option<u64>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
}

/// One page of the tenant list.
#[derive(Debug, Clone, Deserialize)]
pub struct TenantPage {
    #[serde(default)]
    pub items: Vec<Tenant>,
    #[serde(default)]
    pub pages: NumberedPages,
}

/// The `pages` object of a key-paged list (endpoints).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyedPages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
}

/// One endpoint, `view=full`. Only `id` is required.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: Option<EndpointType>,
    #[serde(default)]
    pub tenant: Option<IdRef>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub os: Option<Os>,
    #[serde(default)]
    pub ipv4_addresses: Option<Vec<String>>,
    #[serde(default)]
    pub ipv6_addresses: Option<Vec<String>>,
    #[serde(default)]
    pub mac_addresses: Option<Vec<String>>,
    #[serde(default)]
    pub associated_person: Option<AssociatedPerson>,
    #[serde(default)]
    pub group: Option<IdRef>,
    #[serde(default)]
    pub tamper_protection_enabled: Option<bool>,
    #[serde(default)]
    pub tamper_protection_supported: Option<bool>,
    #[serde(default)]
    pub assigned_products: Option<Vec<AssignedProduct>>,
    #[serde(default)]
    pub last_seen_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_os_update_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_agent_update_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub lockdown: Option<Lockdown>,
    #[serde(default)]
    pub online: Option<bool>,
    #[serde(default)]
    pub cloud: Option<Cloud>,
    #[serde(default)]
    pub isolation: Option<Isolation>,
    #[serde(default)]
    pub cloned: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[serde(default)]
    pub overall: Option<HealthStatus>,
    #[serde(default)]
    pub threats: Option<StatusOnly>,
    #[serde(default)]
    pub services: Option<Services>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StatusOnly {
    #[serde(default)]
    pub status: Option<HealthStatus>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    #[serde(default)]
    pub status: Option<HealthStatus>,
    #[serde(default)]
    pub service_details: Option<Vec<ServiceDetail>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServiceDetail {
    #[serde(default)]
    pub name: Option<String>,
    /// `running`, `stopped`, `missing`, or anything newer.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Os {
    #[serde(default)]
    pub is_server: Option<bool>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub major_version: Option<u64>,
    #[serde(default)]
    pub minor_version: Option<u64>,
    #[serde(default)]
    pub build: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedPerson {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The logon name, such as `CORP\jnovak`.
    #[serde(default)]
    pub via_login: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AssignedProduct {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    #[serde(default)]
    pub volumes: Option<Vec<EncryptedVolume>>,
    #[serde(default)]
    pub overall_status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedVolume {
    #[serde(default)]
    pub volume_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lockdown {
    #[serde(default)]
    pub status: Option<LockdownStatus>,
    #[serde(default)]
    pub update_status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cloud {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Isolation {
    #[serde(default)]
    pub status: Option<IsolationStatus>,
    #[serde(default)]
    pub admin_isolated: Option<bool>,
    #[serde(default)]
    pub self_isolated: Option<bool>,
}

/// `GET /endpoint/v1/endpoints/{id}/tamper-protection`. The passwords are secrets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TamperProtection {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub previous_passwords: Vec<PreviousPassword>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousPassword {
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub invalidated_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_survive_a_round_trip() {
        let lockdown: Lockdown =
            serde_json::from_str(r#"{"status":"locking","updateStatus":"x"}"#).unwrap();
        assert_eq!(lockdown.status, Some(LockdownStatus::Locking));

        let lockdown: Lockdown = serde_json::from_str(r#"{"status":"frozen"}"#).unwrap();
        assert_eq!(
            lockdown.status,
            Some(LockdownStatus::Other("frozen".into()))
        );
        assert_eq!(
            serde_json::to_string(&lockdown.status).unwrap(),
            r#""frozen""#
        );
    }

    #[test]
    fn endpoint_needs_only_an_id() {
        let endpoint: Endpoint = serde_json::from_str(r#"{"id":"e1","newField":3}"#).unwrap();
        assert_eq!(endpoint.id, "e1");
        assert!(endpoint.os.is_none());

        let error = serde_json::from_str::<Endpoint>(r#"{"hostname":"x"}"#).unwrap_err();
        assert!(error.to_string().contains("missing field `id`"), "{error}");
    }

    #[test]
    fn case_exact_names_are_read() {
        let endpoint: Endpoint = serde_json::from_str(
            r#"{"id":"e","os":{"platform":"macOS","build":22631},
                "encryption":{"volumes":[{"volumeId":"C:","status":"encrypted"}]},
                "lastSeenAt":"2020-08-02T21:30:55.487Z"}"#,
        )
        .unwrap();
        let os = endpoint.os.unwrap();
        assert_eq!(os.platform, Some(Platform::MacOs));
        assert_eq!(os.build, Some(22631));
        let volumes = endpoint.encryption.unwrap().volumes.unwrap();
        assert_eq!(volumes[0].volume_id.as_deref(), Some("C:"));
        assert_eq!(
            endpoint.last_seen_at.unwrap().timestamp_millis(),
            1_596_403_855_487
        );
    }

    #[test]
    fn whoami_accepts_null_and_absent_data_region() {
        let null: Whoami = serde_json::from_str(
            r#"{"id":"p","idType":"partner","apiHosts":{"global":"g","dataRegion":null}}"#,
        )
        .unwrap();
        let absent: Whoami =
            serde_json::from_str(r#"{"id":"p","idType":"partner","apiHosts":{"global":"g"}}"#)
                .unwrap();
        assert_eq!(null.id_type, IdType::Partner);
        assert!(null.api_hosts.data_region.is_none());
        assert!(absent.api_hosts.data_region.is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let tp: TamperProtection =
            serde_json::from_str(r#"{"enabled":true,"password":"hunter2"}"#).unwrap();
        let printed = format!("{tp:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(tp.password.unwrap().expose(), "hunter2");
    }
}
