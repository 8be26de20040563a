//! The HTTP side of the simulator: one axum listener that plays the token endpoint, the global
//! API host and every regional host (`/region/<code>/...`), so a client must really use the
//! host whoami and the tenant list give it.

#![expect(
    clippy::result_large_err,
    reason = "the checks shared by handlers return the ready response as their error"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{SecondsFormat, Utc};
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};

use super::estate::{Estate, SimEndpoint};
use super::query::{self, ListRequest, Params, View};
use super::{Mode, RetryAfter, SimStats, SimulatorConfig};
use crate::central::model::{IdRef, Tenant};

/// Everything the handlers share.
pub(super) struct Shared {
    pub base_url: String,
    pub config: SimulatorConfig,
    pub caller_id: String,
    pub tenants: Vec<TenantState>,
    pub index: HashMap<String, usize>,
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub request_counter: AtomicU64,
    pub rng: Mutex<rand::rngs::StdRng>,
    pub stats: SimStats,
}

/// A tenant's endpoints can change (deletes), so they sit behind a lock.
pub(super) struct TenantState {
    pub record: Tenant,
    pub region: String,
    pub endpoints: RwLock<std::collections::BTreeMap<String, Arc<SimEndpoint>>>,
    pub tamper: Mutex<HashMap<String, bool>>,
}

impl Shared {
    pub fn new(
        estate: Estate,
        config: SimulatorConfig,
        base_url: String,
    ) -> Result<Shared, String> {
        let mut tenants = Vec::new();
        let mut index = HashMap::new();
        for tenant in estate.tenants {
            let region = tenant.region();
            let endpoints = tenant
                .endpoints
                .into_iter()
                .map(|(id, e)| (id, Arc::new(e)))
                .collect();
            index.insert(tenant.record.id.clone(), tenants.len());
            tenants.push(TenantState {
                record: tenant.record,
                region,
                endpoints: RwLock::new(endpoints),
                tamper: Mutex::new(HashMap::new()),
            });
        }

        let caller_id = match config.mode {
            Mode::Tenant => match (&config.tenant_id, tenants.as_slice()) {
                (Some(id), _) if index.contains_key(id) => id.clone(),
                (Some(id), _) => {
                    return Err(format!("tenant mode: tenant {id} is not in the estate"));
                }
                (None, [only]) => only.record.id.clone(),
                (None, _) => {
                    return Err(format!(
                        "tenant mode needs one tenant or a tenant id; the estate has {}",
                        tenants.len()
                    ));
                }
            },
            Mode::Partner | Mode::Organization => config.caller_id.clone(),
        };

        let seed = config.faults.seed;
        Ok(Shared {
            base_url,
            config,
            caller_id,
            tenants,
            index,
            tokens: Mutex::new(HashMap::new()),
            request_counter: AtomicU64::new(0),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            stats: SimStats::default(),
        })
    }

    fn region_url(&self, region: &str) -> String {
        format!("{}/region/{region}", self.base_url)
    }

    fn tenant_record(&self, tenant: &TenantState) -> Value {
        let mut record = tenant.record.clone();
        record.data_region = Some(tenant.region.clone());
        record.api_host = Some(self.region_url(&tenant.region));
        let caller = Some(IdRef {
            id: Some(self.caller_id.clone()),
            name: None,
        });
        match self.config.mode {
            Mode::Partner => record.partner = caller,
            Mode::Organization => record.organization = caller,
            Mode::Tenant => {}
        }
        serde_json::to_value(record).unwrap_or(Value::Null)
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v2/oauth2/token", post(token))
        .route("/whoami/v1", get(whoami))
        .route("/region/{region}/whoami/v1", get(regional_whoami))
        .route("/{kind}/v1/tenants", get(tenant_list))
        .route("/{kind}/v1/tenants/{tenant_id}", get(tenant_one))
        .route("/region/{region}/endpoint/v1/endpoints", get(endpoint_list))
        .route(
            "/region/{region}/endpoint/v1/endpoints/delete",
            post(bulk_delete),
        )
        .route(
            "/region/{region}/endpoint/v1/endpoints/{endpoint_id}",
            get(endpoint_one).delete(endpoint_delete),
        )
        .route(
            "/region/{region}/endpoint/v1/endpoints/{endpoint_id}/tamper-protection",
            get(tamper_get).post(tamper_set),
        )
        .fallback(unknown_path)
        .with_state(shared)
}

// ===== Bodies =====

/// The API hosts' error body: `error`, `message`, `correlationId`, `requestId`, `createdAt`.
fn api_error(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "error": error,
        "message": message.into(),
        "correlationId": uuid::Uuid::new_v4().to_string(),
        "requestId": uuid::Uuid::new_v4().to_string(),
        "createdAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    (status, json_headers(), body.to_string()).into_response()
}

/// The token endpoint's error body: `errorCode`, `message`, `trackingId`.
fn token_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "errorCode": code,
        "message": message,
        "trackingId": uuid::Uuid::new_v4().to_string(),
    });
    (status, json_headers(), body.to_string()).into_response()
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

fn json_ok(status: StatusCode, body: &Value) -> Response {
    (status, json_headers(), body.to_string()).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    api_error(StatusCode::BAD_REQUEST, "badRequest", message)
}

fn not_found(message: impl Into<String>) -> Response {
    api_error(StatusCode::NOT_FOUND, "notFound", message)
}

fn forbidden(shared: &Shared, message: impl Into<String>) -> Response {
    shared.stats.forbidden.fetch_add(1, Ordering::Relaxed);
    api_error(StatusCode::FORBIDDEN, "forbidden", message)
}

fn unauthorized(shared: &Shared, message: &str) -> Response {
    shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
    api_error(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

async fn unknown_path(method: Method, uri: Uri) -> Response {
    not_found(format!("no API at {method} {}", uri.path()))
}

// ===== Gate: latency, faults, token =====

/// What every API call goes through before its own work: the added latency, the injected
/// faults (like a gateway in front of the service), then the bearer token.
async fn gate(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let faults = &shared.config.faults;
    shared.stats.api_requests.fetch_add(1, Ordering::Relaxed);
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    let number = shared.request_counter.fetch_add(1, Ordering::Relaxed);
    if faults.throttle_every > 0 && number % faults.throttle_every < faults.throttle_burst {
        shared.stats.throttled.fetch_add(1, Ordering::Relaxed);
        let mut response = api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "tooManyRequests",
            "Too Many Requests",
        );
        let value = match faults.retry_after {
            RetryAfter::None => None,
            RetryAfter::Seconds(seconds) => Some(seconds.to_string()),
            RetryAfter::Date(seconds) => Some(httpdate::fmt_http_date(
                SystemTime::now() + Duration::from_secs(seconds),
            )),
        };
        if let Some(value) = value.and_then(|value| HeaderValue::from_str(&value).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Err(response);
    }

    if faults.error_rate > 0.0 && !faults.error_statuses.is_empty() {
        let fail = shared
            .rng
            .lock()
            .map(|mut rng| rng.random_bool(faults.error_rate.min(1.0)));
        if fail.unwrap_or(false) {
            shared.stats.injected_errors.fetch_add(1, Ordering::Relaxed);
            let pick = number as usize % faults.error_statuses.len();
            let status = StatusCode::from_u16(faults.error_statuses[pick])
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(api_error(status, "internalServerError", "injected failure"));
        }
    }

    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Err(unauthorized(shared, "missing bearer token"));
    };
    let valid_until = shared
        .tokens
        .lock()
        .ok()
        .and_then(|tokens| tokens.get(token).copied());
    match valid_until {
        None => Err(unauthorized(shared, "unknown token")),
        Some(until) if Instant::now() >= until => Err(unauthorized(shared, "token expired")),
        Some(_) => Ok(()),
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The tenant a regional call is for, checked against the caller, the region and the faults.
fn regional_tenant<'s>(
    shared: &'s Shared,
    headers: &HeaderMap,
    region: &str,
) -> Result<&'s TenantState, Response> {
    let Some(tenant_id) = header_text(headers, "x-tenant-id") else {
        return Err(unauthorized(
            shared,
            "X-Tenant-ID header is required on regional calls",
        ));
    };
    let tenant = shared
        .index
        .get(tenant_id)
        .map(|position| &shared.tenants[*position]);
    let Some(tenant) = tenant else {
        return Err(forbidden(shared, "Forbidden"));
    };
    if shared.config.mode == Mode::Tenant && tenant.record.id != shared.caller_id {
        return Err(forbidden(shared, "Forbidden"));
    }
    if shared
        .config
        .faults
        .forbidden_tenants
        .iter()
        .any(|id| id == tenant_id)
    {
        return Err(forbidden(shared, "Access is denied"));
    }
    if tenant.region != region {
        return Err(not_found(format!(
            "tenant {tenant_id} is hosted in region {}, not {region}",
            tenant.region
        )));
    }
    Ok(tenant)
}

// ===== Token and whoami =====

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.stats.token_requests.fetch_add(1, Ordering::Relaxed);
    let form_encoded = header_text(&headers, "content-type")
        .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body must be application/x-www-form-urlencoded",
        );
    }

    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Bad Request",
        );
    }
    if field("scope") != Some("token") {
        return token_error(StatusCode::BAD_REQUEST, "invalid_scope", "Bad Request");
    }
    if field("client_id") != Some(shared.config.client_id.as_str()) {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "oauth.invalid_client_id",
            "Unauthorized",
        );
    }
    if field("client_secret") != Some(shared.config.client_secret.expose()) {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "oauth.invalid_client_secret",
            "Unauthorized",
        );
    }

    let lifetime = shared.config.token_lifetime_secs;
    let valid_for = shared
        .config
        .token_valid_ms
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(lifetime));
    let token = format!(
        "sim.{}.{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    if let Ok(mut tokens) = shared.tokens.lock() {
        tokens.insert(token.clone(), Instant::now() + valid_for);
    }
    shared.stats.tokens_issued.fetch_add(1, Ordering::Relaxed);

    json_ok(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "refresh_token": uuid::Uuid::new_v4().to_string(),
            "token_type": "bearer",
            "expires_in": lifetime,
            "errorCode": "success",
            "message": "OK",
            "trackingId": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

async fn whoami(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }

    let mut hosts = Map::new();
    hosts.insert("global".into(), Value::String(shared.base_url.clone()));
    let id_type = match shared.config.mode {
        Mode::Tenant => {
            let region = shared
                .index
                .get(&shared.caller_id)
                .map(|p| shared.tenants[*p].region.clone());
            let url = region.map(|region| shared.region_url(&region));
            hosts.insert(
                "dataRegion".into(),
                url.map(Value::String).unwrap_or(Value::Null),
            );
            "tenant"
        }
        Mode::Partner | Mode::Organization => {
            // Live partners have seen both a null and a missing dataRegion.
            if !shared.config.whoami_region_absent {
                hosts.insert("dataRegion".into(), Value::Null);
            }
            if shared.config.mode == Mode::Partner {
                "partner"
            } else {
                "organization"
            }
        }
    };
    json_ok(
        StatusCode::OK,
        &json!({ "id": shared.caller_id, "idType": id_type, "apiHosts": hosts }),
    )
}

/// whoami on a regional host is a gateway timeout, as a live client found out.
async fn regional_whoami(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.api_requests.fetch_add(1, Ordering::Relaxed);
    api_error(
        StatusCode::GATEWAY_TIMEOUT,
        "gatewayTimeout",
        "whoami is served on the global host",
    )
}

// ===== Tenants =====

/// Checks a partner or organization call: the path kind must match the caller, and the id
/// header must name it.
fn global_caller(shared: &Shared, headers: &HeaderMap, kind: &str) -> Result<(), Response> {
    let (expected_kind, header_name) = match shared.config.mode {
        Mode::Partner => ("partner", "x-partner-id"),
        Mode::Organization => ("organization", "x-organization-id"),
        Mode::Tenant => return Err(forbidden(shared, "tenant credentials cannot list tenants")),
    };
    if kind != "partner" && kind != "organization" {
        return Err(not_found(format!("no API at /{kind}/v1/tenants")));
    }
    if kind != expected_kind {
        return Err(forbidden(
            shared,
            format!("these credentials are not a {kind}'s"),
        ));
    }
    match header_text(headers, header_name) {
        None => Err(unauthorized(
            shared,
            "the partner or organization id header is required",
        )),
        Some(id) if id != shared.caller_id => Err(forbidden(shared, "Forbidden")),
        Some(_) => Ok(()),
    }
}

async fn tenant_list(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    if let Err(response) = global_caller(&shared, &headers, &kind) {
        return response;
    }

    let params = Params::parse(raw.as_deref());
    let parsed = (|| {
        params.only(&["page", "pageSize", "pageTotal"])?;
        let page = params.number("page")?.unwrap_or(1);
        let size = params.number("pageSize")?.unwrap_or(50);
        if page == 0 || size == 0 {
            return Err("page and pageSize start at 1".to_owned());
        }
        if size > 100 && !shared.config.clamp_page_size {
            return Err(format!("pageSize {size} is above the maximum 100"));
        }
        Ok((
            page,
            size.min(100),
            params.bool("pageTotal")?.unwrap_or(false),
        ))
    })();
    let (page, size, page_total) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => return bad_request(problem),
    };

    let start = ((page - 1) * size) as usize;
    let items: Vec<Value> = shared
        .tenants
        .iter()
        .skip(start)
        .take(size as usize)
        .map(|tenant| shared.tenant_record(tenant))
        .collect();
    let mut pages = json!({ "current": page, "size": size, "maxSize": 100 });
    if page_total {
        let count = shared.tenants.len() as u64;
        pages["total"] = json!(count.div_ceil(size));
        pages["items"] = json!(count);
    }
    json_ok(StatusCode::OK, &json!({ "items": items, "pages": pages }))
}

async fn tenant_one(
    State(shared): State<Arc<Shared>>,
    Path((kind, tenant_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    if let Err(response) = global_caller(&shared, &headers, &kind) {
        return response;
    }
    match shared.index.get(&tenant_id) {
        Some(position) => json_ok(
            StatusCode::OK,
            &shared.tenant_record(&shared.tenants[*position]),
        ),
        None => not_found(format!("tenant {tenant_id} is not one of yours")),
    }
}

// ===== Endpoints =====

/// Keys look like `v1+/<base64>==`: opaque, and always holding `+`, `/` and `=`, so a client
/// that does not percent-encode them sends a different key and gets a 400.
const KEY_PREFIX: &str = "v1+/";

fn encode_key(tenant_id: &str, fingerprint: u64, last_id: &str) -> String {
    use base64::Engine;
    let mut payload = format!("{tenant_id}|{fingerprint:016x}|{last_id}|");
    while payload.len() % 3 != 1 {
        payload.push('|');
    }
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(payload)
    )
}

/// The id after which the page starts, if the key is ours and fits this query.
fn decode_key(key: &str, tenant_id: &str, fingerprint: u64) -> Result<String, String> {
    use base64::Engine;
    let foreign =
        || format!("pageFromKey {key:?} is not a key this server issued (is it percent-encoded?)");
    let encoded = key.strip_prefix(KEY_PREFIX).ok_or_else(foreign)?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| foreign())?;
    let payload = String::from_utf8(payload).map_err(|_| foreign())?;
    let mut parts = payload.split('|');
    let (Some(key_tenant), Some(key_fingerprint), Some(last_id)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(foreign());
    };
    if key_tenant != tenant_id {
        return Err("pageFromKey belongs to another tenant".to_owned());
    }
    if key_fingerprint != format!("{fingerprint:016x}") {
        return Err(
            "pageFromKey was issued for other filters or another pageSize; send the same \
                    query on every page"
                .to_owned(),
        );
    }
    Ok(last_id.to_owned())
}

fn matches(endpoint: &SimEndpoint, request: &ListRequest) -> bool {
    let filter = &request.filter;
    if let Some(before) = filter.last_seen_before
        && endpoint.last_seen_at.is_none_or(|seen| seen >= before)
    {
        return false;
    }
    if let Some(after) = filter.last_seen_after
        && endpoint.last_seen_at.is_none_or(|seen| seen < after)
    {
        return false;
    }
    if let Some(ids) = &filter.ids
        && !ids.contains(&endpoint.id)
    {
        return false;
    }
    if let Some(needle) = &filter.hostname_contains
        && !endpoint
            .hostname_lower
            .as_deref()
            .is_some_and(|name| name.contains(needle.as_str()))
    {
        return false;
    }
    if let Some(statuses) = &filter.health_status
        && !endpoint
            .health
            .as_ref()
            .is_some_and(|health| statuses.contains(health))
    {
        return false;
    }
    if let Some(kinds) = &filter.kinds
        && !endpoint
            .kind
            .as_ref()
            .is_some_and(|kind| kinds.contains(kind))
    {
        return false;
    }
    if let Some(wanted) = filter.tamper_protection_enabled
        && endpoint.tamper_protection_enabled != Some(wanted)
    {
        return false;
    }
    if let Some(wanted) = filter.online
        && endpoint.online != Some(wanted)
    {
        return false;
    }
    true
}

/// The endpoint's JSON in a view. `full` is the stored text; the others are cut from it.
// TODO(Central's view documentation): which fields `summary` leaves out is not documented; this
// drops the ones documented as full-only or that look like detail.
fn render(endpoint: &SimEndpoint, view: View, out: &mut Vec<u8>) {
    if view == View::Full {
        out.extend_from_slice(endpoint.raw.get().as_bytes());
        return;
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(endpoint.raw.get()) else {
        out.extend_from_slice(endpoint.raw.get().as_bytes());
        return;
    };
    match view {
        View::Basic => {
            fields.retain(|name, _| matches!(name.as_str(), "id" | "type" | "tenant" | "hostname"))
        }
        _ => {
            for name in [
                "cloned",
                "lastOsUpdateAt",
                "lastAgentUpdateAt",
                "serialNumber",
                "encryption",
            ] {
                fields.remove(name);
            }
            if let Some(Value::Object(services)) = fields
                .get_mut("health")
                .and_then(|health| health.get_mut("services"))
            {
                services.remove("serviceDetails");
            }
        }
    }
    out.extend_from_slice(Value::Object(fields).to_string().as_bytes());
}

async fn endpoint_list(
    State(shared): State<Arc<Shared>>,
    Path(region): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    let tenant = match regional_tenant(&shared, &headers, &region) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let params = Params::parse(raw.as_deref());
    let request = match query::list_request(&params, Utc::now(), shared.config.clamp_page_size) {
        Ok(request) => request,
        Err(problem) => return bad_request(problem),
    };
    let after = match &request.page_from_key {
        None => None,
        Some(key) => match decode_key(key, &tenant.record.id, request.fingerprint) {
            Ok(last_id) => Some(last_id),
            Err(problem) => return bad_request(problem),
        },
    };

    // Take the page and look one further, under the read lock; render after releasing it.
    let (page, more, total) = {
        let endpoints = match tenant.endpoints.read() {
            Ok(endpoints) => endpoints,
            Err(_) => {
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "lock poisoned",
                );
            }
        };
        let range = match &after {
            Some(last) => endpoints.range::<String, _>((
                std::ops::Bound::Excluded(last.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => endpoints.range::<String, _>(..),
        };
        let mut matching = range
            .map(|(_, endpoint)| endpoint)
            .filter(|e| matches(e, &request));
        let page: Vec<Arc<SimEndpoint>> = matching
            .by_ref()
            .take(request.page_size as usize)
            .cloned()
            .collect();
        let more = matching.next().is_some();
        let total = request.page_total.then(|| {
            endpoints
                .values()
                .filter(|endpoint| matches(endpoint, &request))
                .count()
        });
        (page, more, total)
    };

    let mut pages = Map::new();
    if let Some(key) = &request.page_from_key {
        pages.insert("fromKey".into(), Value::String(key.clone()));
    }
    if more && let Some(last) = page.last() {
        let key = encode_key(&tenant.record.id, request.fingerprint, &last.id);
        pages.insert("nextKey".into(), Value::String(key));
    }
    pages.insert("size".into(), json!(request.page_size));
    pages.insert("maxSize".into(), json!(500));
    if let Some(total) = total {
        pages.insert(
            "total".into(),
            json!((total as u64).div_ceil(u64::from(request.page_size))),
        );
        pages.insert("items".into(), json!(total));
    }

    let capacity: usize = page
        .iter()
        .map(|endpoint| endpoint.raw.get().len() + 1)
        .sum();
    let mut body = Vec::with_capacity(capacity + 256);
    body.extend_from_slice(b"{\"items\":[");
    for (position, endpoint) in page.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        render(endpoint, request.view, &mut body);
    }
    body.extend_from_slice(b"],\"pages\":");
    body.extend_from_slice(Value::Object(pages).to_string().as_bytes());
    body.push(b'}');

    shared.stats.endpoint_pages.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, json_headers(), body).into_response()
}

fn find_endpoint(tenant: &TenantState, endpoint_id: &str) -> Option<Arc<SimEndpoint>> {
    tenant
        .endpoints
        .read()
        .ok()
        .and_then(|endpoints| endpoints.get(endpoint_id).cloned())
}

async fn endpoint_one(
    State(shared): State<Arc<Shared>>,
    Path((region, endpoint_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    let tenant = match regional_tenant(&shared, &headers, &region) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let params = Params::parse(raw.as_deref());
    let view = match params.only(&["view"]).and_then(|()| params.single("view")) {
        Ok(None | Some("full")) => View::Full,
        Ok(Some("summary")) => View::Summary,
        Ok(Some("basic")) => View::Basic,
        Ok(Some(other)) => {
            return bad_request(format!("view {other:?} is not basic, summary or full"));
        }
        Err(problem) => return bad_request(problem),
    };

    match find_endpoint(tenant, &endpoint_id) {
        Some(endpoint) => {
            let mut body = Vec::new();
            render(&endpoint, view, &mut body);
            (StatusCode::OK, json_headers(), body).into_response()
        }
        None => not_found("can't find endpoint"),
    }
}

async fn endpoint_delete(
    State(shared): State<Arc<Shared>>,
    Path((region, endpoint_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    let tenant = match regional_tenant(&shared, &headers, &region) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let removed = tenant
        .endpoints
        .write()
        .ok()
        .and_then(|mut endpoints| endpoints.remove(&endpoint_id));
    match removed {
        Some(_) => {
            shared.stats.deleted.fetch_add(1, Ordering::Relaxed);
            json_ok(StatusCode::OK, &json!({ "deleted": true }))
        }
        None => not_found("can't find endpoint"),
    }
}

async fn bulk_delete(
    State(shared): State<Arc<Shared>>,
    Path(region): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    let tenant = match regional_tenant(&shared, &headers, &region) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct BulkDelete {
        endpoint_ids: Vec<String>,
    }
    let request: BulkDelete = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return bad_request(format!("body must be {{\"endpointIds\": [...]}}: {error}"));
        }
    };
    if request.endpoint_ids.is_empty() || request.endpoint_ids.len() > 1000 {
        return bad_request("endpointIds must hold 1 to 1000 ids");
    }

    let mut deleted = Vec::new();
    if let Ok(mut endpoints) = tenant.endpoints.write() {
        for id in request.endpoint_ids {
            if endpoints.remove(&id).is_some() {
                deleted.push(id);
            }
        }
    }
    shared
        .stats
        .deleted
        .fetch_add(deleted.len() as u64, Ordering::Relaxed);
    json_ok(StatusCode::OK, &json!({ "endpointIds": deleted }))
}

/// A stable, fake tamper protection password per endpoint.
fn tamper_password(endpoint_id: &str) -> String {
    format!(
        "{:016x}",
        query::fnv1a(format!("tamper|{endpoint_id}").as_bytes())
    )
}

fn tamper_body(enabled: bool, endpoint_id: &str) -> Value {
    json!({ "enabled": enabled, "password": tamper_password(endpoint_id), "previousPasswords": [] })
}

async fn tamper_get(
    State(shared): State<Arc<Shared>>,
    Path((region, endpoint_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    let tenant = match regional_tenant(&shared, &headers, &region) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let Some(endpoint) = find_endpoint(tenant, &endpoint_id) else {
        return not_found("can't find endpoint");
    };
    let changed = tenant
        .tamper
        .lock()
        .ok()
        .and_then(|tamper| tamper.get(&endpoint_id).copied());
    let enabled = changed
        .or(endpoint.tamper_protection_enabled)
        .unwrap_or(false);
    json_ok(StatusCode::OK, &tamper_body(enabled, &endpoint_id))
}

async fn tamper_set(
    State(shared): State<Arc<Shared>>,
    Path((region, endpoint_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = gate(&shared, &headers).await {
        return response;
    }
    let tenant = match regional_tenant(&shared, &headers, &region) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    if find_endpoint(tenant, &endpoint_id).is_none() {
        return not_found("can't find endpoint");
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct TamperChange {
        enabled: bool,
        #[serde(default)]
        #[allow(
            dead_code,
            reason = "accepted as Central accepts it; passwords are derived"
        )]
        regenerate_password: bool,
    }
    let change: TamperChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => return bad_request(format!("body must be {{\"enabled\": bool}}: {error}")),
    };
    if let Ok(mut tamper) = tenant.tamper.lock() {
        tamper.insert(endpoint_id.clone(), change.enabled);
    }
    json_ok(
        StatusCode::CREATED,
        &tamper_body(change.enabled, &endpoint_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_reserved_characters_and_bind_to_the_query() {
        for last in ["a", "ab", "abc", "0f8c2c7e-9b1d-4c3a-8e2f-71d0a4b6c913"] {
            let key = encode_key("t1", 42, last);
            assert!(
                key.contains('+') && key.contains('/') && key.ends_with('='),
                "{key}"
            );
            assert_eq!(decode_key(&key, "t1", 42).unwrap(), last);
        }

        let key = encode_key("t1", 42, "a");
        assert!(
            decode_key(&key, "t2", 42)
                .unwrap_err()
                .contains("another tenant")
        );
        assert!(
            decode_key(&key, "t1", 43)
                .unwrap_err()
                .contains("same query")
        );
        let mangled = key.replace('+', " ");
        assert!(
            decode_key(&mangled, "t1", 42)
                .unwrap_err()
                .contains("percent-encoded")
        );
    }
}
