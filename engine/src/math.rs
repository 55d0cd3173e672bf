//! The float functions the f32 and f16 passes use: std's where there is a
//! std, the `libm` crate's on targets without one (microcontrollers).

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

#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    libm::expf(x)
}

#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}
