//! A broker restart in the middle of a stream loses no candidate, and any candidate sent
//! twice carries the same `event_id`. The test runs a broker of its own (tansu with sqlite
//! storage, so the data survives the restart) through `tests/services/tansu.sh`.

mod kafka_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kafka_support::*;
use lastseen::bus::KafkaConfig;
use lastseen::inputs::{InputPlan, Source};

/// A private broker, stopped and removed when the test ends however it ends.
struct Broker {
    dir: PathBuf,
    address: String,
}

impl Broker {
    fn script(dir: &Path, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/tansu.sh");
        let output = Command::new(script)
            .args(args)
            .env("LASTSEEN_TANSU_DIR", dir)
            .output()
            .expect("run tests/services/tansu.sh");
        assert!(
            output.status.success(),
            "tansu.sh {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn up(dir: PathBuf) -> Broker {
        let out = Broker::script(&dir, &["up", "--sqlite"]);
        let address = out
            .trim()
            .strip_prefix("export LASTSEEN_TEST_KAFKA=")
            .expect("tansu.sh up prints the env line")
            .to_owned();
        Broker { dir, address }
    }

    fn restart(&self) {
        Broker::script(&self.dir, &["restart"]);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        Broker::script(&self.dir, &["down"]);
    }
}

/// The demo's inputs, cut to LDIF, actions and the Central folders that `keep` accepts.
fn demo_part(keep: impl Fn(&str) -> bool, with_directory: bool) -> InputPlan {
    let demo = lastseen::demo::inputs();
    InputPlan {
        central: demo
            .central
            .into_iter()
            .filter(|source: &Source| keep(&source.name()))
            .collect(),
        ldif: if with_directory {
            demo.ldif
        } else {
            Vec::new()
        },
        actions: if with_directory { demo.actions } else { None },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn kafka_broker_restart_loses_no_candidate() {
    let _shared = broker();
    let dir = tempfile::tempdir().unwrap();
    let own = Broker::up(dir.path().join("tansu"));
    let mut kafka = KafkaConfig::new(vec![own.address.clone()]);
    kafka.settle_ms = 200;

    // The directory, the actions and Labs go out; the broker restarts while the correlator
    // is reading or correlating them; then the other tenants follow.
    let correlator = start_correlator(&kafka, false);
    publish_plan(&kafka, &demo_part(|name| name.contains(LABS), true)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    own.restart();
    publish_plan(&kafka, &demo_part(|name| !name.contains(LABS), false)).await;

    let topic = kafka.topics().candidates;
    let records = read_topic(&kafka, &topic, 19, Duration::from_secs(5));
    let summary = correlator.stop().await;
    assert!(summary.events_out >= 19, "{summary:?}");

    // Every candidate arrived, and a repeat is the very same event.
    let expected: BTreeMap<String, serde_json::Value> = expected_events()
        .await
        .into_iter()
        .map(|event| (event_id(&event), event))
        .collect();
    let mut seen = BTreeMap::new();
    for event in events_of(&records) {
        let id = event_id(&event);
        assert_eq!(Some(&event), expected.get(&id), "unexpected event {event}");
        seen.insert(id, event);
    }
    assert_eq!(seen, expected);
}
