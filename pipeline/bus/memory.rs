//! The in-process bus: topics as vectors in memory, one partition each. It lets the stages
//! run together without a broker (tests, the embedded run) behind the same [`Bus`] interface
//! as Kafka.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Bus, BusError, Delivery, InRecord, OutRecord};

#[derive(Debug, Default)]
pub struct MemoryBus {
    topics: Mutex<HashMap<String, Vec<InRecord>>>,
}

impl MemoryBus {
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }

    /// Every record of a topic so far, in order.
    pub fn records(&self, topic: &str) -> Vec<InRecord> {
        let topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.get(topic).cloned().unwrap_or_default()
    }

    /// Appends a record as a producer would; it is delivered at once.
    pub fn append(&self, record: OutRecord) {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let log = topics.entry(record.topic.clone()).or_default();
        let offset = log.len() as i64;
        log.push(InRecord {
            topic: record.topic,
            partition: 0,
            offset,
            key: record.key.map(String::into_bytes),
            payload: Some(record.payload),
            headers: record.headers,
        });
    }
}

impl Bus for MemoryBus {
    async fn enqueue(&self, record: OutRecord) -> Result<Delivery, BusError> {
        self.append(record);
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::InFlight;

    #[tokio::test]
    async fn records_come_back_in_order_with_offsets() {
        let bus = MemoryBus::new();
        let mut in_flight = InFlight::new(1);
        for n in 0..3 {
            let record = OutRecord::new("t", Some("k"), format!("{n}").into_bytes());
            in_flight.send(&bus, record).await.unwrap();
        }
        assert_eq!(in_flight.finish().await.unwrap(), 3);

        let records = bus.records("t");
        let seen: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.payload.clone().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [(0, b"0".to_vec()), (1, b"1".to_vec()), (2, b"2".to_vec())]
        );
        assert!(bus.records("other").is_empty());
    }
}
