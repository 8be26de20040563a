//! Kafka through librdkafka: the producer behind [`Bus`], client settings shared by producer
//! and consumers, and topic creation.
//!
//! The producer runs with `acks=all` and idempotence on, so a record acknowledged is on every
//! in-sync replica exactly once, and retries after a broker hiccup cannot duplicate or reorder
//! a tenant's records. A record that is still not delivered when `message.timeout.ms` runs
//! out (30 s unless the config says otherwise) fails the command with the topic and key.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};
use tracing::{debug, warn};

use super::{Bus, BusError, Delivery, InRecord, KafkaConfig, OutRecord};

/// How long an undeliverable record is retried before the command fails, unless
/// `message.timeout.ms` is passed through.
const MESSAGE_TIMEOUT_MS: &str = "30000";

/// Pause before retrying when librdkafka's local queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Routes librdkafka's own logs and errors into `tracing` at levels an operator can act on:
/// librdkafka recovers from broker outages by itself, so its errors are warnings here, and
/// reaching the end of a partition is no error at all.
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

pub fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => warn!(facility, "librdkafka: {message}"),
        _ => debug!(facility, "librdkafka: {message}"),
    }
}

pub fn report_error(error: &KafkaError, reason: &str) {
    if matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    ) {
        return;
    }
    warn!(%error, reason, "Kafka client error; librdkafka retries by itself.");
}

/// Settings every lastseen client shares: the brokers and the passthrough (security, tuning).
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", config.bootstrap());
    for (key, value) in &config.librdkafka {
        client.set(key, value);
    }
    client
}

/// The Kafka side of [`Bus`]: an idempotent producer that waits for all replicas.
pub struct KafkaBus {
    producer: FutureProducer<TracingContext>,
}

impl KafkaBus {
    pub fn new(config: &KafkaConfig) -> Result<KafkaBus, BusError> {
        let mut client = client_config(config);
        client.set("acks", "all").set("enable.idempotence", "true");
        if !config.librdkafka.contains_key("message.timeout.ms") {
            client.set("message.timeout.ms", MESSAGE_TIMEOUT_MS);
        }
        if !config.librdkafka.contains_key("linger.ms") {
            client.set("linger.ms", "5");
        }

        let producer =
            client
                .create_with_context(TracingContext)
                .map_err(|e| BusError::Client {
                    role: "producer",
                    message: e.to_string(),
                })?;
        Ok(KafkaBus { producer })
    }

    /// Waits for everything enqueued so far.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.producer.flush(timeout).map_err(|e| BusError::Kafka {
            operation: "flush",
            message: e.to_string(),
        })
    }
}

impl Bus for KafkaBus {
    async fn enqueue(&self, record: OutRecord) -> Result<Delivery, BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }

        let key_shown = record.key.clone().unwrap_or_else(|| "none".into());
        loop {
            let mut future = FutureRecord::to(&record.topic)
                .payload(&record.payload)
                .headers(headers.clone());
            if let Some(key) = &record.key {
                future = future.key(key);
            }

            match self.producer.send_result(future) {
                Ok(delivery) => {
                    let topic = record.topic.clone();
                    let key = key_shown;
                    return Ok(Box::pin(async move {
                        let fail = |message: String| BusError::Delivery {
                            topic,
                            key,
                            message,
                        };
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((error, _))) => Err(fail(error.to_string())),
                            Err(_) => Err(fail("the producer shut down first".into())),
                        }
                    }));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((error, _)) => {
                    return Err(BusError::Delivery {
                        topic: record.topic.clone(),
                        key: key_shown,
                        message: error.to_string(),
                    });
                }
            }
        }
    }
}

/// Creates lastseen's topics that do not exist yet. Production clusters usually create topics
/// through their own tooling; this is for tests and first runs.
pub async fn ensure_topics(config: &KafkaConfig, partitions: i32) -> Result<(), BusError> {
    let admin: AdminClient<TracingContext> = client_config(config)
        .create_with_context(TracingContext)
        .map_err(|e| BusError::Client {
            role: "admin client",
            message: e.to_string(),
        })?;
    let topics = config.topics();
    let new: Vec<NewTopic<'_>> = topics
        .all()
        .into_iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();

    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(|e| BusError::Kafka {
            operation: "create topics",
            message: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BusError::Kafka {
                    operation: "create topics",
                    message: format!("{topic}: {code}"),
                });
            }
        }
    }
    Ok(())
}

/// A consumed message as an owned [`InRecord`].
pub fn in_record(message: &BorrowedMessage<'_>) -> InRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    InRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}
