//! Batch throughput: 1,000 real MNIST test digits per iteration, handed to
//! the engine's batch entry point (`Model::infer_batch`, writing 1,000 × 10
//! logits), the shipped seed model in every encoding on every backend this
//! CPU has. Criterion reports
//! digits/s (Throughput::Elements).
//!
//!     cargo bench -p microvit-benches --bench throughput

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use microvit_dataset::{idx, repo_root, shipped_test_set};
use microvit_engine::{Backend, Encoding, Model};

/// Digits per iteration.
const BATCH: usize = 1_000;

fn seed_model(encoding: Encoding) -> Vec<u8> {
    let name = match encoding {
        Encoding::F32 => "microvit-seed.mvit".to_string(),
        other => format!("microvit-seed.{other}.mvit"),
    };
    std::fs::read(repo_root().join("models").join(name)).unwrap()
}

fn batch(c: &mut Criterion) {
    let images = idx::read_images(&shipped_test_set().0).unwrap();
    let pixels = images.side * images.side;
    let batches = images.len() / BATCH;
    let mut group = c.benchmark_group("batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    // An iteration is 1,000 digits (up to ~0.1 s on the scalar paths): 20
    // samples keep `cargo bench` short.
    group.sample_size(20);
    for encoding in [Encoding::Int8, Encoding::F16, Encoding::F32] {
        let blob = seed_model(encoding);
        for backend in Backend::available() {
            if encoding == Encoding::F32 && backend != Backend::Scalar {
                continue; // f32 is the scalar reference on every backend
            }
            let mut model = Model::from_bytes(&blob).unwrap();
            model.set_backend(backend).unwrap();
            let mut ws = model.workspace();
            let mut logits = vec![0.0f32; BATCH * model.shape().classes as usize];
            let mut k = 0;
            group.bench_function(BenchmarkId::new(encoding.name(), backend.name()), |b| {
                b.iter(|| {
                    // The ten batches of the test set in turn.
                    k = (k + 1) % batches;
                    let digits = &images.pixels[k * BATCH * pixels..][..BATCH * pixels];
                    model.infer_batch(std::hint::black_box(digits), &mut ws, &mut logits).unwrap();
                    std::hint::black_box(&logits);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
