//! SIMD kernels, one module per instruction set with the same functions:
//!
//! - `prepare_int8(w, shape) -> Prepared` / `prepare_f16(w, shape) -> Prepared`:
//!   weight layouts for the kernel, built once per model (at load or when
//!   the backend changes), never per inference;
//! - `int8_forward` / `f16_forward`: one digit, writing the same workspace
//!   fields as the scalar passes in `int8.rs` and `f16.rs`.
//!
//! int8 kernels must give exactly the scalar integers; f16 kernels may
//! differ by float rounding (FMA), within the tolerance the tests state.
//! Kernel entry points carry `#[target_feature]` and are `unsafe`; the only
//! caller is [`Kernels`], which exists only for an available backend.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

use crate::backend::Backend;
use crate::shape::Shape;
use crate::workspace::Workspace;
use crate::{f16, int8};

/// Weights laid out for one backend's kernels.
#[derive(Clone, Debug, Default)]
pub(crate) enum Prepared {
    /// The scalar passes read the blob as it is.
    #[default]
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(Box<avx2::Prepared>),
    #[cfg(target_arch = "aarch64")]
    Neon(neon::Prepared),
}

/// The kernels of an available backend, with their prepared weights.
#[derive(Clone, Debug)]
pub(crate) struct Kernels {
    backend: Backend,
    prepared: Prepared,
}

/// The weights of a folded model, for preparing.
pub(crate) enum Folded<'a, 'm> {
    Int8(&'a int8::Weights<'m>),
    F16(&'a f16::Weights<'m>),
}

impl Kernels {
    pub(crate) fn scalar() -> Kernels {
        Kernels { backend: Backend::Scalar, prepared: Prepared::Scalar }
    }

    /// Kernels of `backend` for this model; `None` if the CPU lacks it.
    pub(crate) fn new(backend: Backend, weights: Option<Folded<'_, '_>>, shape: &Shape) -> Option<Kernels> {
        if !backend.is_available() {
            return None;
        }
        let prepared = match (backend, weights) {
            (Backend::Scalar, _) | (_, None) => Prepared::Scalar,
            #[cfg(target_arch = "x86_64")]
            (Backend::Avx2, Some(w)) => Prepared::Avx2(Box::new(avx2::prepare(w, shape))),
            #[cfg(target_arch = "aarch64")]
            (Backend::Neon, Some(w)) => Prepared::Neon(neon::prepare(w, shape)),
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        Some(Kernels { backend, prepared })
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn int8_forward(&self, w: &int8::Weights<'_>, shape: &Shape, image: &[u8], ws: &mut Workspace) {
        match &self.prepared {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Kernels with Avx2 weights exist only if avx2, fma and
            // f16c were detected (Kernels::new checks is_available).
            Prepared::Avx2(p) => unsafe { avx2::int8_forward(w, p, shape, image, ws) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: Advanced SIMD is baseline on aarch64.
            Prepared::Neon(p) => unsafe { neon::int8_forward(w, p, shape, image, ws) },
            Prepared::Scalar => int8::forward(w, shape, image, ws),
        }
    }

    pub(crate) fn f16_forward(&self, w: &f16::Weights<'_>, shape: &Shape, image: &[u8], ws: &mut Workspace) {
        match &self.prepared {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in int8_forward.
            Prepared::Avx2(p) => unsafe { avx2::f16_forward(w, p, shape, image, ws) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: Advanced SIMD is baseline on aarch64.
            Prepared::Neon(p) => unsafe { neon::f16_forward(w, p, shape, image, ws) },
            Prepared::Scalar => f16::forward(w, shape, image, ws),
        }
    }
}
