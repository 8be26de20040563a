//! The `lastseen` binary as a user runs it: exit codes, what goes to standard output and what
//! to standard error.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn lastseen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lastseen"))
        .args(args)
        .env_remove("LASTSEEN_CONFIG")
        .env_remove("LASTSEEN_LOG")
        .env_remove("LASTSEEN_KAFKA_BROKERS")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_without_config_prints_the_demo_candidates_and_a_summary() {
    let output = lastseen(&["run"]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 19);
    for line in stdout.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["event_type"], "lastseen.candidate");
    }

    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("candidates: 19 (delete 8, manual_review 11)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("left out: 1 already deleted, 1 under an open ticket"),
        "{stderr}"
    );
    assert!(stderr.contains("vip_user                 2"), "{stderr}");
}

#[test]
fn rejects_are_listed_and_written_with_their_raw_record() {
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.jsonl");
    std::fs::write(
        &actions,
        "{\"at\": \"2026-11-20\", \"action\": \"deleted\", \"tenant_id\": \"t\", \"endpoint_id\": \"e\"}\n",
    )
    .unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let config = dir.path().join("lastseen.toml");
    let original = std::fs::read_to_string(demo.join("lastseen.toml")).unwrap();
    let config_text = original
        .replace(
            "central = [\"central\"]",
            &format!("central = [{:?}]", demo.join("central")),
        )
        .replace(
            "ldif = [\"ad/corp.ldif\", \"ad/lab.ldif\"]",
            &format!("ldif = [{:?}]", demo.join("ad/corp.ldif")),
        );
    std::fs::write(&config, config_text).unwrap();

    let rejects = dir.path().join("rejects.jsonl");
    let config_arg = config.to_str().unwrap();
    let output = lastseen(&[
        "run",
        "-c",
        config_arg,
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("actions.jsonl: line 1: field at:"),
        "{stderr}"
    );
    assert!(stderr.contains("rejected: 1 records"), "{stderr}");

    let written = std::fs::read_to_string(&rejects).unwrap();
    let reject: serde_json::Value = serde_json::from_str(written.trim()).unwrap();
    assert_eq!(reject["input"], "actions");
    assert_eq!(reject["field"], "at");
    assert_eq!(reject["tenant_id"], "t");
    assert!(reject["raw"].as_str().unwrap().contains("2026-11-20"));

    // A rejected action line is about tenant t only, so the demo's other tenants keep deletes.
    let stdout = text(&output.stdout);
    assert!(stdout.contains("\"decision\":\"delete\""));
}

#[test]
fn sql_answers_from_the_tables_of_a_run() {
    let query =
        "SELECT decision, count(*) AS n FROM candidates GROUP BY decision ORDER BY decision";
    let output = lastseen(&["sql", query]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("| delete        | 8  |"), "{stdout}");
    assert!(stdout.contains("| manual_review | 11 |"), "{stdout}");

    // Several statements from standard input, one table each.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lastseen"))
        .args(["-q", "sql"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS vips FROM vip_members;\nSELECT count(*) AS retired FROM retired_computers;")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    // VIP Users, Finance Leads, Board, Board Assistants, jnovak and Grace Okonkwo.
    assert!(stdout.contains("| 6    |"), "{stdout}");
    // 19 computers below the corp Disabled OU (two in its 2026 sub-OU) and 4 in lab's.
    assert!(stdout.contains("| 23      |"), "{stdout}");
}

#[test]
fn sql_errors_name_the_statement() {
    let output = lastseen(&["sql", "SELECT nope FROM candidates"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("SELECT nope FROM candidates"), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
}

#[test]
fn a_generated_estate_runs_and_never_deletes_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = lastseen(&[
        "generate",
        "--endpoints",
        "5000",
        "--tenants",
        "3",
        "--seed",
        "11",
        "--out",
        out,
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("wrote 5000 endpoints in 12 page files"));

    let config = dir.path().join("lastseen.toml");
    let output = lastseen(&["run", "--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let candidates = std::fs::read_to_string(dir.path().join("candidates.jsonl")).unwrap();

    let mut decisions = std::collections::BTreeMap::new();
    for line in candidates.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let decision = event["decision"].as_str().unwrap().to_owned();
        let reasons = event["reasons"].as_array().unwrap();
        assert_eq!(decision == "delete", reasons.is_empty(), "{line}");
        match event["days_inactive"].as_i64() {
            Some(days) => assert!(days >= 30, "{line}"),
            None => assert!(reasons.iter().any(|r| r == "last_seen_unknown"), "{line}"),
        }
        *decisions.entry(decision).or_insert(0) += 1;
    }
    // About a fifth of 5,000 machines are retired and most of those long gone.
    let deletes = decisions.get("delete").copied().unwrap_or(0);
    let reviews = decisions.get("manual_review").copied().unwrap_or(0);
    assert!((400..900).contains(&deletes), "{decisions:?}");
    assert!((50..400).contains(&reviews), "{decisions:?}");
}

#[test]
fn a_config_with_an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lastseen.toml");
    std::fs::write(&config, "[policy]\nmin_inactive = 30\n").unwrap();
    let output = lastseen(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("lastseen.toml"), "{stderr}");
    assert!(stderr.contains("unknown field `min_inactive`"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn every_command_explains_itself() {
    for (command, phrase) in [
        (vec!["--help"], "candidate-deletion events"),
        (vec!["run", "--help"], "built into the binary"),
        (vec!["sql", "--help"], "memberships"),
        (vec!["generate", "--help"], "same seed"),
        (
            vec!["collect", "central", "--help"],
            "<prefix>.central.endpoints",
        ),
        (vec!["collect", "ad", "--help"], "<prefix>.ad.changes"),
    ] {
        let output = lastseen(&command);
        assert!(output.status.success());
        let stdout = text(&output.stdout);
        assert!(stdout.contains(phrase), "{command:?}: {stdout}");
    }
}

/// Flags that cannot work together are refused before anything is read: no directory is
/// contacted (the `[ad]` URL is a closed port on 127.0.0.1 anyway).
#[test]
fn collect_ad_refuses_flags_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lastseen.toml");
    std::fs::write(
        &config,
        "[ad]\nurl = \"ldaps://127.0.0.1:1\"\nbase_dns = [\"DC=corp,DC=test\"]\n\
         bind_dn = \"svc@corp.test\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    for (args, message) in [
        (
            vec!["--to", "kafka", "--out", "ad.ldif"],
            "ad.ldif names a file, but --to kafka writes none",
        ),
        (
            vec!["--to", "kafka", "--changes", "changes.jsonl"],
            "changes.jsonl names a file, but --to kafka writes none",
        ),
        (vec!["--full"], "--full needs --changes or --to kafka"),
        (vec!["--to", "kafka"], "no Kafka brokers: give --brokers"),
    ] {
        let mut command = vec!["collect", "ad", "--config", config];
        command.extend(&args);
        let output = lastseen(&command);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn collect_central_to_kafka_needs_brokers_and_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lastseen.toml");
    std::fs::write(
        &config,
        "[central]\nclient_id = \"id\"\nauth_url = \"http://127.0.0.1:1/token\"\n\
         global_url = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    for (args, message) in [
        (vec!["--to", "kafka"], "no Kafka brokers: give --brokers"),
        (
            vec![
                "--to",
                "kafka",
                "--brokers",
                "127.0.0.1:1",
                "--out",
                "pages",
            ],
            "--out pages names a folder, but --to kafka writes no files",
        ),
        (
            vec!["--to", "pulsar"],
            "invalid value 'pulsar' for '--to <WHERE>'",
        ),
    ] {
        let mut command = vec!["collect", "central", "--config", config];
        command.extend(&args);
        let output = Command::new(env!("CARGO_BIN_EXE_lastseen"))
            .args(&command)
            .env("LASTSEEN_CENTRAL_CLIENT_SECRET", "not-used")
            .env_remove("LASTSEEN_KAFKA_BROKERS")
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
