//! `lastseen simulate central`: the Sophos Central API on 127.0.0.1, serving an estate.
//!
//! Central cannot be reached from development and CI machines, so the client and the whole
//! collect-then-run flow are rehearsed against this simulator. It keeps to what is known of the
//! live API and is strict where the live API's behaviour is a trap for clients:
//!
//! - the token endpoint takes a form-encoded client-credentials POST; tokens expire (the
//!   lifetime is a knob, and a token can be made to die before its advertised lifetime);
//! - whoami answers on the global host only (a regional host gives 504), as a tenant, a
//!   partner or an organization, with `dataRegion` null or absent for the latter two;
//! - tenants are listed by page number, with totals only when `pageTotal=true`;
//! - each tenant lives on its own regional host, `<base>/region/<code>`, and wants
//!   `X-Tenant-ID`;
//! - the endpoint list pages by opaque keys that contain `+`, `/` and `=`, leaves `nextKey`
//!   out on the last page, gives totals only with `pageTotal=true`, filters by last seen
//!   (zoned timestamps or signed durations; 400 for a timestamp without zone), ids, hostname,
//!   health, type, tamper protection and online state, and refuses unknown parameters;
//! - get, delete (a second delete is 404), bulk delete and tamper protection work, and a
//!   deleted endpoint leaves the list.
//!
//! Faults come from flags or a TOML file: added latency, bursts of 429 with or without
//! `Retry-After` (seconds or HTTP date), a rate of 5xx answers, tenants that answer 403.
//!
//! Tests build estates in code with [`Estate::from_values`] and start a server with
//! [`Simulator::start`].

mod estate;
mod query;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use tracing::info;

pub use estate::{Estate, EstateError, EstateTenant, SimEndpoint};
pub use query::parse_instant;

use super::model::Secret;
use server::Shared;

/// Whose credentials the simulator pretends to have issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One tenant; whoami gives its data region host.
    Tenant,
    /// A partner managing every tenant of the estate.
    Partner,
    /// An organization managing every tenant of the estate.
    Organization,
}

/// What a 429 says about when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// No `Retry-After` header.
    None,
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP date that many seconds ahead>`.
    Date(u64),
}

impl FromStr for RetryAfter {
    type Err = String;

    /// `none`, a number of seconds, or `date:<seconds>`.
    fn from_str(text: &str) -> Result<RetryAfter, String> {
        let bad = || format!("retry_after {text:?} is not none, <seconds> or date:<seconds>");
        match text {
            "none" => Ok(RetryAfter::None),
            _ => match text.strip_prefix("date:") {
                Some(seconds) => seconds.parse().map(RetryAfter::Date).map_err(|_| bad()),
                None => text.parse().map(RetryAfter::Seconds).map_err(|_| bad()),
            },
        }
    }
}

impl<'de> Deserialize<'de> for RetryAfter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Faults to inject; all off by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Milliseconds added to every API request (not the token request).
    pub latency_ms: u64,
    /// Out of every this many API requests, the first `throttle_burst` get 429; 0 turns it off.
    pub throttle_every: u64,
    /// How many requests in a row are throttled.
    pub throttle_burst: u64,
    /// The `Retry-After` of a 429: `none`, seconds, or `date:<seconds>`.
    pub retry_after: RetryAfter,
    /// The share of API requests, 0 to 1, answered with one of `error_statuses`.
    pub error_rate: f64,
    /// The statuses the failures use, in turn.
    pub error_statuses: Vec<u16>,
    /// Tenants whose regional calls answer 403, as for a tenant the role may not read.
    pub forbidden_tenants: Vec<String>,
    /// Seed of the failure draw.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            throttle_every: 0,
            throttle_burst: 1,
            retry_after: RetryAfter::None,
            error_rate: 0.0,
            error_statuses: vec![500, 502, 503, 504],
            forbidden_tenants: Vec::new(),
            seed: 1,
        }
    }
}

/// How the simulator behaves, from a TOML file and flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// The client id the token endpoint accepts.
    pub client_id: String,
    /// The client secret the token endpoint accepts.
    pub client_secret: Secret,
    /// Who the credentials belong to.
    pub mode: Mode,
    /// In tenant mode, which tenant (needed when the estate has several).
    pub tenant_id: Option<String>,
    /// The partner or organization id whoami gives.
    pub caller_id: String,
    /// Leave `apiHosts.dataRegion` out of a partner's whoami instead of sending null.
    pub whoami_region_absent: bool,
    /// `expires_in` of a token, in seconds.
    pub token_lifetime_secs: u64,
    /// How long a token really works, in milliseconds, if shorter than advertised.
    pub token_valid_ms: Option<u64>,
    /// Clamp an oversized `pageSize` to the maximum instead of answering 400.
    pub clamp_page_size: bool,
    pub faults: Faults,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            client_id: "lastseen-simulator".to_owned(),
            client_secret: Secret::new("simulator-secret"),
            mode: Mode::Partner,
            tenant_id: None,
            caller_id: "5e1c7a2d-0000-4000-8000-00000000beef".to_owned(),
            whoami_region_absent: false,
            token_lifetime_secs: 3600,
            token_valid_ms: None,
            clamp_page_size: false,
            faults: Faults::default(),
        }
    }
}

/// What the simulator has seen, for tests and the closing log line.
#[derive(Debug, Default)]
pub struct SimStats {
    pub token_requests: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub api_requests: AtomicU64,
    pub endpoint_pages: AtomicU64,
    pub throttled: AtomicU64,
    pub injected_errors: AtomicU64,
    pub unauthorized: AtomicU64,
    pub forbidden: AtomicU64,
    pub deleted: AtomicU64,
}

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("the simulator listens on loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),

    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },

    #[error("{0}")]
    Config(String),
}

/// A running simulator. Dropping it without [`Simulator::stop`] leaves the server running until
/// the runtime ends.
pub struct Simulator {
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Serves `estate` on `listen` (a loopback address; port 0 picks a free one).
    pub async fn start(
        estate: Estate,
        config: SimulatorConfig,
        listen: SocketAddr,
    ) -> Result<Simulator, SimulatorError> {
        if !listen.ip().is_loopback() {
            return Err(SimulatorError::NotLoopback(listen));
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimulatorError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimulatorError::Bind {
                addr: listen,
                source,
            })?;

        let base_url = format!("http://{addr}");
        let shared =
            Arc::new(Shared::new(estate, config, base_url).map_err(SimulatorError::Config)?);
        let app = server::router(shared.clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "Simulator stopped with an error.");
            }
        });

        Ok(Simulator {
            shared,
            shutdown: Some(shutdown),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, the global host.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The token endpoint.
    pub fn auth_url(&self) -> String {
        format!("{}/api/v2/oauth2/token", self.shared.base_url)
    }

    /// The partner, organization or tenant id whoami gives.
    pub fn caller_id(&self) -> &str {
        &self.shared.caller_id
    }

    pub fn stats(&self) -> &SimStats {
        &self.shared.stats
    }

    /// The ids of a tenant's endpoints still present, in list order.
    pub fn endpoint_ids(&self, tenant_id: &str) -> Vec<String> {
        let Some(position) = self.shared.index.get(tenant_id) else {
            return Vec::new();
        };
        self.shared.tenants[*position]
            .endpoints
            .read()
            .map(|endpoints| endpoints.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The JSON text of an endpoint as `view=full` serves it.
    pub fn endpoint_json(&self, tenant_id: &str, endpoint_id: &str) -> Option<String> {
        let position = self.shared.index.get(tenant_id)?;
        let endpoints = self.shared.tenants[*position].endpoints.read().ok()?;
        endpoints
            .get(endpoint_id)
            .map(|endpoint| endpoint.raw.get().to_owned())
    }

    /// Tenant ids and their data regions, in tenant list order.
    pub fn tenants(&self) -> Vec<(String, String)> {
        self.shared
            .tenants
            .iter()
            .map(|t| (t.record.id.clone(), t.region.clone()))
            .collect()
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Arguments of `lastseen simulate central`.
#[derive(Debug, clap::Args)]
pub struct SimulateCentralArgs {
    /// The estate to serve: an estate root holding `central/`, the `central/` folder, or any
    /// folder of recorded endpoint pages.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "synthetic_tenants"
    )]
    pub estate: Option<PathBuf>,

    /// Serve a made-up estate of this many tenants instead (for load tests).
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "estate",
        requires = "synthetic_endpoints"
    )]
    pub synthetic_tenants: Option<usize>,

    /// Endpoints per made-up tenant.
    #[arg(long, value_name = "N")]
    pub synthetic_endpoints: Option<usize>,

    /// Seed of the made-up estate.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Where to listen; loopback only. Port 0 picks a free port; the URL is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// A TOML file of simulator settings (the keys of `SimulatorConfig`, faults under
    /// `[faults]`); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Whose credentials these are.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,

    /// In tenant mode, which tenant of the estate the credentials belong to.
    #[arg(long)]
    pub tenant_id: Option<String>,

    /// The client id the token endpoint accepts (default lastseen-simulator).
    #[arg(long)]
    pub client_id: Option<String>,

    /// The client secret the token endpoint accepts (default simulator-secret). Test
    /// credentials only: a command line is visible to other users.
    #[arg(long)]
    pub client_secret: Option<String>,

    /// Token lifetime (`expires_in`) in seconds.
    #[arg(long)]
    pub token_lifetime_secs: Option<u64>,

    /// Milliseconds added to every API request.
    #[arg(long)]
    pub latency_ms: Option<u64>,

    /// Out of every N API requests, the first --throttle-burst get 429.
    #[arg(long, value_name = "N")]
    pub throttle_every: Option<u64>,

    /// Requests in a row that get 429.
    #[arg(long, value_name = "N")]
    pub throttle_burst: Option<u64>,

    /// Retry-After of a 429: none, <seconds> or date:<seconds>.
    #[arg(long)]
    pub retry_after: Option<RetryAfter>,

    /// Share of API requests (0 to 1) answered with 500, 502, 503 or 504.
    #[arg(long)]
    pub error_rate: Option<f64>,

    /// A tenant whose calls answer 403; repeat for several.
    #[arg(long, value_name = "TENANT_ID")]
    pub forbidden_tenant: Vec<String>,
}

/// `lastseen simulate central`: serves until interrupted.
pub async fn run(args: SimulateCentralArgs) -> anyhow::Result<ExitCode> {
    // Refuse a wrong address before spending time on loading an estate.
    if !args.listen.ip().is_loopback() {
        return Err(SimulatorError::NotLoopback(args.listen).into());
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
            toml::from_str::<SimulatorConfig>(&text).map_err(|error| {
                anyhow::anyhow!("{}: {}", path.display(), error.to_string().trim_end())
            })?
        }
        None => SimulatorConfig::default(),
    };
    apply_flags(&mut config, &args);

    let estate = match (&args.estate, args.synthetic_tenants) {
        (Some(dir), _) => Estate::load(dir)?,
        (None, Some(tenants)) => {
            Estate::synthetic(tenants, args.synthetic_endpoints.unwrap_or(0), args.seed)
        }
        (None, None) => anyhow::bail!("give --estate DIR or --synthetic-tenants N"),
    };
    let tenants = estate.tenants.len();
    let endpoints = estate.endpoint_count();

    let simulator = Simulator::start(estate, config, args.listen).await?;
    info!(
        url = simulator.base_url(),
        tenants,
        endpoints,
        caller = simulator.caller_id(),
        "Central simulator listening."
    );
    println!("{}", simulator.base_url());

    tokio::signal::ctrl_c().await?;
    let stats = simulator.stats();
    info!(
        api_requests = stats.api_requests.load(Ordering::Relaxed),
        endpoint_pages = stats.endpoint_pages.load(Ordering::Relaxed),
        throttled = stats.throttled.load(Ordering::Relaxed),
        injected_errors = stats.injected_errors.load(Ordering::Relaxed),
        "Central simulator stopping."
    );
    simulator.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn apply_flags(config: &mut SimulatorConfig, args: &SimulateCentralArgs) {
    if let Some(mode) = args.mode {
        config.mode = mode;
    }
    if let Some(tenant_id) = &args.tenant_id {
        config.tenant_id = Some(tenant_id.clone());
    }
    if let Some(client_id) = &args.client_id {
        config.client_id = client_id.clone();
    }
    if let Some(secret) = &args.client_secret {
        config.client_secret = Secret::new(secret.clone());
    }
    if let Some(lifetime) = args.token_lifetime_secs {
        config.token_lifetime_secs = lifetime;
    }

    let faults = &mut config.faults;
    if let Some(latency) = args.latency_ms {
        faults.latency_ms = latency;
    }
    if let Some(every) = args.throttle_every {
        faults.throttle_every = every;
    }
    if let Some(burst) = args.throttle_burst {
        faults.throttle_burst = burst;
    }
    if let Some(retry_after) = args.retry_after {
        faults.retry_after = retry_after;
    }
    if let Some(rate) = args.error_rate {
        faults.error_rate = rate;
    }
    faults
        .forbidden_tenants
        .extend(args.forbidden_tenant.iter().cloned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms_parse() {
        assert_eq!("none".parse::<RetryAfter>().unwrap(), RetryAfter::None);
        assert_eq!("3".parse::<RetryAfter>().unwrap(), RetryAfter::Seconds(3));
        assert_eq!("date:2".parse::<RetryAfter>().unwrap(), RetryAfter::Date(2));
        assert!(
            "soon"
                .parse::<RetryAfter>()
                .unwrap_err()
                .contains("\"soon\"")
        );
    }

    #[test]
    fn config_file_reads_faults_and_refuses_unknown_keys() {
        let config: SimulatorConfig = toml::from_str(
            r#"
            mode = "organization"
            token_lifetime_secs = 5
            [faults]
            latency_ms = 20
            throttle_every = 10
            throttle_burst = 3
            retry_after = "date:1"
            forbidden_tenants = ["t-403"]
            "#,
        )
        .unwrap();
        assert_eq!(config.mode, Mode::Organization);
        assert_eq!(config.token_lifetime_secs, 5);
        assert_eq!(config.faults.retry_after, RetryAfter::Date(1));
        assert_eq!(config.faults.forbidden_tenants, ["t-403"]);

        let error = toml::from_str::<SimulatorConfig>("[faults]\nlatency = 3\n").unwrap_err();
        assert!(error.to_string().contains("latency"), "{error}");
    }

    #[tokio::test]
    async fn refuses_to_listen_beyond_loopback() {
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let error = Simulator::start(Estate::default(), SimulatorConfig::default(), addr)
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}
