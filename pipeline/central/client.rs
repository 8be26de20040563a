//! The HTTP client for the Sophos Central API: token, whoami, tenant lists, endpoint pages and
//! the single-endpoint calls (get, delete, bulk delete, tamper protection).
//!
//! It follows what clients before it got wrong: whoami goes to the global host only; a partner
//! or organization lists its tenants by page number with `pageTotal=true` and reaches each tenant
//! on that tenant's own `apiHost`; the endpoint list loops on `pages.nextKey` alone, sends the
//! same filters and page size on every page and lets the query encoder percent-encode the key
//! (keys hold `+`, `/` and `=`). Throttling and gateway errors are retried with exponential
//! backoff and jitter, honouring `Retry-After`; 400, 403 and 404 never are. A 401 gets one fresh
//! token and one more try. The token is refreshed ahead of its expiry, and neither it nor the
//! client secret appears in any log line or `Debug` output.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, info, warn};
use url::Url;

use super::model::{
    ApiErrorBody, Endpoint, IdType, KeyedPages, Secret, TamperProtection, Tenant, TenantPage,
    TokenErrorBody, TokenResponse, Whoami,
};

/// The real token endpoint.
pub const DEFAULT_AUTH_URL: &str = "https://id.sophos.com/api/v2/oauth2/token";

/// The real global API host.
pub const DEFAULT_GLOBAL_URL: &str = "https://api.central.sophos.com";

/// The largest endpoint page Central serves.
pub const MAX_ENDPOINT_PAGE_SIZE: u32 = 500;

/// Tenants per page of the partner and organization lists; Sophos's own samples use 100.
const TENANT_PAGE_SIZE: u32 = 100;

/// Refresh a token this long before it expires, or a tenth of its lifetime if that is shorter.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Why a call to Central failed.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// The token endpoint refused the credentials or failed.
    #[error("token request to {url} failed with HTTP {status}: {code}: {message}")]
    Auth {
        url: String,
        status: u16,
        code: String,
        message: String,
    },

    /// An API host answered with a status that is not retried (or no longer).
    #[error("{method} {url} answered HTTP {status} ({error}): {message}")]
    Api {
        method: Method,
        url: String,
        status: u16,
        error: String,
        message: String,
    },

    /// Retries ran out on throttling, gateway errors or a broken connection.
    #[error("{method} {url}: gave up after {attempts} attempts in {elapsed:.1?}: {last}")]
    RetriesExhausted {
        method: Method,
        url: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },

    /// The request could not be sent or its answer not read, and it is not worth retrying.
    #[error("{method} {url}: {source}")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The answer was not the documented shape.
    #[error("{url}: the answer is not what the API documents: {problem}")]
    Decode { url: String, problem: String },

    /// A setting or a value from Central cannot be used (a bad URL, an unknown idType).
    #[error("{0}")]
    Unusable(String),
}

impl CentralError {
    /// The HTTP status of a refused call, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CentralError::Auth { status, .. } | CentralError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How hard to try before a call counts as failed.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles per attempt.
    pub base_delay: Duration,
    /// No single wait is longer, unless `Retry-After` asks for it.
    pub max_delay: Duration,
    /// A call that would still be retrying after this long fails instead.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: exponential with "equal jitter" (half fixed, half
    /// random), so that tenants throttled together do not come back together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let half = ceiling / 2;
        let jitter_ms = rand::random_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// Where to authenticate and with what.
#[derive(Clone)]
pub struct ClientSettings {
    pub auth_url: Url,
    pub global_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub retry: RetryPolicy,
    /// Per request, connection to last byte.
    pub request_timeout: Duration,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("auth_url", &self.auth_url.as_str())
            .field("global_url", &self.global_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// A bearer token and when to stop using it.
struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// Counters an operator or a test can read after a collection.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// HTTP requests sent to the API hosts, retries included.
    pub requests: AtomicU64,
    /// Requests sent again after a retryable answer or a broken connection.
    pub retries: AtomicU64,
    /// Tokens obtained.
    pub tokens: AtomicU64,
    /// 401 answers that led to a fresh token.
    pub unauthorized: AtomicU64,
}

/// Which tenant a regional call is for, and on which host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTarget {
    pub id: String,
    pub name: Option<String>,
    pub api_host: Url,
}

impl TenantTarget {
    /// The tenant's regional host from its listing; a tenant without one cannot be reached.
    pub fn from_tenant(tenant: &Tenant) -> Result<TenantTarget, CentralError> {
        let host = tenant.api_host.as_deref().ok_or_else(|| {
            CentralError::Unusable(format!(
                "tenant {} has no apiHost in the tenant list",
                tenant.id
            ))
        })?;
        let api_host = Url::parse(host).map_err(|error| {
            CentralError::Unusable(format!("tenant {}: apiHost {host:?}: {error}", tenant.id))
        })?;
        let name = tenant.show_as.clone().or_else(|| tenant.name.clone());
        Ok(TenantTarget {
            id: tenant.id.clone(),
            name,
            api_host,
        })
    }
}

/// What the endpoint list is asked for, the same on every page.
#[derive(Debug, Clone)]
pub struct EndpointQuery {
    /// 1 to 500.
    pub page_size: u32,
    /// `basic`, `summary` or `full`; collection uses `full`.
    pub view: String,
    /// Further server-side filters, such as `lastSeenBefore=-P30D`.
    pub filters: Vec<(String, String)>,
}

impl Default for EndpointQuery {
    fn default() -> Self {
        EndpointQuery {
            page_size: MAX_ENDPOINT_PAGE_SIZE,
            view: "full".to_owned(),
            filters: Vec::new(),
        }
    }
}

/// One page of a tenant's endpoint list, kept as the bytes Central sent.
#[derive(Clone)]
pub struct EndpointPage {
    pub tenant_id: String,
    /// 1-based, in the order fetched.
    pub number: u32,
    /// The body as received: `{"items": [...], "pages": {...}}`.
    pub body: Vec<u8>,
    /// How many endpoints `items` holds.
    pub endpoints: usize,
    /// The key of the next page; `None` on the last one.
    pub next_key: Option<String>,
}

impl fmt::Debug for EndpointPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointPage")
            .field("tenant_id", &self.tenant_id)
            .field("number", &self.number)
            .field("bytes", &self.body.len())
            .field("endpoints", &self.endpoints)
            .field("next_key", &self.next_key)
            .finish()
    }
}

/// The envelope, with the items left as raw JSON that borrows from the body.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    #[serde(default)]
    pages: KeyedPages,
}

impl EndpointPage {
    /// Each endpoint's JSON exactly as received, for a sink that passes endpoints on one by one.
    pub fn items(&self) -> Result<Vec<&RawValue>, serde_json::Error> {
        serde_json::from_slice::<RawEnvelope<'_>>(&self.body).map(|envelope| envelope.items)
    }
}

/// The answer to a single delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 200 with `{"deleted": true}`.
    Deleted,
    /// 404: the endpoint was not there (deleted before, or never in this tenant).
    AlreadyGone,
}

/// The answer to a bulk delete, checked against what was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkDeleteOutcome {
    /// Ids Central says it deleted.
    pub deleted: Vec<String>,
    /// Ids asked for that Central did not report as deleted.
    pub not_deleted: Vec<String>,
}

/// A Sophos Central API client. One token serves every tenant; clones of an `Arc` of it can be
/// used from many tasks.
pub struct CentralClient {
    http: reqwest::Client,
    settings: ClientSettings,
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
    stats: ClientStats,
}

impl fmt::Debug for CentralClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CentralClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Installs rustls's ring provider once per process; reqwest needs one before it builds.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl CentralClient {
    pub fn new(settings: ClientSettings) -> Result<CentralClient, CentralError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("lastseen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                CentralError::Unusable(format!("cannot build HTTP client: {error}"))
            })?;
        Ok(CentralClient {
            http,
            settings,
            token: tokio::sync::Mutex::new(None),
            stats: ClientStats::default(),
        })
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    // ===== Token =====

    /// The current token, fetching a new one when none is held or it is close to expiry. The
    /// lock is held while fetching so that many tenants needing a token cause one request.
    async fn token(&self) -> Result<Arc<Token>, CentralError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.clone());
        }

        let token = Arc::new(self.fetch_token().await?);
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Drops `used` after a 401, unless another task has already replaced it.
    async fn invalidate(&self, used: &Arc<Token>) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|held| Arc::ptr_eq(held, used)) {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token, CentralError> {
        let url = self.settings.auth_url.clone();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.expose()),
            ("scope", "token"),
        ];

        let asked_at = Instant::now();
        let (status, body) = self
            .send_with_retries(Method::POST, &url, None, |http| {
                http.post(url.clone()).form(&form)
            })
            .await?;

        if status != StatusCode::OK {
            let body: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            return Err(CentralError::Auth {
                url: url.to_string(),
                status: status.as_u16(),
                code: body.error_code.unwrap_or_else(|| "no errorCode".to_owned()),
                message: body.message.unwrap_or_else(|| "no message".to_owned()),
            });
        }

        let response: TokenResponse = decode(&url, &body)?;
        let lifetime = Duration::from_secs(response.expires_in.unwrap_or(3600));
        let margin = TOKEN_MARGIN.min(lifetime / 10);
        self.stats.tokens.fetch_add(1, Ordering::Relaxed);
        info!(lifetime_s = lifetime.as_secs(), "Obtained a Central token.");
        Ok(Token {
            value: response.access_token,
            refresh_at: asked_at + lifetime - margin,
        })
    }

    // ===== Requests =====

    /// Sends an API request with the bearer token, retrying what is worth retrying. Returns the
    /// status and body of a success, or of a refusal the caller may want to read (404).
    async fn call(
        &self,
        method: Method,
        url: &Url,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), CentralError> {
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let (status, body) = self
                .send_with_retries(method.clone(), url, Some(&token), &build)
                .await?;

            // One fresh token and one more try: the token may have expired in flight.
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
                warn!(url = %url, "Central answered 401; fetching a new token and trying again.");
                self.invalidate(&token).await;
                continue;
            }
            if status.is_success() || status == StatusCode::NOT_FOUND {
                return Ok((status, body));
            }
            return Err(api_error(&method, url, status, &body));
        }
    }

    /// One logical request: resends on 429, 500, 502, 503, 504 and broken connections until
    /// the retry policy runs out, and returns any other answer as it is.
    async fn send_with_retries(
        &self,
        method: Method,
        url: &Url,
        token: Option<&Arc<Token>>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), CentralError> {
        let policy = &self.settings.retry;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = build(&self.http);
            if let Some(token) = token {
                request = request.bearer_auth(token.value.expose());
            }

            let (problem, retry_after) = match self.send_once(request).await {
                Ok((status, headers, body)) if is_retryable(status) => {
                    let detail = error_detail(&body);
                    (
                        format!("HTTP {} {detail}", status.as_u16()),
                        retry_after(&headers),
                    )
                }
                Ok((status, _, body)) => return Ok((status, body)),
                Err(error) if is_transient(&error) => (error.to_string(), None),
                Err(source) => {
                    return Err(CentralError::Transport {
                        method,
                        url: url.to_string(),
                        source,
                    });
                }
            };

            let delay = retry_after.unwrap_or_else(|| policy.backoff(attempt));
            if attempt >= policy.max_attempts || started.elapsed() + delay > policy.max_elapsed {
                return Err(CentralError::RetriesExhausted {
                    method,
                    url: url.to_string(),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    last: problem,
                });
            }

            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            warn!(
                url = %url,
                attempt,
                delay_ms = delay.as_millis() as u64,
                from_retry_after = retry_after.is_some(),
                problem = %problem,
                "Central call failed in a retryable way; backing off."
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        request: RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok((status, headers, Vec::from(body)))
    }

    // ===== whoami and tenants =====

    /// `GET /whoami/v1` on the global host (a regional host answers 504).
    pub async fn whoami(&self) -> Result<Whoami, CentralError> {
        let url = join(&self.settings.global_url, &["whoami", "v1"])?;
        let (status, body) = self
            .call(Method::GET, &url, |http| http.get(url.clone()))
            .await?;
        let whoami: Whoami = decode_success(&Method::GET, &url, status, &body)?;
        info!(id = %whoami.id, id_type = %whoami.id_type, "Central credentials identified.");
        Ok(whoami)
    }

    /// Every tenant the caller can reach: itself for a tenant, else the whole partner or
    /// organization list, page by page.
    pub async fn tenants(&self, whoami: &Whoami) -> Result<Vec<Tenant>, CentralError> {
        let (kind, header) = match &whoami.id_type {
            IdType::Tenant => return tenant_itself(whoami).map(|tenant| vec![tenant]),
            IdType::Partner => ("partner", "X-Partner-ID"),
            IdType::Organization => ("organization", "X-Organization-ID"),
            IdType::Other(other) => {
                return Err(CentralError::Unusable(format!(
                    "whoami: idType {other:?} is not tenant, partner or organization"
                )));
            }
        };

        let base = self.global_base(whoami)?;
        let url = join(&base, &[kind, "v1", "tenants"])?;
        let mut tenants = Vec::new();
        let mut page = 1u64;
        loop {
            let page_text = page.to_string();
            let size_text = TENANT_PAGE_SIZE.to_string();
            let query = [
                ("page", page_text.as_str()),
                ("pageSize", &size_text),
                ("pageTotal", "true"),
            ];
            let (status, body) = self
                .call(Method::GET, &url, |http| {
                    http.get(url.clone())
                        .header(header, &whoami.id)
                        .query(&query)
                })
                .await?;
            let listing: TenantPage = decode_success(&Method::GET, &url, status, &body)?;
            let received = listing.items.len();
            tenants.extend(listing.items);

            // Loop on pages.total; should a server leave it out, stop at the first short page.
            let more = match listing.pages.total {
                Some(total) => page < total,
                None => received == TENANT_PAGE_SIZE as usize,
            };
            if !more {
                break;
            }
            page += 1;
        }

        info!(
            tenants = tenants.len(),
            pages = page,
            kind,
            "Listed Central tenants."
        );
        Ok(tenants)
    }

    /// The global host whoami named, or the configured one when whoami names none.
    fn global_base(&self, whoami: &Whoami) -> Result<Url, CentralError> {
        let Some(global) = whoami.api_hosts.global.as_deref() else {
            return Ok(self.settings.global_url.clone());
        };
        Url::parse(global)
            .map_err(|error| CentralError::Unusable(format!("whoami: apiHosts.global: {error}")))
    }

    // ===== Endpoints =====

    /// A pager over one tenant's endpoint list.
    pub fn endpoint_pages(&self, tenant: TenantTarget, query: EndpointQuery) -> EndpointPager<'_> {
        EndpointPager {
            client: self,
            tenant,
            query,
            next_key: None,
            seen_keys: HashSet::new(),
            number: 0,
            finished: false,
        }
    }

    /// `GET /endpoint/v1/endpoints/{id}`; 404 is an error whose `status()` is 404.
    pub async fn get_endpoint(
        &self,
        tenant: &TenantTarget,
        endpoint_id: &str,
    ) -> Result<Endpoint, CentralError> {
        let url = join(
            &tenant.api_host,
            &["endpoint", "v1", "endpoints", endpoint_id],
        )?;
        let (status, body) = self
            .call(Method::GET, &url, |http| {
                http.get(url.clone()).header("X-Tenant-ID", &tenant.id)
            })
            .await?;
        decode_success(&Method::GET, &url, status, &body)
    }

    /// `DELETE /endpoint/v1/endpoints/{id}`. A 404 means it is already gone.
    pub async fn delete_endpoint(
        &self,
        tenant: &TenantTarget,
        endpoint_id: &str,
    ) -> Result<DeleteOutcome, CentralError> {
        let url = join(
            &tenant.api_host,
            &["endpoint", "v1", "endpoints", endpoint_id],
        )?;
        let (status, body) = self
            .call(Method::DELETE, &url, |http| {
                http.delete(url.clone()).header("X-Tenant-ID", &tenant.id)
            })
            .await?;
        if status == StatusCode::NOT_FOUND {
            info!(tenant = %tenant.id, endpoint = endpoint_id, "Endpoint was already gone.");
            return Ok(DeleteOutcome::AlreadyGone);
        }

        #[derive(Deserialize)]
        struct Deleted {
            deleted: bool,
        }
        let answer: Deleted = decode(&url, &body)?;
        if !answer.deleted {
            return Err(CentralError::Decode {
                url: url.to_string(),
                problem: "HTTP 200 with \"deleted\": false".to_owned(),
            });
        }
        info!(tenant = %tenant.id, endpoint = endpoint_id, "Deleted endpoint.");
        Ok(DeleteOutcome::Deleted)
    }

    /// `POST /endpoint/v1/endpoints/delete` for several endpoints of one tenant.
    // TODO(a documented limit): the bulk call's maximum list length is unknown, so callers
    // keep their lists short.
    pub async fn delete_endpoints(
        &self,
        tenant: &TenantTarget,
        endpoint_ids: &[String],
    ) -> Result<BulkDeleteOutcome, CentralError> {
        let url = join(&tenant.api_host, &["endpoint", "v1", "endpoints", "delete"])?;
        let body = serde_json::json!({ "endpointIds": endpoint_ids });
        let (status, answer) = self
            .call(Method::POST, &url, |http| {
                http.post(url.clone())
                    .header("X-Tenant-ID", &tenant.id)
                    .json(&body)
            })
            .await?;

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Deleted {
            #[serde(default)]
            endpoint_ids: Vec<String>,
        }
        let deleted: Deleted = decode_success(&Method::POST, &url, status, &answer)?;
        let reported: HashSet<&str> = deleted.endpoint_ids.iter().map(String::as_str).collect();
        let not_deleted: Vec<String> = endpoint_ids
            .iter()
            .filter(|id| !reported.contains(id.as_str()))
            .cloned()
            .collect();
        if !not_deleted.is_empty() {
            warn!(
                tenant = %tenant.id,
                asked = endpoint_ids.len(),
                not_deleted = not_deleted.len(),
                "Bulk delete left some endpoints in place."
            );
        }
        Ok(BulkDeleteOutcome {
            deleted: deleted.endpoint_ids,
            not_deleted,
        })
    }

    /// `GET /endpoint/v1/endpoints/{id}/tamper-protection`.
    pub async fn tamper_protection(
        &self,
        tenant: &TenantTarget,
        endpoint_id: &str,
    ) -> Result<TamperProtection, CentralError> {
        let path = [
            "endpoint",
            "v1",
            "endpoints",
            endpoint_id,
            "tamper-protection",
        ];
        let url = join(&tenant.api_host, &path)?;
        let (status, body) = self
            .call(Method::GET, &url, |http| {
                http.get(url.clone()).header("X-Tenant-ID", &tenant.id)
            })
            .await?;
        decode_success(&Method::GET, &url, status, &body)
    }
}

/// Walks one tenant's endpoint list, a page per call of [`EndpointPager::next_page`].
pub struct EndpointPager<'c> {
    client: &'c CentralClient,
    tenant: TenantTarget,
    query: EndpointQuery,
    next_key: Option<String>,
    seen_keys: HashSet<String>,
    number: u32,
    finished: bool,
}

impl EndpointPager<'_> {
    pub fn tenant(&self) -> &TenantTarget {
        &self.tenant
    }

    /// The next page, or `None` after the page without `nextKey`.
    pub async fn next_page(&mut self) -> Result<Option<EndpointPage>, CentralError> {
        if self.finished {
            return Ok(None);
        }

        let url = join(&self.tenant.api_host, &["endpoint", "v1", "endpoints"])?;
        let size = self.query.page_size.to_string();
        let mut query: Vec<(&str, &str)> =
            vec![("pageSize", &size), ("view", self.query.view.as_str())];
        query.extend(
            self.query
                .filters
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
        if let Some(key) = &self.next_key {
            query.push(("pageFromKey", key));
        }

        let tenant_id = self.tenant.id.as_str();
        let (status, body) = self
            .client
            .call(Method::GET, &url, |http| {
                http.get(url.clone())
                    .header("X-Tenant-ID", tenant_id)
                    .query(&query)
            })
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(api_error(&Method::GET, &url, status, &body));
        }

        let envelope: RawEnvelope<'_> = decode(&url, &body)?;
        let endpoints = envelope.items.len();
        let next_key = envelope.pages.next_key.filter(|key| !key.is_empty());
        self.number += 1;

        // A server that hands out a key twice would keep us here forever.
        if let Some(key) = &next_key
            && !self.seen_keys.insert(key.clone())
        {
            return Err(CentralError::Decode {
                url: url.to_string(),
                problem: format!("page {} repeats an earlier nextKey", self.number),
            });
        }

        debug!(tenant = %self.tenant.id, page = self.number, endpoints, "Fetched endpoint page.");
        self.finished = next_key.is_none();
        self.next_key = next_key.clone();
        Ok(Some(EndpointPage {
            tenant_id: self.tenant.id.clone(),
            number: self.number,
            body,
            endpoints,
            next_key,
        }))
    }
}

/// A tenant caller reaches only itself, on whoami's data region host.
fn tenant_itself(whoami: &Whoami) -> Result<Tenant, CentralError> {
    let host = whoami.api_hosts.data_region.clone().ok_or_else(|| {
        CentralError::Unusable(format!(
            "whoami: tenant {} has no apiHosts.dataRegion to reach it on",
            whoami.id
        ))
    })?;
    Ok(Tenant {
        id: whoami.id.clone(),
        name: None,
        show_as: None,
        data_region: None,
        data_geography: None,
        billing_type: None,
        api_host: Some(host),
        status: None,
        partner: None,
        organization: None,
    })
}

/// `base` with path segments appended (each percent-encoded), keeping any prefix `base` has.
pub fn join(base: &Url, segments: &[&str]) -> Result<Url, CentralError> {
    let mut url = base.clone();
    url.set_query(None);
    url.path_segments_mut()
        .map_err(|()| CentralError::Unusable(format!("{base} cannot be a base URL")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Connection refused or reset, timeouts, a body cut short: worth another try.
fn is_transient(error: &reqwest::Error) -> bool {
    error.is_timeout() || error.is_connect() || error.is_request() || error.is_body()
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The `error` and `message` of an error body, or the start of a body that is not one.
fn error_detail(body: &[u8]) -> String {
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(parsed) if parsed.error.is_some() || parsed.message.is_some() => format!(
            "{}: {}",
            parsed.error.unwrap_or_default(),
            parsed.message.unwrap_or_default()
        ),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn api_error(method: &Method, url: &Url, status: StatusCode, body: &[u8]) -> CentralError {
    let parsed: ApiErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        if text.is_empty() {
            "no body".to_owned()
        } else {
            text
        }
    });
    CentralError::Api {
        method: method.clone(),
        url: url.to_string(),
        status: status.as_u16(),
        error: parsed.error.unwrap_or_else(|| "no error field".to_owned()),
        message,
    }
}

fn decode<'a, T: Deserialize<'a>>(url: &Url, body: &'a [u8]) -> Result<T, CentralError> {
    serde_json::from_slice(body).map_err(|error| CentralError::Decode {
        url: url.to_string(),
        problem: error.to_string(),
    })
}

/// Decodes a 2xx body; a 404 that reached here becomes an error.
fn decode_success<'a, T: Deserialize<'a>>(
    method: &Method,
    url: &Url,
    status: StatusCode,
    body: &'a [u8],
) -> Result<T, CentralError> {
    if !status.is_success() {
        return Err(api_error(method, url, status, body));
    }
    decode(url, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_a_path_prefix_and_encodes_segments() {
        let base = Url::parse("http://127.0.0.1:9/region/eu01").unwrap();
        let url = join(&base, &["endpoint", "v1", "endpoints", "a/b"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/region/eu01/endpoint/v1/endpoints/a%2Fb"
        );

        let slash = Url::parse("https://api.central.sophos.com/").unwrap();
        let url = join(&slash, &["whoami", "v1"]).unwrap();
        assert_eq!(url.as_str(), "https://api.central.sophos.com/whoami/v1");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        let later = SystemTime::now() + Duration::from_secs(30);
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );

        let earlier = SystemTime::now() - Duration::from_secs(30);
        headers.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(earlier).parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));

        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_and_stays_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let tenth = policy.backoff(10);
            assert!(tenth >= Duration::from_millis(500) && tenth <= Duration::from_secs(1));
        }
    }

    #[test]
    fn only_throttling_and_gateway_errors_are_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 501] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn settings_debug_hides_the_secret() {
        let settings = ClientSettings {
            auth_url: Url::parse(DEFAULT_AUTH_URL).unwrap(),
            global_url: Url::parse(DEFAULT_GLOBAL_URL).unwrap(),
            client_id: "id".into(),
            client_secret: Secret::new("very-secret-value"),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(1),
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
    }
}
