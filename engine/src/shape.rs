//! The Micro-ViT shape family: what a blob may describe, and what follows
//! from it.

use core::fmt;

/// Largest values of the supported shape family. Blobs outside it are
/// rejected at load, so every buffer the engine sizes from a shape is
/// bounded.
pub mod limits {
    /// What preprocessing can make (`microvit_preprocess::MAX_IMAGE_SIDE`).
    pub const MAX_IMAGE_SIDE: u32 = microvit_preprocess::MAX_IMAGE_SIDE;
    pub const MIN_PATCH_SIDE: u32 = 2;
    pub const MAX_TOKENS: u32 = 257;
    pub const MAX_DIM: u32 = 128;
    pub const MAX_CLASSES: u32 = 64;
}

/// The shape of one Micro-ViT: square images of `image_side` pixels cut into
/// square patches of `patch_side`, embedded in `dim` dimensions, with `heads`
/// attention heads and `classes` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub image_side: u32,
    pub patch_side: u32,
    pub dim: u32,
    pub heads: u32,
    pub classes: u32,
}

/// Why a [`Shape`] is outside the supported family.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(pub alloc::string::String);

/// Why a [`Shape`] is outside the supported family: without `alloc`, one
/// fixed message (the limits are in the docs).
#[cfg(not(feature = "alloc"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(pub &'static str);

impl ShapeError {
    #[cold]
    fn new(_why: fmt::Arguments<'_>) -> ShapeError {
        // Written into a String here rather than by `alloc::fmt::format`:
        // that one is precompiled with unwinding, and the C library (built
        // with panic = "abort" and no unwinder) must not link it.
        #[cfg(feature = "alloc")]
        return ShapeError({
            let mut message = alloc::string::String::new();
            let _ = fmt::Write::write_fmt(&mut message, _why);
            message
        });
        #[cfg(not(feature = "alloc"))]
        ShapeError("the model shape is outside the supported family (docs/FORMAT.md)")
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ShapeError {}

impl Shape {
    /// The seed model: 28×28 MNIST digits, 7×7 patches, 32 dims, 2 heads.
    pub const SEED: Shape = Shape { image_side: 28, patch_side: 7, dim: 32, heads: 2, classes: 10 };

    /// Checks the shape is in the supported family.
    pub fn validate(&self) -> Result<(), ShapeError> {
        use limits::*;
        let fail = |why: fmt::Arguments<'_>| Err(ShapeError::new(why));
        let Shape { image_side: s, patch_side: p, dim: d, heads: h, classes: c } = *self;
        if s == 0 || s > MAX_IMAGE_SIDE {
            return fail(format_args!("image side {s} is outside 1..={MAX_IMAGE_SIDE}"));
        }
        if p < MIN_PATCH_SIDE || p > s {
            return fail(format_args!("patch side {p} is outside {MIN_PATCH_SIDE}..={s} (the image side)"));
        }
        if s % p != 0 {
            return fail(format_args!("patch side {p} does not divide image side {s}"));
        }
        if self.tokens() > MAX_TOKENS {
            return fail(format_args!("{} tokens exceed the limit of {MAX_TOKENS}", self.tokens()));
        }
        if d == 0 || d > MAX_DIM {
            return fail(format_args!("dim {d} is outside 1..={MAX_DIM}"));
        }
        if h == 0 || d % h != 0 {
            return fail(format_args!("{h} heads do not divide dim {d}"));
        }
        if c == 0 || c > MAX_CLASSES {
            return fail(format_args!("{c} classes is outside 1..={MAX_CLASSES}"));
        }
        Ok(())
    }

    /// Patches per image side.
    pub fn grid(&self) -> usize {
        (self.image_side / self.patch_side) as usize
    }

    /// Image patches (tokens without the CLS token).
    pub fn patches(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Tokens: the patches plus the CLS token at index 0.
    pub fn tokens(&self) -> u32 {
        let g = self.image_side / self.patch_side.max(1);
        g * g + 1
    }

    /// Pixels per patch.
    pub fn patch_len(&self) -> usize {
        (self.patch_side * self.patch_side) as usize
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        (self.image_side * self.image_side) as usize
    }

    pub fn head_dim(&self) -> usize {
        (self.dim / self.heads) as usize
    }

    /// Parameters of the PyTorch model (what `sum(p.numel())` reports).
    pub fn parameter_count(&self) -> usize {
        let (d, t, c, k) = (self.dim as usize, self.tokens() as usize, self.classes as usize, self.patch_len());
        let patch_embed = d * k + d;
        let cls_and_pos = d + t * d;
        let norm = 2 * d;
        let attention = 3 * d * d + 3 * d + d * d + d;
        let head = c * d + c;
        patch_embed + cls_and_pos + norm + attention + head
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{s}x{s} image, {p}x{p} patches ({t} tokens), dim {d}, {h} heads, {c} classes",
            s = self.image_side,
            p = self.patch_side,
            t = self.tokens(),
            d = self.dim,
            h = self.heads,
            c = self.classes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shape_counts() {
        let s = Shape::SEED;
        s.validate().unwrap();
        assert_eq!(s.tokens(), 17);
        assert_eq!(s.patches(), 16);
        assert_eq!(s.patch_len(), 49);
        assert_eq!(s.head_dim(), 16);
        assert_eq!(s.parameter_count(), 6794);
        assert_eq!(Shape { dim: 24, ..s }.parameter_count(), 4330);
    }

    #[test]
    fn rejects_shapes_outside_the_family() {
        let s = Shape::SEED;
        let cases = [
            (Shape { image_side: 0, ..s }, "image side 0"),
            (Shape { image_side: 65, patch_side: 5, ..s }, "image side 65"),
            (Shape { patch_side: 1, ..s }, "patch side 1"),
            (Shape { patch_side: 29, ..s }, "patch side 29"),
            (Shape { patch_side: 5, ..s }, "does not divide image side"),
            (Shape { image_side: 64, patch_side: 2, ..s }, "1025 tokens"),
            (Shape { dim: 0, ..s }, "dim 0"),
            (Shape { dim: 129, heads: 1, ..s }, "dim 129"),
            (Shape { heads: 3, ..s }, "3 heads do not divide dim 32"),
            (Shape { heads: 0, ..s }, "0 heads"),
            (Shape { classes: 0, ..s }, "0 classes"),
            (Shape { classes: 65, ..s }, "65 classes"),
        ];
        for (shape, needle) in cases {
            let err = shape.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{shape:?}: {err:?} lacks {needle:?}");
        }
        // The extremes of the family are accepted.
        Shape { image_side: 64, patch_side: 4, dim: 128, heads: 128, classes: 64 }.validate().unwrap();
        Shape { image_side: 2, patch_side: 2, dim: 1, heads: 1, classes: 1 }.validate().unwrap();
    }
}
