//! x86-64: the capability tokens (AVX2 with FMA and F16C, which every AVX2
//! CPU people use also has; AVX-512 with VNNI) and the helpers the kernels
//! share.

use core::arch::x86_64::{_mm256_cvtepu8_epi16, _mm256_storeu_si256, _mm_loadu_si128};

use crate::shape::Shape;

use super::round_up;

/// Run-time detection of every listed feature; it needs std, and without
/// it no extension is used.
#[cfg(feature = "std")]
macro_rules! detected {
    ($($feature:tt),+) => { $(std::arch::is_x86_feature_detected!($feature))&&+ };
}
#[cfg(not(feature = "std"))]
macro_rules! detected {
    ($($feature:tt),+) => {
        false
    };
}

/// Proof that this CPU has AVX2, FMA and F16C: only [`Avx2::detect`] makes
/// one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn detect() -> Option<Avx2> {
        let yes = detected!("avx2", "fma", "f16c");
        yes.then_some(Avx2(()))
    }
}

/// Proof that this CPU has AVX-512 F, BW, CD, DQ, VL, VNNI and VBMI (Ice
/// Lake and later Intel server and client parts, AMD Zen 4 and later):
/// only [`Avx512Vnni::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Vnni(());

impl Avx512Vnni {
    pub(crate) fn detect() -> Option<Avx512Vnni> {
        let yes = detected!("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512vnni", "avx512vbmi");
        yes.then_some(Avx512Vnni(()))
    }
}

/// Proof that this CPU has AVX-VNNI (the VEX `vpdpbusd` of Intel client
/// CPUs since Alder Lake, and AMD Zen 5) with AVX2 and FMA: only
/// [`AvxVnni::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AvxVnni(());

impl AvxVnni {
    pub(crate) fn detect() -> Option<AvxVnni> {
        let yes = detected!("avx2", "fma", "avxvnni");
        yes.then_some(AvxVnni(()))
    }
}

/// Channels per pass of the AVX2 patch embeddings: four registers of eight
/// i32 or f32.
pub(crate) const GROUP: usize = 32;

/// Tokens padded to a multiple of 8 (one register of eight lanes), channels
/// to a multiple of [`GROUP`], as the AVX2 kernels lay them out.
pub(crate) fn patches_pad(shape: &Shape) -> usize {
    round_up(shape.patches(), 8)
}

pub(crate) fn dim_pad(shape: &Shape) -> usize {
    round_up(shape.dim as usize, GROUP)
}

/// The set bits of a mask, lowest first.
pub(crate) struct Bits(pub(crate) u64);

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
pub(crate) fn widen_image(image: &[u8], out: &mut [i16]) {
    assert!(out.len() >= image.len() + 16);
    let chunks = image.len() / 16;
    for i in 0..chunks {
        // SAFETY: i·16 + 16 ≤ image.len() ≤ out.len(); unaligned loads and stores.
        unsafe {
            let bytes = _mm_loadu_si128(image.as_ptr().add(i * 16).cast());
            let wide = _mm256_cvtepu8_epi16(bytes);
            _mm256_storeu_si256(out.as_mut_ptr().add(i * 16).cast(), wide);
        }
    }
    for i in chunks * 16..image.len() {
        out[i] = image[i] as i16;
    }
    out[image.len()..].fill(0);
}
