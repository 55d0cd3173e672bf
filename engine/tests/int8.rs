//! The int8 fixed-point path: its building blocks against f64, its bounds
//! under hostile-but-valid blobs (debug builds trap any overflow), and the
//! loader's range checks.

use microvit_engine::format::{self, restamp_checksum, TensorId};
use microvit_engine::int8::{exp_q30, round_shift, EXP2_Q30, PROB_FRAC_BITS};
use microvit_engine::synthetic::{random_image, random_int8_blob};
use microvit_engine::{Encoding, InferError, LoadError, Model, Shape, Workspace};
use proptest::prelude::*;

#[test]
fn exp_table_is_what_its_comment_says() {
    for (j, &v) in EXP2_Q30.iter().enumerate() {
        assert_eq!(v as f64, (2f64.powf(j as f64 / 256.0) * (1u64 << 30) as f64).round(), "entry {j}");
    }
}

#[test]
fn fixed_point_exp_is_within_its_documented_error() {
    // The exponent is rounded to Q.16 in log2 units (relative error up to
    // ln2 · 2^-16 ≈ 1.1e-5), the table interpolation adds under 1e-6, the
    // final shift truncates: below 2e-5 relative plus 2 units of Q.30.
    let mut worst = 0.0f64;
    for x in (-(40 << 16)..=0).step_by(37) {
        let got = exp_q30(x) as f64;
        let want = (x as f64 / 65536.0).exp() * (1u64 << 30) as f64;
        assert!((got - want).abs() <= 2.0 + 2e-5 * want, "x = {x}: {got} vs {want}");
        if want > 1e6 {
            worst = worst.max((got - want).abs() / want);
        }
    }
    assert!(worst < 2e-5, "worst relative error {worst}");
    assert_eq!(exp_q30(0), 1 << 30);
    assert_eq!(exp_q30(i32::MIN / 2), 0);
}

#[test]
fn round_shift_rounds_half_up() {
    assert_eq!([5, 6, 7, -5, -6, -7].map(|x| round_shift(x, 2)), [1, 2, 2, -1, -1, -2]);
    assert_eq!(round_shift(-2, 2), 0); // -0.5 rounds up to 0
    assert_eq!(round_shift(123, 0), 123);
}

fn shapes() -> impl Strategy<Value = Shape> {
    (1u32..=8, 2u32..=8, 1u32..=4, 1u32..=16, 1u32..=64).prop_filter_map("in the family", |(g, p, h, hd, c)| {
        let shape = Shape { image_side: g * p, patch_side: p, dim: h * hd, heads: h, classes: c };
        shape.validate().ok().map(|_| shape)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any blob the loader accepts runs without overflow (this test runs with
    /// overflow checks on), deterministically, with probabilities that sum
    /// to one within rounding.
    #[cfg_attr(miri, ignore)]
    #[test]
    fn any_valid_int8_blob_runs_without_overflow(shape in shapes(), seed in any::<u64>(), image_seed in any::<u64>()) {
        let blob = random_int8_blob(shape, seed);
        let model = Model::from_bytes(&blob).unwrap();
        let image = random_image(&shape, image_seed);
        let mut ws = model.workspace();
        let tokens = shape.tokens() as usize;
        let mut attention = vec![0.0; shape.heads as usize * tokens];
        let first = model.infer_with_attention(&image, &mut ws, &mut attention).unwrap().to_vec();
        let fixed = ws.logits_fixed().to_vec();
        prop_assert_eq!(model.infer(&image, &mut ws).unwrap(), &first[..]);
        prop_assert_eq!(ws.logits_fixed(), &fixed[..]);
        for row in attention.chunks_exact(tokens) {
            let sum: f32 = row.iter().sum();
            let slack = tokens as f32 / (1u32 << PROB_FRAC_BITS) as f32;
            prop_assert!((sum - 1.0).abs() <= slack, "attention sums to {}", sum);
        }
        // All-black and all-white digits are the extremes of the input.
        for v in [0u8, 255] {
            model.infer(&vec![v; shape.pixels()], &mut ws).unwrap();
        }
    }
}

fn seed_int8() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-seed.int8.mvit")).unwrap()
}

/// Overwrites element `index` of `tensor` (little-endian bytes) and
/// restamps the checksum, so the loader's range check is what rejects it.
fn with_value(blob: &[u8], tensor: TensorId, index: usize, bytes: &[u8]) -> Vec<u8> {
    let layout = format::parse(blob).unwrap();
    let entry = layout.tensor(tensor);
    let mut out = blob.to_vec();
    let at = entry.offset + index * entry.elem.size();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    restamp_checksum(&mut out);
    out
}

#[test]
fn loader_rejects_values_outside_the_proven_ranges() {
    let blob = seed_int8();
    Model::from_bytes(&blob).unwrap();
    let cases: Vec<(TensorId, usize, Vec<u8>, &str)> = vec![
        (TensorId::Int8PatchWeight, 17, vec![0x80], "-128"),
        (TensorId::Int8PatchScale, 3, 0i32.to_le_bytes().to_vec(), "overflow"),
        (TensorId::Int8PatchScale, 4, 100_000i32.to_le_bytes().to_vec(), "overflow"),
        (TensorId::Int8ScoreWeight, 9, 2048i16.to_le_bytes().to_vec(), "2047"),
        (TensorId::Int8HeadWeight, 100, (-2048i16).to_le_bytes().to_vec(), "2047"),
        (TensorId::Int8ClsScore, 1, (1i32 << 30).to_le_bytes().to_vec(), "2^29"),
        (TensorId::Int8HeadBias, 7, (-(1i32 << 30)).to_le_bytes().to_vec(), "2^29"),
        (TensorId::Int8Params, 0, 25i32.to_le_bytes().to_vec(), "documented range"),
        (TensorId::Int8Params, 1, (-1i32).to_le_bytes().to_vec(), "documented range"),
        (TensorId::Int8Params, 5, 1i32.to_le_bytes().to_vec(), "documented range"),
    ];
    for (tensor, index, bytes, reason) in cases {
        let err = Model::from_bytes(&with_value(&blob, tensor, index, &bytes)).err().unwrap();
        match &err {
            LoadError::OutOfRange { tensor: t, index: i, reason: r } => {
                assert_eq!((*t, *i), (tensor, index), "{err}");
                assert!(r.contains(reason), "{r:?} lacks {reason:?}");
            }
            other => panic!("{tensor} {index}: {other:?}"),
        }
    }
    // A CLS vector that is not normalised.
    let mut bad = blob.clone();
    for i in 0..32 {
        bad = with_value(&bad, TensorId::Int8ClsNorm, i, &i16::MAX.to_le_bytes());
    }
    let err = Model::from_bytes(&bad).err().unwrap();
    assert!(matches!(err, LoadError::OutOfRange { tensor: TensorId::Int8ClsNorm, .. }), "{err:?}");
}

#[test]
fn a_workspace_of_another_encoding_is_refused() {
    let model = Model::from_bytes(&seed_int8()).unwrap();
    let mut ws = Workspace::new(Shape::SEED, Encoding::F32);
    assert_eq!(model.infer(&[0; 784], &mut ws), Err(InferError::WorkspaceMismatch));
}

#[test]
fn rsqrt_table_is_what_its_comment_says_and_is_accurate() {
    use microvit_engine::int8::{rsqrt_q14, RSQRT_Q15};
    for (i, &v) in RSQRT_Q15.iter().enumerate() {
        assert_eq!(v as f64, (32768.0 / ((i as f64 + 64.5) / 64.0).sqrt()).round(), "entry {i}");
    }
    let mut q = 1u64;
    while q < 1 << 56 {
        for q in [q, q + q / 3, q + q / 2, 2 * q - 1] {
            let (y, k) = rsqrt_q14(q);
            assert!((1 << 13) < y && y <= 1 << 14, "q = {q}: y = {y}");
            let want = 2f64.powi(14 + k as i32) / (q as f64).sqrt();
            assert!(((y as f64) - want).abs() <= 1e-4 * want + 0.5, "q = {q}: {y} vs {want}");
        }
        q = q * 7 / 4 + 1;
    }
}
