//! Reading the endpoint list's query string the way Central does: comma lists or repeated
//! keys, timestamps that must carry a zone, signed ISO 8601 durations relative to now, and 400
//! for anything the simulator does not understand (so that a client's typo, such as `pageKey`
//! for `pageFromKey`, shows at once instead of silently listing everything).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

/// Endpoint list parameters the simulator implements.
const LIST_PARAMETERS: [&str; 12] = [
    "pageSize",
    "pageFromKey",
    "pageTotal",
    "view",
    "lastSeenBefore",
    "lastSeenAfter",
    "ids",
    "hostnameContains",
    "healthStatus",
    "type",
    "tamperProtectionEnabled",
    "online",
];

/// Parameters Central documents that the simulator does not implement: a 400 says so rather
/// than pretending to filter.
const UNIMPLEMENTED_PARAMETERS: [&str; 21] = [
    "sort",
    "tamperProtectionSupported",
    "lockdownStatus",
    "overallEncryptionStatus",
    "lastOsUpdateBefore",
    "lastOsUpdateAfter",
    "lastAgentUpdateBefore",
    "lastAgentUpdateAfter",
    "isolationStatus",
    "serialNumberContains",
    "associatedPersonContains",
    "groupNameContains",
    "search",
    "searchFields",
    "ipAddresses",
    "macAddresses",
    "cloud",
    "fields",
    "assignedToGroup",
    "groupIds",
    "gatewayId",
];

/// The parameters of a query string by name, every value of a repeated key kept in order.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, Vec<String>>,
}

impl Params {
    /// Decodes a raw query string; `+` becomes a space, as form encoding says.
    pub fn parse(raw: Option<&str>) -> Params {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            values
                .entry(key.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        Params { values }
    }

    /// A parameter that may appear once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, String> {
        match self.values.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([value]) => Ok(Some(value.as_str())),
            Some(_) => Err(format!("{name} is given more than once")),
        }
    }

    /// A list parameter, as comma-separated values and/or repeated keys.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        let values = self.values.get(name)?;
        let items = values
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect();
        Some(items)
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.single(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(format!("{name} must be true or false, not {other:?}")),
        }
    }

    pub fn number(&self, name: &str) -> Result<Option<u64>, String> {
        match self.single(name)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("{name} must be a whole number, not {text:?}")),
        }
    }

    /// Refuses names outside `allowed`, saying whether Central knows them.
    pub fn only(&self, allowed: &[&str]) -> Result<(), String> {
        for name in self.values.keys() {
            if allowed.contains(&name.as_str()) {
                continue;
            }
            if UNIMPLEMENTED_PARAMETERS.contains(&name.as_str()) {
                return Err(format!(
                    "query parameter {name} is not supported by the simulator"
                ));
            }
            return Err(format!("unknown query parameter {name:?}"));
        }
        Ok(())
    }
}

/// Which fields of an endpoint the answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Basic,
    Summary,
    Full,
}

/// The filters of an endpoint list request.
#[derive(Debug, Default, Clone)]
pub struct EndpointFilter {
    pub last_seen_before: Option<DateTime<Utc>>,
    pub last_seen_after: Option<DateTime<Utc>>,
    pub ids: Option<Vec<String>>,
    pub hostname_contains: Option<String>,
    pub health_status: Option<Vec<String>>,
    pub kinds: Option<Vec<String>>,
    pub tamper_protection_enabled: Option<bool>,
    pub online: Option<bool>,
}

/// A parsed endpoint list request.
#[derive(Debug)]
pub struct ListRequest {
    pub page_size: u32,
    pub page_from_key: Option<String>,
    pub page_total: bool,
    pub view: View,
    pub filter: EndpointFilter,
    /// The filter and size as sent, so that a key can be tied to them.
    pub fingerprint: u64,
}

/// Reads an endpoint list request. `clamp` decides what an oversized `pageSize` gets.
pub fn list_request(
    params: &Params,
    now: DateTime<Utc>,
    clamp: bool,
) -> Result<ListRequest, String> {
    params.only(&LIST_PARAMETERS)?;

    let page_size = match params.number("pageSize")? {
        None => 50,
        Some(0) => return Err("pageSize must be at least 1".to_owned()),
        Some(size) if size > 500 && clamp => 500,
        Some(size) if size > 500 => {
            return Err(format!("pageSize {size} is above the maximum 500"));
        }
        Some(size) => size as u32,
    };

    let view = match params.single("view")? {
        None | Some("summary") => View::Summary,
        Some("basic") => View::Basic,
        Some("full") => View::Full,
        Some(other) => {
            return Err(format!(
                "view must be basic, summary or full, not {other:?}"
            ));
        }
    };

    let filter = EndpointFilter {
        last_seen_before: time_param(params, "lastSeenBefore", now)?,
        last_seen_after: time_param(params, "lastSeenAfter", now)?,
        ids: params.list("ids"),
        hostname_contains: params.single("hostnameContains")?.map(str::to_lowercase),
        health_status: enum_list(
            params,
            "healthStatus",
            &["good", "suspicious", "bad", "unknown"],
        )?,
        kinds: enum_list(params, "type", &["computer", "server", "securityVm"])?,
        tamper_protection_enabled: params.bool("tamperProtectionEnabled")?,
        online: params.bool("online")?,
    };

    // The raw filter text, not the parsed instants: a relative `-P30D` stays the same query on
    // every page even though "now" moves on.
    let mut fingerprint_text = format!("{page_size}|{view:?}");
    for name in LIST_PARAMETERS.iter().skip(4) {
        if let Some(values) = params.values.get(*name) {
            fingerprint_text.push_str(&format!("|{name}={}", values.join(",")));
        }
    }

    Ok(ListRequest {
        page_size,
        page_from_key: params
            .single("pageFromKey")?
            .filter(|key| !key.is_empty())
            .map(str::to_owned),
        page_total: params.bool("pageTotal")?.unwrap_or(false),
        view,
        filter,
        fingerprint: fnv1a(fingerprint_text.as_bytes()),
    })
}

fn enum_list(params: &Params, name: &str, allowed: &[&str]) -> Result<Option<Vec<String>>, String> {
    let Some(values) = params.list(name) else {
        return Ok(None);
    };
    if let Some(bad) = values
        .iter()
        .find(|value| !allowed.contains(&value.as_str()))
    {
        return Err(format!(
            "{name} value {bad:?} is not one of {}",
            allowed.join(", ")
        ));
    }
    Ok(Some(values))
}

fn time_param(
    params: &Params,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    match params.single(name)? {
        None => Ok(None),
        Some(text) => parse_instant(text, now)
            .map(Some)
            .map_err(|problem| format!("{name}: {problem}")),
    }
}

/// A UTC timestamp with a zone (`2024-01-15T10:30:00Z`) or a signed ISO 8601 duration from
/// now (`-P90D`, `-PT2H`, `-P3DT4H5M0S`).
pub fn parse_instant(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Some(duration) = text.strip_prefix('-') {
        return Ok(now - parse_duration(duration)?);
    }
    if let Some(duration) = text.strip_prefix('+') {
        return Ok(now + parse_duration(duration)?);
    }
    if text.starts_with('P') {
        return Err(format!(
            "{text:?} is a duration without a sign; write -{text} for the past"
        ));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
    if naive {
        return Err(format!("{text:?} has no zone designator; add Z"));
    }
    Err(format!(
        "{text:?} is neither an RFC 3339 timestamp nor a signed ISO 8601 duration"
    ))
}

/// `P[nY][nM][nW][nD][T[nH][nM][n[.n]S]]`, years as 365 days and months as 30.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not an ISO 8601 duration");
    let body = text.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match body.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };

    let mut total = Duration::zero();
    let mut parts = 0;
    for (section, units) in [(Some(date), "YMWD"), (time, "HMS")] {
        let Some(mut rest) = section else { continue };
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (number, tail) = rest.split_at(end);
            let unit = tail.chars().next().ok_or_else(bad)?;
            if !units.contains(unit) || number.is_empty() {
                return Err(bad());
            }
            let amount: f64 = number.parse().map_err(|_| bad())?;
            let seconds = match (units, unit) {
                ("YMWD", 'Y') => 365.0 * 86_400.0,
                ("YMWD", 'M') => 30.0 * 86_400.0,
                ("YMWD", 'W') => 7.0 * 86_400.0,
                ("YMWD", 'D') => 86_400.0,
                (_, 'H') => 3_600.0,
                (_, 'M') => 60.0,
                _ => 1.0,
            };
            total += Duration::milliseconds((amount * seconds * 1000.0).round() as i64);
            parts += 1;
            rest = &tail[1..];
        }
    }
    if parts == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// A small stable hash, the same in every process (keys outlive nothing but a test, yet a
/// simulator restarted between two pages should still refuse a foreign key consistently).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn instants_need_a_zone_and_durations_a_sign() {
        let at = |text: &str| parse_instant(text, now()).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2024-01-15T10:30:00Z").unwrap(),
            "2024-01-15T10:30:00+00:00"
        );
        assert_eq!(
            at("2019-09-23T12:02:01.700Z").unwrap(),
            "2019-09-23T12:02:01.700+00:00"
        );
        assert_eq!(at("-P90D").unwrap(), "2024-12-10T12:00:00+00:00");
        assert_eq!(at("-PT2H").unwrap(), "2025-03-10T10:00:00+00:00");
        assert_eq!(at("-P3DT4H5M0S").unwrap(), "2025-03-07T07:55:00+00:00");
        assert_eq!(at("-P1W").unwrap(), "2025-03-03T12:00:00+00:00");

        assert!(
            at("2024-01-15T10:30:00")
                .unwrap_err()
                .contains("no zone designator")
        );
        assert!(at("P1D").unwrap_err().contains("without a sign"));
        assert!(at("-P").unwrap_err().contains("not an ISO 8601 duration"));
        assert!(at("-P1X").unwrap_err().contains("not an ISO 8601 duration"));
        assert!(at("-PT").unwrap_err().contains("not an ISO 8601 duration"));
        assert!(at("yesterday").unwrap_err().contains("neither"));
    }

    #[test]
    fn lists_come_as_commas_or_repeated_keys() {
        let params = Params::parse(Some("healthStatus=good,bad&healthStatus=suspicious&x=1"));
        assert_eq!(
            params.list("healthStatus").unwrap(),
            ["good", "bad", "suspicious"]
        );
        assert!(
            params
                .only(&["healthStatus"])
                .unwrap_err()
                .contains("unknown query parameter")
        );
    }

    #[test]
    fn list_request_checks_every_parameter() {
        let request = |query: &str| list_request(&Params::parse(Some(query)), now(), false);

        let plain = request("").unwrap();
        assert_eq!(
            (plain.page_size, plain.view, plain.page_total),
            (50, View::Summary, false)
        );

        assert!(
            request("pageSize=501")
                .unwrap_err()
                .contains("above the maximum 500")
        );
        let clamped = list_request(&Params::parse(Some("pageSize=900")), now(), true).unwrap();
        assert_eq!(clamped.page_size, 500);

        assert!(
            request("pageKey=abc")
                .unwrap_err()
                .contains("unknown query parameter")
        );
        assert!(
            request("sort=id")
                .unwrap_err()
                .contains("not supported by the simulator")
        );
        assert!(
            request("healthStatus=great")
                .unwrap_err()
                .contains("\"great\"")
        );
        assert!(
            request("view=everything")
                .unwrap_err()
                .contains("view must be")
        );
        assert!(
            request("pageSize=5&pageSize=6")
                .unwrap_err()
                .contains("more than once")
        );
        assert!(
            request("lastSeenBefore=2024-01-15T10:30:00")
                .unwrap_err()
                .contains("zone")
        );

        let empty_key = request("pageFromKey=").unwrap();
        assert!(empty_key.page_from_key.is_none());

        let a = request("pageSize=10&lastSeenBefore=-P30D").unwrap();
        let b = request("lastSeenBefore=-P30D&pageSize=10&pageFromKey=k").unwrap();
        let c = request("pageSize=10").unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }
}
