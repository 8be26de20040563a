-- How Central endpoints meet Active Directory computers.
--
-- Names are compared case-folded. An endpoint's host key is the first label of its hostname;
-- a computer has up to three keys (cn, sAMAccountName without '$', the first label of
-- dNSHostName). NetBIOS cuts names at 15 characters, so an endpoint whose key is longer also
-- meets a computer whose key is its first 15 characters.

CREATE VIEW endpoint_hosts AS
SELECT
    e.*,
    lower(e.tenant_id) AS tenant_key,
    lower(e.endpoint_id) AS endpoint_key,
    lower(split_part(e.hostname, '.', 1)) AS host_key,
    -- A trailing dot (an absolute FQDN) is dropped; a bare 'host.' has no domain.
    CASE WHEN strpos(e.hostname, '.') > 0
        THEN nullif(rtrim(lower(substr(e.hostname, strpos(e.hostname, '.') + 1)), '.'), '')
    END AS fqdn_domain,
    -- A logon is either DOMAIN\user or a UPN, user@suffix.
    CASE WHEN strpos(e.via_login, '\') > 0
        THEN lower(split_part(e.via_login, '\', 1))
    END AS login_netbios,
    CASE
        WHEN strpos(e.via_login, '\') > 0 THEN lower(split_part(e.via_login, '\', 2))
        WHEN strpos(e.via_login, '@') > 0 THEN lower(split_part(e.via_login, '@', 1))
    END AS login_user,
    CASE WHEN strpos(e.via_login, '\') = 0 AND strpos(e.via_login, '@') > 0
        THEN lower(split_part(e.via_login, '@', 2))
    END AS login_upn_suffix
FROM endpoints e
WHERE trim(coalesce(e.hostname, '')) <> '';

-- An endpoint's domain: its FQDN suffix; else the domain its tenant is mapped to; else the
-- domain of its logon, through the NetBIOS name or the UPN suffix.
CREATE VIEW endpoint_domains AS
SELECT
    h.*,
    coalesce(h.fqdn_domain, t.dns, n.dns, u.dns) AS domain
FROM endpoint_hosts h
LEFT JOIN tenant_domains t ON t.tenant_id = h.tenant_key
LEFT JOIN domains n ON n.netbios = h.login_netbios
LEFT JOIN upn_suffixes u ON u.suffix = h.login_upn_suffix;

-- One row per distinct key of a computer. The three names usually agree, so each later name
-- is kept only where it differs from the earlier ones: no table-wide deduplication needed.
CREATE VIEW computer_names AS
SELECT
    dn_norm,
    domain,
    nullif(lower(cn), '') AS cn_key,
    nullif(lower(rtrim(sam_account_name, '$')), '') AS sam_key,
    nullif(lower(split_part(dns_host_name, '.', 1)), '') AS dns_key
FROM computers;

CREATE VIEW computer_keys AS
SELECT dn_norm, domain, cn_key AS host_key
FROM computer_names WHERE cn_key IS NOT NULL
UNION ALL
SELECT dn_norm, domain, sam_key AS host_key
FROM computer_names
WHERE sam_key IS NOT NULL AND (sam_key IS DISTINCT FROM cn_key)
UNION ALL
SELECT dn_norm, domain, dns_key AS host_key
FROM computer_names
WHERE dns_key IS NOT NULL
    AND (dns_key IS DISTINCT FROM cn_key)
    AND (dns_key IS DISTINCT FROM sam_key);

-- Every (endpoint, computer) pair that meets. An endpoint with no domain meets a computer of
-- any domain; the policy then asks for review. Kept as a table: three later steps read it,
-- and a view would join the whole estate again for each.
CREATE TABLE endpoint_matches AS
SELECT e.tenant_key, e.endpoint_key, k.dn_norm
FROM endpoint_domains e
JOIN computer_keys k ON k.host_key = e.host_key
WHERE e.domain IS NULL OR e.domain = k.domain
UNION
SELECT e.tenant_key, e.endpoint_key, k.dn_norm
FROM endpoint_domains e
JOIN computer_keys k ON k.host_key = substr(e.host_key, 1, 15)
WHERE char_length(e.host_key) > 15 AND (e.domain IS NULL OR e.domain = k.domain);

-- A computer is retired when its DN lies in or below a disabled OU. DNs are canonical (see
-- the reader), so a suffix test on ',' plus the OU is exact. AD puts DC= parts only at the
-- root of a DN, so a computer below an OU has the OU's domain: only the OUs of its own domain
-- need the test.
CREATE VIEW retired_computers AS
SELECT DISTINCT c.dn_norm
FROM computers c
JOIN disabled_ous o ON c.domain IS NOT DISTINCT FROM o.domain
WHERE ends_with(c.dn_norm, ',' || o.ou_norm);
