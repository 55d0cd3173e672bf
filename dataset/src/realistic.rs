//! The realistic test set: MNIST test digits drawn the way people hand digits
//! to a classifier — a drawing-pad export, a dark-mode canvas, a transparent
//! PNG from a drawing app, a scan of grey paper, a phone photo under uneven
//! light, a coloured pen on coloured paper — plus images with no digit at all.
//! It is what the preprocessing of user images (any size, format, polarity)
//! into the model's 28×28 input is measured on.
//!
//! Every image comes from one of the 10,000 MNIST *test* digits, never a
//! training digit, and is fully determined by the seed and its index: sample
//! `i` draws from its own ChaCha8 stream, so it can be rendered alone and the
//! committed set can be checked file by file against the generator.
//!
//! Bit-for-bit reproducibility across machines is the reason for two choices:
//! random numbers are turned into floats, ranges and normal deviates here with
//! plain arithmetic (not by `rand`'s distributions, whose algorithms may change
//! between versions), and the rendering uses only `+ - × ÷`, `sqrt` and
//! rounding, which IEEE 754 defines exactly — no `sin`, `exp` or `powf`, whose
//! last bit depends on the platform's maths library. The encoders are the
//! `image` crate's, so a new version of it may change the bytes (not the
//! pixels) of some files; the tests in `tests/realistic.rs` will say so.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use image::codecs::bmp::BmpEncoder;
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::codecs::pnm::{PnmEncoder, PnmSubtype, SampleEncoding};
use image::codecs::webp::WebPEncoder;
use image::error::EncodingError;
use image::imageops::{self, FilterType};
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, ImageError, ImageFormat, Luma, Rgb, RgbImage};
use rand_chacha::rand_core::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::idx::{self, IdxError, Images};

/// The first line of `labels.csv`.
pub const CSV_HEADER: &str = "file,label,kind,format,mnist_index,width,height";

/// The committed 300-image set, `data/realistic/` (made with `--seed 1 --count 300`).
pub fn shipped_dir() -> PathBuf {
    crate::repo_root().join("data").join("realistic")
}

// ---------------------------------------------------------------------------
// Kinds and formats
// ---------------------------------------------------------------------------

/// How an image was made; the `kind` column of `labels.csv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Dark ink on white, like a drawing pad's export.
    InkOnWhite,
    /// Light ink on a dark background: dark mode, or chalk on a board.
    WhiteOnBlack,
    /// A drawing app's RGBA canvas: transparent background, strokes in alpha.
    Transparent,
    /// A noisy scan of ink on grey paper (JPEG).
    GreyPaper,
    /// Paper under a strong lighting gradient (JPEG).
    UnevenLight,
    /// A phone photo: tinted paper, gradient, noise, blur, rotation (JPEG).
    Photo,
    /// Strokes 1.5–2.5× as wide as MNIST's.
    Thick,
    /// Strokes 0.4–0.6× as wide as MNIST's.
    Thin,
    /// A coloured pen on coloured paper.
    Colour,
    /// Paper with no digit (label `none`).
    Blank,
    /// A noise texture with no digit (label `none`).
    Noise,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::InkOnWhite,
        Kind::WhiteOnBlack,
        Kind::Transparent,
        Kind::GreyPaper,
        Kind::UnevenLight,
        Kind::Photo,
        Kind::Thick,
        Kind::Thin,
        Kind::Colour,
        Kind::Blank,
        Kind::Noise,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::InkOnWhite => "ink-on-white",
            Kind::WhiteOnBlack => "white-on-black",
            Kind::Transparent => "transparent",
            Kind::GreyPaper => "grey-paper",
            Kind::UnevenLight => "uneven-light",
            Kind::Photo => "photo",
            Kind::Thick => "thick",
            Kind::Thin => "thin",
            Kind::Colour => "colour",
            Kind::Blank => "blank",
            Kind::Noise => "noise",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the image shows a digit (blank paper and noise do not).
    pub fn has_digit(self) -> bool {
        !matches!(self, Kind::Blank | Kind::Noise)
    }

    /// Share of the set, per mille.
    fn share(self) -> u32 {
        match self {
            Kind::InkOnWhite => 150,
            Kind::WhiteOnBlack => 80,
            Kind::Transparent => 80,
            Kind::GreyPaper => 120,
            Kind::UnevenLight => 120,
            Kind::Photo => 120,
            Kind::Thick => 80,
            Kind::Thin => 80,
            Kind::Colour => 100,
            Kind::Blank => 40,
            Kind::Noise => 30,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The file format and, where the format has several, the colour type; the
/// `format` column of `labels.csv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    PngGray,
    PngRgb,
    PngRgba,
    Jpeg,
    Gif,
    Bmp,
    WebP,
    Tiff,
    Pgm,
    Ppm,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::PngGray,
        Format::PngRgb,
        Format::PngRgba,
        Format::Jpeg,
        Format::Gif,
        Format::Bmp,
        Format::WebP,
        Format::Tiff,
        Format::Pgm,
        Format::Ppm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::PngGray => "png-gray",
            Format::PngRgb => "png-rgb",
            Format::PngRgba => "png-rgba",
            Format::Jpeg => "jpeg",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::WebP => "webp",
            Format::Tiff => "tiff",
            Format::Pgm => "pgm",
            Format::Ppm => "ppm",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::PngGray | Format::PngRgb | Format::PngRgba => "png",
            Format::Jpeg => "jpg",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::WebP => "webp",
            Format::Tiff => "tiff",
            Format::Pgm => "pgm",
            Format::Ppm => "ppm",
        }
    }

    /// The container, as the `image` crate names it.
    pub fn image_format(self) -> ImageFormat {
        match self {
            Format::PngGray | Format::PngRgb | Format::PngRgba => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Gif => ImageFormat::Gif,
            Format::Bmp => ImageFormat::Bmp,
            Format::WebP => ImageFormat::WebP,
            Format::Tiff => ImageFormat::Tiff,
            Format::Pgm | Format::Ppm => ImageFormat::Pnm,
        }
    }

    /// Stored without compression: these get small canvases, or the set
    /// would not fit its size budget.
    fn uncompressed(self) -> bool {
        matches!(self, Format::Bmp | Format::Tiff | Format::Pgm | Format::Ppm)
    }

    /// Lossless but compressed: noise makes these large, so noisy images in
    /// them get mid-sized canvases.
    fn lossless_compressed(self) -> bool {
        matches!(self, Format::PngGray | Format::PngRgb | Format::PngRgba | Format::Gif | Format::WebP)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// labels.csv
// ---------------------------------------------------------------------------

/// One row of `labels.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// File name inside the set's directory, `NNNN-KIND.EXT`.
    pub file: String,
    /// The digit, or `None` for an image without one.
    pub label: Option<u8>,
    pub kind: Kind,
    pub format: Format,
    /// Which MNIST test digit was drawn (`None` when there is no digit).
    pub mnist_index: Option<usize>,
    pub width: u32,
    pub height: u32,
}

impl Entry {
    pub fn csv_row(&self) -> String {
        let label = self.label.map_or("none".to_string(), |l| l.to_string());
        let index = self.mnist_index.map_or(String::new(), |i| i.to_string());
        format!("{},{label},{},{},{index},{},{}", self.file, self.kind, self.format, self.width, self.height)
    }

    pub fn parse_csv_row(row: &str) -> Result<Entry, String> {
        let fields: Vec<&str> = row.split(',').collect();
        let [file, label, kind, format, index, width, height] = fields[..] else {
            return Err(format!("{} fields, expected 7 ({CSV_HEADER})", fields.len()));
        };
        let label = match label {
            "none" => None,
            l => Some(l.parse::<u8>().ok().filter(|&d| d <= 9).ok_or(format!("label {l:?} is not 0-9 or none"))?),
        };
        let mnist_index = match index {
            "" => None,
            i => Some(i.parse().map_err(|_| format!("mnist_index {i:?} is not a number"))?),
        };
        if label.is_some() != mnist_index.is_some() {
            return Err("a digit needs an mnist_index and `none` must have none".into());
        }
        let number = |name: &str, v: &str| v.parse::<u32>().map_err(|_| format!("{name} {v:?} is not a number"));
        Ok(Entry {
            file: file.to_string(),
            label,
            kind: Kind::from_name(kind).ok_or(format!("unknown kind {kind:?}"))?,
            format: Format::from_name(format).ok_or(format!("unknown format {format:?}"))?,
            mnist_index,
            width: number("width", width)?,
            height: number("height", height)?,
        })
    }
}

/// Reads a `labels.csv` written by `make-realistic`.
pub fn read_labels(path: &Path) -> io::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)?;
    let bad = |line: usize, why: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}:{line}: {why}", path.display()))
    };
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(bad(1, format!("the header is not {CSV_HEADER:?}")));
    }
    lines.enumerate().map(|(i, row)| Entry::parse_csv_row(row).map_err(|why| bad(i + 2, why))).collect()
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// One generated image: its `labels.csv` row and its file's bytes.
#[derive(Clone, Debug)]
pub struct Sample {
    pub entry: Entry,
    pub bytes: Vec<u8>,
}

/// Renders samples from the MNIST test digits.
pub struct Generator {
    images: Images,
    labels: Vec<u8>,
    seed: u64,
}

impl Generator {
    /// A generator over the MNIST test set shipped in `data/`.
    pub fn from_shipped_test_set(seed: u64) -> Result<Generator, IdxError> {
        let (images, labels) = crate::shipped_test_set();
        let (imgs, labs) = idx::read_labelled(&images, &labels)?;
        if imgs.side != SIDE || imgs.is_empty() {
            return Err(IdxError::Format {
                path: images,
                reason: format!(
                    "{} images of {s}×{s}; the realistic set needs MNIST's 28×28 digits",
                    imgs.len(),
                    s = imgs.side
                ),
            });
        }
        Ok(Generator { images: imgs, labels: labs, seed })
    }

    /// Sample `index` of this seed's set; the same arguments give the same bytes.
    pub fn sample(&self, index: usize) -> Result<Sample, ImageError> {
        let mut rng = Rng::for_sample(self.seed, index as u64);
        let kind = rng.weighted(&Kind::ALL.map(|k| (k, k.share())));
        let mnist_index = rng.int(0, self.images.len() - 1);
        let digit = kind.has_digit().then(|| self.images.get(mnist_index));
        let picture = match kind {
            Kind::InkOnWhite => drawing(&mut rng, digit, 1.0),
            Kind::WhiteOnBlack => dark_board(&mut rng, digit),
            Kind::Transparent => transparent(&mut rng, digit),
            Kind::GreyPaper => grey_paper(&mut rng, digit, 1.0),
            Kind::UnevenLight => uneven_light(&mut rng, digit),
            Kind::Photo => photo(&mut rng, digit),
            Kind::Thick | Kind::Thin => restroked(&mut rng, digit, kind == Kind::Thick),
            Kind::Colour => coloured(&mut rng, digit),
            Kind::Blank => blank(&mut rng),
            Kind::Noise => noise_texture(&mut rng),
        };
        let bytes = encode(&picture.raster, picture.encoding)?;
        let entry = Entry {
            file: format!("{index:04}-{kind}.{}", picture.encoding.format.extension()),
            label: digit.map(|_| self.labels[mnist_index]),
            kind,
            format: picture.encoding.format,
            mnist_index: digit.map(|_| mnist_index),
            width: picture.raster.width as u32,
            height: picture.raster.height as u32,
        };
        Ok(Sample { entry, bytes })
    }
}

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

/// Only raw 64-bit words come from ChaCha8; see the module docs for why the
/// rest is done here.
struct Rng(ChaCha8Rng);

impl Rng {
    /// The seed is the key and the sample's index the stream, so samples are
    /// independent of each other and of how many are made.
    fn for_sample(seed: u64, index: u64) -> Rng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(index);
        Rng(rng)
    }

    /// Uniform in [0, 1), with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in lo..=hi (multiply-shift; its bias of at most n/2⁶⁴ is nothing here).
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        let n = (hi - lo + 1) as u128;
        lo + ((self.0.next_u64() as u128 * n) >> 64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal deviate, approximated by the sum of four 16-bit
    /// uniforms (Irwin–Hall) from one word, centred and scaled to unit
    /// variance. Its tails stop at ±3.5σ, which no eye or preprocessing will
    /// tell from image noise, and it needs neither `ln` nor `cos`.
    fn normal(&mut self) -> f32 {
        const SQRT_3: f32 = 1.732_050_8;
        let w = self.0.next_u64();
        let sum: u32 = (0..4).map(|i| ((w >> (16 * i)) & 0xffff) as u32).sum();
        // Each 16-bit uniform is (k + 0.5) / 65536; their sum has mean 2, variance 1/3.
        ((sum as f32 + 2.0) / 65536.0 - 2.0) * SQRT_3
    }

    fn weighted<T: Copy>(&mut self, choices: &[(T, u32)]) -> T {
        let total: u32 = choices.iter().map(|c| c.1).sum();
        let mut pick = self.int(0, total as usize - 1) as u32;
        for &(value, weight) in choices {
            if pick < weight {
                return value;
            }
            pick -= weight;
        }
        unreachable!("pick < total")
    }

    /// `base` with each channel moved by up to ±`by` levels.
    fn jitter(&mut self, base: [f32; 3], by: f64) -> [f32; 3] {
        base.map(|c| (c + self.range(-by, by) as f32).clamp(0.0, 255.0))
    }
}

// ---------------------------------------------------------------------------
// The digit's ink
// ---------------------------------------------------------------------------

const SIDE: usize = 28;

/// MNIST pixels at least this bright are the digit when its box is measured;
/// the faint anti-aliased fringe would make the box a pixel too big all round.
const INK_LEVEL: u8 = 64;

/// Ink coverage in 0..=1 over a rectangle.
#[derive(Clone)]
struct Coverage {
    width: usize,
    height: usize,
    alpha: Vec<f32>,
}

/// Ink coverage placed on a canvas at (x, y).
struct Placed {
    coverage: Coverage,
    x: usize,
    y: usize,
}

/// How the digit's strokes are drawn.
#[derive(Clone, Copy)]
struct Pen {
    /// Stroke width as a multiple of the digit's own (1 = unchanged).
    stroke: f64,
    /// Upscaled intensity mapped to coverage by a smoothstep between these
    /// two levels: a crisp pen edge. `None` keeps MNIST's soft profile (a
    /// soft brush or marker).
    edge: Option<(f32, f32)>,
    /// Rotation of the digit, in degrees.
    degrees: f64,
}

impl Pen {
    /// A pen or brush as drawing apps and real pens give: mostly crisp edges.
    fn drawn(rng: &mut Rng, stroke: f64) -> Pen {
        let edge = rng.chance(0.75).then(|| {
            let lo = rng.range(0.15, 0.35) as f32;
            (lo, lo + rng.range(0.15, 0.3) as f32)
        });
        Pen { stroke, edge, degrees: 0.0 }
    }
}

/// The box (x0, y0, x1, y1), ends exclusive, of the digit's ink.
fn ink_box(pixels: &[u8]) -> (usize, usize, usize, usize) {
    let (mut x0, mut y0, mut x1, mut y1) = (SIDE, SIDE, 0, 0);
    for (i, &p) in pixels.iter().enumerate() {
        if p >= INK_LEVEL {
            let (x, y) = (i % SIDE, i / SIDE);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
    }
    if x1 == 0 {
        return (0, 0, SIDE, SIDE); // no pixel that bright: use the whole frame
    }
    (x0, y0, x1, y1)
}

/// The digit scaled so that its ink box is `scale` times MNIST's, with the
/// pen applied: upscaled smoothly, strokes widened or narrowed, edges made
/// crisp, rotated, and trimmed to the ink.
fn render_digit(pixels: &[u8], scale: f64, pen: Pen) -> Coverage {
    // Three MNIST pixels of margin hold the filter's tail and a widened stroke.
    const MARGIN: isize = 3;
    let (x0, y0, x1, y1) = ink_box(pixels);
    let (cw, ch) = (x1 - x0 + 2 * MARGIN as usize, y1 - y0 + 2 * MARGIN as usize);
    let crop = ImageBuffer::from_fn(cw as u32, ch as u32, |x, y| {
        let (sx, sy) = (x0 as isize + x as isize - MARGIN, y0 as isize + y as isize - MARGIN);
        let inside = (0..SIDE as isize).contains(&sx) && (0..SIDE as isize).contains(&sy);
        Luma([if inside { pixels[sy as usize * SIDE + sx as usize] as f32 / 255.0 } else { 0.0 }])
    });
    let (w, h) = (round_px(cw as f64 * scale), round_px(ch as f64 * scale));
    let up: ImageBuffer<Luma<f32>, Vec<f32>> = imageops::resize(&crop, w as u32, h as u32, FilterType::CatmullRom);
    let mut intensity = up.into_raw();
    if scale > 2.0 {
        // Enlarged a lot, MNIST's pixel grid shows as bumps along the
        // strokes once the pen's edge makes them crisp; smooth them away.
        let radius = (0.3 * scale) as f32;
        box_blur(&mut intensity, w, h, radius);
        box_blur(&mut intensity, w, h, radius);
    }
    if pen.stroke != 1.0 {
        // The shape is judged where the pen's edge will be.
        let level = pen.edge.map_or(0.5, |(lo, hi)| (lo + hi) / 2.0);
        restroke(&mut intensity, w, h, pen.stroke, level);
    }
    let alpha = match pen.edge {
        Some((lo, hi)) => intensity.iter().map(|&v| smoothstep(lo, hi, v)).collect(),
        None => intensity.iter().map(|&v| v.clamp(0.0, 1.0)).collect(),
    };
    let mut coverage = Coverage { width: w, height: h, alpha };
    if pen.degrees != 0.0 {
        coverage = rotate(&coverage, pen.degrees);
    }
    trim(&coverage)
}

fn round_px(v: f64) -> usize {
    (v.round() as usize).max(1)
}

fn smoothstep(lo: f32, hi: f32, v: f32) -> f32 {
    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Widens (factor > 1) or narrows (factor < 1) the strokes of an upscaled
/// digit by a morphological dilation or erosion, by (factor − 1)/2 of its
/// measured stroke width on each side. `level` is where the pen's edge will
/// be, at which the shape is judged.
fn restroke(intensity: &mut Vec<f32>, w: usize, h: usize, factor: f64, level: f32) {
    let radius = (((factor - 1.0).abs() * stroke_width(intensity, w, h) / 2.0).round() as usize).max(1);
    if factor > 1.0 {
        widen(intensity, w, h, radius, level);
    } else {
        narrow(intensity, w, h, radius, level);
    }
}

/// Dilates by up to `radius`, less if that would fill the loop of a 0, 6, 8
/// or 9 (but at least by one pixel).
fn widen(intensity: &mut Vec<f32>, w: usize, h: usize, radius: usize, level: f32) {
    let holes = pieces(intensity, w, h, level, false);
    for r in (1..=radius).rev() {
        let thicker = morph(intensity, w, h, r, f32::max);
        if r == 1 || pieces(&thicker, w, h, level, false) >= holes {
            *intensity = thicker;
            return;
        }
    }
}

/// Erodes by up to `radius`, less if that would cut a stroke in two or leave
/// under 30 % of the ink (and not at all if even one pixel would): thin
/// strokes must stay legible.
fn narrow(intensity: &mut Vec<f32>, w: usize, h: usize, radius: usize, level: f32) {
    let (parts, area) = (pieces(intensity, w, h, level, true), ink_area(intensity, level));
    for r in (1..=radius).rev() {
        let thinner = morph(intensity, w, h, r, f32::min);
        if pieces(&thinner, w, h, level, true) <= parts && ink_area(&thinner, level) as f64 >= 0.3 * area as f64 {
            *intensity = thinner;
            return;
        }
    }
}

fn ink_area(intensity: &[f32], level: f32) -> usize {
    intensity.iter().filter(|&&v| v > level).count()
}

/// Mean stroke width in pixels: twice the area over the outline's length of
/// the shape above half intensity (a band of width w and length L has area
/// wL and an outline of about 2L).
fn stroke_width(intensity: &[f32], w: usize, h: usize) -> f64 {
    let ink = |x: isize, y: isize| {
        (0..w as isize).contains(&x) && (0..h as isize).contains(&y) && intensity[y as usize * w + x as usize] > 0.5
    };
    let (mut area, mut outline) = (0usize, 0usize);
    for y in 0..h as isize {
        for x in 0..w as isize {
            if ink(x, y) {
                area += 1;
                outline += [(1, 0), (-1, 0), (0, 1), (0, -1)].iter().filter(|(dx, dy)| !ink(x + dx, y + dy)).count();
            }
        }
    }
    // `outline` counts the pixel edges between ink and background.
    if outline == 0 {
        return 1.0;
    }
    2.0 * area as f64 / outline as f64
}

/// A max (dilation) or min (erosion) filter over an octagon of `radius`
/// pixels, made by alternating 3×3 square and plus-shaped passes — a cheap
/// stand-in for a disc, so pen strokes keep round ends. Outside is 0.
fn morph(src: &[f32], w: usize, h: usize, radius: usize, pick: fn(f32, f32) -> f32) -> Vec<f32> {
    const PLUS: [(isize, isize); 4] = [(1, 0), (-1, 0), (0, 1), (0, -1)];
    const SQUARE: [(isize, isize); 8] = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)];
    let mut img = src.to_vec();
    for pass in 0..radius {
        let offsets: &[(isize, isize)] = if pass % 2 == 0 { &SQUARE } else { &PLUS };
        let prev = img.clone();
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut v = prev[y as usize * w + x as usize];
                for &(dx, dy) in offsets {
                    let (nx, ny) = (x + dx, y + dy);
                    let n = if (0..w as isize).contains(&nx) && (0..h as isize).contains(&ny) {
                        prev[ny as usize * w + nx as usize]
                    } else {
                        0.0
                    };
                    v = pick(v, n);
                }
                img[y as usize * w + x as usize] = v;
            }
        }
    }
    img
}

/// The number of connected pieces of ink (above `level`, 8-connected) or of
/// background (4-connected, so that a diagonal gap in a stroke does not join
/// the inside of a loop to the outside): the outside plus the holes.
fn pieces(intensity: &[f32], w: usize, h: usize, level: f32, ink: bool) -> usize {
    const EIGHT: [(isize, isize); 8] = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)];
    let steps = if ink { &EIGHT[..] } else { &EIGHT[..4] };
    let mut seen: Vec<bool> = intensity.iter().map(|&v| (v > level) != ink).collect();
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..seen.len() {
        if seen[start] {
            continue;
        }
        count += 1;
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for &(dx, dy) in steps {
                let (nx, ny) = (x + dx, y + dy);
                if (0..w as isize).contains(&nx) && (0..h as isize).contains(&ny) {
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
    }
    count
}

/// sin and cos by their Taylor series (exact to double precision for the
/// ±12° used here, and the same on every platform, unlike libm's).
fn sin_cos(degrees: f64) -> (f64, f64) {
    let x = degrees * (std::f64::consts::PI / 180.0);
    let x2 = x * x;
    let sin = x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0 * (1.0 - x2 / 72.0 * (1.0 - x2 / 110.0)))));
    let cos = 1.0 - x2 / 2.0 * (1.0 - x2 / 12.0 * (1.0 - x2 / 30.0 * (1.0 - x2 / 56.0 * (1.0 - x2 / 90.0))));
    (sin, cos)
}

/// Rotates the coverage about its centre (bilinear), into a box big enough
/// to hold all of it.
fn rotate(src: &Coverage, degrees: f64) -> Coverage {
    let (sin, cos) = sin_cos(degrees);
    let (sw, sh) = (src.width as f64, src.height as f64);
    let w = (sw * cos.abs() + sh * sin.abs()).ceil() as usize + 2;
    let h = (sw * sin.abs() + sh * cos.abs()).ceil() as usize + 2;
    let at = |x: isize, y: isize| {
        if (0..src.width as isize).contains(&x) && (0..src.height as isize).contains(&y) {
            src.alpha[y as usize * src.width + x as usize]
        } else {
            0.0
        }
    };
    let mut alpha = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            // Inverse mapping from the output's pixel centre to the source.
            let (dx, dy) = (x as f64 + 0.5 - w as f64 / 2.0, y as f64 + 0.5 - h as f64 / 2.0);
            let sx = cos * dx + sin * dy + sw / 2.0 - 0.5;
            let sy = -sin * dx + cos * dy + sh / 2.0 - 0.5;
            let (fx, fy) = (sx.floor(), sy.floor());
            let (tx, ty) = ((sx - fx) as f32, (sy - fy) as f32);
            let (ix, iy) = (fx as isize, fy as isize);
            let top = at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx;
            let bottom = at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx;
            alpha[y * w + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
    Coverage { width: w, height: h, alpha }
}

/// Cuts the coverage down to the box of its visible ink.
fn trim(c: &Coverage) -> Coverage {
    const VISIBLE: f32 = 0.5 / 255.0;
    let (mut x0, mut y0, mut x1, mut y1) = (c.width, c.height, 0, 0);
    for (i, &a) in c.alpha.iter().enumerate() {
        if a > VISIBLE {
            let (x, y) = (i % c.width, i / c.width);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
    }
    if x1 == 0 {
        return c.clone();
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let alpha = (y0..y1).flat_map(|y| c.alpha[y * c.width + x0..y * c.width + x1].iter().copied()).collect();
    Coverage { width: w, height: h, alpha }
}

/// Draws the digit at a random height (15–70 % of the canvas height, for its
/// ink box) and a random position with all of its ink inside the canvas.
fn place_digit(rng: &mut Rng, pixels: &[u8], pen: Pen, width: usize, height: usize) -> Placed {
    const BORDER: usize = 2;
    let (_, y0, _, y1) = ink_box(pixels);
    let mut scale = rng.range(0.15, 0.70) * height as f64 / (y1 - y0) as f64;
    let coverage = loop {
        let c = render_digit(pixels, scale, pen);
        // A wide digit on a tall canvas, a widened stroke or a rotation can
        // overflow; shrink until it fits.
        if c.width + 2 * BORDER <= width && c.height + 2 * BORDER <= height {
            break c;
        }
        scale *= 0.9;
    };
    let x = rng.int(BORDER, width - BORDER - coverage.width);
    let y = rng.int(BORDER, height - BORDER - coverage.height);
    Placed { coverage, x, y }
}

// ---------------------------------------------------------------------------
// Scenes: paper, light, ink, noise
// ---------------------------------------------------------------------------

/// Light falling on the page: a factor on paper and ink alike.
#[derive(Clone, Copy)]
enum Light {
    Even,
    /// Falls off linearly by `drop` (a fraction) across the page along (dx, dy).
    Linear {
        dx: f64,
        dy: f64,
        drop: f64,
    },
    /// Brightest at (cx, cy), falling off with the squared distance by `drop`
    /// at the farthest corner.
    Spot {
        cx: f64,
        cy: f64,
        drop: f64,
    },
}

impl Light {
    /// A random gradient that darkens the page by `drop` at its darkest.
    fn random_gradient(rng: &mut Rng, width: usize, height: usize, drop: f64) -> Light {
        if rng.chance(0.5) {
            // A direction without trigonometry: a random point on the unit
            // square's border, used unnormalised (only its direction matters).
            let t = rng.range(-1.0, 1.0);
            let (dx, dy) = [(1.0, t), (-1.0, t), (t, 1.0), (t, -1.0)][rng.int(0, 3)];
            Light::Linear { dx, dy, drop }
        } else {
            let cx = rng.range(0.0, width as f64);
            let cy = rng.range(0.0, height as f64);
            Light::Spot { cx, cy, drop }
        }
    }

    fn field(self, width: usize, height: usize) -> Vec<f32> {
        let (w, h) = (width as f64, height as f64);
        let corners = [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)];
        let pixel = |i: usize| ((i % width) as f64 + 0.5, (i / width) as f64 + 0.5);
        match self {
            Light::Even => vec![1.0; width * height],
            Light::Linear { dx, dy, drop } => {
                let along = |(x, y): (f64, f64)| x * dx + y * dy;
                let lo = corners.iter().map(|&c| along(c)).fold(f64::INFINITY, f64::min);
                let hi = corners.iter().map(|&c| along(c)).fold(f64::NEG_INFINITY, f64::max);
                (0..width * height).map(|i| (1.0 - drop * (along(pixel(i)) - lo) / (hi - lo)) as f32).collect()
            }
            Light::Spot { cx, cy, drop } => {
                let dist2 = |(x, y): (f64, f64)| (x - cx) * (x - cx) + (y - cy) * (y - cy);
                let far = corners.iter().map(|&c| dist2(c)).fold(0.0, f64::max);
                (0..width * height).map(|i| (1.0 - drop * dist2(pixel(i)) / far) as f32).collect()
            }
        }
    }
}

/// Everything on one opaque image.
struct Scene {
    width: usize,
    height: usize,
    paper: [f32; 3],
    ink: [f32; 3],
    light: Light,
    digit: Option<Placed>,
    /// Chalk: each covered pixel keeps only 1 - grain × U(0,1) of its ink.
    grain: f32,
    /// Standard deviation of the additive noise, in levels.
    noise: f32,
    /// Noise differs between channels (a camera) instead of being grey (a scanner).
    colour_noise: bool,
    /// Box blur radius in pixels (may be fractional), applied after the noise
    /// as a phone's denoising and optics would.
    blur: f32,
}

impl Scene {
    fn new(width: usize, height: usize, paper: [f32; 3], ink: [f32; 3]) -> Scene {
        Scene {
            width,
            height,
            paper,
            ink,
            light: Light::Even,
            digit: None,
            grain: 0.0,
            noise: 0.0,
            colour_noise: false,
            blur: 0.0,
        }
    }

    /// Three planes (R, G, B) of levels 0..255, not yet rounded.
    fn render(&self, rng: &mut Rng) -> [Vec<f32>; 3] {
        let n = self.width * self.height;
        let mut alpha = vec![0.0f32; n];
        if let Some(d) = &self.digit {
            for y in 0..d.coverage.height {
                let row = (d.y + y) * self.width + d.x;
                alpha[row..row + d.coverage.width]
                    .copy_from_slice(&d.coverage.alpha[y * d.coverage.width..][..d.coverage.width]);
            }
        }
        if self.grain > 0.0 {
            for a in alpha.iter_mut().filter(|a| **a > 0.0) {
                *a *= 1.0 - self.grain * rng.unit() as f32;
            }
        }
        let light = self.light.field(self.width, self.height);
        let mut planes: [Vec<f32>; 3] = std::array::from_fn(|c| {
            (0..n).map(|i| (self.paper[c] * (1.0 - alpha[i]) + self.ink[c] * alpha[i]) * light[i]).collect()
        });
        if self.noise > 0.0 {
            for i in 0..n {
                let grey = self.noise * rng.normal();
                for plane in planes.iter_mut() {
                    let own = if self.colour_noise { 0.4 * self.noise * rng.normal() } else { 0.0 };
                    plane[i] += grey + own;
                }
            }
        }
        if self.blur > 0.0 {
            for plane in planes.iter_mut() {
                box_blur(plane, self.width, self.height, self.blur);
            }
        }
        planes
    }
}

/// A separable box blur of fractional radius: whole taps out to ⌊r⌋ and a
/// partial tap of weight r - ⌊r⌋ beyond; edges are clamped.
fn box_blur(plane: &mut [f32], w: usize, h: usize, radius: f32) {
    let whole = radius.floor() as isize;
    let part = radius - radius.floor();
    let mut taps: Vec<(isize, f32)> = (-whole..=whole).map(|k| (k, 1.0)).collect();
    if part > 0.0 {
        taps.extend([(-whole - 1, part), (whole + 1, part)]);
    }
    let total: f32 = taps.iter().map(|t| t.1).sum();
    let pass = |src: &[f32], step: usize, len: usize, lines: usize, stride: usize| {
        let mut out = src.to_vec();
        for line in 0..lines {
            for i in 0..len {
                let sum: f32 = taps
                    .iter()
                    .map(|&(k, weight)| {
                        let j = (i as isize + k).clamp(0, len as isize - 1) as usize;
                        src[line * stride + j * step] * weight
                    })
                    .sum();
                out[line * stride + i * step] = sum / total;
            }
        }
        out
    };
    let across = pass(plane, 1, w, h, w);
    let down = pass(&across, w, h, w, 1);
    plane.copy_from_slice(&down);
}

/// BT.601 luma, the brightness a grey conversion keeps.
fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn grey(level: f64) -> [f32; 3] {
    [level as f32; 3]
}

/// Pixels rounded to bytes, 1 (grey), 3 (RGB) or 4 (RGBA) channels.
struct Raster {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

impl Raster {
    fn from_planes(planes: &[Vec<f32>; 3], width: usize, height: usize, channels: usize) -> Raster {
        let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        let n = width * height;
        let data = match channels {
            1 => (0..n).map(|i| byte(luma([planes[0][i], planes[1][i], planes[2][i]]))).collect(),
            3 => (0..n).flat_map(|i| [byte(planes[0][i]), byte(planes[1][i]), byte(planes[2][i])]).collect(),
            4 => (0..n).flat_map(|i| [byte(planes[0][i]), byte(planes[1][i]), byte(planes[2][i]), 255]).collect(),
            _ => unreachable!("1, 3 or 4 channels"),
        };
        Raster { width, height, channels, data }
    }

    fn colour_type(&self) -> ExtendedColorType {
        match self.channels {
            1 => ExtendedColorType::L8,
            3 => ExtendedColorType::Rgb8,
            _ => ExtendedColorType::Rgba8,
        }
    }

    /// The same pixels with 3 or 4 channels (GIF takes no grey).
    fn to_colour(&self) -> Raster {
        if self.channels != 1 {
            return Raster { data: self.data.clone(), ..*self };
        }
        Raster { channels: 3, data: self.data.iter().flat_map(|&v| [v; 3]).collect(), ..*self }
    }
}

/// How TIFF pixels are packed. Scanners and editors mostly write LZW, some
/// Deflate or PackBits, a few nothing.
#[derive(Clone, Copy)]
enum TiffPacking {
    Raw,
    Lzw,
    Deflate,
    PackBits,
}

/// How a picture is written.
#[derive(Clone, Copy)]
struct Encoding {
    format: Format,
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    channels: usize,
    jpeg_quality: u8,
    tiff: TiffPacking,
}

impl Encoding {
    /// A format from the weighted `table`, its channels, a JPEG quality in
    /// `quality` (inclusive) and a TIFF packing. Formats that can store grey
    /// or colour store a grey scene as grey some of the time (scanners and
    /// some apps do; most write RGB), raw formats more often, to keep them small.
    fn pick(rng: &mut Rng, table: &[(Format, u32)], grey_scene: bool, quality: (usize, usize)) -> Encoding {
        let format = rng.weighted(table);
        let grey_share = if format.uncompressed() { 0.8 } else { 0.5 };
        let channels = match format {
            Format::PngGray | Format::Pgm => 1,
            Format::PngRgb | Format::Ppm | Format::Gif => 3,
            Format::PngRgba => 4,
            Format::Jpeg | Format::Bmp | Format::WebP | Format::Tiff => {
                if grey_scene && rng.chance(grey_share) {
                    1
                } else {
                    3
                }
            }
        };
        let jpeg_quality = rng.int(quality.0, quality.1) as u8;
        let tiff = rng.weighted(&[
            (TiffPacking::Lzw, 9),
            (TiffPacking::Deflate, 4),
            (TiffPacking::PackBits, 2),
            (TiffPacking::Raw, 5),
        ]);
        Encoding { format, channels, jpeg_quality, tiff }
    }

    /// A canvas about `min_width..=max_width` wide with height/width between
    /// 3:4 and 4:3. Widths lean to the small end (uⁿ of a uniform u, mean
    /// 1/(n+1) of the way up) to keep the set small; formats that store raw
    /// pixels get 128–224 pixels (96–144 in colour), and lossless formats
    /// holding noise at most 256.
    fn canvas(&self, rng: &mut Rng, noisy: bool, min_width: usize, max_width: usize, lean: u32) -> (usize, usize) {
        let (lo, hi) = if self.format.uncompressed() {
            if self.channels == 1 {
                (128, 224)
            } else {
                (96, 144)
            }
        } else if noisy && self.format.lossless_compressed() {
            (min_width.min(256), max_width.min(256))
        } else {
            (min_width, max_width)
        };
        let u = rng.unit();
        let lean_u = (0..lean).fold(1.0, |p, _| p * u); // not powi: its last bit may vary by platform
        let width = lo + ((hi - lo) as f64 * lean_u).round() as usize;
        let height = round_px(width as f64 * rng.range(0.75, 4.0 / 3.0));
        (width, height)
    }

    /// Noise of standard deviation in lo..hi levels, but light (at most 2)
    /// in a lossless compressed format: noise is what such files spend their
    /// bytes on.
    fn noise(&self, rng: &mut Rng, lo: f64, hi: f64) -> f32 {
        let (lo, hi) = if self.format.lossless_compressed() { (lo.min(1.0), hi.min(2.0)) } else { (lo, hi) };
        rng.range(lo, hi) as f32
    }
}

/// What a kind's recipe produced.
struct Picture {
    raster: Raster,
    encoding: Encoding,
}

impl Picture {
    fn of(scene: &Scene, rng: &mut Rng, encoding: Encoding) -> Picture {
        Picture {
            raster: Raster::from_planes(&scene.render(rng), scene.width, scene.height, encoding.channels),
            encoding,
        }
    }
}

fn encode(raster: &Raster, encoding: Encoding) -> Result<Vec<u8>, ImageError> {
    let mut out = Cursor::new(Vec::new());
    let (w, h) = (raster.width as u32, raster.height as u32);
    let colour = raster.colour_type();
    match encoding.format {
        Format::PngGray | Format::PngRgb | Format::PngRgba => PngEncoder::new_with_quality(
            &mut out,
            CompressionType::Best,
            PngFilter::Adaptive,
        )
        .write_image(&raster.data, w, h, colour)?,
        Format::Jpeg => {
            JpegEncoder::new_with_quality(&mut out, encoding.jpeg_quality).write_image(&raster.data, w, h, colour)?
        }
        Format::Gif => {
            let rgb = raster.to_colour();
            // Speed 10 of NeuQuant's 1..30: for these images the palette is as
            // good to the eye, and the encoding ten times faster than speed 1.
            GifEncoder::new_with_speed(&mut out, 10).encode(&rgb.data, w, h, rgb.colour_type())?
        }
        Format::Bmp => BmpEncoder::new(&mut out).write_image(&raster.data, w, h, colour)?,
        Format::WebP => WebPEncoder::new_lossless(&mut out).write_image(&raster.data, w, h, colour)?,
        Format::Tiff => write_tiff(&mut out, raster, encoding.tiff)
            .map_err(|e| ImageError::Encoding(EncodingError::new(ImageFormat::Tiff.into(), e)))?,
        Format::Pgm | Format::Ppm => {
            let subtype = if encoding.format == Format::Pgm {
                PnmSubtype::Graymap(SampleEncoding::Binary)
            } else {
                PnmSubtype::Pixmap(SampleEncoding::Binary)
            };
            PnmEncoder::new(&mut out).with_subtype(subtype).write_image(&raster.data, w, h, colour)?
        }
    }
    Ok(out.into_inner())
}

/// TIFF through the `tiff` crate, whose encoder can compress (the `image`
/// crate's cannot).
fn write_tiff(out: &mut Cursor<Vec<u8>>, raster: &Raster, packing: TiffPacking) -> tiff::TiffResult<()> {
    use tiff::encoder::{colortype, compression::DeflateLevel, Compression, TiffEncoder};
    use tiff::tags::Predictor;
    let (compression, predictor) = match packing {
        TiffPacking::Raw => (Compression::Uncompressed, Predictor::None),
        TiffPacking::Lzw => (Compression::Lzw, Predictor::Horizontal),
        TiffPacking::Deflate => (Compression::Deflate(DeflateLevel::Best), Predictor::Horizontal),
        TiffPacking::PackBits => (Compression::Packbits, Predictor::None),
    };
    let mut encoder = TiffEncoder::new(out)?.with_compression(compression).with_predictor(predictor);
    let (w, h, data) = (raster.width as u32, raster.height as u32, &raster.data[..]);
    match raster.channels {
        1 => encoder.write_image::<colortype::Gray8>(w, h, data),
        3 => encoder.write_image::<colortype::RGB8>(w, h, data),
        _ => encoder.write_image::<colortype::RGBA8>(w, h, data),
    }
}

// ---------------------------------------------------------------------------
// The kinds' recipes
// ---------------------------------------------------------------------------

/// Ink on white: a drawing pad's or a paint program's export. Clean, so any
/// format; lossless ones mostly.
fn drawing(rng: &mut Rng, digit: Option<&[u8]>, stroke: f64) -> Picture {
    let table = [
        (Format::PngGray, 3),
        (Format::PngRgb, 2),
        (Format::PngRgba, 1),
        (Format::Jpeg, 1),
        (Format::Gif, 2),
        (Format::Bmp, 1),
        (Format::WebP, 2),
        (Format::Tiff, 2),
        (Format::Pgm, 1),
        (Format::Ppm, 1),
    ];
    let encoding = Encoding::pick(rng, &table, true, (75, 95));
    let (width, height) = encoding.canvas(rng, false, 160, 640, 2);
    let paper = if rng.chance(0.7) { grey(255.0) } else { grey(rng.range(240.0, 255.0)) };
    let ink = grey(rng.range(0.0, 40.0));
    let mut scene = Scene::new(width, height, paper, ink);
    scene.digit = digit.map(|d| {
        let pen = Pen::drawn(rng, stroke);
        place_digit(rng, d, pen, width, height)
    });
    Picture::of(&scene, rng, encoding)
}

/// Light ink on dark: a dark-mode canvas (clean), or chalk on a green or
/// slate board (grainy strokes, noise, a little uneven light; mostly JPEG).
fn dark_board(rng: &mut Rng, digit: Option<&[u8]>) -> Picture {
    let chalk = rng.chance(0.4);
    let encoding = if chalk {
        Encoding::pick(rng, &[(Format::Jpeg, 1)], false, (60, 90))
    } else {
        let table = [
            (Format::PngGray, 2),
            (Format::PngRgb, 2),
            (Format::Gif, 1),
            (Format::WebP, 1),
            (Format::Bmp, 1),
            (Format::Tiff, 1),
            (Format::Pgm, 1),
            (Format::Ppm, 1),
        ];
        Encoding::pick(rng, &table, true, (75, 95))
    };
    let (width, height) = encoding.canvas(rng, chalk, 160, 640, 2);
    let mut scene = if chalk {
        let board = if rng.chance(0.5) { [40.0, 68.0, 52.0] } else { [44.0, 47.0, 52.0] };
        let mut s = Scene::new(width, height, rng.jitter(board, 8.0), grey(rng.range(210.0, 240.0)));
        s.grain = rng.range(0.25, 0.5) as f32;
        s.noise = encoding.noise(rng, 2.0, 6.0);
        s.colour_noise = true;
        let drop = rng.range(0.0, 0.3);
        s.light = Light::random_gradient(rng, width, height, drop);
        s
    } else {
        // Dark themes are grey or a little blue; a grey file gets grey.
        let background = if encoding.channels == 1 || rng.chance(0.6) {
            grey(rng.range(0.0, 45.0))
        } else {
            rng.jitter([24.0, 26.0, 34.0], 6.0)
        };
        Scene::new(width, height, background, grey(rng.range(200.0, 255.0)))
    };
    scene.digit = digit.map(|d| {
        let pen = Pen::drawn(rng, 1.0);
        place_digit(rng, d, pen, width, height)
    });
    Picture::of(&scene, rng, encoding)
}

/// A drawing app's canvas: RGBA, every background pixel fully transparent,
/// the strokes' anti-aliasing in alpha. Under alpha 0 apps store either black
/// or the stroke colour; both occur, so a reader that drops alpha sees either
/// nothing or a silhouette.
fn transparent(rng: &mut Rng, digit: Option<&[u8]>) -> Picture {
    let mut encoding = Encoding::pick(rng, &[(Format::PngRgba, 4), (Format::WebP, 1)], false, (90, 90));
    encoding.channels = 4;
    let (width, height) = encoding.canvas(rng, false, 160, 640, 2);
    let stroke = match rng.weighted(&[(0, 13), (1, 5), (2, 2)]) {
        0 => grey(rng.range(0.0, 40.0)),
        1 => grey(255.0),
        _ => rng.weighted(&[([30.0, 60.0, 200.0], 1), ([200.0, 30.0, 40.0], 1)]),
    };
    let hidden = if rng.chance(0.6) { [0.0; 3] } else { stroke };
    let placed = digit.map(|d| {
        let pen = Pen::drawn(rng, 1.0);
        place_digit(rng, d, pen, width, height)
    });
    let mut alpha = vec![0.0f32; width * height];
    if let Some(p) = &placed {
        for y in 0..p.coverage.height {
            let row = (p.y + y) * width + p.x;
            alpha[row..row + p.coverage.width]
                .copy_from_slice(&p.coverage.alpha[y * p.coverage.width..][..p.coverage.width]);
        }
    }
    let data = alpha
        .iter()
        .flat_map(|&a| {
            let a = (a * 255.0).round() as u8;
            let rgb = if a == 0 { hidden } else { stroke };
            [rgb[0] as u8, rgb[1] as u8, rgb[2] as u8, a]
        })
        .collect();
    Picture { raster: Raster { width, height, channels: 4, data }, encoding }
}

/// A scan of ink on grey paper: grey noise, JPEG mostly.
fn grey_paper(rng: &mut Rng, digit: Option<&[u8]>, stroke: f64) -> Picture {
    let table = [(Format::Jpeg, 14), (Format::PngGray, 2), (Format::Tiff, 1), (Format::Pgm, 1), (Format::Bmp, 1)];
    let encoding = Encoding::pick(rng, &table, true, (50, 92));
    let (width, height) = encoding.canvas(rng, true, 160, 640, 2);
    let paper = rng.range(120.0, 220.0);
    // Ink 10–80, and always at least ~45 levels under the paper.
    let ink = rng.range(10.0, 80.0f64.min(paper - 45.0));
    let mut scene = Scene::new(width, height, grey(paper), grey(ink));
    scene.noise = encoding.noise(rng, 2.0, 10.0);
    scene.digit = digit.map(|d| {
        let pen = Pen::drawn(rng, stroke);
        place_digit(rng, d, pen, width, height)
    });
    Picture::of(&scene, rng, encoding)
}

/// Paper under a strong linear or spot-light gradient: the paper's level
/// varies by 30–110 across the page, so no single threshold separates ink
/// from paper, yet the ink stays ≥ ~45 levels under the paper beneath it.
fn uneven_light(rng: &mut Rng, digit: Option<&[u8]>) -> Picture {
    let table = [(Format::Jpeg, 16), (Format::PngGray, 1), (Format::WebP, 1)];
    let encoding = Encoding::pick(rng, &table, true, (50, 92));
    let (width, height) = encoding.canvas(rng, true, 160, 640, 2);
    let paper = rng.range(180.0, 250.0);
    let ink = rng.range(10.0, 60.0);
    // Light multiplies paper and ink: where it is darkest (1 - drop) the gap
    // (paper - ink)(1 - drop) must still be 45 levels.
    let max_drop = 1.0 - 45.0 / (paper - ink);
    let drop = (rng.range(30.0, 110.0) / paper).min(max_drop);
    let mut scene = Scene::new(width, height, grey(paper), grey(ink));
    scene.light = Light::random_gradient(rng, width, height, drop);
    scene.noise = encoding.noise(rng, 2.0, 8.0);
    scene.digit = digit.map(|d| {
        let pen = Pen::drawn(rng, 1.0);
        place_digit(rng, d, pen, width, height)
    });
    Picture::of(&scene, rng, encoding)
}

/// A phone photo of a digit on paper: tinted paper, a gradient, camera noise
/// smoothed by a slight blur, the digit a little rotated, JPEG.
fn photo(rng: &mut Rng, digit: Option<&[u8]>) -> Picture {
    let encoding = Encoding::pick(rng, &[(Format::Jpeg, 1)], false, (50, 85));
    // Most photos people send are downscaled; the large ones are rarer.
    let (width, height) = encoding.canvas(rng, true, 320, 1024, 3);
    let level = rng.range(175.0, 240.0) as f32;
    let tint = rng.weighted(&[([8.0, 3.0, -9.0], 3), ([-6.0, 0.0, 7.0], 2), ([0.0, 0.0, 0.0], 1)]);
    let strength = rng.range(0.3, 1.5) as f32;
    let paper = tint.map(|t| level + t * strength);
    let black = grey(rng.range(15.0, 70.0));
    let ink = rng.weighted(&[(black, 3), ([25.0, 30.0, 75.0], 1)]);
    let max_drop = 1.0 - 45.0 / (luma(paper) - luma(ink)) as f64;
    let drop = (rng.range(20.0, 90.0) / level as f64).min(max_drop);
    let mut scene = Scene::new(width, height, paper, ink);
    scene.light = Light::random_gradient(rng, width, height, drop);
    // Phones denoise: what is left is weaker than a scanner's noise.
    scene.noise = encoding.noise(rng, 1.5, 5.0);
    scene.colour_noise = true;
    scene.blur = rng.range(0.0, 1.5) as f32;
    scene.digit = digit.map(|d| {
        let mut pen = Pen::drawn(rng, 1.0);
        pen.degrees = rng.range(-12.0, 12.0);
        place_digit(rng, d, pen, width, height)
    });
    Picture::of(&scene, rng, encoding)
}

/// Thick (1.5–2.5×) or thin (0.4–0.6×) strokes, on white or on grey paper.
fn restroked(rng: &mut Rng, digit: Option<&[u8]>, thick: bool) -> Picture {
    let factor = if thick { rng.range(1.5, 2.5) } else { rng.range(0.4, 0.6) };
    if rng.chance(0.6) {
        drawing(rng, digit, factor)
    } else {
        grey_paper(rng, digit, factor)
    }
}

/// A coloured pen on coloured paper, with luma contrast of at least ~50 levels.
fn coloured(rng: &mut Rng, digit: Option<&[u8]>) -> Picture {
    let table = [
        (Format::PngRgb, 3),
        (Format::Jpeg, 3),
        (Format::WebP, 1),
        (Format::Gif, 1),
        (Format::Tiff, 1),
        (Format::Ppm, 1),
    ];
    let encoding = Encoding::pick(rng, &table, false, (70, 92));
    let noisy = encoding.format == Format::Jpeg && rng.chance(0.6);
    let (width, height) = encoding.canvas(rng, noisy, 160, 640, 2);
    let (paper, ink) = colour_pair(rng);
    let mut scene = Scene::new(width, height, paper, ink);
    if noisy {
        scene.noise = encoding.noise(rng, 1.0, 4.0);
        scene.colour_noise = true;
    }
    scene.digit = digit.map(|d| {
        let pen = Pen::drawn(rng, 1.0);
        place_digit(rng, d, pen, width, height)
    });
    Picture::of(&scene, rng, encoding)
}

/// Coloured paper and a pen colour whose luma is at least 55 levels darker.
fn colour_pair(rng: &mut Rng) -> ([f32; 3], [f32; 3]) {
    const PAPERS: [[f32; 3]; 8] = [
        [250.0, 240.0, 170.0], // yellow
        [205.0, 225.0, 245.0], // blue
        [248.0, 210.0, 222.0], // pink
        [210.0, 238.0, 205.0], // green
        [245.0, 235.0, 212.0], // cream
        [225.0, 215.0, 242.0], // lavender
        [250.0, 225.0, 190.0], // orange
        [250.0, 250.0, 250.0], // white
    ];
    const INKS: [[f32; 3]; 8] = [
        [25.0, 50.0, 170.0],  // blue
        [20.0, 30.0, 110.0],  // dark blue
        [190.0, 25.0, 35.0],  // red
        [20.0, 120.0, 50.0],  // green
        [100.0, 35.0, 140.0], // purple
        [25.0, 25.0, 30.0],   // black
        [100.0, 55.0, 30.0],  // brown
        [0.0, 100.0, 110.0],  // teal
    ];
    let paper = PAPERS[rng.int(0, PAPERS.len() - 1)];
    let paper = rng.jitter(paper, 10.0);
    let ink = INKS[rng.int(0, INKS.len() - 1)];
    let mut ink = rng.jitter(ink, 15.0);
    while luma(paper) - luma(ink) < 55.0 {
        ink = ink.map(|c| c * 0.85);
    }
    (paper, ink)
}

/// Paper with no digit: any of the other kinds' backgrounds.
fn blank(rng: &mut Rng) -> Picture {
    match rng.int(0, 7) {
        0 | 1 => drawing(rng, None, 1.0),
        2 => grey_paper(rng, None, 1.0),
        3 => uneven_light(rng, None),
        4 => photo(rng, None),
        5 => coloured(rng, None),
        6 => dark_board(rng, None),
        _ => transparent(rng, None),
    }
}

/// A texture with no digit: uniform random pixels, dense salt and pepper,
/// or coarse random blobs.
fn noise_texture(rng: &mut Rng) -> Picture {
    let table = [
        (Format::PngGray, 2),
        (Format::PngRgb, 1),
        (Format::Jpeg, 3),
        (Format::Bmp, 1),
        (Format::Gif, 1),
        (Format::WebP, 1),
        (Format::Tiff, 1),
        (Format::Pgm, 1),
        (Format::Ppm, 1),
    ];
    let grey_texture = rng.chance(0.5);
    let encoding = Encoding::pick(rng, &table, grey_texture, (60, 90));
    let style = rng.int(0, 2);
    // Pixel noise does not compress: small canvases. Blobs compress well.
    let (width, height) =
        if style == 2 { encoding.canvas(rng, false, 160, 480, 2) } else { encoding.canvas(rng, true, 96, 256, 2) };
    let n = width * height;
    let plane = |rng: &mut Rng, style: usize| -> Vec<f32> {
        match style {
            0 => (0..n).map(|_| rng.int(0, 255) as f32).collect(),
            1 => {
                let base = rng.range(60.0, 200.0) as f32;
                let density = rng.range(0.2, 0.5);
                (0..n)
                    .map(|_| if rng.chance(density) { [0.0, 255.0][rng.int(0, 1)] } else { base + 4.0 * rng.normal() })
                    .collect()
            }
            _ => {
                let (gw, gh) = (rng.int(3, 12), rng.int(3, 12));
                let grid = ImageBuffer::from_fn(gw as u32, gh as u32, |_, _| Luma([rng.unit() as f32]));
                let up: ImageBuffer<Luma<f32>, Vec<f32>> =
                    imageops::resize(&grid, width as u32, height as u32, FilterType::CatmullRom);
                up.into_raw().into_iter().map(|v| v * 255.0).collect()
            }
        }
    };
    // Salt and pepper is grey; the others get independent channels in colour.
    let first = plane(rng, style);
    let planes = if encoding.channels == 1 || style == 1 {
        [first.clone(), first.clone(), first]
    } else {
        [first, plane(rng, style), plane(rng, style)]
    };
    Picture { raster: Raster::from_planes(&planes, width, height, encoding.channels), encoding }
}

// ---------------------------------------------------------------------------
// Summary and contact sheet
// ---------------------------------------------------------------------------

/// Counts per kind and per format.
pub fn counts(entries: &[Entry]) -> (BTreeMap<Kind, usize>, BTreeMap<Format, usize>) {
    let (mut kinds, mut formats) = (BTreeMap::new(), BTreeMap::new());
    for e in entries {
        *kinds.entry(e.kind).or_insert(0) += 1;
        *formats.entry(e.format).or_insert(0) += 1;
    }
    (kinds, formats)
}

/// The contact sheet's rows: groups of kinds.
pub const CONTACT_ROWS: [&[Kind]; 5] = [
    &[Kind::InkOnWhite, Kind::WhiteOnBlack, Kind::Transparent],
    &[Kind::GreyPaper, Kind::UnevenLight],
    &[Kind::Photo],
    &[Kind::Thick, Kind::Thin, Kind::Colour],
    &[Kind::Blank, Kind::Noise],
];

const THUMB: u32 = 112;
const GAP: u32 = 6;
const COLUMNS: usize = 6;

/// A grid of thumbnails, one row per group of `CONTACT_ROWS`, six per row,
/// taking the kinds of a row in turn; transparent images are shown over a
/// checkerboard, everything on mid grey so white and black pages both show.
pub fn contact_sheet(samples: &[Sample]) -> Result<RgbImage, ImageError> {
    let width = COLUMNS as u32 * (THUMB + GAP) + GAP;
    let height = CONTACT_ROWS.len() as u32 * (THUMB + GAP) + GAP;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([128, 128, 128]));
    for (row, kinds) in CONTACT_ROWS.iter().enumerate() {
        for (col, sample) in pick_for_row(samples, kinds).into_iter().enumerate() {
            let thumb = thumbnail(sample)?;
            let x = GAP + col as u32 * (THUMB + GAP) + (THUMB - thumb.width()) / 2;
            let y = GAP + row as u32 * (THUMB + GAP) + (THUMB - thumb.height()) / 2;
            imageops::replace(&mut sheet, &thumb, x as i64, y as i64);
        }
    }
    Ok(sheet)
}

/// Up to six samples of the row's kinds, the kinds taken in turn.
fn pick_for_row<'a>(samples: &'a [Sample], kinds: &[Kind]) -> Vec<&'a Sample> {
    let mut queues: Vec<Vec<&Sample>> =
        kinds.iter().map(|&k| samples.iter().filter(|s| s.entry.kind == k).rev().collect()).collect();
    let mut picked = Vec::new();
    while picked.len() < COLUMNS && queues.iter().any(|q| !q.is_empty()) {
        for q in queues.iter_mut() {
            if let Some(s) = q.pop().filter(|_| picked.len() < COLUMNS) {
                picked.push(s);
            }
        }
    }
    picked
}

fn thumbnail(sample: &Sample) -> Result<RgbImage, ImageError> {
    let image = image::load_from_memory_with_format(&sample.bytes, sample.entry.format.image_format())?.to_rgba8();
    let (w, h) = image.dimensions();
    let scale = THUMB as f64 / w.max(h) as f64;
    let (tw, th) = (round_px(w as f64 * scale) as u32, round_px(h as f64 * scale) as u32);
    let small = imageops::thumbnail(&image, tw, th);
    Ok(ImageBuffer::from_fn(tw, th, |x, y| {
        let p = small.get_pixel(x, y).0;
        let check = if (x / 8 + y / 8) % 2 == 0 { 200.0 } else { 240.0 };
        let a = p[3] as f32 / 255.0;
        Rgb([0, 1, 2].map(|c| (p[c] as f32 * a + check * (1.0 - a)).round() as u8))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taylor_sin_cos_match_libm_over_the_range_used() {
        for tenth in -130..=130 {
            let degrees = tenth as f64 / 10.0;
            let (sin, cos) = sin_cos(degrees);
            let x = degrees.to_radians();
            assert!((sin - x.sin()).abs() < 1e-15 && (cos - x.cos()).abs() < 1e-15, "{degrees}°");
        }
    }

    #[test]
    fn normal_deviates_have_unit_variance() {
        let mut rng = Rng::for_sample(7, 0);
        let v: Vec<f64> = (0..100_000).map(|_| rng.normal() as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean}, variance {var}");
    }

    #[test]
    fn stroke_width_of_a_bar() {
        // A 6-pixel-wide, 180-pixel-long bar.
        let (w, h) = (20, 200);
        let img: Vec<f32> = (0..w * h)
            .map(|i| if (7..13).contains(&(i % w)) && (10..190).contains(&(i / w)) { 1.0 } else { 0.0 })
            .collect();
        let width = stroke_width(&img, w, h);
        assert!((width - 6.0).abs() < 0.6, "{width}");
        assert_eq!((pieces(&img, w, h, 0.5, true), pieces(&img, w, h, 0.5, false)), (1, 1));
        let wider = morph(&img, w, h, 2, f32::max);
        assert!((stroke_width(&wider, w, h) - 10.0).abs() < 1.0);
    }

    #[test]
    fn widening_keeps_a_loop_open() {
        // A ring: outer radius 20, inner 8 (a hole 16 wide), strokes 12 wide.
        let (w, h) = (60, 60);
        let ring: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - 29.5, (i / w) as f32 - 29.5);
                let r2 = x * x + y * y;
                if (64.0..400.0).contains(&r2) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(pieces(&ring, w, h, 0.5, false), 2, "outside and the hole");
        // 2.5× would need a radius of 9 and fill the hole; it must stop short.
        let mut thick = ring.clone();
        restroke(&mut thick, w, h, 2.5, 0.5);
        assert_eq!(pieces(&thick, w, h, 0.5, false), 2);
        assert!(ink_area(&thick, 0.5) > ink_area(&ring, 0.5) * 5 / 4);
        // Narrowing keeps it in one piece and thinner.
        let mut thin = ring.clone();
        restroke(&mut thin, w, h, 0.5, 0.5);
        assert_eq!(pieces(&thin, w, h, 0.5, true), 1);
        assert!(ink_area(&thin, 0.5) < ink_area(&ring, 0.5) * 3 / 4);
    }

    #[test]
    fn csv_rows_round_trip() {
        let entry = Entry {
            file: "0042-grey-paper.jpg".into(),
            label: Some(7),
            kind: Kind::GreyPaper,
            format: Format::Jpeg,
            mnist_index: Some(1234),
            width: 300,
            height: 400,
        };
        assert_eq!(entry.csv_row(), "0042-grey-paper.jpg,7,grey-paper,jpeg,1234,300,400");
        assert_eq!(Entry::parse_csv_row(&entry.csv_row()), Ok(entry));
        let none = "0001-noise.png,none,noise,png-gray,,96,100";
        assert_eq!(Entry::parse_csv_row(none).unwrap().csv_row(), none);
        assert!(Entry::parse_csv_row("0001-noise.png,none,noise,png-gray,5,96,100").is_err());
        assert!(Entry::parse_csv_row("0001-x.png,3,smudge,png-gray,5,96,100").unwrap_err().contains("unknown kind"));
    }
}
