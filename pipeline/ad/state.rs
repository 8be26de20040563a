//! What an incremental run remembers between runs, in one JSON file.
//!
//! USNs are local to one domain controller, and a controller restored from backup reuses
//! them under a new `invocationId`. So the state names the controller and its invocationId
//! next to the highest committed USN, and any difference means a full resync. The state also
//! lists the objects already reported: that is how an object that leaves the collected set
//! without a tombstone (moved out of the base DNs, dropped from a VIP group) becomes a delete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AdError;
use super::object::ObjectKind;

/// Bumped when the file's meaning changes; another version means a full resync.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncState {
    pub version: u32,
    /// The controller's `dsServiceName` (its NTDS Settings DN).
    pub dc: String,
    /// The controller's DNS host name, for people reading the file.
    pub dc_host: String,
    /// The controller's `invocationId`.
    pub invocation_id: Uuid,
    /// The controller's `highestCommittedUSN` read before the last run's searches.
    pub highest_committed_usn: u64,
    /// The base DNs and VIP groups the objects below were collected for; other ones mean a
    /// full resync.
    pub base_dns: Vec<String>,
    pub vip_groups: Vec<String>,
    /// Every object reported and not yet deleted, by objectGUID.
    pub objects: BTreeMap<Uuid, Known>,
}

/// An object already reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Known {
    pub kind: ObjectKind,
    pub dn: String,
    pub usn_changed: u64,
}

impl SyncState {
    /// Reads the state; a missing file is no state (the first run), anything unreadable is
    /// an error rather than a silent full resync.
    pub fn load(path: &Path) -> Result<Option<SyncState>, AdError> {
        let problem = |problem: String| AdError::State {
            path: path.to_owned(),
            problem,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(problem(format!("cannot read: {error}"))),
        };
        let state: SyncState = serde_json::from_str(&text).map_err(|error| {
            problem(format!(
                "{error}; delete the file to start over with a full run"
            ))
        })?;
        Ok(Some(state))
    }

    /// Writes the state through a temporary file and a rename, so a crash leaves the old one.
    pub fn save(&self, path: &Path) -> Result<(), AdError> {
        let text = serde_json::to_vec_pretty(self).map_err(|error| AdError::State {
            path: path.to_owned(),
            problem: error.to_string(),
        })?;
        write_atomically(path, &text)
    }
}

/// Writes `bytes` to `path` through a sibling temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AdError> {
    let output = |source| AdError::Output {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(output)?;
    }
    let mut temporary = PathBuf::from(path);
    temporary.as_mut_os_string().push(".tmp");
    std::fs::write(&temporary, bytes).map_err(output)?;
    std::fs::rename(&temporary, path).map_err(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/ad-state.json");
        assert_eq!(SyncState::load(&path).unwrap(), None);

        let mut objects = BTreeMap::new();
        objects.insert(
            Uuid::from_u128(1),
            Known {
                kind: ObjectKind::Computer,
                dn: "CN=a,DC=t".into(),
                usn_changed: 9,
            },
        );
        let state = SyncState {
            version: STATE_VERSION,
            dc: "CN=NTDS Settings,CN=DC1,DC=t".into(),
            dc_host: "dc1.t".into(),
            invocation_id: Uuid::from_u128(2),
            highest_committed_usn: 4000,
            base_dns: vec!["DC=t".into()],
            vip_groups: vec![],
            objects,
        };
        state.save(&path).unwrap();
        assert_eq!(SyncState::load(&path).unwrap(), Some(state));
        assert!(!dir.path().join("nested/ad-state.json.tmp").exists());
    }

    #[test]
    fn corrupt_state_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"version\": 1").unwrap();
        let error = SyncState::load(&path).unwrap_err().to_string();
        assert!(error.contains("state.json"), "{error}");
        assert!(error.contains("delete the file to start over"), "{error}");
    }
}
