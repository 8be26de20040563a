//! Correlation stage: the policy SQL over an estate of 100,000 endpoints and about as many
//! computers, already read into Arrow tables.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lastseen::config::Config;
use lastseen::correlate;
use lastseen::generate::{self, Options};
use lastseen::inputs::{Estate, InputPlan};

const ROWS: usize = 100_000;

fn correlation(c: &mut Criterion) {
    let estate_dir = tempfile::tempdir().unwrap();
    generate::write(
        estate_dir.path(),
        &Options {
            endpoints: ROWS,
            tenants: 4,
            seed: 1,
        },
    )
    .unwrap();
    let config = Config::load(&estate_dir.path().join("lastseen.toml")).unwrap();
    let estate = Estate::load(&InputPlan::from_config(&config)).unwrap();
    let as_of = config.as_of.unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut group = c.benchmark_group("correlate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function(BenchmarkId::new("policy_sql", ROWS), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ctx = correlate::session(&estate, &config, as_of).await.unwrap();
                let candidates = correlate::candidates(&ctx).await.unwrap();
                black_box(candidates)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, correlation);
criterion_main!(benches);
