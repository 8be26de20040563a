-- The facts that can hold a candidate back: the action log, VIP users, duplicates.

-- Per endpoint: was it deleted, did a delete fail, and is its latest ticket event an opening.
CREATE VIEW action_state AS
SELECT
    lower(tenant_id) AS tenant_key,
    lower(endpoint_id) AS endpoint_key,
    bool_or(action = 'deleted') AS deleted,
    bool_or(action = 'delete_failed') AS delete_failed,
    first_value(
        CASE WHEN action IN ('ticket_opened', 'ticket_closed') THEN action END
        ORDER BY CASE WHEN action IN ('ticket_opened', 'ticket_closed') THEN 0 ELSE 1 END,
            at DESC, line DESC
    ) AS last_ticket_action,
    first_value(
        CASE WHEN action = 'ticket_opened' THEN ticket END
        ORDER BY CASE WHEN action = 'ticket_opened' THEN 0 ELSE 1 END, at DESC, line DESC
    ) AS open_ticket
FROM actions
GROUP BY lower(tenant_id), lower(endpoint_id);

-- Everyone inside a VIP group, through any depth of nested groups. UNION (not UNION ALL)
-- drops rows already found, so a cycle of groups ends the recursion instead of looping.
CREATE VIEW vip_members AS
WITH RECURSIVE nested(dn_norm) AS (
    SELECT group_norm AS dn_norm FROM vip_groups
    UNION
    SELECT m.member_dn_norm AS dn_norm
    FROM memberships m
    JOIN nested n ON m.group_dn_norm = n.dn_norm
)
SELECT DISTINCT dn_norm FROM nested;

-- Endpoints that meet at least one retired computer, with the computer that stands as the
-- evidence (the first by DN when several do) and how many computers they meet in all.
CREATE TABLE retired_matches AS
SELECT
    m.tenant_key,
    m.endpoint_key,
    min(r.dn_norm) AS dn_norm,
    count(*) AS computers
FROM endpoint_matches m
LEFT JOIN retired_computers r ON r.dn_norm = m.dn_norm
GROUP BY m.tenant_key, m.endpoint_key
HAVING count(r.dn_norm) > 0;

-- How many Central endpoints, not yet deleted, meet each of those computers; more than one
-- is a duplicate hostname.
CREATE VIEW computer_endpoint_counts AS
SELECT m.dn_norm, count(*) AS endpoints
FROM endpoint_matches m
JOIN (SELECT DISTINCT dn_norm FROM retired_matches) r ON r.dn_norm = m.dn_norm
LEFT JOIN action_state a
    ON a.tenant_key = m.tenant_key AND a.endpoint_key = m.endpoint_key
WHERE NOT coalesce(a.deleted, false)
GROUP BY m.dn_norm;

-- Tenants whose input was incomplete; a NULL tenant means the whole run was.
CREATE VIEW incomplete_tenants AS
SELECT DISTINCT lower(tenant_id) AS tenant_key FROM rejects;
