//! The streaming stages over the in-process bus, with no broker: publishing the demo estate
//! and rebuilding state from the records must decide exactly as `lastseen run` does.

use chrono::{DateTime, Utc};
use lastseen::bus::Topics;
use lastseen::bus::correlator::correlate_state;
use lastseen::bus::memory::MemoryBus;
use lastseen::bus::publish::publish;
use lastseen::bus::state::{Applied, State};
use lastseen::run::{self, Setup};

fn as_of() -> DateTime<Utc> {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

async fn state_from(bus: &MemoryBus, topics: &Topics) -> State {
    let mut state = State::new(topics.clone());
    for topic in [&topics.ad, &topics.actions, &topics.central] {
        for record in bus.records(topic) {
            let applied = state.apply(&record);
            assert!(!matches!(applied, Applied::Dead { .. }), "{applied:?}");
        }
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_through_the_memory_bus_equals_run() {
    let expected = run::run(
        &Setup::Demo,
        Some(as_of()),
        Some("/dev/null".as_ref()),
        None,
    )
    .await
    .unwrap()
    .events;
    assert_eq!(expected.len(), 19);

    let bus = MemoryBus::new();
    let topics = Topics::new("lastseen");
    publish(&bus, &topics, &lastseen::demo::inputs())
        .await
        .unwrap();
    let state = state_from(&bus, &topics).await;

    let rows = state.rows();
    assert_eq!((rows.tenants, rows.endpoints, rows.actions), (3, 51, 5));

    let config = lastseen::demo::config().unwrap();
    let events = correlate_state(&state, &config, as_of()).await.unwrap();
    assert_eq!(events, expected);

    // What goes onto the candidates topic is what its schema describes.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/kafka-candidate.schema.json")).unwrap();
    let known = schema["properties"].as_object().unwrap();
    let required: Vec<String> = serde_json::from_value(schema["required"].clone()).unwrap();
    for event in &events {
        let value = serde_json::to_value(event).unwrap();
        let fields = value.as_object().unwrap();
        assert!(fields.keys().all(|key| known.contains_key(key)), "{value}");
        assert!(
            required.iter().all(|key| fields.contains_key(key)),
            "{value}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_snapshot_lost_a_record_gets_no_delete() {
    let bus = MemoryBus::new();
    let topics = Topics::new("lastseen");
    publish(&bus, &topics, &lastseen::demo::inputs())
        .await
        .unwrap();

    // Drop one endpoint record of Corp HQ on the way, as a lost record would.
    const CORP_HQ: &str = "d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10";
    let mut state = State::new(topics.clone());
    for topic in [&topics.ad, &topics.actions] {
        for record in bus.records(topic) {
            state.apply(&record);
        }
    }
    let mut dropped = false;
    for record in bus.records(&topics.central) {
        let text = String::from_utf8(record.payload.clone().unwrap()).unwrap();
        if !dropped && text.contains(CORP_HQ) && text.starts_with(r#"{"type":"endpoint""#) {
            dropped = true;
            continue;
        }
        state.apply(&record);
    }
    assert!(dropped);

    let config = lastseen::demo::config().unwrap();
    let events = correlate_state(&state, &config, as_of()).await.unwrap();
    let corp: Vec<_> = events
        .iter()
        .filter(|e| e.tenant_id.as_deref() == Some(CORP_HQ))
        .collect();
    assert!(!corp.is_empty());
    for event in corp {
        assert_eq!(event.decision, "manual_review", "{event:?}");
        assert!(
            event.reasons.contains(&"incomplete_input".to_owned()),
            "{event:?}"
        );
    }
}
