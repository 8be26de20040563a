//! CPU cost of collecting from Central: the simulator and the client in one process over
//! 127.0.0.1 with no added latency, pages going to a sink that only counts them. What this
//! measures is the ceiling the machine puts on `collect central`; `collect_central.sh` measures
//! the command against a latency like the real API's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lastseen::central::client::{
    CentralClient, ClientSettings, EndpointPage, EndpointQuery, RetryPolicy,
};
use lastseen::central::collect::{
    PageSink, Progress, SinkError, TenantOutcome, TenantSnapshot, collect,
};
use lastseen::central::model::Secret;
use lastseen::central::simulator::{Estate, Simulator, SimulatorConfig};
use url::Url;

/// Tenants in the estate.
const TENANTS: usize = 8;

/// Endpoints per tenant: 10 pages of 500 each.
const PER_TENANT: usize = 5_000;

/// Counts endpoints and drops the pages.
#[derive(Default)]
struct CountingSink {
    endpoints: AtomicU64,
}

impl PageSink for CountingSink {
    async fn begin(&self, _tenant: &TenantSnapshot) -> Result<(), SinkError> {
        Ok(())
    }

    async fn page(&self, _tenant: &TenantSnapshot, page: EndpointPage) -> Result<(), SinkError> {
        self.endpoints
            .fetch_add(page.endpoints as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn end(
        &self,
        _tenant: &TenantSnapshot,
        _outcome: &TenantOutcome,
    ) -> Result<(), SinkError> {
        Ok(())
    }
}

fn collect_without_latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let simulator = runtime.block_on(async {
        let estate = Estate::synthetic(TENANTS, PER_TENANT, 1);
        let listen = "127.0.0.1:0".parse().unwrap();
        Simulator::start(estate, SimulatorConfig::default(), listen)
            .await
            .unwrap()
    });
    let client = CentralClient::new(ClientSettings {
        auth_url: Url::parse(&simulator.auth_url()).unwrap(),
        global_url: Url::parse(simulator.base_url()).unwrap(),
        client_id: SimulatorConfig::default().client_id,
        client_secret: Secret::new("simulator-secret"),
        retry: RetryPolicy::default(),
        request_timeout: Duration::from_secs(60),
    })
    .unwrap();
    let query = EndpointQuery::default();

    let mut group = c.benchmark_group("central_collect");
    group.throughput(Throughput::Elements((TENANTS * PER_TENANT) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("loopback_no_latency_concurrency_4", |bench| {
        bench.iter(|| {
            let sink = CountingSink::default();
            runtime.block_on(async {
                collect(&client, &sink, &query, 4, &Progress::hidden())
                    .await
                    .unwrap();
            });
            assert_eq!(
                sink.endpoints.load(Ordering::Relaxed),
                (TENANTS * PER_TENANT) as u64
            );
        });
    });
    group.finish();

    runtime.block_on(simulator.stop());
}

criterion_group!(benches, collect_without_latency);
criterion_main!(benches);
