//! The correlation stage: Arrow tables in, candidates out, through the SQL in `queries/`.
//!
//! The policy is SQL, not Rust, so that it can be read, audited and queried ad hoc: every view
//! and table the queries create stays in the session for `lastseen sql`. Rust only registers
//! the input tables and the policy parameters, and runs the query files in order.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use tracing::debug;

use crate::config::{Config, UnknownOsBuild};
use crate::inputs::{Estate, dn, rejects_batch, schema};

/// The policy, in the order it runs. Built into the binary so that a run never depends on
/// where it was started from.
pub const QUERIES: [(&str, &str); 3] = [
    ("queries/match.sql", include_str!("../../queries/match.sql")),
    (
        "queries/evidence.sql",
        include_str!("../../queries/evidence.sql"),
    ),
    (
        "queries/candidates.sql",
        include_str!("../../queries/candidates.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    #[error("{file}: {source}")]
    Query {
        file: &'static str,
        source: Box<DataFusionError>,
    },

    #[error("cannot register table {table}: {source}")]
    Register {
        table: &'static str,
        source: Box<DataFusionError>,
    },

    #[error("{0}")]
    DataFusion(#[from] Box<DataFusionError>),
}

impl From<DataFusionError> for CorrelateError {
    fn from(error: DataFusionError) -> Self {
        CorrelateError::DataFusion(Box::new(error))
    }
}

/// A session holding the estate's tables and every view of the policy.
pub async fn session(
    estate: &Estate,
    config: &Config,
    as_of: DateTime<Utc>,
) -> Result<SessionContext, CorrelateError> {
    let partitions = std::thread::available_parallelism().map_or(2, usize::from);
    let mut session_config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(true);
    // The policy's filters keep nearly every row (non-empty hostnames, keys that are set), but
    // DataFusion guesses a filter keeps a fifth. With that guess the million-row endpoint view
    // looked as small as the retired matches and was hashed as the build side of their join.
    session_config
        .options_mut()
        .optimizer
        .default_filter_selectivity = 100;
    let ctx = SessionContext::new_with_config(session_config);

    let tables: [(&'static str, _, &[RecordBatch]); 6] = [
        ("endpoints", schema::endpoints(), &estate.central.endpoints),
        (
            "computers",
            schema::computers(),
            &estate.directory.computers,
        ),
        ("users", schema::users(), &estate.directory.users),
        ("groups", schema::groups(), &estate.directory.groups),
        (
            "memberships",
            schema::memberships(),
            &estate.directory.memberships,
        ),
        ("actions", schema::actions(), &estate.actions.actions),
    ];
    for (name, table_schema, batches) in tables {
        register(&ctx, name, table_schema, batches.to_vec())?;
    }
    let rejects = rejects_batch(&estate.rejects);
    register(&ctx, "rejects", schema::rejects(), vec![rejects])?;

    for (name, batch) in policy_tables(config, as_of) {
        register(&ctx, name, batch.schema(), vec![batch])?;
    }

    for (file, text) in QUERIES {
        run_script(&ctx, file, text).await?;
    }
    Ok(ctx)
}

/// The candidates, in a stable order.
pub async fn candidates(ctx: &SessionContext) -> Result<Vec<RecordBatch>, CorrelateError> {
    let frame = ctx
        .sql("SELECT * FROM candidates ORDER BY tenant_id, endpoint_id")
        .await?;
    Ok(frame.collect().await?)
}

/// Runs every statement of a query file; `CREATE VIEW` and `CREATE TABLE ... AS` register
/// their result in the session.
pub async fn run_script(
    ctx: &SessionContext,
    file: &'static str,
    text: &str,
) -> Result<Vec<RecordBatch>, CorrelateError> {
    let fail = |source: DataFusionError| CorrelateError::Query {
        file,
        source: Box::new(source),
    };

    let statements = DFParser::parse_sql(text).map_err(fail)?;
    let mut last = Vec::new();
    for statement in statements {
        // The head of the statement names it in the log: `CREATE TABLE evaluated AS`.
        let head = statement.to_string();
        let head: String = head
            .split(" AS ")
            .next()
            .unwrap_or(&head)
            .chars()
            .take(60)
            .collect();
        let started = std::time::Instant::now();

        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(fail)?;
        let frame = ctx.execute_logical_plan(plan).await.map_err(fail)?;
        last = frame.collect().await.map_err(fail)?;

        debug!(
            file,
            statement = %head,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Ran a statement."
        );
    }
    Ok(last)
}

fn register(
    ctx: &SessionContext,
    table: &'static str,
    table_schema: Arc<Schema>,
    batches: Vec<RecordBatch>,
) -> Result<(), CorrelateError> {
    let fail = |source: DataFusionError| CorrelateError::Register {
        table,
        source: Box::new(source),
    };

    // Deal the batches out so that every core scans a share.
    let partitions = ctx.copied_config().target_partitions().max(1);
    let mut dealt = vec![Vec::new(); partitions];
    for (index, batch) in batches.into_iter().filter(|b| b.num_rows() > 0).enumerate() {
        dealt[index % partitions].push(batch);
    }

    let table_provider = MemTable::try_new(table_schema, dealt).map_err(fail)?;
    ctx.register_table(table, Arc::new(table_provider))
        .map_err(fail)?;
    Ok(())
}

/// The configuration as small tables, so the SQL can join on it rather than have values
/// pasted into its text.
fn policy_tables(config: &Config, as_of: DateTime<Utc>) -> Vec<(&'static str, RecordBatch)> {
    let utc = Some("UTC".into());
    let policy = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new(
                "as_of",
                DataType::Timestamp(TimeUnit::Millisecond, utc.clone()),
                false,
            ),
            Field::new("as_of_ms", DataType::Int64, false),
            Field::new("min_inactive_days", DataType::Int64, false),
            Field::new("os_build_unknown_is_reason", DataType::Boolean, false),
        ])),
        vec![
            Arc::new(
                TimestampMillisecondArray::from(vec![as_of.timestamp_millis()])
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(vec![as_of.timestamp_millis()])),
            Arc::new(Int64Array::from(vec![i64::from(
                config.policy.min_inactive_days,
            )])),
            Arc::new(BooleanArray::from(vec![
                config.policy.unknown_os_build == UnknownOsBuild::ManualReview,
            ])),
        ],
    );

    // Canonical DNs; Config::load has already refused any that do not parse.
    let canonical = |dns: &[String]| -> Vec<String> {
        dns.iter().filter_map(|dn| dn::normalize(dn).ok()).collect()
    };
    let lower = |text: &str| text.trim().to_lowercase();

    let domains: Vec<_> = config.domains.iter().collect();
    let dns: Vec<String> = domains.iter().map(|d| lower(&d.dns)).collect();
    let netbios: Vec<Option<String>> = domains
        .iter()
        .map(|d| d.netbios.as_deref().map(lower))
        .collect();

    let mut tenant_rows = (Vec::new(), Vec::new());
    let mut suffix_rows = (Vec::new(), Vec::new());
    for domain in &domains {
        for tenant in &domain.tenants {
            tenant_rows.0.push(lower(tenant));
            tenant_rows.1.push(lower(&domain.dns));
        }
        for suffix in std::iter::once(&domain.dns).chain(&domain.upn_suffixes) {
            suffix_rows.0.push(lower(suffix));
            suffix_rows.1.push(lower(&domain.dns));
        }
    }

    let text_table = |columns: Vec<(&str, Vec<Option<String>>)>| {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, true))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|(_, values)| Arc::new(StringArray::from(values)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    };
    let some = |values: Vec<String>| values.into_iter().map(Some).collect::<Vec<_>>();

    // Each disabled OU with its domain, so that a computer is tested only against the OUs of
    // its own domain: a hash join rather than every computer against every OU.
    let disabled_ous = canonical(&config.policy.disabled_ous);
    let ou_domains: Vec<Option<String>> = disabled_ous.iter().map(|ou| dn::domain_of(ou)).collect();

    let tables = [
        ("policy", policy),
        (
            "domains",
            text_table(vec![("dns", some(dns)), ("netbios", netbios)]),
        ),
        (
            "tenant_domains",
            text_table(vec![
                ("tenant_id", some(tenant_rows.0)),
                ("dns", some(tenant_rows.1)),
            ]),
        ),
        (
            "upn_suffixes",
            text_table(vec![
                ("suffix", some(suffix_rows.0)),
                ("dns", some(suffix_rows.1)),
            ]),
        ),
        (
            "disabled_ous",
            text_table(vec![
                ("ou_norm", some(disabled_ous)),
                ("domain", ou_domains),
            ]),
        ),
        (
            "vip_groups",
            text_table(vec![(
                "group_norm",
                some(canonical(&config.policy.vip_groups)),
            )]),
        ),
    ];
    tables
        .into_iter()
        .map(|(name, batch)| {
            (
                name,
                batch.expect("policy tables are built column by column"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::inputs::{InputPlan, Source};
    use crate::output;

    const CONFIG: &str = r#"
        as_of = "2026-12-01T00:00:00Z"
        [policy]
        disabled_ous = ["OU=Disabled,DC=corp,DC=test"]
        vip_groups = ["CN=VIP,DC=corp,DC=test"]
        [[domains]]
        dns = "corp.test"
        netbios = "CORP"
        tenants = ["T1"]
        upn_suffixes = ["corp.example.com"]
    "#;

    fn memory(name: &str, text: &str) -> Source {
        Source::Memory {
            name: name.to_owned(),
            bytes: Arc::from(text.as_bytes()),
        }
    }

    /// Endpoints given as (tenant, hostname, lastSeenAt, viaLogin), against an LDIF, returned
    /// as (hostname, decision, reasons) sorted by hostname.
    async fn decide(
        endpoints: &[(&str, &str, Option<&str>, Option<&str>)],
        ldif: &str,
    ) -> Vec<(String, String, Vec<String>)> {
        let items: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(index, (tenant, host, seen, login))| {
                let mut item = serde_json::json!({
                    "id": format!("e{index}"),
                    "tenant": {"id": tenant},
                    "hostname": host,
                    "os": {"build": 19045},
                });
                if let Some(seen) = seen {
                    item["lastSeenAt"] = (*seen).into();
                }
                if let Some(login) = login {
                    item["associatedPerson"] = serde_json::json!({"viaLogin": login});
                }
                item.to_string()
            })
            .collect();
        let page = format!("{{\"items\": [{}]}}", items.join(","));

        let plan = InputPlan {
            central: vec![memory("pages/page-1.json", &page)],
            ldif: vec![memory("corp.ldif", ldif)],
            actions: None,
        };
        let config = Config::parse(CONFIG, Path::new("test.toml"), Path::new(".")).unwrap();
        let estate = Estate::load(&plan).unwrap();
        assert!(estate.rejects.is_empty(), "{:?}", estate.rejects);

        let as_of = config.as_of.unwrap();
        let ctx = session(&estate, &config, as_of).await.unwrap();
        let events = output::events(&candidates(&ctx).await.unwrap(), as_of).unwrap();
        let mut rows: Vec<_> = events
            .into_iter()
            .map(|e| (e.hostname.unwrap_or_default(), e.decision, e.reasons))
            .collect();
        rows.sort();
        rows
    }

    fn computer(name: &str, ou: &str) -> String {
        format!(
            "dn: CN={name},{ou},DC=corp,DC=test\nobjectClass: computer\ncn: {name}\n\
             sAMAccountName: {name}$\noperatingSystemVersion: 10.0 (19045)\n\n"
        )
    }

    const OLD: Option<&str> = Some("2026-09-01T00:00:00Z");

    fn row(host: &str, decision: &str, reasons: &[&str]) -> (String, String, Vec<String>) {
        let reasons = reasons.iter().map(|r| r.to_string()).collect();
        (host.to_owned(), decision.to_owned(), reasons)
    }

    #[tokio::test]
    async fn fqdn_suffix_wins_and_a_trailing_dot_is_dropped() {
        let ldif = computer("WS-1", "OU=Disabled") + &computer("WS-2", "OU=Disabled");
        let rows = decide(
            &[
                // An unmapped tenant, but the FQDN names the domain, with a trailing dot.
                ("T9", "ws-1.corp.test.", OLD, None),
                // A mapped tenant whose endpoint's FQDN names another domain: no match.
                ("T1", "ws-2.other.test", OLD, None),
            ],
            &ldif,
        )
        .await;
        assert_eq!(rows, vec![row("ws-1.corp.test.", "delete", &[])]);
    }

    #[tokio::test]
    async fn logons_name_the_domain_in_either_form() {
        let ldif = computer("WS-1", "OU=Disabled")
            + &computer("WS-2", "OU=Disabled")
            + &computer("WS-3", "OU=Disabled")
            + &computer("WS-4", "OU=Disabled");
        let rows = decide(
            &[
                ("T9", "WS-1", OLD, Some(r"corp\someone")),
                ("T9", "WS-2", OLD, Some("someone@CORP.TEST")),
                ("T9", "WS-3", OLD, Some("someone@corp.example.com")),
                ("T9", "WS-4", OLD, Some("someone@elsewhere.test")),
            ],
            &ldif,
        )
        .await;
        assert_eq!(
            rows,
            vec![
                row("WS-1", "delete", &[]),
                row("WS-2", "delete", &[]),
                row("WS-3", "delete", &[]),
                row("WS-4", "manual_review", &["domain_unknown"]),
            ]
        );
    }

    #[tokio::test]
    async fn the_15_character_rule_runs_one_way_only() {
        let ldif = computer("LAPTOP-FINANCE0", "OU=Disabled") + &computer("SHORT", "OU=Disabled");
        let rows = decide(
            &[
                ("T1", "LAPTOP-FINANCE01", OLD, None),
                ("T1", "LAPTOP-FINANCE0", OLD, None),
                // A 15-character endpoint does not meet a longer computer name.
                ("T1", "SHORTER", OLD, None),
            ],
            &ldif,
        )
        .await;
        // Both endpoints meet the one computer, so each is a duplicate of the other.
        assert_eq!(
            rows,
            vec![
                row("LAPTOP-FINANCE0", "manual_review", &["duplicate_hostname"]),
                row("LAPTOP-FINANCE01", "manual_review", &["duplicate_hostname"]),
            ]
        );
    }

    #[tokio::test]
    async fn vip_membership_through_member_of_and_upn() {
        let ldif = computer("WS-1", "OU=Disabled")
            + "dn: CN=VIP,DC=corp,DC=test\nobjectClass: group\n\n\
               dn: CN=Boss,OU=Users,DC=corp,DC=test\nobjectClass: user\n\
               sAMAccountName: boss\nuserPrincipalName: b.oss@corp.example.com\n\
               memberOf: CN=VIP,DC=corp,DC=test\n\n";
        let rows = decide(
            &[("T1", "WS-1", OLD, Some("b.oss@corp.example.com"))],
            &ldif,
        )
        .await;
        assert_eq!(rows, vec![row("WS-1", "manual_review", &["vip_user"])]);
    }

    #[tokio::test]
    async fn a_retired_computer_below_a_sub_ou_counts_and_a_lookalike_does_not() {
        // WS-3's name ends in ",OU=Disabled", escaped in its DN; its host key still meets the
        // endpoint's, but it lives in Workstations.
        let ldif = computer("WS-1", "OU=2026,OU=Disabled")
            + &computer("WS-2", "OU=Not Disabled")
            + "dn: CN=WS-3\\,OU=Disabled,OU=Workstations,DC=corp,DC=test\nobjectClass: computer\n\
               cn: WS-3,OU=Disabled\n\n";
        let rows = decide(
            &[
                ("T1", "WS-1", OLD, None),
                ("T1", "WS-2", OLD, None),
                ("T1", "WS-3,OU=Disabled", OLD, None),
            ],
            &ldif,
        )
        .await;
        assert_eq!(rows, vec![row("WS-1", "delete", &[])]);
    }

    #[tokio::test]
    async fn the_same_endpoint_twice_is_one_candidate() {
        let ldif = computer("WS-1", "OU=Disabled");
        let page = |seen: &str| {
            format!(
                "{{\"items\": [{{\"id\": \"E1\", \"tenant\": {{\"id\": \"T1\"}}, \
                 \"hostname\": \"WS-1\", \"os\": {{\"build\": 19045}}, \"lastSeenAt\": \"{seen}\"}}]}}"
            )
        };
        let plan = InputPlan {
            central: vec![
                memory("a/page-1.json", &page("2026-08-01T00:00:00Z")),
                memory("b/page-1.json", &page("2026-09-01T00:00:00Z")),
            ],
            ldif: vec![memory("corp.ldif", &ldif), memory("copy.ldif", &ldif)],
            actions: None,
        };
        let config = Config::parse(CONFIG, Path::new("test.toml"), Path::new(".")).unwrap();
        let estate = Estate::load(&plan).unwrap();
        let as_of = config.as_of.unwrap();
        let ctx = session(&estate, &config, as_of).await.unwrap();
        let events = output::events(&candidates(&ctx).await.unwrap(), as_of).unwrap();

        // One event, from the later record, with no duplicate or multiple-computer reason.
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].decision, "delete");
        assert_eq!(events[0].days_inactive, Some(91));
    }
}
