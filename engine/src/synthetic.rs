//! Synthetic models with seeded pseudo-random weights, for tests and
//! benchmarks of shapes no trained model has. Not for inference, and not
//! part of the library: only with the `test-fixtures` feature.

use crate::format::{BlobWriter, ElemType, Encoding, ModelConfig, TensorId};
use crate::shape::Shape;

/// SplitMix64: tiny, seedable, and good enough to fill weights.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Random weights for every state_dict tensor of `shape`, scaled like a
/// trained model's (about 1/√fan-in), in the table order of an f32 blob.
pub fn random_state_dict(shape: &Shape, seed: u64) -> Vec<(TensorId, Vec<f32>)> {
    let mut rng = SplitMix64(seed);
    TensorId::STATE_DICT
        .iter()
        .map(|&id| {
            let dims = id.dims(shape);
            let fan_in = *dims.as_slice().last().unwrap() as f32;
            let scale = match id {
                TensorId::NormWeight => return (id, (0..shape.dim).map(|_| 1.0 + 0.2 * rng.next_f32()).collect()),
                TensorId::ClsToken | TensorId::PosEmbed => 0.5,
                _ => 1.0 / fan_in.sqrt(),
            };
            (id, (0..dims.elements().unwrap()).map(|_| scale * rng.next_f32()).collect())
        })
        .collect()
}

/// An f32 blob of `tensors` (as from [`random_state_dict`]).
pub fn f32_blob(config: ModelConfig, tensors: &[(TensorId, Vec<f32>)]) -> Vec<u8> {
    let mut w = BlobWriter::new(Encoding::F32, config);
    for (id, values) in tensors {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.tensor(*id, ElemType::F32, id.dims(&config.shape).as_slice(), bytes);
    }
    w.finish()
}

/// An f32 blob of a random model of `shape`, with MNIST normalisation.
pub fn random_f32_blob(shape: Shape, seed: u64) -> Vec<u8> {
    f32_blob(ModelConfig::mnist(shape), &random_state_dict(&shape, seed))
}

/// A random image of `shape`'s size.
pub fn random_image(shape: &Shape, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    (0..shape.pixels()).map(|_| rng.next_u64() as u8).collect()
}

/// A valid int8 blob of `shape` with random tensors anywhere inside the
/// ranges the loader accepts: for property tests of the fixed-point path
/// (no overflow, every backend bit-exact) beyond what real models exercise.
pub fn random_int8_blob(shape: Shape, seed: u64) -> Vec<u8> {
    use crate::int8::{ln_eps_limit, Params, BYTE_PAIR_WEIGHT_LIMIT, PATCH_WEIGHT_LIMIT, WIDE_WEIGHT_LIMIT};
    let mut rng = SplitMix64(seed);
    let mut int = |lo: i64, hi: i64| lo + (rng.next_u64() % (hi - lo + 1) as u64) as i64;
    let (d, k, h, c, patches) =
        (shape.dim as usize, shape.patch_len(), shape.heads as usize, shape.classes as usize, shape.patches());
    let bias_limit = 1i64 << 26;
    let max_acc = k as i64 * 255 * PATCH_WEIGHT_LIMIT as i64;
    let max_scale = ((i32::MAX as i64 - (1 << 23) - bias_limit) / max_acc).clamp(1, 1024);
    // Even seeds in 7 bits, what the converter writes (AVX2's quad path),
    // odd seeds in the 8 bits the loader accepts (its token-row path); from
    // the seed, not the stream, so an odd seed gives the blob it gave
    // before 7-bit weights existed.
    let limit = if seed.is_multiple_of(2) { BYTE_PAIR_WEIGHT_LIMIT } else { PATCH_WEIGHT_LIMIT } as i64;
    let patch_weight: Vec<u8> = (0..d * k).map(|_| int(-limit, limit) as i8 as u8).collect();
    let scale: Vec<i32> = (0..d).map(|_| int(1, max_scale) as i32).collect();
    let bias: Vec<i32> = (0..patches * d).map(|_| int(-bias_limit, bias_limit) as i32).collect();
    let params = Params {
        z_shift: int(8, 20) as u32,
        // Any magnitude, up to the loader's limit.
        ln_eps: {
            let bits = int(0, 20);
            int(0, 1 << bits).min(ln_eps_limit(shape.dim) as i64) as i32
        },
        score_shift: int(0, 12) as u32,
        head_shift: int(0, 12) as u32,
    };
    // The CLS token is a normalised vector: zero mean, L2 norm 2^14.
    let raw: Vec<f64> = (0..d).map(|_| int(-1000, 1000) as f64).collect();
    let mean = raw.iter().sum::<f64>() / d as f64;
    let std = (raw.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64).sqrt().max(1e-9);
    let unit = 2f64.powi(crate::int8::NORM_BITS as i32) / (d as f64).sqrt();
    let cls_norm: Vec<i16> = raw.iter().map(|v| ((v - mean) / std * unit).round() as i16).collect();
    let wide = WIDE_WEIGHT_LIMIT as i64;
    let score_weight: Vec<i16> = (0..h * d).map(|_| int(-wide, wide) as i16).collect();
    let cls_score: Vec<i32> = (0..h).map(|_| int(-(1 << 20), 1 << 20) as i32).collect();
    let head_weight: Vec<i16> = (0..h * c * d).map(|_| int(-wide, wide) as i16).collect();
    let head_bias: Vec<i32> = (0..c).map(|_| int(-(1 << 24), 1 << 24) as i32).collect();

    let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let le16 = |v: &[i16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut w = BlobWriter::new(Encoding::Int8, ModelConfig::mnist(shape));
    let mut add = |id: TensorId, elem: ElemType, bytes: Vec<u8>| {
        w.tensor(id, elem, id.dims(&shape).as_slice(), bytes);
    };
    add(TensorId::Int8PatchWeight, ElemType::I8, patch_weight);
    add(TensorId::Int8PatchScale, ElemType::I32, le32(&scale));
    add(TensorId::Int8TokenBias, ElemType::I32, le32(&bias));
    add(TensorId::Int8Params, ElemType::I32, le32(&params.to_raw()));
    add(TensorId::Int8ClsNorm, ElemType::I16, le16(&cls_norm));
    add(TensorId::Int8ScoreWeight, ElemType::I16, le16(&score_weight));
    add(TensorId::Int8ClsScore, ElemType::I32, le32(&cls_score));
    add(TensorId::Int8HeadWeight, ElemType::I16, le16(&head_weight));
    add(TensorId::Int8HeadBias, ElemType::I32, le32(&head_bias));
    w.finish()
}

/// A valid f16 blob of `shape` with random folded tensors, for comparing
/// backends on shapes no trained model has.
pub fn random_f16_blob(shape: Shape, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let (d, k, h, c, patches) =
        (shape.dim as usize, shape.patch_len(), shape.heads as usize, shape.classes as usize, shape.patches());
    let mut values = |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| scale * rng.next_f32()).collect() };
    let half = |v: Vec<f32>| v.into_iter().flat_map(|x| half::f16::from_f32(x).to_le_bytes()).collect::<Vec<u8>>();
    let single = |v: Vec<f32>| v.into_iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // Folded patch weights act on raw pixels (0..255): scale them down.
    let patch_weight = half(values(d * k, 1.0 / (255.0 * (k as f32).sqrt())));
    let token_bias = single(values(patches * d, 1.0));
    let cls_norm = single(values(d, 1.0));
    let score_weight = half(values(h * d, 1.0));
    let cls_score = single(values(h, 1.0));
    let head_weight = half(values(h * c * d, 1.0));
    let head_bias = single(values(c, 1.0));
    let mut w = BlobWriter::new(Encoding::F16, ModelConfig::mnist(shape));
    let mut add = |id: TensorId, elem: ElemType, bytes: Vec<u8>| {
        w.tensor(id, elem, id.dims(&shape).as_slice(), bytes);
    };
    add(TensorId::F16PatchWeight, ElemType::F16, patch_weight);
    add(TensorId::F16TokenBias, ElemType::F32, token_bias);
    add(TensorId::F16ClsNorm, ElemType::F32, cls_norm);
    add(TensorId::F16ScoreWeight, ElemType::F16, score_weight);
    add(TensorId::F16ClsScore, ElemType::F32, cls_score);
    add(TensorId::F16HeadWeight, ElemType::F16, head_weight);
    add(TensorId::F16HeadBias, ElemType::F32, head_bias);
    w.finish()
}
