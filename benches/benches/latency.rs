//! Latency per digit: one image per call, the shipped seed model in every
//! encoding on every backend this CPU has, real MNIST test digits (cycled,
//! so branch predictors see real variety).
//!
//!     cargo bench -p microvit-benches

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use microvit_dataset::{idx, repo_root, shipped_test_set};
use microvit_engine::{Backend, Encoding, Model};

fn seed_model(encoding: Encoding) -> Vec<u8> {
    let name = match encoding {
        Encoding::F32 => "microvit-seed.mvit".to_string(),
        other => format!("microvit-seed.{other}.mvit"),
    };
    std::fs::read(repo_root().join("models").join(name)).unwrap()
}

fn single_digit(c: &mut Criterion) {
    let images = idx::read_images(&shipped_test_set().0).unwrap();
    let mut group = c.benchmark_group("single_digit");
    group.throughput(Throughput::Elements(1));
    for encoding in [Encoding::Int8, Encoding::F16, Encoding::F32] {
        let blob = seed_model(encoding);
        for backend in Backend::available() {
            if encoding == Encoding::F32 && backend != Backend::Scalar {
                continue; // f32 is the scalar reference on every backend
            }
            let mut model = Model::from_bytes(&blob).unwrap();
            model.set_backend(backend).unwrap();
            let mut ws = model.workspace();
            let mut i = 0;
            group.bench_function(BenchmarkId::new(encoding.name(), backend.name()), |b| {
                b.iter(|| {
                    i = (i + 1) % images.len();
                    model.classify(std::hint::black_box(images.get(i)), &mut ws).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, single_digit);
criterion_main!(benches);
