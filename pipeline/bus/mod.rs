//! The Kafka backbone: collectors publish inventory onto topics, `lastseen correlate` streams
//! them into state and produces candidate events onto the SIEM topic.
//!
//! The topics (names under a configurable prefix, records described in
//! `schemas/kafka-*.schema.json`):
//!
//! - `<prefix>.central.endpoints`: one record per Central endpoint in an envelope naming the
//!   tenant, the snapshot and when it was collected, then one snapshot-complete marker per
//!   tenant collection. Keyed by tenant id, so a tenant's records share a partition, in order.
//! - `<prefix>.ad.changes`: upserts and deletes of computers, users and groups, keyed by domain.
//! - `<prefix>.actions`: the action log, one action per record, keyed by tenant id.
//! - `<prefix>.candidates`: the SIEM topic, candidate events keyed by endpoint id.
//! - `<prefix>.dlq`: records that could not be decoded, with headers saying where they came
//!   from and why they were refused.
//!
//! Producing goes through [`Bus`], which Kafka ([`kafka::KafkaBus`]) and the in-process
//! [`memory::MemoryBus`] both implement, so the stages run the same without a broker.
//! [`state::State`] is the correlator's view of the topics; [`correlator`] drives it from Kafka.

pub mod config;
pub mod correlator;
pub mod dlq;
pub mod kafka;
pub mod ldif;
pub mod memory;
pub mod metrics;
pub mod publish;
pub mod records;
pub mod state;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

pub use config::{Destination, KafkaConfig};

/// The names of lastseen's topics under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub central: String,
    pub ad: String,
    pub actions: String,
    pub candidates: String,
    pub dlq: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            central: format!("{prefix}.central.endpoints"),
            ad: format!("{prefix}.ad.changes"),
            actions: format!("{prefix}.actions"),
            candidates: format!("{prefix}.candidates"),
            dlq: format!("{prefix}.dlq"),
        }
    }

    /// Every topic, for creating them.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.central,
            &self.ad,
            &self.actions,
            &self.candidates,
            &self.dlq,
        ]
    }
}

/// A record on its way to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    pub fn new(topic: &str, key: Option<&str>, payload: Vec<u8>) -> OutRecord {
        OutRecord {
            topic: topic.to_owned(),
            key: key.map(str::to_owned),
            payload,
            headers: Vec::new(),
        }
    }
}

/// A record read back from a topic, wherever it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why the bus could not take or deliver a record.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot create the Kafka {role}: {message}")]
    Client { role: &'static str, message: String },

    #[error(
        "record for topic {topic} (key {key}) was not delivered: {message}; nothing after it \
         was confirmed either"
    )]
    Delivery {
        topic: String,
        key: String,
        message: String,
    },

    #[error("Kafka {operation} failed: {message}")]
    Kafka {
        operation: &'static str,
        message: String,
    },
}

/// The acknowledgement of one record: resolves when the broker (all in-sync replicas, for
/// Kafka) has it.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

/// Where stages send records: Kafka, or the in-process bus.
pub trait Bus: Send + Sync {
    /// Hands one record over. The record is only safe once the returned [`Delivery`] has
    /// resolved; a full local queue makes this wait, which throttles fast producers.
    fn enqueue(&self, record: OutRecord)
    -> impl Future<Output = Result<Delivery, BusError>> + Send;
}

/// Deliveries not yet confirmed, bounded so that memory stays flat whatever the volume.
pub struct InFlight {
    pending: VecDeque<Delivery>,
    limit: usize,
    pub confirmed: u64,
}

impl InFlight {
    pub fn new(limit: usize) -> InFlight {
        InFlight {
            pending: VecDeque::new(),
            limit: limit.max(1),
            confirmed: 0,
        }
    }

    /// Sends a record, first waiting for the oldest deliveries when too many are open.
    pub async fn send<B: Bus>(&mut self, bus: &B, record: OutRecord) -> Result<(), BusError> {
        while self.pending.len() >= self.limit {
            self.confirm_oldest().await?;
        }
        let delivery = bus.enqueue(record).await?;
        self.pending.push_back(delivery);
        Ok(())
    }

    /// Waits for every open delivery; the first failure is the answer.
    pub async fn finish(&mut self) -> Result<u64, BusError> {
        while !self.pending.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(self.confirmed)
    }

    async fn confirm_oldest(&mut self) -> Result<(), BusError> {
        if let Some(delivery) = self.pending.pop_front() {
            delivery.await?;
            self.confirmed += 1;
        }
        Ok(())
    }
}
