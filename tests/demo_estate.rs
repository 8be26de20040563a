//! The demo estate in fixtures/demo exercises every rule of the policy; these tests pin what
//! each of its endpoints must come out as, and what bad input must do to the decisions.

use std::path::{Path, PathBuf};

use lastseen::output::CandidateEvent;
use lastseen::run::{self, Report, Setup};

const CORP_HQ: &str = "d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10";
const LABS: &str = "5b1f0c3e-8a2d-4e6f-9c71-2d4b6a8e0f13";
const FIELD: &str = "9e3c7a15-4b2f-4d8e-a6c0-1f5e9b3d7a22";

/// (tenant, hostname, decision, reasons, days inactive).
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<i64>,
);

/// The same, owned, as taken from events.
type Row = (String, String, String, Vec<String>, Option<i64>);

/// Every candidate of the demo, worked out by hand from the fixture files.
const EXPECTED: &[Expected] = &[
    // Long gone, builds agree, nobody special: the plain delete.
    (CORP_HQ, "CORP-LT-0101", "delete", &[], Some(76)),
    // Exactly 30 days, in a sub-OU of the Disabled OU: still a candidate.
    (CORP_HQ, "CORP-LT-0102", "delete", &[], Some(30)),
    (
        CORP_HQ,
        "CORP-LT-0104",
        "manual_review",
        &["os_build_mismatch"],
        Some(92),
    ),
    (
        CORP_HQ,
        "CORP-LT-0105",
        "manual_review",
        &["os_build_unknown"],
        Some(89),
    ),
    // jnovak is in Finance Leads, which is inside VIP Users.
    (
        CORP_HQ,
        "CORP-LT-0106",
        "manual_review",
        &["vip_user"],
        Some(134),
    ),
    // managedBy is Grace Okonkwo, in Board Assistants inside Board inside VIP Users (a cycle).
    (
        CORP_HQ,
        "CORP-LT-0107",
        "manual_review",
        &["vip_user"],
        Some(60),
    ),
    // A re-imaged desktop left two endpoints behind.
    (
        CORP_HQ,
        "CORP-DT-0108",
        "manual_review",
        &["duplicate_hostname"],
        Some(172),
    ),
    (
        CORP_HQ,
        "CORP-DT-0108",
        "manual_review",
        &["duplicate_hostname"],
        Some(41),
    ),
    // Its ticket was opened and then closed.
    (CORP_HQ, "CORP-LT-0111", "delete", &[], Some(119)),
    (
        CORP_HQ,
        "CORP-LT-0112",
        "manual_review",
        &["previous_delete_failed"],
        Some(118),
    ),
    (
        CORP_HQ,
        "CORP-LT-0113",
        "manual_review",
        &["last_seen_unknown"],
        None,
    ),
    // 16 characters in Central, cut to 15 in AD.
    (CORP_HQ, "LAPTOP-FINANCE01", "delete", &[], Some(63)),
    // Its 15-character prefix is retired, its full name is a live computer.
    (
        CORP_HQ,
        "LAPTOP-ENGINEER07",
        "manual_review",
        &["multiple_computers"],
        Some(79),
    ),
    // Lower case in Central, upper case in AD.
    (CORP_HQ, "corp-lt-0117", "delete", &[], Some(46)),
    // AD has no operatingSystemVersion for it.
    (
        LABS,
        "LAB-WS-0304",
        "manual_review",
        &["os_build_unknown"],
        Some(82),
    ),
    // An unmapped tenant: the domain comes from the FQDN, the NetBIOS logon, the UPN.
    (
        FIELD,
        "corp-srv-0201.corp.example.test",
        "delete",
        &[],
        Some(107),
    ),
    (
        FIELD,
        "CORP-LT-0114",
        "manual_review",
        &["domain_unknown"],
        Some(90),
    ),
    (FIELD, "LAB-WS-0301", "delete", &[], Some(71)),
    (FIELD, "LAB-WS-0302", "delete", &[], Some(70)),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn summary_of(events: &[CandidateEvent]) -> Vec<Row> {
    let mut rows: Vec<_> = events
        .iter()
        .map(|event| {
            (
                event.tenant_id.clone().unwrap_or_default(),
                event.hostname.clone().unwrap_or_default(),
                event.decision.clone(),
                event.reasons.clone(),
                event.days_inactive,
            )
        })
        .collect();
    rows.sort();
    rows
}

fn expected() -> Vec<Row> {
    let mut rows: Vec<_> = EXPECTED
        .iter()
        .map(|(tenant, host, decision, reasons, days)| {
            let reasons = reasons.iter().map(|r| r.to_string()).collect();
            (
                tenant.to_string(),
                host.to_string(),
                decision.to_string(),
                reasons,
                *days,
            )
        })
        .collect();
    rows.sort();
    rows
}

async fn run_config(config: &Path, dir: &Path) -> Report {
    let output = dir.join("candidates.jsonl");
    run::run(&Setup::File(config.to_owned()), None, Some(&output), None)
        .await
        .unwrap()
}

/// A copy of the demo estate in a temporary folder, to be broken in one place.
fn copy_demo() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixtures().join("demo"), dir.path());
    dir
}

/// How many candidates of a report are decided `delete`.
fn deletes(report: &Report) -> usize {
    report
        .events
        .iter()
        .filter(|e| e.decision == "delete")
        .count()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test]
async fn the_built_in_demo_gives_the_worked_out_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("candidates.jsonl");
    let report = run::run(&Setup::Demo, None, Some(&output), None)
        .await
        .unwrap();

    assert_eq!(summary_of(&report.events), expected());
    assert!(report.rejects.is_empty());
    assert_eq!(
        report.summary.left_out_deleted, 1,
        "CORP-LT-0109 was deleted"
    );
    assert_eq!(
        report.summary.left_out_ticket, 1,
        "CORP-LT-0110 has an open ticket"
    );
    assert_eq!(
        report.summary.left_out_recent, 2,
        "CORP-LT-0103 (29 days) and CORP-LT-0116"
    );

    // Every field of every event, against the reviewed golden file; event ids included, since
    // downstream deduplication depends on them staying put.
    let written = std::fs::read_to_string(&output).unwrap();
    let golden =
        std::fs::read_to_string(fixtures().join("expected/demo-candidates.jsonl")).unwrap();
    assert_eq!(written, golden);
}

#[tokio::test]
async fn the_demo_on_disk_gives_the_same_candidates_as_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_config(&fixtures().join("demo/lastseen.toml"), dir.path()).await;
    assert_eq!(summary_of(&report.events), expected());
}

#[tokio::test]
async fn a_later_as_of_moves_the_boundary_and_keeps_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let before: chrono::DateTime<chrono::Utc> = "2026-11-30T23:59:59.999Z".parse().unwrap();
    let early = run::run(&Setup::Demo, Some(before), Some(&output), None)
        .await
        .unwrap();
    let normal = run::run(&Setup::Demo, None, Some(&output), None)
        .await
        .unwrap();

    // One millisecond earlier, CORP-LT-0102 has been away 29 days, not 30.
    let hosts = |report: &Report| -> Vec<String> {
        report
            .events
            .iter()
            .filter_map(|e| e.hostname.clone())
            .collect()
    };
    assert!(!hosts(&early).contains(&"CORP-LT-0102".to_owned()));
    assert!(hosts(&normal).contains(&"CORP-LT-0102".to_owned()));
    assert_eq!(early.events.len() + 1, normal.events.len());

    // The same facts keep the same id whatever the day of the run.
    for event in &early.events {
        let same = normal
            .events
            .iter()
            .find(|e| e.endpoint_id == event.endpoint_id)
            .unwrap();
        assert_eq!(event.event_id, same.event_id, "{:?}", event.hostname);
    }
}

#[tokio::test]
async fn ignoring_unknown_builds_lets_those_candidates_be_deleted() {
    let demo = copy_demo();
    let config = demo.path().join("lastseen.toml");
    edit(
        &config,
        "unknown_os_build = \"manual_review\"",
        "unknown_os_build = \"ignore\"",
    );

    let report = run_config(&config, demo.path()).await;
    let decision = |host: &str| {
        report
            .events
            .iter()
            .find(|e| e.hostname.as_deref() == Some(host))
            .unwrap()
            .decision
            .clone()
    };
    assert_eq!(decision("CORP-LT-0105"), "delete");
    assert_eq!(decision("LAB-WS-0304"), "delete");
    assert_eq!(
        decision("CORP-LT-0104"),
        "manual_review",
        "a real mismatch still holds it"
    );
}

#[tokio::test]
async fn a_bad_central_record_holds_back_its_tenant_only() {
    let demo = copy_demo();
    let page = demo.path().join(format!("central/{FIELD}/page-00001.json"));
    edit(
        &page,
        "\"lastSeenAt\": \"2026-09-20T08:00:00.000Z\"",
        "\"lastSeenAt\": \"2026-09-20 08:00\"",
    );

    let report = run_config(&demo.path().join("lastseen.toml"), demo.path()).await;
    assert_eq!(report.rejects.len(), 1);
    let reject = &report.rejects[0];
    assert_eq!(reject.field.as_deref(), Some("lastSeenAt"));
    assert_eq!(reject.record, "item 3 of the page");
    assert_eq!(reject.tenant_id.as_deref(), Some(FIELD));
    assert!(
        reject
            .file
            .ends_with(&format!("central/{FIELD}/page-00001.json"))
    );

    for event in &report.events {
        let held = event.reasons.contains(&"incomplete_input".to_owned());
        assert_eq!(
            held,
            event.tenant_id.as_deref() == Some(FIELD),
            "{:?}",
            event.hostname
        );
        if held {
            assert_eq!(event.decision, "manual_review");
        }
    }
    // The rejected endpoint itself is gone; the other tenants keep their five deletes.
    assert!(
        !report
            .events
            .iter()
            .any(|e| e.hostname.as_deref() == Some("LAB-WS-0301"))
    );
    assert_eq!(deletes(&report), 5);
}

#[tokio::test]
async fn an_incomplete_collection_holds_back_its_tenant() {
    let demo = copy_demo();
    let manifest = demo.path().join(format!("central/{LABS}/manifest.json"));
    edit(
        &manifest,
        "\"complete\": true",
        "\"complete\": false, \"error\": \"HTTP 503 on page 2\"",
    );

    let report = run_config(&demo.path().join("lastseen.toml"), demo.path()).await;
    let lab = report
        .events
        .iter()
        .find(|e| e.hostname.as_deref() == Some("LAB-WS-0304"))
        .unwrap();
    assert_eq!(lab.reasons, ["os_build_unknown", "incomplete_input"]);
    assert!(report.rejects[0].problem.contains("HTTP 503 on page 2"));
    assert_eq!(deletes(&report), 8);
}

#[tokio::test]
async fn a_bad_directory_entry_or_action_line_holds_back_every_delete() {
    // A user entry that does not decode could be a VIP; an action line that does not parse
    // could be an open ticket. Neither names a tenant, so no delete anywhere.
    let demo = copy_demo();
    edit(
        &demo.path().join("ad/corp.ldif"),
        "sAMAccountName: fgarcia",
        "sAMAccountName:: ###",
    );
    let report = run_config(&demo.path().join("lastseen.toml"), demo.path()).await;
    assert_eq!(report.rejects.len(), 1);
    assert_eq!(report.rejects[0].field.as_deref(), Some("sAMAccountName"));
    assert!(report.events.iter().all(|e| e.decision == "manual_review"));
    assert!(
        report
            .events
            .iter()
            .all(|e| e.reasons.contains(&"incomplete_input".to_owned()))
    );

    let demo = copy_demo();
    let actions = demo.path().join("actions.jsonl");
    let mut text = std::fs::read_to_string(&actions).unwrap();
    text.push_str("{\"at\": \"2026-11-20T10:00:00Z\", \"action\": \"ticket_opened\"\n");
    std::fs::write(&actions, text).unwrap();
    let report = run_config(&demo.path().join("lastseen.toml"), demo.path()).await;
    assert_eq!(report.rejects[0].record, "line 6");
    assert!(report.events.iter().all(|e| e.decision == "manual_review"));
    assert_eq!(report.events.len(), EXPECTED.len());
}

#[tokio::test]
async fn a_missing_input_stops_the_run_and_names_it() {
    let demo = copy_demo();
    std::fs::remove_file(demo.path().join("ad/lab.ldif")).unwrap();
    let setup = Setup::File(demo.path().join("lastseen.toml"));
    let error = run::run(&setup, None, Some(&demo.path().join("o")), None)
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.ends_with("ad/lab.ldif: no such file or directory"),
        "{message}"
    );
}
