//! Arrow schemas of the tables the readers build. `schemas/*.schema.json` describes the same
//! tables for people and other tools; a test keeps the two in step.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

fn instant(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        true,
    )
}

static ENDPOINTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("tenant_id", true),
        text("endpoint_id", false),
        text("hostname", true),
        text("type", true),
        text("health", true),
        text("os_platform", true),
        text("os_name", true),
        int("os_build"),
        text("associated_person", true),
        text("via_login", true),
        text("group_name", true),
        flag("tamper_protection_enabled"),
        flag("online"),
        instant("last_seen_at"),
    ]))
});

static COMPUTERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("dn", false),
        text("dn_norm", false),
        text("domain", true),
        text("cn", true),
        text("sam_account_name", true),
        text("dns_host_name", true),
        text("os", true),
        text("os_version", true),
        int("os_build"),
        text("object_guid", true),
        text("managed_by", true),
        text("managed_by_norm", true),
        int("user_account_control"),
        instant("when_changed"),
        instant("last_logon_at"),
    ]))
});

static USERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("dn", false),
        text("dn_norm", false),
        text("domain", true),
        text("sam_account_name", true),
        text("user_principal_name", true),
        text("object_guid", true),
    ]))
});

static GROUPS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("dn", false),
        text("dn_norm", false),
        text("domain", true),
        text("cn", true),
        text("object_guid", true),
    ]))
});

static MEMBERSHIPS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("group_dn_norm", false),
        text("member_dn_norm", false),
    ]))
});

static ACTIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        text("action", false),
        text("tenant_id", false),
        text("endpoint_id", false),
        text("ticket", true),
        text("detail", true),
        Field::new("line", DataType::Int64, false),
    ]))
});

static REJECTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("input", false),
        text("file", false),
        text("record", false),
        text("field", true),
        text("problem", false),
        text("tenant_id", true),
        text("endpoint_id", true),
    ]))
});

/// One row per Central endpoint record.
pub fn endpoints() -> SchemaRef {
    ENDPOINTS.clone()
}

/// One row per AD computer object.
pub fn computers() -> SchemaRef {
    COMPUTERS.clone()
}

/// One row per AD user object (computers excluded).
pub fn users() -> SchemaRef {
    USERS.clone()
}

/// One row per AD group object.
pub fn groups() -> SchemaRef {
    GROUPS.clone()
}

/// Direct group memberships, from groups' `member` and members' `memberOf`, both as canonical
/// DNs.
pub fn memberships() -> SchemaRef {
    MEMBERSHIPS.clone()
}

/// One row per action log record; `line` keeps file order for events at the same instant.
pub fn actions() -> SchemaRef {
    ACTIONS.clone()
}

/// One row per rejected record.
pub fn rejects() -> SchemaRef {
    REJECTS.clone()
}
