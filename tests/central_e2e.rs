//! End to end: the demo estate served by the Central simulator, collected with
//! `lastseen collect central`, then correlated with `lastseen run` against the demo LDIF. The
//! candidates must be the reviewed ones in `fixtures/expected/`, however the pages were cut.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lastseen::central::simulator::{Estate, Faults, Simulator, SimulatorConfig};
use serde_json::Value;

const FIELD_SERVICES: &str = "9e3c7a15-4b2f-4d8e-a6c0-1f5e9b3d7a22";

/// The demo config for a collection from the simulator.
fn write_config(dir: &Path, sim: &Simulator) -> PathBuf {
    let config = common::demo_config_for_simulator(dir, sim);
    let path = dir.join("lastseen.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

async fn lastseen(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_lastseen"))
            .args(&args)
            .env_remove("LASTSEEN_CENTRAL_CLIENT_ID")
            .env_remove("LASTSEEN_CENTRAL_CLIENT_SECRET")
            .env_remove("LASTSEEN_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn candidates(text: &str) -> BTreeSet<String> {
    // Parsed and printed again, so that only content counts, not key order or spacing.
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str::<Value>(line).unwrap().to_string())
        .collect()
}

async fn collect_and_run(faults: Faults) -> (Output, Output, PathBuf, tempfile::TempDir) {
    let estate = Estate::load(&common::demo()).unwrap();
    assert_eq!(estate.tenants.len(), 3);
    assert_eq!(estate.endpoint_count(), 51);
    let config = SimulatorConfig {
        faults,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(estate, config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim).display().to_string();
    let collected = lastseen(vec![
        "collect".into(),
        "central".into(),
        "--config".into(),
        config.clone(),
    ])
    .await;
    sim.stop().await;

    let ran = lastseen(vec!["run".into(), "--config".into(), config]).await;
    let path = dir.path().join("candidates.jsonl");
    (collected, ran, path, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_then_run_gives_the_reviewed_candidates() {
    // Throttling on the way, and pages of 7 where the fixture has 20 and 50.
    let faults = Faults {
        throttle_every: 6,
        throttle_burst: 1,
        ..Faults::default()
    };
    let (collected, ran, output, dir) = collect_and_run(faults).await;

    let stderr = String::from_utf8_lossy(&collected.stderr);
    assert_eq!(collected.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("collected 51 endpoints in 8 pages from 3 of 3 tenants"),
        "{stderr}"
    );
    assert!(
        dir.path()
            .join("collected")
            .join(FIELD_SERVICES)
            .join("page-00001.json")
            .exists()
    );
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );

    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/expected/demo-candidates.jsonl"),
    )
    .unwrap();
    let got = std::fs::read_to_string(output).unwrap();
    assert_eq!(candidates(&got), candidates(&expected));
    assert_eq!(candidates(&got).len(), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_could_not_be_collected_gets_no_candidates() {
    let faults = Faults {
        forbidden_tenants: vec![FIELD_SERVICES.to_owned()],
        ..Faults::default()
    };
    let (collected, ran, output, _dir) = collect_and_run(faults).await;

    assert_eq!(
        collected.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&collected.stderr)
    );
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(FIELD_SERVICES),
        "the incomplete tenant is reported: {stderr}"
    );

    // The other tenants' candidates are untouched; the forbidden tenant has none at all, and
    // above all no `delete` from a snapshot that never arrived.
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/expected/demo-candidates.jsonl"),
    )
    .unwrap();
    let others: BTreeSet<String> = candidates(&expected)
        .into_iter()
        .filter(|line| !line.contains(FIELD_SERVICES))
        .collect();
    let got = candidates(&std::fs::read_to_string(output).unwrap());
    assert!(others.len() < 19);
    assert_eq!(got, others);
}
