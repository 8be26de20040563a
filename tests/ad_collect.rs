//! `collect ad` against the real Samba DC of `tests/services/samba.sh`: a full collection
//! equals the seed, nested VIP membership resolves, paging is used, and TLS, passwords and
//! DNs fail clearly when wrong. These tests only read the directory.

mod common;

use std::collections::BTreeSet;

use common::{ESTATE, TestDc, VIP_GROUP, read_ldif, seed, texts};
use indicatif::ProgressBar;
use lastseen::ad::AdError;
use lastseen::ad::collect::collect_snapshot;
use lastseen::ad::object::ObjectKind;

/// The attributes the seed sets on computers, compared value for value.
const SEEDED_COMPUTER_ATTRIBUTES: &[&str] = &[
    "sAMAccountName",
    "dNSHostName",
    "operatingSystem",
    "operatingSystemVersion",
    "userAccountControl",
    "lastLogonTimestamp",
    "managedBy",
];

fn names(objects: &[lastseen::ad::object::AdObject], kind: ObjectKind) -> BTreeSet<String> {
    objects
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| o.dn.clone())
        .collect()
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn full_collection_equals_the_seed() {
    let dc = TestDc::from_env();
    let config = dc.ad_config(&[ESTATE], "");
    let snapshot = collect_snapshot(&config, &[VIP_GROUP.to_owned()], &ProgressBar::hidden())
        .await
        .unwrap();

    // Every seeded computer, and nothing else, with the seeded values.
    let seeded = seed(&dc);
    let seeded_computers: Vec<_> = seeded
        .iter()
        .filter(|e| e.text("objectClass") == ["computer"])
        .collect();
    assert_eq!(seeded_computers.len(), 11);
    let expected: BTreeSet<String> = seeded_computers.iter().map(|e| e.dn.clone()).collect();
    assert_eq!(names(&snapshot.objects, ObjectKind::Computer), expected);

    for seeded in seeded_computers {
        let object = snapshot.objects.iter().find(|o| o.dn == seeded.dn).unwrap();
        for attribute in SEEDED_COMPUTER_ATTRIBUTES {
            assert_eq!(
                texts(object, attribute),
                seeded.text(attribute),
                "{attribute} of {}",
                seeded.dn
            );
        }
        assert_eq!(object.values("objectGUID").map(<[_]>::len), Some(1));
        assert_eq!(object.values("objectSid").map(<[_]>::len), Some(1));
        assert!(object.usn_changed > 0);
    }

    // GUIDs are distinct: they key the change records.
    let guids: BTreeSet<_> = snapshot.objects.iter().map(|o| o.object_guid).collect();
    assert_eq!(guids.len(), snapshot.objects.len());

    assert_eq!(snapshot.dc.dns_host_name, "dc1.corp.example.test");
    assert_eq!(
        snapshot.dc.default_naming_context,
        "DC=corp,DC=example,DC=test"
    );
    assert_eq!(snapshot.stats.undecodable(), 0);
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn nested_vip_membership_resolves() {
    let dc = TestDc::from_env();
    let config = dc.ad_config(&[ESTATE], "");
    let snapshot = collect_snapshot(&config, &[VIP_GROUP.to_owned()], &ProgressBar::hidden())
        .await
        .unwrap();

    // VIP-Executives holds Bob and VIP-Board; VIP-Board holds Alice and VIP-Assistants, which
    // holds Dave. Carol is only in Staff.
    let people = |cn: &str| format!("CN={cn},OU=People,{ESTATE}");
    let group = |cn: &str| format!("CN={cn},OU=Groups,{ESTATE}");
    assert_eq!(
        names(&snapshot.objects, ObjectKind::User),
        [
            people("Alice Lab"),
            people("Bob Direct"),
            people("Dave Deep")
        ]
        .into()
    );
    assert_eq!(
        names(&snapshot.objects, ObjectKind::Group),
        [
            group("VIP-Assistants"),
            group("VIP-Board"),
            group("VIP-Executives")
        ]
        .into()
    );

    // The groups come with their members, so a reader can walk the nesting itself.
    let board = snapshot
        .objects
        .iter()
        .find(|o| o.dn == group("VIP-Board"))
        .unwrap();
    let members: BTreeSet<String> = texts(board, "member").into_iter().collect();
    assert_eq!(
        members,
        [people("Alice Lab"), group("VIP-Assistants")].into()
    );

    let dave = snapshot
        .objects
        .iter()
        .find(|o| o.dn == people("Dave Deep"))
        .unwrap();
    assert_eq!(texts(dave, "memberOf"), [group("VIP-Assistants")]);
    assert_eq!(texts(dave, "userPrincipalName"), ["dave@corp.example.test"]);
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn every_search_is_paged() {
    let dc = TestDc::from_env();
    let config = dc.ad_config(&[ESTATE], "page_size = 3");
    let snapshot = collect_snapshot(&config, &[VIP_GROUP.to_owned()], &ProgressBar::hidden())
        .await
        .unwrap();

    // Each search left with the paged control asking for 3 entries.
    for (label, stats) in &snapshot.stats.searches {
        assert_eq!(stats.requested_page_size, Some(3), "{label}");
        assert!(stats.paged_requests >= 1, "{label}");
    }

    // Samba only pages when asked to: 11 computers in pages of 3 come back as 4 pages, each
    // answered with a paged-results control.
    let (_, computers) = snapshot
        .stats
        .searches
        .iter()
        .find(|(label, _)| label == &format!("computers under {ESTATE}"))
        .unwrap();
    assert_eq!(computers.entries, 11);
    assert_eq!(computers.paged_responses, 4);
    assert_eq!(computers.paged_requests, 4);

    // With the default page size the same search is one page.
    let config = dc.ad_config(&[ESTATE], "");
    let snapshot = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap();
    let (_, computers) = &snapshot.stats.searches[2];
    assert_eq!(computers.requested_page_size, Some(1000));
    assert_eq!((computers.entries, computers.paged_responses), (11, 1));
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn base_dns_limit_what_is_read() {
    let dc = TestDc::from_env();
    let disabled = format!("OU=Disabled Computers,{ESTATE}");
    let workstations = format!("OU=Workstations,{ESTATE}");
    let config = dc.ad_config(
        &[&disabled, &workstations],
        "filter = \"(!(cn=WS-PRESTAGED))\"",
    );
    let snapshot = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap();

    // 5 disabled (two in the sub-OU) and 3 workstations once the filter drops the pre-staged one;
    // no servers, no users or groups without VIP groups.
    let computers = names(&snapshot.objects, ObjectKind::Computer);
    assert_eq!(computers.len(), 8, "{computers:#?}");
    assert!(
        computers
            .iter()
            .all(|dn| dn.ends_with(&disabled) || dn.ends_with(&workstations))
    );
    assert!(computers.contains(&format!("CN=WS-OLD-0099,OU=Retired 2024,{disabled}")));
    assert!(!computers.contains(&format!("CN=WS-PRESTAGED,{workstations}")));
    assert_eq!(snapshot.objects.len(), 8);
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn starttls_reads_the_same_estate() {
    let dc = TestDc::from_env();
    let mut config = dc.ad_config(&[ESTATE], "");
    config.url = dc.starttls_url.clone();
    config.starttls = true;
    config.check().unwrap();

    let snapshot = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(names(&snapshot.objects, ObjectKind::Computer).len(), 11);
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn samba_ca_verifies_and_a_wrong_ca_fails_clearly() {
    let dc = TestDc::from_env();
    let mut config = dc.ad_config(&[ESTATE], "");
    config.ca_file = Some(dc.wrong_ca_file.clone());

    let error = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(matches!(error, AdError::Tls { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("TLS with ldaps://127.0.0.1:636 failed"),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("check ad.ca_file"), "{message}");

    // Without verification the same CA file is ignored, and the run goes through.
    config.insecure_skip_verify = true;
    let snapshot = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(names(&snapshot.objects, ObjectKind::Computer).len(), 11);

    // The right CA verifies (the other tests use it too; here it is the point).
    config.insecure_skip_verify = false;
    config.ca_file = Some(dc.ca_file.clone());
    collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn a_wrong_password_fails_clearly() {
    let dc = TestDc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("password");
    std::fs::write(&wrong, "Not-The-Passw0rd\n").unwrap();
    let mut config = dc.ad_config(&[ESTATE], "");
    config.password_file = Some(wrong);

    let error = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(matches!(error, AdError::Bind { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("bind as {:?} failed", dc.bind_dn)),
        "{message}"
    );
    assert!(message.contains("invalidCredentials (rc=49)"), "{message}");
    assert!(
        message.contains("check ad.bind_dn and the password"),
        "{message}"
    );
    assert!(!message.contains("Not-The-Passw0rd"), "{message}");
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn a_missing_base_dn_or_vip_group_fails_clearly() {
    let dc = TestDc::from_env();
    let missing = "OU=Nowhere,DC=corp,DC=example,DC=test";
    let config = dc.ad_config(&[missing], "");
    let error = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AdError::BaseDn { .. }), "{error:?}");
    assert!(
        message.contains(missing) && message.contains("noSuchObject (rc=32)"),
        "{message}"
    );
    assert!(message.contains("check ad.base_dns"), "{message}");

    let other_domain = dc.ad_config(&["OU=x,DC=elsewhere,DC=test"], "");
    let error = collect_snapshot(&other_domain, &[], &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not in the domain dc1.corp.example.test serves")
    );

    // A VIP group that does not exist would silently drop VIP protection: it is an error.
    let config = dc.ad_config(&[ESTATE], "");
    let ghost = format!("CN=VIP-Ghosts,OU=Groups,{ESTATE}");
    let error = collect_snapshot(
        &config,
        std::slice::from_ref(&ghost),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!("policy.vip_groups: {ghost:?} cannot be read")),
        "{message}"
    );
}

#[test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
fn the_command_writes_ldif_that_reads_back() {
    let dc = TestDc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lastseen.toml");
    std::fs::write(
        &config,
        format!(
            "[inputs]\nldif = [\"ad/corp.ldif\"]\n[policy]\nvip_groups = [{VIP_GROUP:?}]\n{}",
            dc.ad_section(&[ESTATE], "")
        ),
    )
    .unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lastseen"))
        .args(["collect", "ad", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Directory collected.") && stderr.contains("computers=11"),
        "{stderr}"
    );
    let password = std::fs::read_to_string(&dc.password_file).unwrap();
    assert!(
        !stderr.contains(password.trim()),
        "the password reached the log"
    );

    // The LDIF went to inputs.ldif[0], resolved against the config's folder.
    let text = std::fs::read_to_string(dir.path().join("ad/corp.ldif")).unwrap();
    assert!(!text.starts_with("version"));
    assert!(
        text.lines().all(|line| line.len() <= 76),
        "a line is longer than 76 columns"
    );
    let entries = read_ldif(&text);
    assert_eq!(entries.len(), 17);

    let kiosk = entries
        .iter()
        .find(|e| e.dn.starts_with("CN=KIOSK-LOBBY-TERMINAL-07,"))
        .unwrap();
    assert_eq!(kiosk.text("sAMAccountName"), ["KIOSK-LOBBY-TER$"]);
    assert_eq!(
        kiosk.text("dNSHostName"),
        ["kiosk-lobby-terminal-07.corp.example.test"]
    );
    assert_eq!(kiosk.attributes["objectguid"][0].len(), 16);
    assert_eq!(
        kiosk.attributes["objectsid"][0][0], 1,
        "a SID starts with revision 1"
    );
    assert!(
        text.contains("\nobjectGUID:: "),
        "objectGUID is written base64"
    );
}
