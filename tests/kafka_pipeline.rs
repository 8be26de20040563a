//! The pipeline against a real broker (tansu): publish to Kafka, `correlate` from Kafka to the
//! SIEM topic, read back by a separate consumer. Start the broker first:
//! `eval "$(tests/services/tansu.sh up)"`.

mod kafka_support;

use std::path::Path;
use std::time::Duration;

use kafka_support::*;
use lastseen::bus::dlq;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn kafka_events_equal_run_and_a_restart_repeats_nothing_committed() {
    let kafka = fresh_config(&broker()).await;
    publish_demo(&kafka).await;

    let running = start_correlator(&kafka, true);
    let addr =
        lastseen::bus::metrics::serve("127.0.0.1:0".parse().unwrap(), running.metrics.clone())
            .await
            .unwrap();
    let summary = running.join().await;
    assert_eq!(summary.correlations, 1);
    assert_eq!(summary.events_out, 19);
    assert_eq!(summary.dead_letters, 0);
    assert_eq!(summary.records_in, 54 + 63 + 5);

    let topics = kafka.topics();
    let records = read_topic(&kafka, &topics.candidates, 19, Duration::from_secs(1));
    assert_eq!(events_of(&records), expected_events().await);

    // The Prometheus endpoint, over real HTTP.
    let text = http_get(addr, "/metrics").await;
    for line in [
        format!(
            "lastseen_records_in_total{{topic=\"{}\"}} 54",
            topics.central
        ),
        format!("lastseen_records_in_total{{topic=\"{}\"}} 63", topics.ad),
        format!(
            "lastseen_records_out_total{{topic=\"{}\"}} 19",
            topics.candidates
        ),
        "lastseen_candidates{decision=\"delete\"} 8".to_owned(),
        "lastseen_candidates{decision=\"manual_review\"} 11".to_owned(),
        "lastseen_state_rows{table=\"endpoints\"} 51".to_owned(),
        "lastseen_state_rows{table=\"computers\"} 50".to_owned(),
        "lastseen_correlations_total 1".to_owned(),
    ] {
        assert!(
            text.contains(&format!("{line}\n")),
            "no {line:?} in\n{text}"
        );
    }
    assert!(text.contains("lastseen_correlation_seconds "), "{text}");

    // The group committed its offsets after the events were acknowledged: a second instance
    // rebuilds the same state but has nothing new to say.
    let again = start_correlator(&kafka, true);
    let summary = again.join().await;
    assert_eq!(summary.records_in, 54 + 63 + 5);
    assert_eq!(summary.events_out, 0);
    let records = read_topic(&kafka, &topics.candidates, 19, Duration::from_secs(1));
    assert_eq!(records.len(), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn kafka_poison_record_goes_to_the_dlq_and_the_rest_flows() {
    let kafka = fresh_config(&broker()).await;
    let topics = kafka.topics();

    // A broken record keyed by Corp HQ, ahead of its snapshot.
    let producer: FutureProducer = lastseen::bus::kafka::client_config(&kafka)
        .create()
        .unwrap();
    let poison = b"{\"type\": \"endpoint\", \"tenant_id\": ".to_vec();
    let delivered = producer
        .send(
            FutureRecord::to(&topics.central)
                .key(CORP_HQ)
                .payload(&poison),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    publish_demo(&kafka).await;

    let summary = start_correlator(&kafka, true).join().await;
    assert_eq!(summary.dead_letters, 1);

    let letters = read_topic(&kafka, &topics.dlq, 1, Duration::from_secs(1));
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.payload.as_deref(), Some(poison.as_slice()));
    assert_eq!(letter.key.as_deref(), Some(CORP_HQ.as_bytes()));
    let header = |name| {
        dlq::header(&letter.headers, name)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header(dlq::SOURCE_TOPIC), topics.central);
    assert_eq!(
        header(dlq::SOURCE_PARTITION),
        delivered.partition.to_string()
    );
    assert_eq!(header(dlq::SOURCE_OFFSET), delivered.offset.to_string());
    assert_eq!(header(dlq::STAGE), "correlate");
    assert!(
        header(dlq::ERROR).starts_with("not a Central record"),
        "{}",
        header(dlq::ERROR)
    );

    // The other tenants flow as before; Corp HQ's snapshot lost a record, so none of its
    // endpoints may be deleted.
    let expected = expected_events().await;
    let records = read_topic(&kafka, &topics.candidates, 1, Duration::from_secs(2));
    let events = events_of(&records);
    let tenant = |e: &serde_json::Value| e["tenant_id"].as_str().unwrap_or_default().to_owned();
    let others = |events: &[serde_json::Value]| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| tenant(e) != CORP_HQ)
            .cloned()
            .collect()
    };
    assert_eq!(others(&events), others(&expected));

    let corp: Vec<_> = events.iter().filter(|e| tenant(e) == CORP_HQ).collect();
    let corp_expected = expected.iter().filter(|e| tenant(e) == CORP_HQ).count();
    assert_eq!(corp.len(), corp_expected);
    for event in corp {
        assert_eq!(event["decision"], "manual_review", "{event}");
        let reasons = event["reasons"].as_array().unwrap();
        assert!(reasons.iter().any(|r| r == "incomplete_input"), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn kafka_poison_ad_record_is_dead_lettered_once_across_restarts() {
    let kafka = fresh_config(&broker()).await;
    let topics = kafka.topics();

    // The AD topic is read whole on every start, so this record is refused on every start.
    let producer: FutureProducer = lastseen::bus::kafka::client_config(&kafka)
        .create()
        .unwrap();
    let poison = b"{\"op\": \"upsert\", \"kind\": \"computer\", \"object_guid\": \"nope\"".to_vec();
    let delivered = producer
        .send(
            FutureRecord::to(&topics.ad)
                .key("corp.example.test")
                .payload(&poison),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    publish_demo(&kafka).await;

    let first = start_correlator(&kafka, true).join().await;
    assert_eq!((first.dead_letters, first.dead_letters_known), (1, 0));

    // Two restarts: the record taints the state again, but its dead letter is not repeated.
    for _ in 0..2 {
        let again = start_correlator(&kafka, true).join().await;
        assert_eq!(again.records_in, first.records_in);
        assert_eq!((again.dead_letters, again.dead_letters_known), (0, 1));
    }

    let letters = read_topic(&kafka, &topics.dlq, 1, Duration::from_secs(2));
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.payload.as_deref(), Some(poison.as_slice()));
    let header = |name| dlq::header(&letter.headers, name).unwrap_or_default();
    assert_eq!(header(dlq::SOURCE_TOPIC), topics.ad);
    assert_eq!(
        header(dlq::SOURCE_PARTITION),
        delivered.partition.to_string()
    );
    assert_eq!(header(dlq::SOURCE_OFFSET), delivered.offset.to_string());
    assert!(
        header(dlq::ERROR).contains("field object_guid"),
        "{}",
        header(dlq::ERROR)
    );

    // A directory record of unknown domain was lost, so nothing may be deleted anywhere.
    let events = events_of(&read_topic(
        &kafka,
        &topics.candidates,
        19,
        Duration::from_secs(1),
    ));
    assert_eq!(events.len(), 19);
    assert!(events.iter().all(|e| e["decision"] == "manual_review"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn kafka_two_correlators_split_the_tenants() {
    let kafka = fresh_config(&broker()).await;
    let topics = kafka.topics();

    // With three partitions Corp HQ's records land on partition 1 and Labs' on 2; the range
    // assignor gives one instance 0 and 1, the other 2, so each has candidates to emit.
    let first = start_correlator(&kafka, false);
    first.wait_assigned(&kafka, 3.0).await;
    let second = start_correlator(&kafka, false);
    let central = topics.central.clone();
    let assigned = |running: &Running| {
        running
            .metrics
            .get("lastseen_assigned_partitions", &[("topic", &central)])
    };
    let started = std::time::Instant::now();
    while !(assigned(&first) > 0.0
        && assigned(&second) > 0.0
        && assigned(&first) + assigned(&second) == 3.0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the group never split"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    publish_demo(&kafka).await;
    let records = read_topic(&kafka, &topics.candidates, 19, Duration::from_secs(3));
    let first = first.stop().await;
    let second = second.stop().await;

    assert!(
        first.events_out > 0 && second.events_out > 0,
        "{first:?} {second:?}"
    );
    assert_eq!(first.events_out + second.events_out, 19);
    assert_eq!(events_of(&records), expected_events().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu: run .ci/run (or tests/services/tansu.sh up)"]
async fn kafka_sigterm_stops_the_correlator_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let kafka = fresh_config(&broker()).await;
    publish_demo(&kafka).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_lastseen"))
        .args(["correlate", "--as-of", AS_OF, "--group-id", &kafka.group_id])
        .env("LASTSEEN_KAFKA_BROKERS", kafka.bootstrap())
        .env(
            "LASTSEEN_CONFIG",
            demo_config_with_prefix(&kafka.topic_prefix),
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait for its first correlation, then ask it to stop as a service manager would.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("Correlated and produced candidate events") {
            break;
        }
    }
    assert!(log.contains("candidates=19"), "{log}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("Shutting down")), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("produced 19 candidate events")),
        "{rest:?}"
    );

    // It committed what it had emitted: the next instance of the group has nothing new.
    let summary = start_correlator(&kafka, true).join().await;
    assert_eq!(summary.events_out, 0);
}

/// The demo config, with a `[kafka]` section naming the test's topics, in a file that lives
/// as long as the test process.
fn demo_config_with_prefix(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lastseen-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let text = std::fs::read_to_string(demo.join("lastseen.toml")).unwrap();
    let text = text.replace("\"central\"", &format!("{:?}", demo.join("central")));
    let text = text.replace("\"ad/", &format!("\"{}/ad/", demo.display()));
    let text = text.replace(
        "\"actions.jsonl\"",
        &format!("{:?}", demo.join("actions.jsonl")),
    );
    let path = dir.join("lastseen.toml");
    std::fs::write(
        &path,
        format!("{text}\n[kafka]\nbrokers = []\ntopic_prefix = \"{prefix}\"\n"),
    )
    .unwrap();
    path
}

/// A plain HTTP/1.0 GET, to read the metrics endpoint as Prometheus would.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
}
