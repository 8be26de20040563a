//! Directory objects as lastseen keeps them: a computer, user or group keyed by its objectGUID,
//! with the attributes `lastseen run` reads, values kept as the bytes the server sent.

use uuid::Uuid;

use super::search::{Attributes, RawEntry};

/// The attributes read for every object, in the order the outputs write them. These are the
/// ones `lastseen run` uses, plus `lastKnownParent`, which a tombstone carries.
pub const ATTRIBUTES: &[&str] = &[
    "objectClass",
    "cn",
    "sAMAccountName",
    "dNSHostName",
    "operatingSystem",
    "operatingSystemVersion",
    "objectGUID",
    "objectSid",
    "whenChanged",
    "uSNChanged",
    "managedBy",
    "member",
    "memberOf",
    "userPrincipalName",
    "userAccountControl",
    "lastLogonTimestamp",
    "pwdLastSet",
    "isDeleted",
    "lastKnownParent",
];

/// Attributes whose syntax is binary (octet strings). They are always written base64, even
/// when their bytes happen to be valid text.
pub const BINARY_ATTRIBUTES: &[&str] = &["objectGUID", "objectSid"];

/// Whether `name` is one of [`BINARY_ATTRIBUTES`].
pub fn is_binary(name: &str) -> bool {
    BINARY_ATTRIBUTES
        .iter()
        .any(|binary| binary.eq_ignore_ascii_case(name))
}

/// What an object is, from its `objectClass` values. The one kind of every directory object
/// lastseen reads, whether it came from LDAP, an LDIF export or the AD topic; its serde names
/// are the `kind` of `schemas/ad-change.schema.json`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Computer,
    Group,
    User,
}

impl ObjectKind {
    /// Classifies an object by its `objectClass` values, compared without regard to case. A
    /// computer is also a user in AD's schema, so computer wins; a group is never a user. An
    /// object of none of the three (an OU, a contact) gives `None`.
    pub fn from_classes<C: AsRef<[u8]>>(classes: impl IntoIterator<Item = C>) -> Option<Self> {
        let (mut computer, mut group, mut user) = (false, false, false);
        for class in classes {
            let class = class.as_ref();
            computer |= class.eq_ignore_ascii_case(b"computer");
            group |= class.eq_ignore_ascii_case(b"group");
            user |= class.eq_ignore_ascii_case(b"user");
        }

        if computer {
            Some(ObjectKind::Computer)
        } else if group {
            Some(ObjectKind::Group)
        } else if user {
            Some(ObjectKind::User)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Computer => "computer",
            ObjectKind::Group => "group",
            ObjectKind::User => "user",
        }
    }
}

/// One computer, user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdObject {
    pub kind: ObjectKind,
    pub dn: String,
    pub object_guid: Uuid,
    pub usn_changed: u64,
    /// True for a tombstone (`isDeleted: TRUE`), seen only with the Show Deleted control.
    pub is_deleted: bool,
    /// Attribute names spelled as in [`ATTRIBUTES`], in that order; values as sent.
    pub attributes: Attributes,
}

impl AdObject {
    /// Builds an object from a decoded entry, or says why the entry is unusable: without a
    /// 16-byte objectGUID, a numeric uSNChanged and a known class there is nothing to key or
    /// order it by.
    pub fn from_entry(entry: RawEntry) -> Result<AdObject, String> {
        let classes = entry.values("objectClass").unwrap_or_default();
        let kind = ObjectKind::from_classes(classes)
            .ok_or("objectClass is neither computer, user nor group")?;

        let object_guid = match entry.values("objectGUID") {
            Some([guid]) => decode_guid(guid)?,
            Some(_) => return Err("objectGUID does not have exactly one value".into()),
            None => return Err("objectGUID is missing".into()),
        };
        let usn_changed = entry
            .first_text("uSNChanged")
            .ok_or("uSNChanged is missing")?
            .parse::<u64>()
            .map_err(|error| format!("uSNChanged is not a number: {error}"))?;
        let is_deleted = entry
            .first_text("isDeleted")
            .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));

        let attributes = canonical_attributes(entry.attributes)?;
        Ok(AdObject {
            kind,
            dn: entry.dn,
            object_guid,
            usn_changed,
            is_deleted,
            attributes,
        })
    }

    /// The values of an attribute by its canonical name.
    pub fn values(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, values)| values.as_slice())
    }

    /// The DNS domain of the object, from the `DC=` parts of its DN.
    pub fn domain(&self) -> String {
        crate::inputs::dn::domain_of(&self.dn).unwrap_or_default()
    }
}

/// Renames attributes to the spelling of [`ATTRIBUTES`] and puts them in its order; others
/// follow in the server's order. A ranged value (`member;range=0-1499`) means AD held back
/// members of a large group, and is refused rather than silently cut short.
fn canonical_attributes(attributes: Attributes) -> Result<Attributes, String> {
    let mut known: Vec<Option<Vec<Vec<u8>>>> = vec![None; ATTRIBUTES.len()];
    let mut others = Vec::new();
    for (name, values) in attributes {
        if let Some((base, _)) = name.split_once(";range=") {
            // TODO(a group over AD's MaxValRange of 1500 members in a test domain): read the
            // rest with `member;range=1500-*` base searches instead of refusing the entry.
            return Err(format!(
                "{base} came back ranged ({name}): the group is too large"
            ));
        }
        match ATTRIBUTES
            .iter()
            .position(|known| known.eq_ignore_ascii_case(&name))
        {
            Some(index) => known[index].get_or_insert_with(Vec::new).extend(values),
            None => others.push((name, values)),
        }
    }

    let mut ordered: Vec<_> = ATTRIBUTES
        .iter()
        .zip(known)
        .filter_map(|(name, values)| Some(((*name).to_owned(), values?)))
        .collect();
    ordered.extend(others);
    Ok(ordered)
}

/// objectGUID is 16 bytes in Windows order: the first three fields little-endian.
pub fn decode_guid(bytes: &[u8]) -> Result<Uuid, String> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| format!("objectGUID has {} bytes, not 16", bytes.len()))?;
    Ok(Uuid::from_bytes_le(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(dn: &str, attributes: &[(&str, &[&[u8]])]) -> RawEntry {
        RawEntry {
            dn: dn.into(),
            attributes: attributes
                .iter()
                .map(|(name, values)| ((*name).into(), values.iter().map(|v| v.to_vec()).collect()))
                .collect(),
        }
    }

    // The GUID Samba gave KIOSK-LOBBY-TERMINAL-07, as base64 `QyiK6dF5kUGFRaFdtrdgag==`.
    const KIOSK_GUID: [u8; 16] = [
        0x43, 0x28, 0x8a, 0xe9, 0xd1, 0x79, 0x91, 0x41, 0x85, 0x45, 0xa1, 0x5d, 0xb6, 0xb7, 0x60,
        0x6a,
    ];

    #[test]
    fn guid_is_decoded_in_windows_byte_order() {
        let guid = decode_guid(&KIOSK_GUID).unwrap();
        assert_eq!(guid.to_string(), "e98a2843-79d1-4191-8545-a15db6b7606a");
        assert_eq!(
            decode_guid(&[1, 2, 3]).unwrap_err(),
            "objectGUID has 3 bytes, not 16"
        );
    }

    #[test]
    fn computer_wins_over_user_and_attributes_are_ordered() {
        let entry = raw(
            "CN=WS-0001,OU=Workstations,DC=corp,DC=example,DC=test",
            &[
                ("uSNChanged", &[b"3961"]),
                ("objectclass", &[b"top", b"person", b"user", b"computer"]),
                ("objectGUID", &[&KIOSK_GUID]),
                ("whenCreated", &[b"20261204154315.0Z"]),
                ("CN", &[b"WS-0001"]),
            ],
        );
        let object = AdObject::from_entry(entry).unwrap();
        assert_eq!(object.kind, ObjectKind::Computer);
        assert_eq!(object.usn_changed, 3961);
        assert!(!object.is_deleted);
        assert_eq!(object.domain(), "corp.example.test");

        let names: Vec<&str> = object
            .attributes
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "objectClass",
                "cn",
                "objectGUID",
                "uSNChanged",
                "whenCreated"
            ]
        );
    }

    #[test]
    fn classes_decide_the_kind_computer_first() {
        let kind = |classes: &[&str]| ObjectKind::from_classes(classes);
        assert_eq!(
            kind(&["top", "person", "user", "Computer"]),
            Some(ObjectKind::Computer)
        );
        assert_eq!(kind(&["top", "GROUP"]), Some(ObjectKind::Group));
        assert_eq!(
            kind(&["top", "person", "organizationalPerson", "user"]),
            Some(ObjectKind::User)
        );
        assert_eq!(kind(&["top", "organizationalUnit"]), None);
        assert_eq!(kind(&[]), None);
    }

    #[test]
    fn tombstones_are_marked() {
        let entry = raw(
            "CN=WS-9\\0ADEL:e98a2843-79d1-4191-8545-a15db6b7606a,CN=Deleted Objects,DC=corp,DC=test",
            &[
                ("objectClass", &[b"computer"]),
                ("objectGUID", &[&KIOSK_GUID]),
                ("uSNChanged", &[b"4100"]),
                ("isDeleted", &[b"TRUE"]),
            ],
        );
        assert!(AdObject::from_entry(entry).unwrap().is_deleted);
    }

    #[test]
    fn unusable_entries_say_why() {
        let no_guid = raw(
            "CN=x,DC=t",
            &[("objectClass", &[b"group"]), ("uSNChanged", &[b"5"])],
        );
        assert_eq!(
            AdObject::from_entry(no_guid).unwrap_err(),
            "objectGUID is missing"
        );

        let bad_usn = raw(
            "CN=x,DC=t",
            &[
                ("objectClass", &[b"group"]),
                ("objectGUID", &[&KIOSK_GUID]),
                ("uSNChanged", &[b"x"]),
            ],
        );
        assert!(
            AdObject::from_entry(bad_usn)
                .unwrap_err()
                .starts_with("uSNChanged is not a number")
        );

        let contact = raw("CN=x,DC=t", &[("objectClass", &[b"contact"])]);
        assert!(
            AdObject::from_entry(contact)
                .unwrap_err()
                .contains("neither computer")
        );

        let ranged = raw(
            "CN=big,DC=t",
            &[
                ("objectClass", &[b"group"]),
                ("objectGUID", &[&KIOSK_GUID]),
                ("uSNChanged", &[b"5"]),
                ("member;range=0-1499", &[b"CN=a,DC=t"]),
            ],
        );
        assert!(
            AdObject::from_entry(ranged)
                .unwrap_err()
                .contains("member came back ranged")
        );
    }
}
