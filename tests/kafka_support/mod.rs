//! Helpers for the tests against a real broker: the broker from `tests/services/tansu.sh`,
//! fresh topics per test, the correlator as a task, and a plain reader of topics.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lastseen::bus::correlator::{self, Options, Summary};
use lastseen::bus::kafka::{KafkaBus, ensure_topics, in_record};
use lastseen::bus::metrics::Metrics;
use lastseen::bus::{InRecord, KafkaConfig};
use lastseen::run::{self, Setup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const AS_OF: &str = "2026-12-01T00:00:00Z";
pub const CORP_HQ: &str = "d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10";
pub const LABS: &str = "5b1f0c3e-8a2d-4e6f-9c71-2d4b6a8e0f13";

/// The broker `tests/services/tansu.sh up` started.
pub fn broker() -> String {
    std::env::var("LASTSEEN_TEST_KAFKA")
        .expect("LASTSEEN_TEST_KAFKA is not set: eval \"$(tests/services/tansu.sh up)\" first")
}

/// A config with topics and a group of its own, so tests never see each other's records.
pub async fn fresh_config(broker: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(vec![broker.to_owned()]);
    let id = uuid::Uuid::new_v4().simple().to_string();
    config.topic_prefix = format!("test-{}", &id[..12]);
    config.group_id = format!("test-{}", &id[..12]);
    config.settle_ms = 200;
    ensure_topics(&config, 3).await.expect("create topics");
    config
}

pub async fn publish_demo(config: &KafkaConfig) {
    publish_plan(config, &lastseen::demo::inputs()).await;
}

pub async fn publish_plan(config: &KafkaConfig, plan: &lastseen::inputs::InputPlan) {
    let bus = KafkaBus::new(config).unwrap();
    let published = lastseen::bus::publish::publish(&bus, &config.topics(), plan)
        .await
        .unwrap();
    assert!(published.unpublished.is_empty());
}

/// A running correlator: stop it with `stop`, or let it stop by itself when idle.
pub struct Running {
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Summary>,
}

impl Running {
    pub async fn stop(mut self) -> Summary {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    pub async fn join(self) -> Summary {
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("the correlator did not stop within 2 minutes")
            .expect("the correlator task panicked")
    }

    /// Waits until the correlator owns `partitions` Central partitions.
    pub async fn wait_assigned(&self, kafka: &KafkaConfig, partitions: f64) {
        let topic = kafka.topics().central;
        let started = Instant::now();
        while self
            .metrics
            .get("lastseen_assigned_partitions", &[("topic", &topic)])
            != partitions
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "never assigned"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn start_correlator(kafka: &KafkaConfig, stop_when_idle: bool) -> Running {
    lastseen::logging::init(0, false);
    let metrics = Metrics::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let options = Options {
        config: lastseen::demo::config().unwrap(),
        kafka: kafka.clone(),
        as_of: Some(AS_OF.parse().unwrap()),
        metrics: metrics.clone(),
        stop_when_idle,
    };
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        correlator::run(options, shutdown)
            .await
            .expect("the correlator failed")
    });
    Running {
        metrics,
        stop: Some(stop),
        task,
    }
}

/// Every record of `topic` from the beginning, read by a separate plain consumer: at least
/// `min` of them, then whatever else arrives within `quiet`.
pub fn read_topic(kafka: &KafkaConfig, topic: &str, min: usize, quiet: Duration) -> Vec<InRecord> {
    let consumer: BaseConsumer = lastseen::bus::kafka::client_config(kafka)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        list.add_partition_offset(topic, partition.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut records = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline {
        if records.len() >= min && last.elapsed() >= quiet {
            break;
        }
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            records.push(in_record(&message));
            last = Instant::now();
        }
    }
    assert!(
        records.len() >= min,
        "only {} records on {topic}, expected at least {min}",
        records.len()
    );
    records
}

/// What `lastseen run` writes for the demo, as JSON values sorted by event id.
pub async fn expected_events() -> Vec<Value> {
    let report = run::run(
        &Setup::Demo,
        Some(AS_OF.parse().unwrap()),
        Some("/dev/null".as_ref()),
        None,
    )
    .await
    .unwrap();
    let mut events: Vec<Value> = report
        .events
        .iter()
        .map(|event| serde_json::to_value(event).unwrap())
        .collect();
    events.sort_by_key(event_id);
    events
}

pub fn event_id(event: &Value) -> String {
    event["event_id"].as_str().unwrap_or_default().to_owned()
}

/// Candidate records as JSON, checking that each is keyed by its endpoint id.
pub fn events_of(records: &[InRecord]) -> Vec<Value> {
    let mut events: Vec<Value> = records
        .iter()
        .map(|record| {
            let event: Value = serde_json::from_slice(record.payload.as_deref().unwrap()).unwrap();
            let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
            assert_eq!(event["endpoint_id"].as_str(), Some(key.as_str()));
            event
        })
        .collect();
    events.sort_by_key(event_id);
    events
}
