//! One harness for every backend this CPU has: each must give the scalar
//! int8 integers bit for bit (on all 10,000 test digits, pinned by the
//! committed checksum, and on random shapes, weights and images) and the
//! scalar f16 logits within F16_TOLERANCE. On x86-64 this runs avx2 (and
//! the VNNI backends where the CPU has them); under qemu-aarch64 it runs
//! neon, and dotprod on a CPU with the dot product (`-cpu max`). A
//! backend without a kernel for an encoding or a shape runs the scalar pass
//! there, which these tests then compare with itself; the checksum test
//! checks that every backend really runs the shipped int8 models.

mod common;

use microvit_engine::synthetic::{random_f16_blob, random_image, random_int8_blob};
use microvit_engine::{crc32c, Backend, BackendError, InferError, Model, Shape};
use proptest::prelude::*;

use common::{repo, test_images};

/// Largest |logit(backend) - logit(scalar)| for f16 models: the kernels may
/// fuse multiply-adds and sum in another order.
const F16_TOLERANCE: f32 = 1e-4;

fn simd_backends() -> Vec<Backend> {
    Backend::available().into_iter().filter(|b| *b != Backend::Scalar).collect()
}

/// The model on `backend`, or on the scalar pass where the backend has no
/// kernel for its encoding or shape.
fn model_on(blob: &[u8], backend: Backend) -> Model<'static> {
    let mut model = Model::from_bytes(blob).unwrap();
    model.set_backend(backend).unwrap();
    assert!(model.backend() == backend || model.backend() == Backend::Scalar);
    model
}

fn int8_checksum(model: &Model<'_>, images: &[u8]) -> u32 {
    let mut ws = model.workspace();
    let mut fixed = Vec::with_capacity(images.len() / 784 * 40);
    for image in images.chunks_exact(784) {
        model.infer(image, &mut ws).unwrap();
        fixed.extend(ws.logits_fixed().iter().flat_map(|v| v.to_le_bytes()));
    }
    crc32c(&fixed)
}

#[cfg_attr(miri, ignore)]
#[test]
fn every_backend_reproduces_the_committed_int8_checksums() {
    let images = test_images();
    assert_eq!(images.len(), 10_000 * 784);
    for name in ["microvit-seed", "microvit-4k"] {
        let blob = std::fs::read(repo(&format!("models/{name}.int8.mvit"))).unwrap();
        let text = std::fs::read_to_string(repo(&format!("tests/fixtures/{name}.int8.logits.crc32c"))).unwrap();
        let committed = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap();
        for backend in Backend::available() {
            let model = model_on(&blob, backend);
            assert_eq!(model.backend(), backend, "{name}: every backend has a kernel for the shipped int8 models");
            let got = int8_checksum(&model, &images);
            assert_eq!(got, committed, "{name} on {backend}: {got:#010x} != committed {committed:#010x}");
        }
    }
}

#[cfg_attr(miri, ignore)]
#[test]
fn every_backend_matches_scalar_f16_on_the_test_set() {
    let images = test_images();
    for name in ["microvit-seed", "microvit-4k"] {
        let blob = std::fs::read(repo(&format!("models/{name}.f16.mvit"))).unwrap();
        let scalar = model_on(&blob, Backend::Scalar);
        let mut ws_scalar = scalar.workspace();
        for backend in simd_backends() {
            let fast = model_on(&blob, backend);
            let mut ws = fast.workspace();
            let mut worst = 0.0f32;
            for image in images.chunks_exact(784) {
                let want = scalar.infer(image, &mut ws_scalar).unwrap();
                let got = fast.infer(image, &mut ws).unwrap();
                worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
            }
            println!("{name} f16 on {backend}: max |Δlogit| vs scalar {worst:.1e} over 10,000 digits");
            assert!(worst <= F16_TOLERANCE, "{name} on {backend}: max |Δlogit| {worst}");
        }
    }
}

#[test]
fn unavailable_backends_are_refused_with_a_clear_error() {
    let blob = std::fs::read(repo("models/microvit-seed.int8.mvit")).unwrap();
    let mut model = Model::from_bytes(&blob).unwrap();
    for backend in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
        let err = model.set_backend(backend).unwrap_err();
        assert_eq!(err, BackendError::Unavailable(backend));
        assert!(err.to_string().contains("not available on this CPU"));
    }
    let fastest = Backend::FASTEST_FIRST.into_iter().find(|b| b.is_available());
    assert_eq!(Some(Backend::detect()), fastest);
}

/// CI names the backend run-time detection must pick on the CPU it runs
/// (`MICROVIT_EXPECT_BACKEND`, e.g. dotprod under `qemu-aarch64 -cpu max`,
/// neon under `-cpu cortex-a57`): so a kernel that is never detected, or
/// detected where the CPU lacks it, fails here instead of going untested.
#[test]
fn detection_picks_the_backend_ci_expects() {
    if let Ok(expected) = std::env::var("MICROVIT_EXPECT_BACKEND") {
        assert_eq!(Backend::detect().name(), expected, "available here: {:?}", Backend::available());
    }
}

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn shapes() -> impl Strategy<Value = Shape> {
    let family =
        (1u32..=6, 2u32..=10, 1u32..=4, 1u32..=40, 1u32..=20).prop_filter_map("in the family", |(g, p, h, hd, c)| {
            let shape = Shape { image_side: g * p, patch_side: p, dim: (h * hd).min(128), heads: h, classes: c };
            shape.validate().ok().map(|_| shape)
        });
    // The shipped geometry (28 × 28, 7 × 7 patches) with up to 32 channels,
    // 8 heads and 16 classes: what the geometry-specific kernels take.
    let shipped = (1u32..=8, 1u32..=32, 1u32..=16).prop_filter_map("dim ≤ 32", |(h, hd, c)| {
        let shape = Shape { image_side: 28, patch_side: 7, dim: h * hd, heads: h, classes: c };
        (h * hd <= 32 && shape.validate().is_ok()).then_some(shape)
    });
    prop_oneof![family, shipped]
}

proptest! {
    // 64 cases in CI; PROPTEST_CASES=20000 for a longer local run.
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[cfg_attr(miri, ignore)]
    #[test]
    fn int8_backends_are_bit_exact_on_random_models(shape in shapes(), seed in any::<u64>(), image_seed in any::<u64>()) {
        let blob = random_int8_blob(shape, seed);
        let scalar = model_on(&blob, Backend::Scalar);
        let mut ws = scalar.workspace();
        let images = [random_image(&shape, image_seed), vec![255; shape.pixels()], vec![0; shape.pixels()]];
        for backend in simd_backends() {
            let fast = model_on(&blob, backend);
            let mut ws_fast = fast.workspace();
            for image in &images {
                scalar.infer(image, &mut ws).unwrap();
                fast.infer(image, &mut ws_fast).unwrap();
                prop_assert_eq!(ws.logits_fixed(), ws_fast.logits_fixed(), "{} on {:?}", backend, shape);
            }
        }
    }

    #[cfg_attr(miri, ignore)]
    #[test]
    fn f16_backends_agree_on_random_models(shape in shapes(), seed in any::<u64>(), image_seed in any::<u64>()) {
        let blob = random_f16_blob(shape, seed);
        let scalar = model_on(&blob, Backend::Scalar);
        let mut ws = scalar.workspace();
        let image = random_image(&shape, image_seed);
        let want = scalar.infer(&image, &mut ws).unwrap().to_vec();
        for backend in simd_backends() {
            let fast = model_on(&blob, backend);
            let mut ws_fast = fast.workspace();
            let got = fast.infer(&image, &mut ws_fast).unwrap();
            for (a, b) in got.iter().zip(&want) {
                prop_assert!((a - b).abs() <= F16_TOLERANCE * b.abs().max(1.0), "{} on {:?}: {} vs {}", backend, shape, a, b);
            }
        }
    }
}

/// The corners of the shape family the random shapes above (patch side ≤
/// 10) do not reach: one 64×64 patch, 256 patches of 2×2, dim 128 and dim 1,
/// patch sides that are not multiples of 4.
const EDGES: [Shape; 6] = [
    Shape { image_side: 64, patch_side: 64, dim: 128, heads: 4, classes: 10 },
    Shape { image_side: 32, patch_side: 2, dim: 128, heads: 8, classes: 64 },
    Shape { image_side: 64, patch_side: 4, dim: 40, heads: 5, classes: 3 },
    Shape { image_side: 63, patch_side: 21, dim: 33, heads: 3, classes: 7 },
    Shape { image_side: 45, patch_side: 3, dim: 1, heads: 1, classes: 1 },
    Shape { image_side: 2, patch_side: 2, dim: 31, heads: 1, classes: 2 },
];

#[cfg_attr(miri, ignore)]
#[test]
fn every_backend_matches_scalar_at_the_edges_of_the_family() {
    for (i, shape) in EDGES.into_iter().enumerate() {
        shape.validate().unwrap();
        let images = [random_image(&shape, i as u64), vec![255; shape.pixels()], vec![0; shape.pixels()]];
        let int8 = random_int8_blob(shape, 100 + i as u64);
        let f16 = random_f16_blob(shape, 200 + i as u64);
        let (scalar_int8, scalar_f16) = (model_on(&int8, Backend::Scalar), model_on(&f16, Backend::Scalar));
        let (mut ws_int8, mut ws_f16) = (scalar_int8.workspace(), scalar_f16.workspace());
        for backend in simd_backends() {
            let (fast_int8, fast_f16) = (model_on(&int8, backend), model_on(&f16, backend));
            let (mut fast_ws_int8, mut fast_ws_f16) = (fast_int8.workspace(), fast_f16.workspace());
            for image in &images {
                scalar_int8.infer(image, &mut ws_int8).unwrap();
                fast_int8.infer(image, &mut fast_ws_int8).unwrap();
                assert_eq!(ws_int8.logits_fixed(), fast_ws_int8.logits_fixed(), "int8 on {backend}, {shape:?}");
                let want = scalar_f16.infer(image, &mut ws_f16).unwrap();
                let got = fast_f16.infer(image, &mut fast_ws_f16).unwrap();
                for (a, b) in got.iter().zip(want) {
                    assert!(
                        (a - b).abs() <= F16_TOLERANCE * b.abs().max(1.0),
                        "f16 on {backend}, {shape:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// The batch API gives every image's logits exactly as one call each does,
/// on every backend and encoding, and refuses mis-sized buffers.
#[cfg_attr(miri, ignore)] // seven minutes under miri; the batch loop has no unsafe code
#[test]
fn batches_equal_single_calls_on_every_backend() {
    let shape = Shape::SEED;
    let images: Vec<u8> = (0..3).flat_map(|seed| random_image(&shape, seed)).collect();
    let batch = &images[..];
    for file in ["microvit-seed.mvit", "microvit-seed.f16.mvit", "microvit-seed.int8.mvit"] {
        let blob = std::fs::read(repo(&format!("models/{file}"))).unwrap();
        // f32 is the scalar reference only.
        let simd = if file.ends_with(".f16.mvit") || file.ends_with(".int8.mvit") { simd_backends() } else { vec![] };
        for backend in std::iter::once(Backend::Scalar).chain(simd) {
            let model = model_on(&blob, backend);
            let mut ws = model.workspace();
            let mut logits = vec![0.0; 3 * 10];
            model.infer_batch(batch, &mut ws, &mut logits).unwrap();
            for (image, row) in batch.chunks_exact(784).zip(logits.chunks_exact(10)) {
                assert_eq!(model.infer(image, &mut ws).unwrap(), row, "{file} on {backend}");
            }
            let size = |image_bytes, logits| InferError::BatchSize { image_bytes, logits, pixels: 784, classes: 10 };
            assert_eq!(model.infer_batch(&batch[..783], &mut ws, &mut logits[..0]), Err(size(783, 0)));
            assert_eq!(model.infer_batch(batch, &mut ws, &mut logits[..29]), Err(size(3 * 784, 29)));
            assert!(model.infer_batch(&[], &mut ws, &mut []).is_ok());
        }
    }
}
