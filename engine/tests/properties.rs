//! Properties of the blob loader on random models of every encoding:
//!
//! - a valid blob round-trips: the tensors written are the tensors read;
//! - any single-byte corruption and any truncation is rejected (the
//!   checksum's job), never accepted silently;
//! - a hostile edit (any byte, checksum restamped) is rejected with an
//!   error or gives a model that runs, without a panic or an overflow (test
//!   builds have overflow checks on), and with finite logits;
//! - huge but finite values are rejected or give finite logits;
//! - zero-copy and copying loads agree, on the verdict and on every logit.
//!
//! Plus the inputs the fuzz targets (fuzz/) found, kept as plain tests.
//! Every backend against scalar on random shapes is engine/tests/backends.rs.

use microvit_engine::format::{self, Encoding, TensorId, HEADER_LEN};
use microvit_engine::synthetic::{random_f16_blob, random_f32_blob, random_image, random_int8_blob, random_state_dict};
use microvit_engine::{LoadError, Model, Shape, BORROWED_ALIGN};
use proptest::prelude::*;

/// A copy of a blob at `offset` bytes past a 64-byte boundary, for
/// zero-copy loads.
struct AlignedCopy {
    lines: Vec<[u64; 8]>,
    offset: usize,
    len: usize,
}

impl AlignedCopy {
    fn new(blob: &[u8], offset: usize) -> AlignedCopy {
        let mut lines = vec![[0u64; 8]; (blob.len() + offset).div_ceil(64) + 1];
        // SAFETY: the u64 arrays span `lines.len() * 64` initialised bytes,
        // and any byte pattern is a valid u64.
        let bytes = unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64) };
        bytes[offset..offset + blob.len()].copy_from_slice(blob);
        AlignedCopy { lines, offset, len: blob.len() }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: as in `new`.
        let all = unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.lines.len() * 64) };
        &all[self.offset..][..self.len]
    }
}

fn shapes() -> impl Strategy<Value = Shape> {
    // Small shapes under miri, where one inference of a large one takes minutes.
    let (g, p, hd) = if cfg!(miri) { (2, 4, 4) } else { (5, 8, 12) };
    (1u32..=g, 2u32..=p, 1u32..=4, 1u32..=hd, 1u32..=12).prop_filter_map("in the family", |(g, p, h, hd, c)| {
        let shape = Shape { image_side: g * p, patch_side: p, dim: h * hd, heads: h, classes: c };
        shape.validate().ok().map(|_| shape)
    })
}

fn encodings() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::F32), Just(Encoding::F16), Just(Encoding::Int8)]
}

fn random_blob(encoding: Encoding, shape: Shape, seed: u64) -> Vec<u8> {
    match encoding {
        Encoding::F32 => random_f32_blob(shape, seed),
        Encoding::F16 => random_f16_blob(shape, seed),
        Encoding::Int8 => random_int8_blob(shape, seed),
    }
}

/// The logits (as bits) and the int8 integers of one image.
fn outputs(model: &Model<'_>, image: &[u8]) -> (Vec<u32>, Vec<i32>) {
    let mut ws = model.workspace();
    let logits = model.infer(image, &mut ws).expect("a loaded model runs").iter().map(|v| v.to_bits()).collect();
    (logits, ws.logits_fixed().to_vec())
}

/// Loads a blob both ways and checks they agree; returns the owned result.
fn load_both_ways(blob: &[u8], offset: usize) -> Result<Model<'static>, LoadError> {
    let owned = Model::from_bytes(blob);
    let copy = AlignedCopy::new(blob, offset);
    let borrowed = Model::from_bytes_borrowed(copy.bytes());
    match (&owned, &borrowed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.layout(), b.layout());
            assert_eq!(a.blob(), b.blob());
            let image = random_image(&a.shape(), 5);
            assert_eq!(outputs(a, &image), outputs(b, &image), "owned and borrowed loads compute differently");
        }
        // Debug text: a NaN header parameter is not equal to itself.
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        _ => panic!("owned {:?}, borrowed {:?}", owned.as_ref().err(), borrowed.as_ref().err()),
    }
    owned
}

proptest! {
    // A handful of cases under miri, which runs about 10^4 times slower.
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 3 } else { 96 }, ..ProptestConfig::default() })]

    #[test]
    fn f32_blobs_hold_the_state_dict_bit_for_bit(shape in shapes(), seed in any::<u64>()) {
        let model = Model::from_bytes(&random_f32_blob(shape, seed)).unwrap();
        let written = random_state_dict(&shape, seed);
        let read = model.state_dict();
        prop_assert_eq!(read.len(), written.len());
        for ((name, values), (id, want)) in read.iter().zip(&written) {
            prop_assert_eq!(*name, id.name());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(values), bits(want), "{}", name);
        }
    }

    #[test]
    fn valid_blobs_of_every_encoding_load_both_ways_and_agree(
        shape in shapes(), seed in any::<u64>(), encoding in encodings(), offset in prop_oneof![Just(0), Just(BORROWED_ALIGN)],
    ) {
        let blob = random_blob(encoding, shape, seed);
        let model = load_both_ways(&blob, offset).unwrap();
        prop_assert_eq!(model.shape(), shape);
        prop_assert_eq!(model.encoding(), encoding);
        // The table lists exactly the encoding's tensors, in place.
        let want: Vec<TensorId> = format::encoding_tensors(encoding).iter().map(|(id, _)| *id).collect();
        let got: Vec<TensorId> = model.layout().tensors.iter().map(|t| t.id).collect();
        prop_assert_eq!(got, want);
        for t in &model.layout().tensors {
            prop_assert_eq!(t.dims, t.id.dims(&shape));
            prop_assert_eq!(t.offset % format::TENSOR_ALIGN, 0);
        }
    }

    #[test]
    fn any_single_byte_corruption_is_rejected(
        shape in shapes(), seed in any::<u64>(), encoding in encodings(), at in any::<prop::sample::Index>(), xor in 1u8..,
    ) {
        let mut blob = random_blob(encoding, shape, seed);
        let i = at.index(blob.len());
        blob[i] ^= xor;
        let err = load_both_ways(&blob, 0).err();
        prop_assert!(err.is_some(), "byte {} ^ {:#04x} of a {} blob went unnoticed", i, xor, encoding);
    }

    #[test]
    fn any_truncation_is_rejected(shape in shapes(), seed in any::<u64>(), encoding in encodings(), at in any::<prop::sample::Index>()) {
        let blob = random_blob(encoding, shape, seed);
        let cut = at.index(blob.len());
        let needed = if cut < 16 { HEADER_LEN } else { blob.len() };
        let err = load_both_ways(&blob[..cut], 0).err();
        prop_assert_eq!(err, Some(LoadError::Truncated { needed, actual: cut }));
    }

    /// A hostile file: any byte set to any value with a valid checksum. The
    /// loader must reject it or give a model that runs any image without a
    /// panic (arithmetic overflow included).
    #[test]
    fn restamped_edits_are_rejected_or_run(
        shape in shapes(), seed in any::<u64>(), encoding in encodings(), at in any::<prop::sample::Index>(), value in any::<u8>(),
    ) {
        let mut blob = random_blob(encoding, shape, seed);
        let i = at.index(blob.len());
        if format::CHECKSUM_RANGE.contains(&i) {
            return Ok(());
        }
        blob[i] = value;
        format::restamp_checksum(&mut blob);
        if let Ok(model) = load_both_ways(&blob, 0) {
            let s = model.shape();
            let mut ws = model.workspace();
            for image in [random_image(&s, seed), vec![0; s.pixels()], vec![255; s.pixels()]] {
                prop_assert_eq!(model.infer(&image, &mut ws).unwrap().len(), s.classes as usize);
            }
            assert_finite_logits(&model, seed)?;
        }
    }
}

/// The float tensors of an encoding, with their element types.
fn float_tensors(encoding: Encoding) -> Vec<(TensorId, format::ElemType)> {
    let float = |e: &&(TensorId, format::ElemType)| matches!(e.1, format::ElemType::F32 | format::ElemType::F16);
    format::encoding_tensors(encoding).iter().filter(float).copied().collect()
}

/// Every logit of every image finite, on a model that loaded.
fn assert_finite_logits(model: &Model<'_>, seed: u64) -> Result<(), TestCaseError> {
    let s = model.shape();
    let mut ws = model.workspace();
    for image in [random_image(&s, seed), vec![0; s.pixels()], vec![255; s.pixels()]] {
        let logits = model.infer(&image, &mut ws).unwrap();
        prop_assert!(logits.iter().all(|v| v.is_finite()), "{} logits {:?}", model.encoding(), logits);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 3 } else { 256 }, ..ProptestConfig::default() })]

    /// Issue #18: an f32 or f16 blob with huge but finite values (3e38 in
    /// a weight, the extreme header normalisation) loaded and every
    /// inference returned NaN. Whatever the magnitudes and the header's
    /// parameters within their ranges, a blob is rejected or every logit
    /// of every image is finite (docs/FORMAT.md proves the bounds).
    #[test]
    fn huge_finite_values_are_rejected_or_give_finite_logits(
        shape in shapes(), seed in any::<u64>(), f16 in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), -45i32..=38, any::<bool>()), 1..4),
        header in prop::sample::select(vec![0usize, 1, 2, 3]),
    ) {
        let encoding = if f16 { Encoding::F16 } else { Encoding::F32 };
        let mut blob = random_blob(encoding, shape, seed);
        let layout = format::parse(&blob).unwrap();
        let tensors = float_tensors(encoding);
        for (which, at, exponent, negative) in edits {
            let (id, elem) = tensors[which.index(tensors.len())];
            let t = layout.tensor(id);
            let index = at.index(t.len / elem.size());
            let magnitude = 10f64.powi(exponent) * (1.0 + (seed % 1000) as f64 / 1000.0);
            let value = if negative { -magnitude } else { magnitude };
            match elem {
                format::ElemType::F32 => {
                    let v = (value as f32).clamp(-f32::MAX, f32::MAX);
                    blob[t.offset + 4 * index..][..4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {
                    let v = half::f16::from_f64(value.clamp(-65504.0, 65504.0));
                    blob[t.offset + 2 * index..][..2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        // The header's normalisation at the edges of its range (f32 uses it).
        let (mean, std) = [(0.1307f32, 0.3081f32), (1e6, 1e-6), (-1e6, 1e6), (0.0, 1e-6)][header];
        blob[32..36].copy_from_slice(&mean.to_le_bytes());
        blob[36..40].copy_from_slice(&std.to_le_bytes());
        format::restamp_checksum(&mut blob);
        if let Ok(model) = load_both_ways(&blob, 0) {
            assert_finite_logits(&model, seed)?;
        }
    }
}

/// The bounds themselves: every float value at ±its limit (signs at
/// random), the header's normalisation at the ends of its range, the
/// largest shapes of the family; logits stay finite on black, white, noisy
/// and checkered images, on every backend. A check of docs/FORMAT.md's
/// "Magnitude bounds" at their worst (small shapes under miri).
#[test]
fn values_at_their_bounds_give_finite_logits() {
    let shapes: &[Shape] = if cfg!(miri) {
        &[Shape { image_side: 4, patch_side: 2, dim: 8, heads: 2, classes: 3 }]
    } else {
        &[
            Shape::SEED,
            // The most tokens (257), the widest dim, one channel per head.
            Shape { image_side: 64, patch_side: 4, dim: 128, heads: 128, classes: 64 },
            // The longest patch (64 × 64 pixels), one head.
            Shape { image_side: 64, patch_side: 64, dim: 128, heads: 1, classes: 64 },
        ]
    };
    for (k, &shape) in shapes.iter().enumerate() {
        // Every header on the first shape, the two extremes on the big ones (seconds each).
        let headers = [(1e6f32, 1e-6f32), (0.1307, 0.3081), (-1e6, 1e6), (0.0, 1e-6)];
        for &(mean, std) in &headers[..if k == 0 { 4 } else { 2 }] {
            for (encoding, seed) in [(Encoding::F32, 1u64), (Encoding::F16, 3), (Encoding::F16, 4)] {
                let mut blob = random_blob(encoding, shape, seed);
                blob[32..36].copy_from_slice(&mean.to_le_bytes());
                blob[36..40].copy_from_slice(&std.to_le_bytes());
                format::restamp_checksum(&mut blob);
                let layout = format::parse(&blob).unwrap();
                let config = layout.header.config;
                let mut rng = microvit_engine::synthetic::SplitMix64(seed);
                for (id, elem) in float_tensors(encoding) {
                    let t = layout.tensor(id);
                    for i in 0..t.len / elem.size() {
                        let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                        match elem {
                            format::ElemType::F32 => {
                                // The largest f32 not above the limit.
                                let limit = config.value_limit(id).unwrap();
                                let mut v = limit as f32;
                                if v as f64 > limit {
                                    v = f32::from_bits(v.to_bits() - 1);
                                }
                                blob[t.offset + 4 * i..][..4].copy_from_slice(&(sign * v).to_le_bytes());
                            }
                            _ => {
                                let v = half::f16::from_f32(sign * 65504.0);
                                blob[t.offset + 2 * i..][..2].copy_from_slice(&v.to_le_bytes());
                            }
                        }
                    }
                }
                format::restamp_checksum(&mut blob);
                let mut model = Model::from_bytes(&blob).unwrap_or_else(|e| panic!("{shape} {encoding}: {e}"));
                let n = shape.pixels();
                let side = shape.image_side as usize;
                let checker: Vec<u8> =
                    (0..n).map(|i| if (i / side + i % side).is_multiple_of(2) { 255 } else { 0 }).collect();
                for backend in microvit_engine::Backend::available() {
                    model.set_backend(backend).unwrap();
                    let mut ws = model.workspace();
                    for image in [vec![0; n], vec![255; n], random_image(&shape, seed), checker.clone()] {
                        let logits = model.infer(&image, &mut ws).unwrap();
                        assert!(
                            logits.iter().all(|v| v.is_finite()),
                            "{shape} {encoding} on {backend}, mean {mean}, std {std}: {logits:?}"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- fuzz regressions

/// Sets element `index` of an int8 blob's i16 tensor and restamps.
fn with_i16(blob: &[u8], tensor: TensorId, index: usize, value: i16) -> Vec<u8> {
    let layout = format::parse(blob).unwrap();
    let at = layout.tensor(tensor).offset + 2 * index;
    let mut out = blob.to_vec();
    out[at..at + 2].copy_from_slice(&value.to_le_bytes());
    format::restamp_checksum(&mut out);
    out
}

/// fuzz/load_blob found it: `i16::MIN.abs()` overflowed in the int8 range
/// check (a panic with overflow checks; without them -32768 passed as a
/// weight of magnitude 32768, sixteen times the proven bound).
#[test]
fn int8_wide_weights_of_i16_min_are_rejected() {
    let shape = Shape { image_side: 8, patch_side: 4, dim: 8, heads: 2, classes: 3 };
    let blob = random_int8_blob(shape, 3);
    for tensor in [TensorId::Int8ScoreWeight, TensorId::Int8HeadWeight] {
        for index in [0, 5] {
            let err = Model::from_bytes(&with_i16(&blob, tensor, index, i16::MIN)).err();
            let reason = "i16 weight magnitude above 2047";
            assert_eq!(err, Some(LoadError::OutOfRange { tensor, index, reason }));
        }
        // The bound itself is allowed, one past it is not.
        assert!(Model::from_bytes(&with_i16(&blob, tensor, 1, -2047)).is_ok());
        assert!(Model::from_bytes(&with_i16(&blob, tensor, 1, 2048)).is_err());
    }
    // The fuzzer's own input (mode byte 3: restamp, borrowed at offset 4).
    let input = include_bytes!("../../fuzz/seeds/load_blob/regression-i16-min-weight");
    let mut found = input[1..].to_vec();
    let len = found.len() as u32;
    found[8..12].copy_from_slice(&len.to_le_bytes());
    format::restamp_checksum(&mut found);
    match load_both_ways(&found, BORROWED_ALIGN) {
        Err(LoadError::OutOfRange { tensor: TensorId::Int8ScoreWeight | TensorId::Int8HeadWeight, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
}

/// fuzz/load_blob: a NaN header parameter is reported the same way by both
/// loads (and is an error, not a panic).
#[test]
fn nan_header_parameters_are_rejected_both_ways() {
    let blob = random_int8_blob(Shape { image_side: 4, patch_side: 2, dim: 4, heads: 1, classes: 2 }, 1);
    assert!(Model::from_bytes(&blob).is_ok());
    for offset in [32, 36, 40] {
        let mut bad = blob.clone();
        bad[offset..offset + 4].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
        format::restamp_checksum(&mut bad);
        let err = load_both_ways(&bad, 0).err().expect("a NaN parameter is refused");
        assert!(matches!(err, LoadError::InvalidParameter { value, .. } if value.is_nan()), "{err:?}");
    }
}
