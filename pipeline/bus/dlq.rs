//! Dead letters: records a stage could not decode, kept byte for byte on the dead-letter
//! topic with headers that say where each came from and why it was refused, so an operator
//! can fix and replay it.

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
