//! aarch64: Advanced SIMD (NEON), part of the baseline of every aarch64
//! CPU, so its token is always there; the Armv8.2 dot product (`sdot`),
//! detected at run time.

/// Proof that Advanced SIMD is available: always, on aarch64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    pub(crate) fn detect() -> Option<Neon> {
        Some(Neon(()))
    }
}

/// Proof that the CPU has the Armv8.2 dot product instructions (`sdot`),
/// with Advanced SIMD.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dotprod(());

impl Dotprod {
    pub(crate) fn detect() -> Option<Dotprod> {
        // Run-time detection needs std; without it the kernels are not
        // built (int8/mod.rs) and no extension is claimed.
        #[cfg(feature = "std")]
        let yes = std::arch::is_aarch64_feature_detected!("dotprod");
        #[cfg(not(feature = "std"))]
        let yes = false;
        yes.then_some(Dotprod(()))
    }
}
