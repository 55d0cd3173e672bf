//! The float functions the f32 and f16 passes use: std's where there is a
//! std; without std, the C library's `expf` where there is one (`hosted`:
//! what std's `f32::exp` calls, so the C library computes what the Rust
//! engine does), and the `libm` crate's on targets without one
//! (microcontrollers). `sqrt` is correctly rounded in all of them.

#[cfg(feature = "std")]
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    x.exp()
}

#[cfg(feature = "std")]
#[inline]
pub(crate) fn sqrt(x: f32) -> f32 {
    x.sqrt()
}

#[cfg(all(feature = "hosted", not(feature = "std")))]
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    extern "C" {
        fn expf(x: f32) -> f32;
    }
    // SAFETY: C's expf, declared with its C signature; defined for every
    // argument (NaN, infinities and overflow included).
    unsafe { expf(x) }
}

#[cfg(not(feature = "hosted"))]
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    libm::expf(x)
}

#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}
