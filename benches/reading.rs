//! Reading stage throughput: Central pages and an LDIF export of 100,000 rows each, from a
//! generated estate on disk (the page cache keeps it warm after the first iteration).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lastseen::generate::{self, Options};
use lastseen::inputs::{Source, central, ldif};

/// Endpoints in the estate; the LDIF holds about as many computers.
const ROWS: usize = 100_000;

fn reading(c: &mut Criterion) {
    let estate = tempfile::tempdir().unwrap();
    generate::write(
        estate.path(),
        &Options {
            endpoints: ROWS,
            tenants: 1,
            seed: 1,
        },
    )
    .unwrap();
    let pages = estate.path().join("central");
    let export = estate.path().join("ad/t0001.ldif");

    let mut group = c.benchmark_group("read");
    group.sample_size(10);

    let page_bytes = dir_size(&pages);
    group.throughput(Throughput::Bytes(page_bytes));
    group.bench_function(BenchmarkId::new("central_pages", ROWS), |b| {
        b.iter(|| {
            let input = central::read(&[Source::File(pages.clone())]).unwrap();
            assert_eq!(input.records, ROWS);
            black_box(input)
        })
    });

    group.throughput(Throughput::Bytes(std::fs::metadata(&export).unwrap().len()));
    group.bench_function(BenchmarkId::new("ldif_export", ROWS), |b| {
        b.iter(|| {
            let input = ldif::read(&[Source::File(export.clone())]).unwrap();
            assert!(input.rejects.is_empty());
            black_box(input)
        })
    });
    group.finish();
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                std::fs::metadata(&path).unwrap().len()
            }
        })
        .sum()
}

criterion_group!(benches, reading);
criterion_main!(benches);
