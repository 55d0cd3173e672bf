//! Synthetic models with seeded pseudo-random weights, for tests and
//! benchmarks of shapes no trained model has. Not for inference.

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
