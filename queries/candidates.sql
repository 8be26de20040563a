-- Candidates: endpoints of retired computers that have been away long enough, or whose last
-- contact is unknown, less those already deleted or under an open ticket. Each gets the
-- decision `delete` only when no reason for review applies.

-- The Central records behind the retired matches.
CREATE TABLE matched_records AS
SELECT e.*, r.dn_norm, r.computers
FROM retired_matches r
JOIN endpoint_domains e ON e.tenant_key = r.tenant_key AND e.endpoint_key = r.endpoint_key;

-- Should the input hold the same endpoint twice (overlapping exports), the record seen last
-- stands, ties broken on fixed columns so that every run picks the same one. Copies are rare
-- and ranking every record would cost more than all the joins, so only copies are ranked.
CREATE TABLE matched_endpoints AS
WITH copied AS (
    SELECT tenant_key, endpoint_key
    FROM matched_records
    GROUP BY tenant_key, endpoint_key
    HAVING count(*) > 1
)
SELECT m.*
FROM matched_records m
WHERE NOT EXISTS (
    SELECT 1 FROM copied c WHERE c.tenant_key = m.tenant_key AND c.endpoint_key = m.endpoint_key
)
UNION ALL
SELECT * EXCLUDE (copy) FROM (
    SELECT
        m.*,
        row_number() OVER (
            PARTITION BY m.tenant_key, m.endpoint_key
            ORDER BY m.last_seen_at DESC NULLS LAST, m.hostname, m.via_login, m.os_build
        ) AS copy
    FROM matched_records m
    JOIN copied c ON c.tenant_key = m.tenant_key AND c.endpoint_key = m.endpoint_key
)
WHERE copy = 1;

-- The AD records of the retired computers that stand as evidence.
CREATE TABLE evidence_records AS
SELECT c.*
FROM computers c
JOIN (SELECT DISTINCT dn_norm FROM matched_endpoints) m ON m.dn_norm = c.dn_norm;

-- A computer found in two exports counts once, with its latest change (ties broken on fixed
-- columns). As above, only the copies are ranked.
CREATE VIEW computer_evidence AS
WITH copied AS (
    SELECT dn_norm FROM evidence_records GROUP BY dn_norm HAVING count(*) > 1
)
SELECT c.*
FROM evidence_records c
WHERE NOT EXISTS (SELECT 1 FROM copied d WHERE d.dn_norm = c.dn_norm)
UNION ALL
SELECT * EXCLUDE (copy) FROM (
    SELECT
        c.*,
        row_number() OVER (
            PARTITION BY c.dn_norm
            ORDER BY c.when_changed DESC NULLS LAST, c.object_guid, c.dn
        ) AS copy
    FROM evidence_records c
    JOIN copied d ON d.dn_norm = c.dn_norm
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
