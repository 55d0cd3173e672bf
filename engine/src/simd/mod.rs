//! What the SIMD kernels of every encoding share, per architecture: the
//! capability tokens that prove an instruction set is there, and small
//! helpers. The kernels themselves live with their encoding
//! (`int8/avx2.rs`, `f16/neon.rs`, …).
//!
//! A token (e.g. [`x86::Avx2`]) is a zero-sized value that only its
//! `detect()` makes, after run-time detection. A kernel keeps the token it
//! was built with and hands it to its `#[target_feature]` entry point, so
//! holding a kernel is the proof that calling it is sound: the one `unsafe`
//! call per kernel cites it.

/// `assert!` for the SIMD kernels' preconditions: the buffer lengths and
/// shapes their unchecked accesses rely on. The same check, but a failure
/// (a bug in microvit) reports the file and line without the condition's
/// text, which was 5 KB of the installed C library. (Unused on targets
/// without SIMD kernels, such as microcontrollers.)
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(unused_macros))]
macro_rules! require {
    ($cond:expr) => {
        if !$cond {
            $crate::simd::precondition_failed()
        }
    };
}

#[cold]
#[inline(never)]
#[track_caller]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) fn precondition_failed() -> ! {
    panic!("a SIMD kernel's precondition does not hold: a bug in microvit")
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
// Without `hosted` the kernels are not built, only the tokens (never made).
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(feature = "hosted"), allow(dead_code))]
pub(crate) mod x86;

/// `n` rounded up to a multiple of `m`.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}
