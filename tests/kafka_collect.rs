//! The collectors straight onto Kafka, against the real parts: the Central simulator over HTTP
//! on 127.0.0.1, `lastseen collect central --to kafka` (the binary) into tansu, `correlate`
//! from there, and the candidates read back from the SIEM topic by a separate consumer; the
//! same collection into files and `lastseen run` must decide alike. Start the broker first:
//! `eval "$(tests/services/tansu.sh up)"`. The `collect ad --to kafka` test also needs the
//! Samba DC of `tests/services/samba.sh`.

mod common;
mod kafka_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kafka_support::*;
use lastseen::bus::KafkaConfig;
use lastseen::bus::records::{CentralRecord, decode_ad, decode_central};
use lastseen::central::simulator::{Estate, Faults, Simulator, SimulatorConfig};
use lastseen::inputs::InputPlan;
use serde_json::Value;

const FIELD_SERVICES: &str = "9e3c7a15-4b2f-4d8e-a6c0-1f5e9b3d7a22";

/// The demo config for a collection, with a `[central]` section for the simulator and a
/// `[kafka]` section for the test's broker and topics.
fn write_config(dir: &Path, sim: &Simulator, kafka: &KafkaConfig, librdkafka: &str) -> PathBuf {
    let mut config = common::demo_config_for_simulator(dir, sim);
    let sections: toml::Table = toml::from_str(&format!(
        r#"
        [kafka]
        brokers = {:?}
        topic_prefix = "{}"

        [kafka.librdkafka]
        {librdkafka}
        "#,
        kafka.brokers, kafka.topic_prefix,
    ))
    .unwrap();
    config.extend(sections);

    let path = dir.join("lastseen.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

async fn lastseen(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_lastseen"))
            .args(&args)
            .env_remove("LASTSEEN_CENTRAL_CLIENT_ID")
            .env_remove("LASTSEEN_CENTRAL_CLIENT_SECRET")
            .env_remove("LASTSEEN_CONFIG")
            .env_remove("LASTSEEN_KAFKA_BROKERS")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn demo_simulator(faults: Faults) -> Simulator {
    let estate = Estate::load(&common::demo()).unwrap();
    let config = SimulatorConfig {
        faults,
        ..SimulatorConfig::default()
    };
    Simulator::start(estate, config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The demo's directory and action log, which the Central collection does not bring.
fn directory_and_actions() -> InputPlan {
    let demo = lastseen::demo::inputs();
    InputPlan {
        central: Vec::new(),
        ldif: demo.ldif,
        actions: demo.actions,
    }
}

/// Event id to decision.
fn decisions(events: &[Value]) -> BTreeMap<String, String> {
    events
        .iter()
        .map(|event| {
            (
                event_id(event),
                event["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What one run of both paths gave.
struct BothWays {
    collected_to_kafka: Output,
    collected_to_files: Output,
    /// Candidates from the SIEM topic, sorted by event id.
    streamed: Vec<Value>,
    /// Candidates `lastseen run` wrote from the folder, sorted by event id.
    ran: Vec<Value>,
    kafka: KafkaConfig,
}

/// Serves the demo with `faults`, collects it onto Kafka and correlates it there, and collects
/// it into files and runs `lastseen run` on them.
async fn collect_both_ways(faults: Faults) -> BothWays {
    let kafka = fresh_config(&broker()).await;
    let sim = demo_simulator(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, &kafka, "");
    let config = config.to_str().unwrap();

    let collected_to_kafka =
        lastseen(&["collect", "central", "--config", config, "--to", "kafka"]).await;
    let collected_to_files = lastseen(&["collect", "central", "--config", config]).await;
    sim.stop().await;

    publish_plan(&kafka, &directory_and_actions()).await;
    start_correlator(&kafka, true).join().await;
    let records = read_topic(
        &kafka,
        &kafka.topics().candidates,
        1,
        Duration::from_secs(2),
    );
    let streamed = events_of(&records);

    let ran = lastseen(&["run", "--config", config, "--as-of", AS_OF]).await;
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let text = std::fs::read_to_string(dir.path().join("candidates.jsonl")).unwrap();
    let mut ran: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    ran.sort_by_key(event_id);

    BothWays {
        collected_to_kafka,
        collected_to_files,
        streamed,
        ran,
        kafka,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn central_onto_kafka_then_correlate_decides_as_run_does() {
    let both = collect_both_ways(Faults::default()).await;

    let log = stderr(&both.collected_to_kafka);
    assert_eq!(both.collected_to_kafka.status.code(), Some(0), "{log}");
    let topic = both.kafka.topics().central;
    assert!(
        log.contains(&format!(
            "collected 51 endpoints in 8 pages from 3 of 3 tenants into {topic} (54 records \
             acknowledged)"
        )),
        "{log}"
    );
    let files_log = stderr(&both.collected_to_files);
    assert_eq!(
        both.collected_to_files.status.code(),
        Some(0),
        "{files_log}"
    );

    // One record per endpoint, then one marker per tenant, all keyed by their tenant.
    let central = read_topic(&both.kafka, &topic, 54, Duration::from_secs(1));
    assert_eq!(central.len(), 54);
    let mut per_tenant: BTreeMap<String, (u64, Option<u64>)> = BTreeMap::new();
    for record in &central {
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        match decode_central(record.payload.as_deref().unwrap()).unwrap() {
            CentralRecord::Endpoint { tenant_id, .. } => {
                assert_eq!(tenant_id, key);
                per_tenant.entry(key).or_default().0 += 1;
            }
            CentralRecord::SnapshotComplete(marker) => {
                assert_eq!(marker.tenant_id, key);
                assert!(marker.complete, "{marker:?}");
                per_tenant.entry(key).or_default().1 = Some(marker.endpoints);
            }
        }
    }
    let counts: Vec<(u64, Option<u64>)> = per_tenant.values().copied().collect();
    // Labs, Field Services and Corp HQ, in tenant id order.
    assert_eq!(counts, [(11, Some(11)), (5, Some(5)), (35, Some(35))]);

    // The same candidates, event for event, as `run` on the same collection, and those are
    // the reviewed demo candidates.
    assert_eq!(both.streamed.len(), 19);
    assert_eq!(decisions(&both.streamed), decisions(&both.ran));
    assert_eq!(both.streamed, both.ran);
    assert_eq!(both.streamed, expected_events().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn a_tenant_central_refuses_is_marked_incomplete_on_the_topic() {
    let faults = Faults {
        forbidden_tenants: vec![FIELD_SERVICES.to_owned()],
        ..Faults::default()
    };
    let both = collect_both_ways(faults).await;
    let log = stderr(&both.collected_to_kafka);
    assert_eq!(both.collected_to_kafka.status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!("incomplete: tenant {FIELD_SERVICES}")),
        "{log}"
    );

    // Field Services' snapshot is empty and says why.
    let topic = both.kafka.topics().central;
    let central = read_topic(&both.kafka, &topic, 11 + 35 + 3, Duration::from_secs(1));
    assert_eq!(central.len(), 11 + 35 + 3);
    let markers: Vec<_> = central
        .iter()
        .filter_map(
            |record| match decode_central(record.payload.as_deref()?).ok()? {
                CentralRecord::SnapshotComplete(marker) => Some(marker),
                CentralRecord::Endpoint { .. } => None,
            },
        )
        .collect();
    assert_eq!(markers.len(), 3);
    let field = markers
        .iter()
        .find(|marker| marker.tenant_id == FIELD_SERVICES)
        .unwrap();
    assert!(!field.complete);
    assert_eq!(field.endpoints, 0);
    let error = field.error.as_deref().unwrap_or_default();
    assert!(error.contains("403"), "{error}");
    assert!(markers.iter().filter(|m| m.complete).count() == 2);

    // Both paths leave the tenant out and agree on everyone else.
    assert!(!both.streamed.is_empty());
    assert!(both.streamed.len() < 19);
    assert!(
        both.streamed
            .iter()
            .all(|e| e["tenant_id"] != FIELD_SERVICES)
    );
    assert_eq!(decisions(&both.streamed), decisions(&both.ran));
    assert_eq!(both.streamed, both.ran);
}

/// `collect central --to kafka` against `kafka`, with records given up after 3 s.
async fn collect_undeliverable(kafka: &KafkaConfig) -> String {
    let sim = demo_simulator(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, kafka, "\"message.timeout.ms\" = \"3000\"");

    let started = std::time::Instant::now();
    let output = lastseen(&[
        "collect",
        "central",
        "--config",
        config.to_str().unwrap(),
        "--to",
        "kafka",
    ])
    .await;
    sim.stop().await;

    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(started.elapsed() < Duration::from_secs(60), "{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn an_undeliverable_record_fails_the_collection_and_names_the_topic() {
    // Topics nobody created, on the running broker.
    let mut missing = KafkaConfig::new(vec![broker()]);
    missing.topic_prefix = format!(
        "missing-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let log = collect_undeliverable(&missing).await;
    let topic = missing.topics().central;
    assert!(
        log.contains(&format!(
            "lastseen: Kafka at {}: record for topic {topic} (key ",
            broker()
        )),
        "{log}"
    );
    assert!(log.contains("was not delivered"), "{log}");

    // A broker that is not there: a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stopped = KafkaConfig::new(vec![format!("127.0.0.1:{port}")]);
    let log = collect_undeliverable(&stopped).await;
    assert!(
        log.contains(&format!(
            "lastseen: Kafka at 127.0.0.1:{port}: record for topic lastseen.central.endpoints"
        )),
        "{log}"
    );
    assert!(log.contains("was not delivered"), "{log}");
}

/// `collect ad --to kafka` against the Samba DC: the seeded computers, and the users and
/// groups behind the VIP group, land on the AD topic keyed by domain; the state file appears
/// only once the records are acknowledged, and the next run finds nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs samba and tansu: run .ci/run (or tests/services/samba.sh up)"]
async fn directory_onto_kafka_keyed_by_domain() {
    let dc = common::TestDc::from_env();
    let kafka = fresh_config(&broker()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ad-state.json");
    let config = |prefix: &str, librdkafka: &str| {
        let text = format!(
            "[policy]\nvip_groups = [{:?}]\n\n{}state_file = {:?}\n\n[kafka]\nbrokers = [{:?}]\n\
             topic_prefix = {prefix:?}\n\n[kafka.librdkafka]\n{librdkafka}\n",
            common::VIP_GROUP,
            dc.ad_section(&[common::ESTATE], ""),
            state,
            broker(),
        );
        let path = dir.path().join(format!("{prefix}.toml"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    // Topics that do not exist: nothing acknowledged, so no state saved.
    let missing = config("missing-ad", "\"message.timeout.ms\" = \"3000\"");
    let failed = lastseen(&["collect", "ad", "--config", &missing, "--to", "kafka"]).await;
    let log = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{log}");
    assert!(
        log.contains("record for topic missing-ad.ad.changes"),
        "{log}"
    );
    assert!(
        !state.exists(),
        "the state was saved before the records were acknowledged"
    );

    let good = config(&kafka.topic_prefix, "");
    let collected = lastseen(&["collect", "ad", "--config", &good, "--to", "kafka"]).await;
    assert_eq!(collected.status.code(), Some(0), "{}", stderr(&collected));
    assert!(state.exists());

    let topic = kafka.topics().ad;
    let records = read_topic(&kafka, &topic, 17, Duration::from_secs(2));
    let mut computers = BTreeSet::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &records {
        assert_eq!(record.key.as_deref(), Some(&b"corp.example.test"[..]));
        let change = decode_ad(record.payload.as_deref().unwrap()).unwrap();
        assert_eq!(change.domain, "corp.example.test");
        assert_eq!(change.op, lastseen::ad::changes::Op::Upsert);
        *kinds.entry(change.kind.as_str()).or_default() += 1;
        if change.kind == lastseen::ad::object::ObjectKind::Computer {
            computers.insert(change.dn);
        }
    }
    let seeded: BTreeSet<String> = common::seed(&dc)
        .into_iter()
        .filter(|entry| entry.text("objectClass") == ["computer"])
        .map(|entry| entry.dn)
        .collect();
    assert_eq!(computers, seeded);
    assert_eq!(
        kinds,
        BTreeMap::from([("computer", 11), ("group", 3), ("user", 3)])
    );

    // Incremental from the saved state: nothing changed in the estate, nothing goes out.
    let again = lastseen(&["collect", "ad", "--config", &good, "--to", "kafka"]).await;
    let log = stderr(&again);
    assert_eq!(again.status.code(), Some(0), "{log}");
    assert!(log.contains("incremental"), "{log}");
    let records = read_topic(&kafka, &topic, 17, Duration::from_secs(2));
    assert_eq!(records.len(), 17);
}
