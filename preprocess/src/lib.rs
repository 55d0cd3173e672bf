//! MNIST-style preprocessing: any 8-bit photo or drawing of a digit into the
//! model's `side × side` input, white digit on black, 20/28 of the side
//! tall, centred by its centre of mass.
//!
//! One definition, written out in docs/PREPROCESSING.md so that anyone can
//! re-implement it; this code is that definition. Like the int8 path it is
//! integer-only (bit-identical on every CPU), allocation-free (all memory is
//! a caller-owned [`Scratch`] of fixed size) and needs only `core`.
//!
//! ```
//! use microvit_preprocess::{preprocess, PixelFormat, Polarity, Scratch, SourceImage};
//! // A 60×40 white canvas with a dark vertical stroke.
//! let mut pixels = vec![255u8; 60 * 40];
//! for y in 8..32 {
//!     for x in 28..32 {
//!         pixels[y * 60 + x] = 20;
//!     }
//! }
//! let image = SourceImage::packed(&pixels, PixelFormat::Gray8, 60, 40).unwrap();
//! let mut scratch = Scratch::boxed();
//! let mut input = [0u8; 28 * 28];
//! let digit = preprocess(&image, Polarity::Auto, &mut scratch, 28, &mut input).unwrap();
//! assert_eq!(digit.polarity, Polarity::DarkOnLight);
//! assert_eq!((digit.x, digit.y, digit.width, digit.height), (28, 8, 4, 24));
//! assert_eq!(input[14 * 28 + 14], 255); // the stroke, now white, through the centre
//! ```
//!
//! Its own crate so that the installed C library can build it for size
//! (docs/C_API.md, "Sizes"); `microvit_engine::preprocess` re-exports it.

#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod components;
#[cfg(test)]
mod errors_documented;
mod full;
mod grid;
mod resample;
mod source;
mod stats;

use core::fmt;

use self::components::Components;
use self::full::FullResolution;
use self::grid::{Geometry, Ink};
use self::resample::{AreaAverage, MAX_BOX};
use self::source::Reader;
use self::stats::{Histogram, Levels};

pub use self::source::{PixelFormat, SourceError, SourceImage};
pub use self::stats::MIN_CONTRAST;

/// Largest accepted image width and height, in pixels (a 48-megapixel
/// phone photo is 8000 × 6000).
pub const MAX_SIDE: usize = 8192;

/// Largest output side: the largest image side of a model
/// (`microvit_engine::shape::limits::MAX_IMAGE_SIDE` is this).
pub const MAX_IMAGE_SIDE: u32 = 64;

/// The analysis grid's longest side: images are judged at most this fine.
pub const GRID: usize = 128;

/// A digit narrower and shorter than this many analysis-grid pixels is too
/// small to read.
pub const MIN_EXTENT: usize = 4;

/// Specks: when more than this fraction (numerator, denominator) of the
/// ink pixels around the digit touch no other ink pixel, the marks are
/// noise (salt and pepper, grain), not strokes.
pub const MAX_SPECKS: (usize, usize) = (1, 3);

/// Most marks of about the digit's weight (at least 1/16 of its heaviest
/// part) that may lie apart from it: a few other digits or doodles are
/// fine, a texture of them is not.
pub const MAX_RIVALS: usize = 8;

/// Which way the ink goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// Decide from the image: the ink is what departs from the local paper.
    #[default]
    Auto,
    /// Dark ink on light paper (a pen on paper, a drawing pad): inverted.
    DarkOnLight,
    /// Light ink on a dark ground (MNIST itself, chalk on a blackboard).
    LightOnDark,
}

impl Polarity {
    pub const fn name(self) -> &'static str {
        match self {
            Polarity::Auto => "auto",
            Polarity::DarkOnLight => "dark-on-light",
            Polarity::LightOnDark => "light-on-dark",
        }
    }
}

impl fmt::Display for Polarity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What preprocessing found: where the digit is and how it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digit {
    /// The polarity used: [`Polarity::DarkOnLight`] or
    /// [`Polarity::LightOnDark`] (what `Auto` decided).
    pub polarity: Polarity,
    /// The digit's box in source pixels: left column, top row, width, height.
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
    /// How far the ink rises above the paper's noise, on a 0–255 scale
    /// (at least [`MIN_CONTRAST`]).
    pub contrast: u8,
}

/// Why an image holds no digit to classify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoDigit {
    /// Nothing stands out from the paper by [`MIN_CONTRAST`]: blank, fully
    /// transparent, or too faint.
    Blank,
    /// Ink covers more than half of the image: a texture, a photo of
    /// something else, or the polarity forced the wrong way.
    MostlyInk,
    /// The ink is scattered: the largest mark holds at most a quarter of it,
    /// more than [`MAX_RIVALS`] other marks rival it, or it is made of
    /// specks ([`MAX_SPECKS`]): noise, a texture, many small objects.
    Scattered,
    /// The only mark is smaller than [`MIN_EXTENT`] analysis pixels.
    TooSmall,
}

impl NoDigit {
    pub const fn describe(self) -> &'static str {
        match self {
            NoDigit::Blank => "the image is blank: nothing stands out from the background",
            NoDigit::MostlyInk => "ink covers most of the image: no digit on a background",
            NoDigit::Scattered => "the marks are scattered: no single digit-like shape",
            NoDigit::TooSmall => "the only mark is too small to be a digit",
        }
    }
}

impl fmt::Display for NoDigit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why [`preprocess`] produced no input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreprocessError {
    /// The image description is unusable (sizes, stride, buffer length).
    Source(SourceError),
    /// The image was read but holds no digit.
    NoDigit(NoDigit),
    /// `side` is outside 1..=64 or `out` is not `side × side` bytes.
    OutputSize { side: usize, len: usize },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreprocessError::Source(e) => e.fmt(f),
            PreprocessError::NoDigit(why) => write!(f, "no digit found: {why}"),
            PreprocessError::OutputSize { side, len } => write!(
                f,
                "output of {len} bytes for side {side}: the side must be 1..={MAX_IMAGE_SIDE} and the output side × side"
            ),
        }
    }
}

impl From<SourceError> for PreprocessError {
    fn from(e: SourceError) -> PreprocessError {
        PreprocessError::Source(e)
    }
}

impl From<NoDigit> for PreprocessError {
    fn from(why: NoDigit) -> PreprocessError {
        PreprocessError::NoDigit(why)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SourceError {}
#[cfg(feature = "std")]
impl std::error::Error for PreprocessError {}

/// All the memory preprocessing uses (about 100 KB), so that it never
/// allocates: make one per thread and reuse it. [`Scratch::new`] is `const`,
/// so a firmware can place one in a `static`.
#[derive(Clone, bytemuck::Zeroable)]
pub struct Scratch {
    /// Three source rows as luma, then as ink (one suffices but for the
    /// speck test, which looks at a pixel's neighbours above and below).
    rows: [[u8; MAX_SIDE]; 3],
    /// The analysis grid: block means, then ink above the background.
    grid: [u8; GRID * GRID],
    /// The paper on the ink scale, per grid pixel.
    background: [u8; GRID * GRID],
    /// One row of block sums while the grid is built.
    sums: [u32; GRID],
    components: Components,
    /// The averaged box and one horizontally averaged row.
    box_sums: [u64; MAX_BOX * MAX_BOX],
    box_row: [u64; MAX_BOX],
}

impl Scratch {
    pub const fn new() -> Scratch {
        Scratch {
            rows: [[0; MAX_SIDE]; 3],
            grid: [0; GRID * GRID],
            background: [0; GRID * GRID],
            sums: [0; GRID],
            components: Components::new(),
            box_sums: [0; MAX_BOX * MAX_BOX],
            box_row: [0; MAX_BOX],
        }
    }

    /// A scratch on the heap, zeroed in place (it is too large for some
    /// threads' stacks).
    #[cfg(feature = "alloc")]
    pub fn boxed() -> alloc::boxed::Box<Scratch> {
        bytemuck::zeroed_box()
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scratch { .. }")
    }
}

/// Turns `image` into the model's input: `side × side` bytes written to
/// `out`, the digit white on black, as MNIST was made (docs/PREPROCESSING.md).
/// Integer-only and allocation-free; the same bytes on every CPU.
// Not inlined: a caller built for speed (the engine) would compile it with
// its own settings, undoing this crate's opt-level "s" in the C library.
#[inline(never)]
pub fn preprocess(
    image: &SourceImage<'_>,
    polarity: Polarity,
    scratch: &mut Scratch,
    side: usize,
    out: &mut [u8],
) -> Result<Digit, PreprocessError> {
    if side == 0 || side > MAX_IMAGE_SIDE as usize || out.len() != side * side {
        return Err(PreprocessError::OutputSize { side, len: out.len() });
    }
    // Steps 1–2 (the description was checked when `image` was made): luma,
    // transparency composited.
    let reader = Reader::new(*image).ok_or(NoDigit::Blank)?;
    // Step 3: the analysis grid.
    let geometry = Geometry::of(reader.width(), reader.height());
    let cells = geometry.width * geometry.height;
    grid::reduce(&reader, geometry, &mut scratch.grid, &mut scratch.rows[0], &mut scratch.sums);
    // Steps 4–5: polarity and background; the grid becomes ink.
    let ink = grid::flatten(&mut scratch.grid, &mut scratch.background, geometry, polarity);
    // Step 6: the grid's levels.
    let mut h = Histogram::new();
    h.add_all(&scratch.grid[..cells]);
    let levels = match Levels::of(&h) {
        Some(levels) => levels,
        // Most of the grid stands out from its background: the "paper" is ink.
        None if h.percentile(50) >= MIN_CONTRAST => return Err(NoDigit::MostlyInk.into()),
        None => return Err(NoDigit::Blank.into()),
    };
    let ink_pixels = scratch.grid[..cells].iter().filter(|&&n| levels.is_ink(n)).count();
    if 2 * ink_pixels > cells {
        return Err(NoDigit::MostlyInk.into());
    }
    // Step 7: the digit among the marks.
    let components = &mut scratch.components;
    components.label(&scratch.grid, geometry.width, geometry.height, |n| levels.is_ink(n));
    let found = components.digit().ok_or(NoDigit::Blank)?;
    if 4 * found.mass as u64 <= components.total_mass() || found.rivals > MAX_RIVALS {
        return Err(NoDigit::Scattered.into());
    }
    if found.bounds.longer_side() < MIN_EXTENT {
        return Err(NoDigit::TooSmall.into());
    }
    // Step 8: the ink's levels at full resolution, around the digit.
    let full = FullResolution { reader: &reader, geometry, ink, background: &scratch.background };
    let stats_window = full.window(&found.bounds, |extent| (extent / 2).max(geometry.block));
    let levels = full.levels(stats_window, &mut scratch.rows[0]).ok_or(NoDigit::Blank)?;
    // Step 9: the digit's exact box, and specks.
    let search = full.window(&found.bounds, |_| geometry.block);
    let marks = full.marks(search, levels, &mut scratch.rows);
    let exact = marks.bounds.ok_or(NoDigit::Blank)?;
    if marks.isolated * MAX_SPECKS.1 > marks.pixels * MAX_SPECKS.0 {
        return Err(NoDigit::Scattered.into());
    }
    // Steps 10–12: scale into the box, brighten, centre.
    let (x0, y0, w, h) = (exact.x0 as usize, exact.y0 as usize, exact.width(), exact.height());
    let mut average = AreaAverage::new(w, h, side, &mut scratch.box_sums, &mut scratch.box_row);
    let stretch: [u8; 256] = core::array::from_fn(|n| levels.stretch(n as u8));
    for y in y0..y0 + h {
        let row = &mut scratch.rows[0][..w];
        full.ink_row(y, x0, x0 + w, row);
        for v in row.iter_mut() {
            *v = stretch[*v as usize];
        }
        average.add_row(y - y0, row);
    }
    if !average.place(side, out) {
        return Err(NoDigit::Blank.into());
    }
    let polarity = match ink {
        Ink::Dark => Polarity::DarkOnLight,
        Ink::Light => Polarity::LightOnDark,
    };
    Ok(Digit { polarity, x: x0, y: y0, width: w, height: h, contrast: levels.ink - levels.floor })
}
