//! x86-64 AVX2 kernels (FMA and F16C for f16): the int8 pass in [`int8`],
//! the f16 pass in [`f16`]. Weights are re-laid out once per model by
//! [`prepare`]; the kernels then run without allocating.

mod f16;
mod int8;

use super::Folded;
use crate::shape::Shape;
use crate::workspace::Padded;

pub(crate) use f16::f16_forward;
pub(crate) use int8::int8_forward;

/// Channels per patch-embedding pass: four registers of eight i32.
const GROUP: usize = 32;

/// `n` rounded up to a multiple of `m`.
fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// Weights laid out for these kernels.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prepared {
    /// D rounded up to a multiple of [`GROUP`]. Padding channels have zero
    /// weights everywhere, so they never reach a logit.
    dim_pad: usize,
    int8: int8::Layout,
    f16: f16::Layout,
}

pub(crate) fn prepare(weights: Folded<'_, '_>, shape: &Shape) -> Prepared {
    let dim_pad = Padded::dim_pad(shape);
    match weights {
        Folded::Int8(w) => Prepared { dim_pad, int8: int8::Layout::new(w, shape, dim_pad), ..Prepared::default() },
        Folded::F16(w) => Prepared { dim_pad, f16: f16::Layout::new(w, shape, dim_pad), ..Prepared::default() },
    }
}

/// The set bits of a mask, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

/// Zero-extends the image to i16, with zeros past the end, so a kernel can
/// read a whole patch row (up to 16 values) from anywhere in the image.
#[inline(never)]
#[target_feature(enable = "avx2")]
fn widen_image(image: &[u8], out: &mut [i16]) {
    assert!(out.len() >= image.len() + 16);
    let chunks = image.len() / 16;
    for i in 0..chunks {
        // SAFETY: i·16 + 16 ≤ image.len() ≤ out.len(); unaligned loads and stores.
        unsafe {
            let bytes = std::arch::x86_64::_mm_loadu_si128(image.as_ptr().add(i * 16).cast());
            let wide = std::arch::x86_64::_mm256_cvtepu8_epi16(bytes);
            std::arch::x86_64::_mm256_storeu_si256(out.as_mut_ptr().add(i * 16).cast(), wide);
        }
    }
    for i in chunks * 16..image.len() {
        out[i] = image[i] as i16;
    }
    out[image.len()..].fill(0);
}
