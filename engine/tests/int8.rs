//! The int8 fixed-point path: its building blocks against f64, its bounds
//! under hostile-but-valid blobs (debug builds trap any overflow), and the
//! loader's range checks.
//!
//! Under miri (run for the engine's unsafe code) the exhaustive loops over
//! safe integer code take an evenly spread sample: whole, they take hours.

use microvit_engine::format::{self, restamp_checksum, TensorId};
use microvit_engine::int8::{exp2_q22, round_shift, softmax, EXP2_Q15, EXP2_Q24, PROB_FRAC_BITS};
use microvit_engine::synthetic::{random_image, random_int8_blob, SplitMix64};
use microvit_engine::{Encoding, InferError, LoadError, Model, Shape, Workspace};
use proptest::prelude::*;

#[test]
fn exp_tables_are_what_their_comment_says() {
    for j in 0..8 {
        let v = 2f64.powf(j as f64 / 8.0);
        assert_eq!(EXP2_Q24[j] as f64, (v * 2f64.powi(24)).round(), "Q.24 entry {j}");
        assert_eq!(EXP2_Q15[j] as f64, (v * 2f64.powi(15)).round(), "Q.15 entry {j}");
    }
}

/// Every fraction of the exponent (the dev profile's overflow checks cover
/// every product), and the integer part down to the clamp.
#[test]
fn fixed_point_exp2_is_within_its_documented_error() {
    for f in (0..1 << 16).step_by(if cfg!(miri) { 257 } else { 1 }) {
        let x = f - (1 << 16); // 2^x in [1/2, 1): Q.22 keeps 21 bits
        let got = exp2_q22(x) as f64;
        let want = 2f64.powf(x as f64 / 65536.0) * 2f64.powi(22);
        assert!((got - want).abs() <= 3e-6 * want + 1.0, "x = {x}: {got} vs {want}");
    }
    assert_eq!(exp2_q22(0), 1 << 22);
    for i in 1..40 {
        let got = exp2_q22(-(i << 16)) as f64;
        assert!((got - 2f64.powi(22 - i)).abs() <= 1.0, "x = -{i}: {got}");
    }
    assert_eq!(exp2_q22(i32::MIN / 2), 0);
}

/// The fixed-point softmax against the exact one (base 2, scores in Q.16
/// log2 units), for every token count up to the family's 257: within 1.5
/// units of Q.14, and the sum within 2^14 ± T.
#[test]
fn fixed_point_softmax_is_within_its_documented_error() {
    let mut rng = SplitMix64(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next_u64();
    for t in [1usize, 2, 3, 17, 65, 257] {
        for case in 0..if cfg!(miri) { 12 } else { 200 } {
            let spread = [0i64, 1 << 12, 1 << 16, 1 << 18, 1 << 20, 1 << 29][case % 6];
            let scores: Vec<i32> = (0..t)
                .map(|_| if spread == 0 { 5 } else { ((next() % (2 * spread as u64 + 1)) as i64 - spread) as i32 })
                .collect();
            let mut probs = vec![0; t];
            softmax(&scores, &mut probs);
            let max = *scores.iter().max().unwrap() as f64;
            let weights: Vec<f64> = scores.iter().map(|&s| 2f64.powf((s as f64 - max) / 65536.0)).collect();
            let total: f64 = weights.iter().sum();
            for (k, (&p, w)) in probs.iter().zip(&weights).enumerate() {
                let want = w / total * 2f64.powi(14);
                assert!((p as f64 - want).abs() <= 1.5, "T {t} case {case} token {k}: {p} vs {want}");
            }
            let sum: i32 = probs.iter().sum();
            assert!((sum - (1 << 14)).abs() <= t as i32, "T {t} case {case}: Σp = {sum}");
        }
    }
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
        (TensorId::Int8Params, 1, i32::MAX.to_le_bytes().to_vec(), "epsilon"),
        (TensorId::Int8Params, 4, 1i32.to_le_bytes().to_vec(), "convert the model again"),
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
fn rsq_is_accurate_for_every_input() {
    use microvit_engine::int8::rsq;
    // Every input; the dev profile's overflow checks cover every product.
    for m in (1 << 14..1 << 16).step_by(if cfg!(miri) { 97 } else { 1 }) {
        let y = rsq(m);
        let want = 2f64.powi(22) / (m as f64).sqrt();
        assert!((1 << 14..1 << 15).contains(&y), "m = {m}: y = {y}");
        assert!((y as f64 - want).abs() <= 6e-5 * want, "m = {m}: {y} vs {want}");
    }
}

/// The LayerNorm constants on tokens of every width, from constant and
/// extreme ones (all ±Zc) to random ones of small and large spread:
/// `z · 2^a` fits i16 and `n` is within a unit of `z · 2^14 / √(Σz² + E)`.
#[test]
fn layer_norm_constants_stay_in_range_and_are_accurate() {
    use microvit_engine::int8::{ln_constants, ln_eps_limit, mulhrs, z_limit};
    let mut rng = SplitMix64(0x9e37_79b9_7f4a_7c15);
    let mut next = move |n: i64| (rng.next_u64() % n as u64) as i64;
    let widths: Vec<u32> = if cfg!(miri) { vec![1, 2, 3, 16, 31, 32, 33, 64, 127, 128] } else { (1..=128).collect() };
    for d in widths {
        let zc = z_limit(d);
        assert!(d as i64 * (zc as i64 * zc as i64) + ln_eps_limit(d) as i64 <= i32::MAX as i64);
        for case in 0..if cfg!(miri) { 10 } else { 60 } {
            // Random tokens: a centre anywhere in range, a spread from 1 to Zc.
            let zc64 = zc as i64;
            let (centre, spread) = (next(2 * zc64 + 1) - zc64, [1, 3, 100, 2000, zc64][case % 5]);
            let z: Vec<i32> = (0..d as i64)
                .map(|o| match case {
                    0 => zc64,
                    1 => -zc64,
                    2 => [zc64, -zc64][o as usize % 2],
                    3 => [zc64, -zc64][(o > 0) as usize],
                    4 => 0,
                    _ => centre + next(2 * spread + 1) - spread,
                })
                .map(|v| v.clamp(-zc64, zc64) as i32)
                .collect();
            for eps in [0, 1, 1000, ln_eps_limit(d)] {
                let sum_sq = z.iter().map(|v| v * v).sum::<i32>();
                let (scale, y) = ln_constants(sum_sq, eps);
                let u = sum_sq as f64 + eps as f64;
                for &v in &z {
                    let x = v * scale;
                    assert!(x.abs() <= i16::MAX as i32, "d {d} case {case}: z·2^a = {x}");
                    let n = mulhrs(x as i16, y as i16) as f64;
                    let want = if u == 0.0 { 0.0 } else { v as f64 * 2f64.powi(14) / u.sqrt() };
                    assert!((n - want).abs() <= 1.0, "d {d} case {case} eps {eps}: n {n}, want {want}");
                }
            }
        }
    }
}
