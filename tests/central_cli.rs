//! The `lastseen collect central` and `lastseen simulate central` commands as a user runs them:
//! the real binary, a config file, credentials from a file or the environment, exit statuses.

mod central_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use central_support::*;
use lastseen::central::simulator::{Faults, SimulatorConfig};

const BINARY: &str = env!("CARGO_BIN_EXE_lastseen");

/// A config next to a secret file, pointing at the simulator at `base`.
fn write_config(dir: &Path, base: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("secret.txt"), "simulator-secret\n").unwrap();
    let config = format!(
        r#"
[inputs]
central = ["central"]

[central]
client_id = "lastseen-simulator"
client_secret_file = "secret.txt"
auth_url = "{base}/api/v2/oauth2/token"
global_url = "{base}"
concurrency = 2
page_size = 7
retry_base_delay_ms = 5
"#
    );
    let path = dir.join("lastseen.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn lastseen(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("LASTSEEN_CENTRAL_CLIENT_ID")
        .env_remove("LASTSEEN_CENTRAL_CLIENT_SECRET")
        .env_remove("LASTSEEN_CONFIG")
        .env("LASTSEEN_LOG", "lastseen=info");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the binary off the async runtime so the in-process simulator keeps serving.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = lastseen(args, env);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_then_files_match_the_estate_and_exit_0() {
    let sim = start(3, 40, SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), sim.base_url());

    let output = run(
        &["collect", "central", "--config", config.to_str().unwrap()],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("collected 120 endpoints in 18 pages from 3 of 3 tenants"),
        "{stderr}"
    );
    assert!(!stderr.contains("simulator-secret"), "{stderr}");

    let collected = read_collected(&dir.path().join("central"));
    assert_eq!(collected.manifests.len(), 3);
    for index in 0..3 {
        assert_exact(&sim, &collected, &tenant_id(index));
        assert_eq!(collected.pages[&tenant_id(index)], 6);
        assert_eq!(collected.manifests[&tenant_id(index)]["complete"], true);
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_tenant_makes_the_exit_status_2() {
    let faults = Faults {
        forbidden_tenants: vec![tenant_id(2)],
        ..Faults::default()
    };
    let sim = start(
        3,
        10,
        SimulatorConfig {
            faults,
            ..SimulatorConfig::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), sim.base_url());
    let out = dir.path().join("elsewhere");

    let args = [
        "collect",
        "central",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let output = run(&args, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("incomplete: tenant {} (T2)", tenant_id(2))),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 403"), "{stderr}");

    let collected = read_collected(&out);
    assert_eq!(collected.manifests[&tenant_id(2)]["complete"], false);
    assert_eq!(collected.manifests[&tenant_id(0)]["complete"], true);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_environment_win_and_never_print() {
    let sim = start(1, 3, SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), sim.base_url());

    let env = [("LASTSEEN_CENTRAL_CLIENT_SECRET", "env-secret-that-is-wrong")];
    let output = run(
        &["collect", "central", "--config", config.to_str().unwrap()],
        &env,
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("oauth.invalid_client_secret"), "{stderr}");
    assert!(!stderr.contains("env-secret-that-is-wrong"), "{stderr}");
    assert!(!dir.path().join("central").exists());

    let output = run(&["collect", "central", "--out", "/nonexistent"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("LASTSEEN_CENTRAL_CLIENT_ID"), "{stderr}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_serves_collected_pages_back() {
    // Collect from an in-process simulator, then serve those pages with the binary and
    // collect them again: the second collection equals the first.
    let sim = start(2, 30, SimulatorConfig::default()).await;
    let first = tempfile::tempdir().unwrap();
    let config = write_config(first.path(), sim.base_url());
    let output = run(
        &["collect", "central", "--config", config.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    let original = read_collected(&first.path().join("central"));
    sim.stop().await;

    let estate = first.path().to_str().unwrap().to_owned();
    let mut server = lastseen(
        &[
            "simulate",
            "central",
            "--estate",
            &estate,
            "--listen",
            "127.0.0.1:0",
            "--latency-ms",
            "1",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let second = tempfile::tempdir().unwrap();
    let config = write_config(second.path(), &base);
    let output = run(
        &["collect", "central", "--config", config.to_str().unwrap()],
        &[],
    )
    .await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let again = read_collected(&second.path().join("central"));
    assert_eq!(again.ids, original.ids);
    assert_eq!(again.pages, original.pages);
    // Recorded pages carry no tenant list, so the names come from the manifests.
    assert_eq!(again.manifests[&tenant_id(1)]["tenant_name"], "T1");
}

#[test]
fn help_explains_the_commands() {
    let output = lastseen(&["collect", "central", "--help"], &[])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("LASTSEEN_CENTRAL_CLIENT_SECRET"), "{help}");
    assert!(help.contains("--concurrency"), "{help}");

    let output = lastseen(&["simulate", "central", "--help"], &[])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--estate",
        "--latency-ms",
        "--throttle-every",
        "--retry-after",
        "--forbidden-tenant",
    ] {
        assert!(help.contains(flag), "{flag} missing: {help}");
    }

    let output = lastseen(
        &[
            "simulate",
            "central",
            "--estate",
            ".",
            "--listen",
            "0.0.0.0:0",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}
