//! Dead letters: records a stage could not decode, kept byte for byte on the dead-letter
//! topic with headers that say where each came from and why it was refused, so an operator
//! can fix and replay it.
//!
//! A stage that reads its input again (the correlator reads the AD and action topics whole on
//! every start) would refuse the same record again; [`Sent`] remembers which records the
//! dead-letter topic already holds, from those headers, so each goes there once.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::{InRecord, OutRecord};

/// Header names on dead letters.
pub const SOURCE_TOPIC: &str = "lastseen.source.topic";
pub const SOURCE_PARTITION: &str = "lastseen.source.partition";
pub const SOURCE_OFFSET: &str = "lastseen.source.offset";
pub const STAGE: &str = "lastseen.stage";
pub const ERROR: &str = "lastseen.error";

/// The dead letter for `record`: the same key and payload, the source's headers, and ours.
pub fn dead_letter(dlq_topic: &str, record: &InRecord, stage: &str, error: &str) -> OutRecord {
    let mut headers = record.headers.clone();
    headers.extend([
        (SOURCE_TOPIC.to_owned(), record.topic.clone().into_bytes()),
        (
            SOURCE_PARTITION.to_owned(),
            record.partition.to_string().into_bytes(),
        ),
        (
            SOURCE_OFFSET.to_owned(),
            record.offset.to_string().into_bytes(),
        ),
        (STAGE.to_owned(), stage.as_bytes().to_vec()),
        (ERROR.to_owned(), error.as_bytes().to_vec()),
    ]);

    OutRecord {
        topic: dlq_topic.to_owned(),
        key: record
            .key
            .as_deref()
            .map(|key| String::from_utf8_lossy(key).into_owned()),
        payload: record.payload.clone().unwrap_or_default(),
        headers,
    }
}

/// The records whose dead letters are on the dead-letter topic already.
///
/// A record is known by its topic, partition and offset, and by a fingerprint of its bytes:
/// a topic deleted and created again starts its offsets over, and a new record at a
/// remembered offset must still get its dead letter.
#[derive(Debug, Default)]
pub struct Sent {
    records: HashSet<SourceRecord>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SourceRecord {
    topic: String,
    partition: i32,
    offset: i64,
    fingerprint: u64,
}

impl Sent {
    /// Takes note of a record read back from the dead-letter topic, if it is a dead letter
    /// of `stage` with readable source headers; says whether it was.
    pub fn note_letter(&mut self, letter: &InRecord, stage: &str) -> bool {
        let headers = &letter.headers;
        if header(headers, STAGE) != Some(stage) {
            return false;
        }
        let partition = header(headers, SOURCE_PARTITION).and_then(|p| p.parse().ok());
        let offset = header(headers, SOURCE_OFFSET).and_then(|o| o.parse().ok());
        let (Some(topic), Some(partition), Some(offset)) =
            (header(headers, SOURCE_TOPIC), partition, offset)
        else {
            return false;
        };

        self.records.insert(SourceRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            fingerprint: fingerprint(letter.payload.as_deref()),
        })
    }

    /// Takes note of a dead letter just sent for `record`.
    pub fn note_sent(&mut self, record: &InRecord) {
        self.records.insert(SourceRecord::of(record));
    }

    /// Whether the dead-letter topic holds the dead letter of `record` already.
    pub fn contains(&self, record: &InRecord) -> bool {
        self.records.contains(&SourceRecord::of(record))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl SourceRecord {
    fn of(record: &InRecord) -> SourceRecord {
        SourceRecord {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            fingerprint: fingerprint(record.payload.as_deref()),
        }
    }
}

/// A dead letter carries no payload as an empty one, so both fingerprint alike. Only compared
/// within one process, so the hasher's keys need not be stable across builds.
fn fingerprint(payload: Option<&[u8]>) -> u64 {
    let mut hasher = DefaultHasher::new();
    payload.unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// The value of a header, as text.
pub fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_keeps_the_bytes_and_names_the_source() {
        let record = InRecord {
            topic: "lastseen.ad.changes".into(),
            partition: 2,
            offset: 41,
            key: Some(b"corp.example.test".to_vec()),
            payload: Some(b"{not json".to_vec()),
            headers: vec![("trace".into(), b"abc".to_vec())],
        };
        let letter = dead_letter(
            "lastseen.dlq",
            &record,
            "correlate",
            "not an AD change record",
        );

        assert_eq!(letter.topic, "lastseen.dlq");
        assert_eq!(letter.key.as_deref(), Some("corp.example.test"));
        assert_eq!(letter.payload, b"{not json");
        assert_eq!(header(&letter.headers, "trace"), Some("abc"));
        assert_eq!(
            header(&letter.headers, SOURCE_TOPIC),
            Some("lastseen.ad.changes")
        );
        assert_eq!(header(&letter.headers, SOURCE_PARTITION), Some("2"));
        assert_eq!(header(&letter.headers, SOURCE_OFFSET), Some("41"));
        assert_eq!(header(&letter.headers, STAGE), Some("correlate"));
        assert_eq!(
            header(&letter.headers, ERROR),
            Some("not an AD change record")
        );
    }

    #[test]
    fn a_letter_read_back_marks_its_record_as_sent() {
        let record = InRecord {
            topic: "lastseen.ad.changes".into(),
            partition: 1,
            offset: 7,
            key: None,
            payload: Some(b"{\"op\":".to_vec()),
            headers: Vec::new(),
        };
        let letter = dead_letter("lastseen.dlq", &record, "correlate", "not an AD change");
        let read_back = InRecord {
            topic: letter.topic.clone(),
            partition: 0,
            offset: 3,
            key: None,
            payload: Some(letter.payload.clone()),
            headers: letter.headers.clone(),
        };

        let mut sent = Sent::default();
        assert!(!sent.note_letter(&read_back, "publish"));
        assert!(!sent.contains(&record));
        assert!(sent.note_letter(&read_back, "correlate"));
        assert!(sent.contains(&record));

        // The same place with other bytes is another record (the topic was created again).
        let other = InRecord {
            payload: Some(b"[]".to_vec()),
            ..record.clone()
        };
        assert!(!sent.contains(&other));
        sent.note_sent(&other);
        assert!(sent.contains(&other));
        assert_eq!(sent.len(), 2);

        let mut unreadable = read_back.clone();
        unreadable.headers.retain(|(name, _)| name != SOURCE_OFFSET);
        assert!(!Sent::default().note_letter(&unreadable, "correlate"));
    }

    #[test]
    fn the_schema_names_every_header() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/kafka-dead-letter.schema.json"))
                .unwrap();
        let required: Vec<String> = serde_json::from_value(schema["required"].clone()).unwrap();
        assert_eq!(
            required,
            [SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, STAGE, ERROR]
        );
    }
}
