//! The JSON Schemas in schemas/ are what people and other tools read; these tests keep them in
//! step with the Arrow schemas the readers build and with the events `run` writes.

use std::collections::BTreeSet;
use std::path::Path;

use arrow::datatypes::{DataType, SchemaRef};
use lastseen::inputs::schema;
use lastseen::run::{self, Setup};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn keys(object: &Value) -> BTreeSet<String> {
    object.as_object().unwrap().keys().cloned().collect()
}

fn strings(array: &Value) -> BTreeSet<String> {
    array
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn table_schemas_match_the_arrow_tables() {
    let tables: [(&str, SchemaRef); 7] = [
        ("endpoints", schema::endpoints()),
        ("computers", schema::computers()),
        ("users", schema::users()),
        ("groups", schema::groups()),
        ("memberships", schema::memberships()),
        ("actions", schema::actions()),
        ("rejects", schema::rejects()),
    ];
    for (name, arrow_schema) in tables {
        let json = load(&format!("table-{name}.schema.json"));
        let mut documented = keys(&json["properties"]);
        documented.remove("raw"); // only in the --rejects file, not in the table

        let columns: BTreeSet<String> = arrow_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(documented, columns, "table {name}");

        let required = strings(&json["required"]);
        for field in arrow_schema.fields() {
            assert_eq!(
                required.contains(field.name()),
                !field.is_nullable(),
                "{name}.{} nullability",
                field.name()
            );
            let kind = &json["properties"][field.name()]["type"];
            let kind = kind.as_str().or_else(|| kind[0].as_str()).unwrap();
            let expected = match field.data_type() {
                DataType::Utf8 | DataType::Timestamp(..) => "string",
                DataType::Int64 => "integer",
                DataType::Boolean => "boolean",
                other => panic!("{name}.{}: no JSON type for {other}", field.name()),
            };
            assert_eq!(kind, expected, "{name}.{}", field.name());
        }
    }
}

#[tokio::test]
async fn demo_events_follow_the_event_schema() {
    let event_schema = load("candidate-event.schema.json");
    let properties = &event_schema["properties"];
    let reasons_allowed = strings(&properties["reasons"]["items"]["enum"]);
    let decisions = strings(&properties["decision"]["enum"]);

    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("candidates.jsonl");
    run::run(&Setup::Demo, None, Some(&output), None)
        .await
        .unwrap();
    let text = std::fs::read_to_string(&output).unwrap();

    let mut reasons_seen = BTreeSet::new();
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(keys(&event), keys(properties));
        assert_eq!(keys(&event), strings(&event_schema["required"]));
        for nested in ["central", "directory"] {
            assert_eq!(
                keys(&event[nested]),
                keys(&properties[nested]["properties"]),
                "{nested}"
            );
        }
        assert_eq!(event["event_type"], properties["event_type"]["const"]);
        assert_eq!(
            event["schema_version"],
            properties["schema_version"]["const"]
        );
        assert!(decisions.contains(event["decision"].as_str().unwrap()));

        let reasons = strings(&event["reasons"]);
        assert!(reasons.is_subset(&reasons_allowed), "{reasons:?}");
        assert_eq!(event["decision"] == "delete", reasons.is_empty(), "{line}");
        reasons_seen.extend(reasons);
    }

    // The demo exercises every reason but incomplete_input, which needs bad input.
    let mut expected = reasons_allowed.clone();
    expected.remove("incomplete_input");
    assert_eq!(reasons_seen, expected);
}
