//! Which kernels run: the portable scalar code or a SIMD backend. A model
//! starts on the fastest kernel this CPU has for its encoding
//! ([`Model::use_fastest_backend`](crate::Model::use_fastest_backend)); the
//! caller may force one ([`Model::set_backend`](crate::Model::set_backend)).
//! The engine reads no environment: the CLI and the C library apply
//! `MICROVIT_BACKEND` themselves.
//!
//! A backend accelerates the encodings it has kernels for (each encoding's
//! module lists them); any other encoding runs its scalar pass. The f32
//! encoding is the reference pass and always runs scalar.

#[cfg(feature = "alloc")]
use alloc::{string::String, string::ToString, vec::Vec};
use core::fmt;
#[cfg(feature = "std")]
use std::sync::OnceLock;

/// A set of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable Rust, the definition the others must match.
    Scalar,
    /// x86-64 AVX2 (with FMA, F16C and BMI1, which every AVX2 CPU has).
    Avx2,
    /// x86-64 AVX-512 with VNNI (and BW, CD, DQ, VL, VBMI): int8 only.
    Avx512Vnni,
    /// x86-64 AVX-VNNI (256-bit, with AVX2): int8 only.
    AvxVnni,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the Armv8.2 dot product (`udot`): int8
    /// only.
    Dotprod,
}

/// Why a backend cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// The name is not a backend.
    #[cfg(feature = "alloc")]
    Unknown(String),
    /// This CPU (or this build's architecture) lacks the backend's features.
    Unavailable(Backend),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "alloc")]
            BackendError::Unknown(name) => {
                write!(
                    f,
                    "unknown backend \"{name}\"; expected one of scalar, avx2, avxvnni, avx512vnni, neon, dotprod, auto"
                )
            }
            BackendError::Unavailable(b) => write!(f, "backend {b} is not available on this CPU"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BackendError {}

impl Backend {
    pub const ALL: [Backend; 6] =
        [Backend::Scalar, Backend::Avx2, Backend::AvxVnni, Backend::Avx512Vnni, Backend::Neon, Backend::Dotprod];

    /// Every backend, fastest first: the order in which a model looks for a
    /// kernel for its encoding.
    pub const FASTEST_FIRST: [Backend; 6] =
        [Backend::Avx512Vnni, Backend::AvxVnni, Backend::Avx2, Backend::Dotprod, Backend::Neon, Backend::Scalar];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512Vnni => "avx512vnni",
            Backend::AvxVnni => "avxvnni",
            Backend::Neon => "neon",
            Backend::Dotprod => "dotprod",
        }
    }

    /// Parses a backend name; `auto` (or an empty string) means the best
    /// available, as [`Backend::detect`].
    #[cfg(feature = "alloc")]
    pub fn parse(name: &str) -> Result<Backend, BackendError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Backend::detect()),
            "scalar" => Ok(Backend::Scalar),
            "avx2" => Ok(Backend::Avx2),
            "avx512vnni" => Ok(Backend::Avx512Vnni),
            "avxvnni" => Ok(Backend::AvxVnni),
            "neon" => Ok(Backend::Neon),
            "dotprod" => Ok(Backend::Dotprod),
            _ => Err(BackendError::Unknown(name.to_string())),
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => crate::simd::x86::Avx2::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Vnni => crate::simd::x86::Avx512Vnni::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni => crate::simd::x86::AvxVnni::detect().is_some(),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => crate::simd::aarch64::Neon::detect().is_some(),
            #[cfg(target_arch = "aarch64")]
            Backend::Dotprod => crate::simd::aarch64::Dotprod::detect().is_some(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every backend this CPU can run, scalar first.
    #[cfg(feature = "alloc")]
    pub fn available() -> Vec<Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_available()).collect()
    }

    /// The fastest backend this CPU has, detected once.
    pub fn detect() -> Backend {
        let best = || Backend::FASTEST_FIRST.into_iter().find(|b| b.is_available()).unwrap_or(Backend::Scalar);
        #[cfg(feature = "std")]
        return {
            static BEST: OnceLock<Backend> = OnceLock::new();
            *BEST.get_or_init(best)
        };
        // Without std there is no run-time detection to cache.
        #[cfg(not(feature = "std"))]
        best()
    }

    /// `self` if available, else [`BackendError::Unavailable`].
    pub fn checked(self) -> Result<Backend, BackendError> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(BackendError::Unavailable(self))
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scalar_is_always_there() {
        for b in Backend::ALL {
            assert_eq!(Backend::parse(b.name()), Ok(b));
            assert_eq!(Backend::parse(&b.name().to_uppercase()), Ok(b));
        }
        assert_eq!(Backend::parse("auto"), Ok(Backend::detect()));
        assert_eq!(Backend::parse("sse9"), Err(BackendError::Unknown("sse9".into())));
        assert!(Backend::available().contains(&Backend::Scalar));
        assert!(Backend::detect().is_available());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Backend::Neon.checked(), Err(BackendError::Unavailable(Backend::Neon)));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Backend::Avx2.checked(), Err(BackendError::Unavailable(Backend::Avx2)));
    }
}
