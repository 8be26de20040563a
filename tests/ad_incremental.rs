//! Incremental `collect ad --changes` against the real Samba DC: after a full first run, a
//! move into the Disabled OU, an OS upgrade, a deletion and a move out of scope show up in the
//! next run as exactly those records, read without reading the whole directory; a run after
//! that finds nothing; a new invocationId forces a full resync.
//!
//! The test works in OUs of its own (`OU=incr-<time>`), so the tests that read the seeded
//! estate are not disturbed. It is the only test that writes to the DC.

mod common;

use std::collections::HashSet;

use common::{TestDc, VIP_GROUP};
use indicatif::ProgressBar;
use lastseen::ad::changes::{ChangeRecord, Op};
use lastseen::ad::collect::{ChangeMode, collect_changes};
use lastseen::ad::connect::{Connection, connect, load_password};
use lastseen::ad::object::ObjectKind;
use ldap3::Mod;

const BASE: &str = "DC=corp,DC=example,DC=test";

async fn add(connection: &mut Connection, dn: &str, attributes: &[(&str, &str)]) {
    let attributes = attributes
        .iter()
        .map(|(name, value)| (name.to_string(), HashSet::from([value.to_string()])))
        .collect();
    let result = connection.ldap.add(dn, attributes).await.unwrap();
    assert_eq!(result.rc, 0, "adding {dn}: {result:?}");
}

async fn add_computer(connection: &mut Connection, name: &str, ou: &str) -> String {
    let dn = format!("CN={name},{ou}");
    let sam = format!("{name}$");
    add(
        connection,
        &dn,
        &[
            ("objectClass", "computer"),
            ("sAMAccountName", &sam),
            (
                "dNSHostName",
                &format!("{}.corp.example.test", name.to_lowercase()),
            ),
            ("operatingSystem", "Windows 11 Enterprise"),
            ("operatingSystemVersion", "10.0 (22631)"),
            ("userAccountControl", "4096"),
        ],
    )
    .await;
    dn
}

fn record<'r>(records: &'r [ChangeRecord], dn: &str) -> &'r ChangeRecord {
    records
        .iter()
        .find(|r| r.dn == dn)
        .unwrap_or_else(|| panic!("no record for {dn}"))
}

fn attribute(record: &ChangeRecord, name: &str) -> Vec<String> {
    record
        .attributes
        .as_ref()
        .and_then(|a| a.get(name))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn changes_show_up_in_the_next_incremental_run_and_nowhere_else() {
    let dc = TestDc::from_env();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let root = format!("OU=incr-{},{BASE}", stamp.as_micros());
    let outside = format!("OU=incr-{}-outside,{BASE}", stamp.as_micros());
    let workstations = format!("OU=Workstations,{root}");
    let disabled = format!("OU=Disabled Computers,{root}");

    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("ad-state.json");
    let config = dc.ad_config(
        &[&root],
        &format!("state_file = {state_file:?}\npage_size = 2"),
    );
    let vip = [VIP_GROUP.to_owned()];
    let mut connection = connect(&config, &load_password(&config).unwrap())
        .await
        .unwrap();

    // A small estate of the test's own. The DC is thrown away after the tests, so nothing is
    // cleaned up.
    for ou in [&root, &workstations, &disabled, &outside] {
        let name = ou.split(',').next().unwrap().trim_start_matches("OU=");
        add(
            &mut connection,
            ou,
            &[("objectClass", "organizationalUnit"), ("ou", name)],
        )
        .await;
    }
    let move_me = add_computer(&mut connection, "WS-MOVE-ME", &workstations).await;
    let upgrade_me = add_computer(&mut connection, "WS-UPGRADE-ME", &workstations).await;
    let delete_me = add_computer(&mut connection, "WS-DELETE-ME", &workstations).await;
    let leave_me = add_computer(&mut connection, "WS-LEAVE-ME", &workstations).await;
    let untouched = add_computer(&mut connection, "LAPTOP-UNTOUCHED-0001", &workstations).await;

    // First run: no state, so a full one. Five computers and the six VIP objects.
    let first = collect_changes(&config, &vip, None, false, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(
        first.mode,
        ChangeMode::Full {
            reason: "no state file yet".into()
        }
    );
    assert!(first.records.iter().all(|r| r.op == Op::Upsert));
    let computers: Vec<_> = first
        .records
        .iter()
        .filter(|r| r.kind == ObjectKind::Computer)
        .collect();
    assert_eq!(computers.len(), 5);
    assert_eq!(first.records.len(), 11);
    first.state.save(&state_file).unwrap();
    let guid_of = |dn: &str| record(&first.records, dn).object_guid;

    // The changes.
    let result = connection
        .ldap
        .modifydn(&move_me, "CN=WS-MOVE-ME", true, Some(&disabled))
        .await;
    assert_eq!(result.unwrap().rc, 0);
    let upgrade = vec![Mod::Replace(
        "operatingSystemVersion",
        HashSet::from(["10.0 (26100)"]),
    )];
    assert_eq!(
        connection
            .ldap
            .modify(&upgrade_me, upgrade)
            .await
            .unwrap()
            .rc,
        0
    );
    assert_eq!(connection.ldap.delete(&delete_me).await.unwrap().rc, 0);
    let result = connection
        .ldap
        .modifydn(&leave_me, "CN=WS-LEAVE-ME", true, Some(&outside))
        .await;
    assert_eq!(result.unwrap().rc, 0);

    // Second run: incremental from the state, exactly the four changes.
    let state = lastseen::ad::state::SyncState::load(&state_file).unwrap();
    let second = collect_changes(&config, &vip, state, false, &ProgressBar::hidden())
        .await
        .unwrap();
    let since = first.state.highest_committed_usn;
    assert_eq!(second.mode, ChangeMode::Incremental { since_usn: since });
    assert_eq!(second.records.len(), 4, "{:#?}", second.records);

    let moved_dn = format!("CN=WS-MOVE-ME,{disabled}");
    let moved = record(&second.records, &moved_dn);
    assert_eq!(
        (moved.op, moved.object_guid),
        (Op::Upsert, guid_of(&move_me))
    );
    assert!(moved.usn_changed > since);
    assert_eq!(
        attribute(moved, "dNSHostName"),
        ["ws-move-me.corp.example.test"]
    );

    let upgraded = record(&second.records, &upgrade_me);
    assert_eq!(
        (upgraded.op, upgraded.object_guid),
        (Op::Upsert, guid_of(&upgrade_me))
    );
    assert_eq!(
        attribute(upgraded, "operatingSystemVersion"),
        ["10.0 (26100)"]
    );

    // A tombstone becomes a delete under the DN it had, not its Deleted Objects one.
    let deleted = record(&second.records, &delete_me);
    assert_eq!(
        (deleted.op, deleted.object_guid),
        (Op::Delete, guid_of(&delete_me))
    );
    assert_eq!(deleted.kind, ObjectKind::Computer);
    assert!(deleted.attributes.is_none());
    assert!(deleted.usn_changed > since);

    let left = record(&second.records, &leave_me);
    assert_eq!(
        (left.op, left.object_guid),
        (Op::Delete, guid_of(&leave_me))
    );

    assert!(second.records.iter().all(|r| r.dn != untouched));
    assert!(
        second
            .records
            .iter()
            .all(|r| r.kind == ObjectKind::Computer)
    );

    // Only the changed computers were read: the four above (the moved-out one at its new place,
    // the deleted one as a tombstone), not the 16 computers of the domain.
    let (_, changed) = second
        .stats
        .searches
        .iter()
        .find(|(label, _)| label == "changed computers")
        .unwrap();
    assert_eq!(changed.entries, 4);
    assert!(changed.requested_page_size == Some(2) && changed.paged_responses >= 2);
    second.state.save(&state_file).unwrap();

    // Third run: nothing changed, nothing reported.
    let state = lastseen::ad::state::SyncState::load(&state_file).unwrap();
    let third = collect_changes(&config, &vip, state, false, &ProgressBar::hidden())
        .await
        .unwrap();
    assert!(matches!(third.mode, ChangeMode::Incremental { .. }));
    assert_eq!(third.records, []);

    // A restored controller (new invocationId) means a full resync, which also deletes what
    // the state knew and the directory no longer has.
    let mut restored = third.state.clone();
    restored.invocation_id = uuid::Uuid::from_u128(42);
    let ghost = uuid::Uuid::from_u128(7);
    restored.objects.insert(
        ghost,
        lastseen::ad::state::Known {
            kind: ObjectKind::Computer,
            dn: format!("CN=WS-GHOST,{workstations}"),
            usn_changed: 1,
        },
    );
    let fourth = collect_changes(&config, &vip, Some(restored), false, &ProgressBar::hidden())
        .await
        .unwrap();
    match &fourth.mode {
        ChangeMode::Full { reason } => assert!(reason.contains("new invocationId"), "{reason}"),
        other => panic!("expected a full resync, got {other:?}"),
    }
    let upserted: HashSet<&str> = fourth
        .records
        .iter()
        .filter(|r| r.op == Op::Upsert)
        .map(|r| r.dn.as_str())
        .collect();
    assert!(upserted.contains(moved_dn.as_str()) && upserted.contains(untouched.as_str()));
    assert_eq!(upserted.len(), 3 + 6);
    let deletes: Vec<_> = fourth
        .records
        .iter()
        .filter(|r| r.op == Op::Delete)
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].object_guid, ghost);
    assert_eq!(fourth.state.invocation_id, second.state.invocation_id);
}
