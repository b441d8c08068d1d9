//! parse + validate + place + render, for the seed and for large generated topologies.
//!
//! `cargo bench -p hakube-benches --bench plan`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hakube_benches::{SEED, large_topology};

static SECRETS: std::sync::LazyLock<hakube_plan::PlanSecrets> =
    std::sync::LazyLock::new(hakube_plan::PlanSecrets::generate);

fn full(text: &str) -> usize {
    let cluster = hakube_topology::load(text, "bench").expect("valid topology");
    hakube_plan::render(&cluster, &SECRETS)
        .expect("renders")
        .len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    g.bench_function("seed/full", |b| b.iter(|| full(std::hint::black_box(SEED))));
    g.bench_function("seed/load", |b| {
        b.iter(|| hakube_topology::load(std::hint::black_box(SEED), "bench").expect("valid"));
    });
    for (workers, nodes) in [(100, 5), (250, 13), (500, 25), (1000, 50)] {
        let text = large_topology(workers, nodes);
        g.throughput(Throughput::Elements(u64::from(workers)));
        g.bench_with_input(BenchmarkId::new("workers/full", workers), &text, |b, t| {
            b.iter(|| full(t));
        });
        g.bench_with_input(BenchmarkId::new("workers/load", workers), &text, |b, t| {
            b.iter(|| hakube_topology::load(t, "bench").expect("valid"));
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
