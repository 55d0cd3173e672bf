//! Latency per digit: one image per call, the shipped seed model, real MNIST
//! test digits (cycled, so branch predictors see real variety).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use microvit_dataset::{idx, repo_root, shipped_test_set};
use microvit_engine::Model;

fn latency(c: &mut Criterion) {
    let blob = std::fs::read(repo_root().join("models/microvit-seed.mvit")).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let (images, _) = shipped_test_set();
    let images = idx::read_images(&images).unwrap();
    let mut ws = model.workspace();
    let mut group = c.benchmark_group("single_digit");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("f32/scalar", |b| {
        b.iter(|| {
            i = (i + 1) % images.len();
            model.classify(std::hint::black_box(images.get(i)), &mut ws).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, latency);
criterion_main!(benches);
