//! Classify arbitrary pixels with arbitrary valid models: a shape in the
//! family and a seed come from the input, `synthetic::random_*_blob` builds
//! the model, and every backend this CPU has runs it. int8 logits must be
//! identical across backends (the fixed-point path is bit-exact by design);
//! f16 within float rounding; nothing may panic or overflow (fuzz builds
//! have overflow checks on).
//!
//! Input: 8 bytes of header (grid, patch side, heads, head width, classes,
//! encoding, two seed bytes), then pixels (cycled or cut to the image size).

#![no_main]

use libfuzzer_sys::fuzz_target;
use microvit_engine::synthetic::{random_f16_blob, random_f32_blob, random_int8_blob};
use microvit_engine::{Backend, Encoding, InferError, Model, Shape};

/// As engine/tests/backends.rs: f16 kernels may fuse multiply-adds and sum in
/// another order. A looser bound than the test's, since pixels here are
/// arbitrary rather than random.
const F16_TOLERANCE: f32 = 1e-3;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (head, pixels) = data.split_at(8);
    let grid = 1 + u32::from(head[0] % 8); // 1..=8
    let patch_side = 2 + u32::from(head[1] % 11); // 2..=12
    let heads = 1 + u32::from(head[2] % 8); // 1..=8
    let head_dim = 1 + u32::from(head[3] % 32); // 1..=32
    let shape = Shape {
        image_side: grid * patch_side,
        patch_side,
        dim: (heads * head_dim).min(128 / heads * heads),
        heads,
        classes: 1 + u32::from(head[4] % 64),
    };
    if shape.validate().is_err() {
        return;
    }
    let seed = u64::from(u16::from_le_bytes([head[6], head[7]])) | u64::from(head[5]) << 16;
    let encoding = [Encoding::Int8, Encoding::F16, Encoding::F32][usize::from(head[5] % 3)];
    let blob = match encoding {
        Encoding::Int8 => random_int8_blob(shape, seed),
        Encoding::F16 => random_f16_blob(shape, seed),
        Encoding::F32 => random_f32_blob(shape, seed),
    };
    let mut model = Model::from_bytes(&blob).expect("synthetic blobs are valid");

    // The raw pixels, whatever their number, are refused unless they fit.
    let mut ws = model.workspace();
    let n = shape.pixels();
    match model.infer(pixels, &mut ws) {
        Ok(_) => assert_eq!(pixels.len(), n),
        Err(e) => assert_eq!(e, InferError::ImageSize { expected: n, found: pixels.len() }),
    }
    let image: Vec<u8> =
        if pixels.is_empty() { vec![0; n] } else { (0..n).map(|i| pixels[i % pixels.len()]).collect() };

    let mut reference: Option<(Vec<f32>, Vec<i32>)> = None;
    for backend in Backend::available() {
        model.set_backend(backend).expect("available backends can be set");
        // f32 runs scalar everywhere; AVX2 and NEON have f16 and int8
        // kernels for every shape; the VNNI and dotprod kernels take int8
        // models of the shipped geometry only, others run scalar.
        let general = matches!(backend, Backend::Scalar | Backend::Avx2 | Backend::Neon);
        match (encoding, model.backend()) {
            (Encoding::F32, ran) => assert_eq!(ran, Backend::Scalar),
            (_, ran) if general => assert_eq!(ran, backend),
            (_, ran) => assert!(ran == backend || ran == Backend::Scalar, "{backend} ran as {ran}"),
        }
        let mut ws = model.workspace();
        let logits = model.infer(&image, &mut ws).expect("right-sized image").to_vec();
        assert_eq!(logits.len(), shape.classes as usize);
        assert!(logits.iter().all(|v| v.is_finite()), "{backend} on {shape:?}: {logits:?}");
        let fixed = ws.logits_fixed().to_vec();
        assert_eq!(fixed.len(), if encoding == Encoding::Int8 { logits.len() } else { 0 });
        match &reference {
            None => reference = Some((logits, fixed)),
            Some((want, want_fixed)) => match encoding {
                Encoding::Int8 => assert_eq!(&fixed, want_fixed, "{backend} differs from scalar on {shape:?}"),
                Encoding::F16 => {
                    for (a, b) in logits.iter().zip(want) {
                        assert!(
                            (a - b).abs() <= F16_TOLERANCE * b.abs().max(1.0),
                            "{backend} vs scalar on {shape:?}: {a} vs {b}"
                        );
                    }
                }
                Encoding::F32 => {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&logits), bits(want), "f32 always runs the scalar reference");
                }
            },
        }
    }
});
