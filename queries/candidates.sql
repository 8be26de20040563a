-- Candidates: endpoints of retired computers that have been away long enough, or whose last
-- contact is unknown, less those already deleted or under an open ticket. Each gets the
-- decision `delete` only when no reason for review applies.

-- The Central records behind the retired matches. Should the input hold the same endpoint
-- twice (overlapping exports), the record seen last stands.
CREATE TABLE matched_endpoints AS
SELECT * FROM (
    SELECT
        e.*,
        r.dn_norm,
        r.computers,
        row_number() OVER (
            PARTITION BY e.tenant_key, e.endpoint_key
            ORDER BY e.last_seen_at DESC NULLS LAST, e.hostname, e.via_login, e.os_build
        ) AS copy
    FROM endpoint_domains e
    JOIN retired_matches r ON r.tenant_key = e.tenant_key AND r.endpoint_key = e.endpoint_key
)
WHERE copy = 1;

-- The retired computers as evidence; a computer found in two exports counts once, with its
-- latest change (ties broken on fixed columns, so every run picks the same one).
CREATE VIEW computer_evidence AS
SELECT * FROM (
    SELECT
        c.*,
        row_number() OVER (
            PARTITION BY c.dn_norm
            ORDER BY c.when_changed DESC NULLS LAST, c.object_guid, c.dn
        ) AS copy
    FROM computers c
    JOIN (SELECT DISTINCT dn_norm FROM matched_endpoints) m ON m.dn_norm = c.dn_norm
)
WHERE copy = 1;

-- The AD user behind an endpoint's logon: DOMAIN\user through the NetBIOS name, or a UPN,
-- matched whole or as user name plus a known suffix.
CREATE VIEW endpoint_users AS
SELECT e.tenant_key, e.endpoint_key, u.dn_norm
FROM matched_endpoints e
JOIN domains d ON d.netbios = e.login_netbios
JOIN users u ON u.domain = d.dns AND lower(u.sam_account_name) = e.login_user
UNION
SELECT e.tenant_key, e.endpoint_key, u.dn_norm
FROM matched_endpoints e
JOIN users u ON lower(u.user_principal_name) = lower(e.via_login)
WHERE e.login_upn_suffix IS NOT NULL
UNION
SELECT e.tenant_key, e.endpoint_key, u.dn_norm
FROM matched_endpoints e
JOIN upn_suffixes s ON s.suffix = e.login_upn_suffix
JOIN users u ON u.domain = s.dns AND lower(u.sam_account_name) = e.login_user;

CREATE VIEW vip_endpoints AS
SELECT DISTINCT u.tenant_key, u.endpoint_key
FROM endpoint_users u
JOIN vip_members v ON v.dn_norm = u.dn_norm;

-- Every retired match with the facts the policy weighs, before anything is left out.
CREATE TABLE evaluated AS
SELECT
    m.tenant_id,
    m.endpoint_id,
    m.tenant_key,
    m.endpoint_key,
    m.hostname,
    m.domain,
    m.last_seen_at,
    m.type AS central_type,
    m.os_name,
    m.os_build,
    m.associated_person,
    m.via_login,
    c.dn,
    c.object_guid,
    c.os AS computer_os,
    c.os_version AS computer_os_version,
    c.os_build AS computer_os_build,
    c.when_changed,
    CAST(floor((p.as_of_ms - arrow_cast(m.last_seen_at, 'Int64')) / 86400000.0) AS BIGINT)
        AS days_inactive,
    coalesce(a.deleted, false) AS already_deleted,
    coalesce(a.last_ticket_action = 'ticket_opened', false) AS ticket_open,
    a.open_ticket,

    -- The reasons for review, each a plain true or false.
    coalesce(m.os_build <> c.os_build, false) AS os_build_mismatch,
    p.os_build_unknown_is_reason AND (m.os_build IS NULL OR c.os_build IS NULL)
        AS os_build_unknown,
    (ve.endpoint_key IS NOT NULL OR vm.dn_norm IS NOT NULL) AS vip_user,
    coalesce(n.endpoints, 0) > 1 AS duplicate_hostname,
    coalesce(a.delete_failed, false) AS previous_delete_failed,
    m.last_seen_at IS NULL AS last_seen_unknown,
    m.domain IS NULL AS domain_unknown,
    m.computers > 1 AS multiple_computers,
    (it.tenant_key IS NOT NULL OR w.whole_run) AS incomplete_input
FROM matched_endpoints m
JOIN computer_evidence c ON c.dn_norm = m.dn_norm
CROSS JOIN policy p
CROSS JOIN (SELECT count(*) > 0 AS whole_run FROM incomplete_tenants WHERE tenant_key IS NULL) w
LEFT JOIN action_state a ON a.tenant_key = m.tenant_key AND a.endpoint_key = m.endpoint_key
LEFT JOIN vip_endpoints ve ON ve.tenant_key = m.tenant_key AND ve.endpoint_key = m.endpoint_key
LEFT JOIN vip_members vm ON vm.dn_norm = c.managed_by_norm
LEFT JOIN computer_endpoint_counts n ON n.dn_norm = m.dn_norm
LEFT JOIN incomplete_tenants it ON it.tenant_key = m.tenant_key;

CREATE VIEW candidates AS
SELECT
    tenant_id,
    endpoint_id,
    hostname,
    domain,
    CASE
        WHEN NOT coalesce(
            os_build_mismatch OR os_build_unknown OR vip_user OR duplicate_hostname
                OR previous_delete_failed OR last_seen_unknown OR domain_unknown
                OR multiple_computers OR incomplete_input,
            true
        ) THEN 'delete'
        ELSE 'manual_review'
    END AS decision,
    string_to_array(
        concat_ws(',',
            CASE WHEN os_build_mismatch THEN 'os_build_mismatch' END,
            CASE WHEN os_build_unknown THEN 'os_build_unknown' END,
            CASE WHEN vip_user THEN 'vip_user' END,
            CASE WHEN duplicate_hostname THEN 'duplicate_hostname' END,
            CASE WHEN previous_delete_failed THEN 'previous_delete_failed' END,
            CASE WHEN last_seen_unknown THEN 'last_seen_unknown' END,
            CASE WHEN domain_unknown THEN 'domain_unknown' END,
            CASE WHEN multiple_computers THEN 'multiple_computers' END,
            CASE WHEN incomplete_input THEN 'incomplete_input' END
        ),
        ','
    ) AS reasons,
    days_inactive,
    last_seen_at,
    central_type,
    os_name,
    os_build,
    associated_person,
    via_login,
    dn,
    object_guid,
    computer_os,
    computer_os_version,
    computer_os_build,
    when_changed
FROM evaluated e
CROSS JOIN policy p
WHERE (e.days_inactive >= p.min_inactive_days OR e.last_seen_at IS NULL)
    AND NOT e.already_deleted
    AND NOT e.ticket_open;
