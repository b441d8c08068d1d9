//! How long rendering the whole add-on layer takes, and the cross-check on its output.
//! Run: `cargo bench -p hakube-addons --bench render`.

#[path = "../tests/fixture/mod.rs"]
mod fixture;
use criterion::{Criterion, criterion_group, criterion_main};
use fixture::example_input;
use hakube_addons::{cross_check, render};

fn bench(c: &mut Criterion) {
    let input = example_input();
    c.bench_function("render(example_input)", |b| {
        b.iter(|| render(std::hint::black_box(&input)).expect("renders"));
    });
    let out = render(&input).expect("renders");
    c.bench_function("cross_check(rendered tree)", |b| {
        b.iter(|| cross_check(&input, std::hint::black_box(&out.cluster_files)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
