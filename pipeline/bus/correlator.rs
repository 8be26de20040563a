//! `lastseen correlate`: the streaming correlator.
//!
//! It reads the input topics into [`State`], runs the same SQL as `lastseen run` once a
//! tenant's snapshot completes (after input settles for `settle_ms`, so a burst of tenants
//! costs one correlation) or every `correlate_interval_secs`, and produces the candidate
//! events of the tenants concerned onto the SIEM topic, keyed by endpoint id.
//!
//! How instances share the work: the Central topic is consumed in the consumer group, so
//! each instance owns some partitions and with them some tenants; the AD and action topics
//! are read whole by every instance, since any tenant's decision may need any of it.
//!
//! Delivery is at least once. Central offsets are committed only after every candidate event
//! (and dead letter) the records caused was acknowledged. State is rebuilt on start and on
//! every partition assignment by reading the topics from the beginning (they are
//! time-retained, not compacted: their keys are tenants and domains, not objects); records
//! below the group's committed offset only rebuild state, records above it cause events
//! again. A repeat carries the same `event_id`. A correlation waits until the AD and action
//! readers have caught up, so no tenant is judged against a half-read directory.
//!
//! Dead letters go out once: before it reads anything else, the correlator reads the
//! dead-letter topic and notes the source topic, partition and offset of every dead letter
//! it sent before, so the poison records it meets again on the AD and action topics (read
//! whole on every start) still taint its state but are not sent there again. Two instances
//! starting at the same moment may both send one; a dead letter is at least once, like every
//! other record.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::kafka::{KafkaBus, client_config, in_record, log_librdkafka, report_error};
use super::metrics::Metrics;
use super::state::{Applied, State};
use super::{BusError, InFlight, InRecord, KafkaConfig, OutRecord, Topics, dlq};
use crate::config::Config;
use crate::output::CandidateEvent;
use crate::{correlate, output};

/// The `stage` header of dead letters from this stage.
pub const STAGE: &str = "correlate";

/// Timeout of the broker calls made between records (watermarks, commits).
const BROKER_CALL: Duration = Duration::from_secs(10);

/// Records between two updates of the records-in metric.
const METRICS_EVERY: u64 = 1000;

/// Events in flight to the candidates topic at once.
const IN_FLIGHT: usize = 50_000;

/// Longest wait for the dead-letter topic to be read on start; past it the correlator goes
/// on, and may send a dead letter it had sent before.
const DLQ_READ_LIMIT: Duration = Duration::from_secs(60);

/// What the correlator runs with.
pub struct Options {
    /// Policy and domains, as for `lastseen run`.
    pub config: Config,
    pub kafka: KafkaConfig,
    /// Evaluate as of this instant instead of now.
    pub as_of: Option<DateTime<Utc>>,
    pub metrics: Arc<Metrics>,
    /// Stop once everything readable was read and correlated (tests and benchmarks).
    pub stop_when_idle: bool,
}

/// What a correlator did before it stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records_in: u64,
    pub dead_letters: u64,
    /// Undecodable records read again whose dead letters the topic already held.
    pub dead_letters_known: u64,
    pub correlations: u64,
    pub events_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CorrelatorError {
    #[error(transparent)]
    Bus(#[from] BusError),

    #[error("cannot build the estate from state: {0}")]
    Input(#[from] crate::inputs::InputError),

    #[error("correlation failed: {0}")]
    Correlate(#[from] correlate::CorrelateError),

    #[error("cannot turn candidates into events: {0}")]
    Output(#[from] output::OutputError),

    #[error("Kafka {operation}: {source}")]
    Kafka {
        operation: &'static str,
        source: KafkaError,
    },
}

/// Correlates the current state and returns the candidate events, as `lastseen run` would on
/// the same data.
pub async fn correlate_state(
    state: &State,
    config: &Config,
    as_of: DateTime<Utc>,
) -> Result<Vec<CandidateEvent>, CorrelatorError> {
    let estate = state.estate()?;
    let ctx = correlate::session(&estate, config, as_of).await?;
    let batches = correlate::candidates(&ctx).await?;
    Ok(output::events(&batches, as_of)?)
}

/// A change of the group's assignment, handed from librdkafka's callback to the loop.
#[derive(Debug)]
enum GroupEvent {
    /// Partitions now ours, with the offset below which outputs were already acknowledged.
    Assigned(Vec<(i32, i64)>),
    Revoked(Vec<i32>),
}

/// Rebalance handling: an assigned partition is read from its beginning to rebuild its
/// tenants, and its committed offset is remembered to tell replay from new input.
struct GroupContext {
    events: Mutex<Vec<GroupEvent>>,
    metrics: Arc<Metrics>,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        record_lag(&self.metrics, &statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

/// The whole-topic readers only report their lag.
struct StatsContext {
    metrics: Arc<Metrics>,
}

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        record_lag(&self.metrics, &statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ConsumerContext for StatsContext {}

/// Consumer lag per partition from librdkafka's statistics, which it computes from the
/// watermarks its fetches already bring back, so no extra broker call is needed.
fn record_lag(metrics: &Metrics, statistics: &Statistics) {
    for (topic, stats) in &statistics.topics {
        for (partition, stats) in &stats.partitions {
            if *partition >= 0 && stats.consumer_lag >= 0 {
                let partition = partition.to_string();
                metrics.set(
                    "lastseen_consumer_lag",
                    &[("topic", topic), ("partition", &partition)],
                    stats.consumer_lag as f64,
                );
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let numbers: Vec<i32> = partitions
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();

        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let committed = match consumer.committed_offsets(partitions.clone(), BROKER_CALL) {
                    Ok(committed) => committed.to_topic_map(),
                    Err(error) => {
                        warn!(%error, "Cannot read committed offsets; every snapshot of the \
                            assigned partitions will be emitted again.");
                        HashMap::new()
                    }
                };
                let mut from_start = TopicPartitionList::new();
                let mut assigned = Vec::new();
                for element in partitions.elements() {
                    let key = (element.topic().to_owned(), element.partition());
                    let replay_until = match committed.get(&key) {
                        Some(Offset::Offset(offset)) => *offset,
                        _ => 0,
                    };
                    assigned.push((element.partition(), replay_until));
                    let _ = from_start.add_partition_offset(
                        element.topic(),
                        element.partition(),
                        Offset::Beginning,
                    );
                }

                let result = if cooperative {
                    consumer.incremental_assign(&from_start)
                } else {
                    consumer.assign(&from_start)
                };
                if let Err(error) = result {
                    error!(%error, "Cannot take the assigned partitions.");
                }
                info!(partitions = ?numbers, "Partitions assigned; rebuilding their tenants.");
                self.push(GroupEvent::Assigned(assigned));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let result = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                if let Err(error) = result {
                    warn!(%error, "Cannot release the revoked partitions.");
                }
                info!(partitions = ?numbers, "Partitions revoked; dropping their tenants.");
                self.push(GroupEvent::Revoked(numbers));
            }
            other => {
                warn!(error = ?other, "Rebalance failed; releasing every partition.");
                let _ = consumer.unassign();
                self.push(GroupEvent::Revoked(numbers));
            }
        }
    }
}

impl GroupContext {
    fn push(&self, event: GroupEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    fn take(&self) -> Vec<GroupEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One Central partition this instance owns.
#[derive(Debug, Clone, Copy)]
struct Owned {
    /// Records below this offset were correlated and their events acknowledged before.
    replay_until: i64,
    /// The next offset to read: one past the last record applied.
    next: i64,
    /// Whether the last thing read was the end of the partition.
    at_end: bool,
}

/// Settings of every correlator consumer: no automatic commits, and an event at the end of
/// each partition, which is how the correlator knows it has caught up without asking.
fn consumer_config(kafka: &KafkaConfig, group_id: &str) -> rdkafka::ClientConfig {
    let mut client = client_config(kafka);
    client
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true");
    if !kafka.librdkafka.contains_key("statistics.interval.ms") {
        client.set("statistics.interval.ms", "5000");
    }
    client
}

/// Runs until `shutdown` resolves (or, with `stop_when_idle`, until there is nothing left).
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, CorrelatorError> {
    let kafka = &options.kafka;
    let topics = kafka.topics();
    let metrics = options.metrics.clone();

    let group: StreamConsumer<GroupContext> = consumer_config(kafka, &kafka.group_id)
        .create_with_context(GroupContext {
            events: Mutex::default(),
            metrics: metrics.clone(),
        })
        .map_err(|source| CorrelatorError::Kafka {
            operation: "creating the group consumer",
            source,
        })?;
    group
        .subscribe(&[&topics.central])
        .map_err(|source| CorrelatorError::Kafka {
            operation: "subscribing to the Central topic",
            source,
        })?;

    // The whole-topic readers never commit: every instance reads AD and actions entirely.
    // One reader per topic, because an end-of-partition event names only the partition.
    let whole_group = format!("{}-whole", kafka.group_id);
    let mut at_end = HashMap::new();
    let mut readers = Vec::new();
    for topic in [&topics.ad, &topics.actions] {
        let reader: StreamConsumer<StatsContext> = consumer_config(kafka, &whole_group)
            .create_with_context(StatsContext {
                metrics: metrics.clone(),
            })
            .map_err(|source| CorrelatorError::Kafka {
                operation: "creating the AD and action readers",
                source,
            })?;
        for partition in assign_whole(&reader, topic)? {
            at_end.insert((topic.clone(), partition), false);
        }
        readers.push(reader);
    }
    let [ad_reader, actions_reader] =
        <[_; 2]>::try_from(readers).map_err(|_| BusError::Client {
            role: "AD and action readers",
            message: "expected two readers".into(),
        })?;
    let bus = KafkaBus::new(kafka)?;
    let sent_letters = read_sent_letters(kafka, &whole_group, &topics.dlq, &metrics).await?;

    info!(
        group = %kafka.group_id,
        central = %topics.central,
        ad = %topics.ad,
        actions = %topics.actions,
        candidates = %topics.candidates,
        "Correlator started; rebuilding state from the beginning of the topics."
    );

    let mut looper = Loop {
        options: &options,
        topics: &topics,
        metrics,
        bus,
        state: State::new(topics.clone()),
        owned: HashMap::new(),
        at_end,
        dirty: BTreeSet::new(),
        last_input: Instant::now(),
        last_correlation: Instant::now(),
        started: Instant::now(),
        caught_up_once: false,
        last_marker: None,
        records_in: HashMap::new(),
        sent_letters,
        summary: Summary::default(),
    };

    let interval = Duration::from_secs(kafka.correlate_interval_secs);
    let settle = Duration::from_millis(kafka.settle_ms);
    tokio::pin!(shutdown);
    loop {
        let wait = tokio::time::sleep(settle.min(interval));
        tokio::select! {
            biased;
            () = &mut shutdown => {
                info!("Shutting down: uncorrelated input stays uncommitted and is read again.");
                break;
            }
            message = group.recv() => {
                looper.group_events(&group);
                match message {
                    Ok(message) => {
                        let record = in_record(&message);
                        drop(message);
                        looper.central(&record).await?;
                    }
                    Err(KafkaError::PartitionEOF(partition)) => looper.central_end(partition),
                    Err(error) => looper.consumer_error(error).await,
                }
            }
            message = ad_reader.recv() => looper.whole(&topics.ad, message).await?,
            message = actions_reader.recv() => looper.whole(&topics.actions, message).await?,
            () = wait => {}
        }
        looper.group_events(&group);

        if !looper.caught_up_once && looper.caught_up() {
            looper.caught_up_once = true;
            looper.flush_counts();
            let rows = looper.state.rows();
            looper.metrics.state_rows(&rows);
            info!(
                records = looper.summary.records_in,
                elapsed_ms = looper.started.elapsed().as_millis() as u64,
                tenants = rows.tenants,
                endpoints = rows.endpoints,
                computers = rows.computers,
                "Caught up with the topics."
            );
        }

        // Correlate when input has settled after a snapshot, or when the interval is up.
        // While state is rebuilt from the topics at start, a pause in the input is only the
        // broker catching up with a reader that asked for a lot: the first correlation waits
        // until every topic was read to its end once, so a rebuild costs one correlation.
        let settled = looper.last_input.elapsed() >= settle;
        let due = looper.last_correlation.elapsed() >= interval;
        if (settled && looper.caught_up_once && !looper.dirty.is_empty()) || due {
            if looper.whole_caught_up() {
                let tenants = if due {
                    None
                } else {
                    Some(std::mem::take(&mut looper.dirty))
                };
                looper.correlate(tenants).await?;
                looper.commit(&group)?;
            } else {
                debug!("Waiting for the AD and action readers to catch up before correlating.");
            }
        }

        if options.stop_when_idle && looper.dirty.is_empty() && settled && looper.caught_up() {
            info!("Everything read is correlated; stopping as asked.");
            break;
        }
    }

    group.unsubscribe();
    Ok(looper.summary)
}

/// Assigns every partition of `topic` from the beginning; returns the partitions.
fn assign_whole(
    consumer: &StreamConsumer<StatsContext>,
    topic: &str,
) -> Result<Vec<i32>, CorrelatorError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), BROKER_CALL)
        .map_err(|source| CorrelatorError::Kafka {
            operation: "reading topic metadata",
            source,
        })?;

    let mut list = TopicPartitionList::new();
    let mut partitions = Vec::new();
    for found in metadata.topics() {
        if let Some(error) = found.error() {
            return Err(CorrelatorError::Bus(BusError::Kafka {
                operation: "reading topic metadata",
                message: format!("topic {}: {error:?}; create the topics first", found.name()),
            }));
        }
        for partition in found.partitions() {
            let _ = list.add_partition_offset(topic, partition.id(), Offset::Beginning);
            partitions.push(partition.id());
        }
    }
    consumer
        .assign(&list)
        .map_err(|source| CorrelatorError::Kafka {
            operation: "assigning the AD and action topics",
            source,
        })?;
    Ok(partitions)
}

/// The dead letters this stage sent before, read from the dead-letter topic to its end.
async fn read_sent_letters(
    kafka: &KafkaConfig,
    group_id: &str,
    dlq_topic: &str,
    metrics: &Arc<Metrics>,
) -> Result<dlq::Sent, CorrelatorError> {
    let reader: StreamConsumer<StatsContext> = consumer_config(kafka, group_id)
        .create_with_context(StatsContext {
            metrics: metrics.clone(),
        })
        .map_err(|source| CorrelatorError::Kafka {
            operation: "creating the dead-letter reader",
            source,
        })?;

    // Where each partition ends now; an empty one is read already. Letters sent from here on
    // are this instance's own, noted as it sends them.
    let mut ends = HashMap::new();
    for partition in assign_whole(&reader, dlq_topic)? {
        let (low, high) = reader
            .fetch_watermarks(dlq_topic, partition, BROKER_CALL)
            .map_err(|source| CorrelatorError::Kafka {
                operation: "reading the dead-letter topic's watermarks",
                source,
            })?;
        if high > low {
            ends.insert(partition, high);
        }
    }

    let mut sent = dlq::Sent::default();
    let deadline = tokio::time::Instant::now() + DLQ_READ_LIMIT;
    while !ends.is_empty() {
        match tokio::time::timeout_at(deadline, reader.recv()).await {
            Ok(Ok(message)) => {
                let letter = in_record(&message);
                sent.note_letter(&letter, STAGE);
                if ends
                    .get(&letter.partition)
                    .is_some_and(|end| letter.offset + 1 >= *end)
                {
                    ends.remove(&letter.partition);
                }
            }
            Ok(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            Ok(Err(error)) => {
                warn!(%error, "Kafka consumer error reading the dead-letter topic; retrying.");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => {
                warn!(
                    topic = dlq_topic,
                    partitions = ?ends.keys().collect::<Vec<_>>(),
                    "Could not read the dead-letter topic to its end in time; records it \
                     holds may be dead-lettered again."
                );
                break;
            }
        }
    }
    info!(
        topic = dlq_topic,
        dead_letters = sent.len(),
        "Read the dead letters sent before; they will not be sent again."
    );
    Ok(sent)
}

struct Loop<'a> {
    options: &'a Options,
    topics: &'a Topics,
    metrics: Arc<Metrics>,
    bus: KafkaBus,
    state: State,
    owned: HashMap<i32, Owned>,
    /// Per AD and action partition: whether the last thing read was its end.
    at_end: HashMap<(String, i32), bool>,
    /// Tenants whose snapshot completed since their last correlation.
    dirty: BTreeSet<String>,
    last_input: Instant,
    last_correlation: Instant,
    started: Instant,
    /// Whether the first catch-up with the topics was logged.
    caught_up_once: bool,
    /// When the last snapshot-complete marker that calls for events was read.
    last_marker: Option<Instant>,
    /// Records read per topic, flushed to the metrics now and then.
    records_in: HashMap<String, u64>,
    /// Records whose dead letters are on the dead-letter topic.
    sent_letters: dlq::Sent,
    summary: Summary,
}

impl Loop<'_> {
    fn group_events(&mut self, group: &StreamConsumer<GroupContext>) {
        let events = group.context().take();
        if events.is_empty() {
            return;
        }
        for event in events {
            match event {
                GroupEvent::Assigned(partitions) => {
                    for (partition, replay_until) in partitions {
                        self.owned.insert(
                            partition,
                            Owned {
                                replay_until,
                                next: 0,
                                at_end: false,
                            },
                        );
                    }
                }
                GroupEvent::Revoked(partitions) => {
                    let dropped = self.state.drop_partitions(&partitions);
                    for partition in &partitions {
                        self.owned.remove(partition);
                    }
                    self.dirty.retain(|tenant| self.state.has_tenant(tenant));
                    info!(
                        tenants = dropped,
                        "Dropped the tenants of revoked partitions."
                    );
                }
            }
        }
        self.metrics.set(
            "lastseen_assigned_partitions",
            &[("topic", &self.topics.central)],
            self.owned.len() as f64,
        );
    }

    async fn central(&mut self, record: &InRecord) -> Result<(), CorrelatorError> {
        // A record fetched just before its partition was revoked belongs to the new owner.
        let Some(owned) = self.owned.get_mut(&record.partition) else {
            return Ok(());
        };
        owned.next = record.offset + 1;
        owned.at_end = false;
        let replaying = record.offset < owned.replay_until;
        self.count_in(record);

        match self.state.apply(record) {
            Applied::SnapshotComplete { tenant_id } if !replaying => {
                self.dirty.insert(tenant_id);
                self.last_marker = Some(Instant::now());
            }
            Applied::Dead { error } if !replaying => self.dead_letter(record, &error).await?,
            _ => {}
        }
        self.last_input = Instant::now();
        Ok(())
    }

    fn central_end(&mut self, partition: i32) {
        if let Some(owned) = self.owned.get_mut(&partition) {
            owned.at_end = true;
        }
    }

    async fn whole(
        &mut self,
        topic: &str,
        message: Result<BorrowedMessage<'_>, KafkaError>,
    ) -> Result<(), CorrelatorError> {
        let record = match message {
            Ok(message) => in_record(&message),
            Err(KafkaError::PartitionEOF(partition)) => {
                self.at_end.insert((topic.to_owned(), partition), true);
                return Ok(());
            }
            Err(error) => {
                self.consumer_error(error).await;
                return Ok(());
            }
        };

        self.at_end
            .insert((record.topic.clone(), record.partition), false);
        self.count_in(&record);
        if let Applied::Dead { error } = self.state.apply(&record) {
            self.dead_letter(&record, &error).await?;
        }
        self.last_input = Instant::now();
        Ok(())
    }

    fn count_in(&mut self, record: &InRecord) {
        self.summary.records_in += 1;
        match self.records_in.get_mut(&record.topic) {
            Some(count) => *count += 1,
            None => {
                self.records_in.insert(record.topic.clone(), 1);
            }
        }

        // The shared metrics take a lock; per record that would cost more than the record.
        if self.summary.records_in.is_multiple_of(METRICS_EVERY) {
            self.flush_counts();
        }
    }

    fn flush_counts(&self) {
        for (topic, count) in &self.records_in {
            self.metrics.set(
                "lastseen_records_in_total",
                &[("topic", topic)],
                *count as f64,
            );
        }
    }

    async fn dead_letter(&mut self, record: &InRecord, error: &str) -> Result<(), BusError> {
        // The whole-topic readers meet every poison record again on each start, and a Central
        // record is read again when its dead letter went out but its offset was not committed.
        if self.sent_letters.contains(record) {
            debug!(
                topic = %record.topic,
                partition = record.partition,
                offset = record.offset,
                "Undecodable record read again; its dead letter is already on the topic."
            );
            self.summary.dead_letters_known += 1;
            return Ok(());
        }

        warn!(
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            %error,
            "Sent an undecodable record to the dead-letter topic."
        );
        let letter = dlq::dead_letter(&self.topics.dlq, record, STAGE, error);
        let mut in_flight = InFlight::new(1);
        in_flight.send(&self.bus, letter).await?;
        in_flight.finish().await?;
        self.sent_letters.note_sent(record);
        self.summary.dead_letters += 1;
        self.metrics.add(
            "lastseen_dead_letters_total",
            &[("topic", &record.topic)],
            1.0,
        );
        Ok(())
    }

    async fn consumer_error(&mut self, error: KafkaError) {
        // librdkafka reconnects by itself; the pause keeps a dead broker from spinning us.
        warn!(%error, "Kafka consumer error; retrying.");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Runs the policy and produces the events of `tenants` (every tenant when `None`).
    async fn correlate(
        &mut self,
        tenants: Option<BTreeSet<String>>,
    ) -> Result<(), CorrelatorError> {
        let started = Instant::now();
        let as_of = self
            .options
            .as_of
            .or(self.options.config.as_of)
            .unwrap_or_else(Utc::now);
        let rows = self.state.rows();
        self.metrics.state_rows(&rows);
        self.flush_counts();

        let events = correlate_state(&self.state, &self.options.config, as_of).await?;
        let chosen: Vec<&CandidateEvent> = events
            .iter()
            .filter(|event| match (&tenants, &event.tenant_id) {
                (None, _) => true,
                (Some(tenants), Some(tenant)) => tenants.contains(tenant),
                (Some(_), None) => false,
            })
            .collect();

        let mut in_flight = InFlight::new(IN_FLIGHT);
        let mut by_decision: HashMap<&str, u64> = HashMap::new();
        for event in &chosen {
            let payload = serde_json::to_vec(event).unwrap_or_default();
            let record = OutRecord::new(&self.topics.candidates, Some(&event.endpoint_id), payload);
            in_flight.send(&self.bus, record).await?;
            *by_decision.entry(&event.decision).or_default() += 1;
        }
        let sent = in_flight.finish().await?;

        let elapsed = started.elapsed();
        self.summary.correlations += 1;
        self.summary.events_out += sent;
        self.last_correlation = Instant::now();
        self.metrics.add(
            "lastseen_records_out_total",
            &[("topic", &self.topics.candidates)],
            sent as f64,
        );
        self.metrics.add("lastseen_correlations_total", &[], 1.0);
        self.metrics
            .set("lastseen_correlation_seconds", &[], elapsed.as_secs_f64());
        for decision in ["delete", "manual_review"] {
            let count = by_decision.get(decision).copied().unwrap_or(0);
            self.metrics.set(
                "lastseen_candidates",
                &[("decision", decision)],
                count as f64,
            );
        }
        info!(
            tenants = tenants.as_ref().map_or(rows.tenants, BTreeSet::len),
            endpoints = rows.endpoints,
            computers = rows.computers,
            candidates = chosen.len(),
            delete = by_decision.get("delete").copied().unwrap_or(0),
            manual_review = by_decision.get("manual_review").copied().unwrap_or(0),
            correlate_ms = elapsed.as_millis() as u64,
            marker_to_last_event_ms = self.last_marker.map(|at| at.elapsed().as_millis() as u64),
            "Correlated and produced candidate events."
        );
        Ok(())
    }

    /// Commits what was read of the owned Central partitions: every event it caused is
    /// acknowledged by now.
    fn commit(&mut self, group: &StreamConsumer<GroupContext>) -> Result<(), CorrelatorError> {
        let mut list = TopicPartitionList::new();
        for (partition, owned) in &mut self.owned {
            if owned.next > owned.replay_until {
                let _ = list.add_partition_offset(
                    &self.topics.central,
                    *partition,
                    Offset::Offset(owned.next),
                );
                owned.replay_until = owned.next;
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        group
            .commit(&list, CommitMode::Sync)
            .map_err(|source| CorrelatorError::Kafka {
                operation: "committing offsets",
                source,
            })
    }

    /// Whether the AD and action readers have read to the end of every partition.
    fn whole_caught_up(&self) -> bool {
        self.at_end.values().all(|at_end| *at_end)
    }

    /// Whether everything this instance reads has been read.
    fn caught_up(&self) -> bool {
        !self.owned.is_empty()
            && self.owned.values().all(|owned| owned.at_end)
            && self.whole_caught_up()
    }
}
