//! Turning a user's image file into the model's input: `side × side` grayscale bytes, white digit on black,
//! as in MNIST. Used by `microvit classify`.
//!
//! # Formats
//!
//! The format is chosen by content, never by extension: the PNG signature, or the PGM magic `P5` / `P2`.
//! Anything else (JPEG, GIF, BMP, PBM/PPM, …) is rejected with [`ImageError::Unsupported`].
//!
//! * **PNG**: every colour type and bit depth (gray, gray+alpha, RGB, RGBA, palette; 1/2/4/8/16-bit),
//!   interlaced or not; `tRNS` transparency counts as alpha. Gray below 8 bits is scaled to 0..=255,
//!   16-bit samples keep their high byte, colour becomes luma with integer BT.601 weights
//!   `(299 R + 587 G + 114 B + 500) / 1000`. No gamma or colour-profile correction is applied. For an
//!   animated PNG only the default image is read.
//! * **PGM**: binary `P5` and ASCII `P2`; `#` comments run to the end of the line and may appear anywhere in
//!   the header (and between `P2` samples). `maxval` is 1..=65535; samples are scaled to 0..=255 with
//!   round-half-up (`P5` uses two big-endian bytes per sample when `maxval` > 255). A sample above `maxval`
//!   is an error, and the file must hold exactly `width × height` samples: fewer is an error naming how many
//!   bytes (`P5`) or samples (`P2`) were expected and found; anything but whitespace after them is an error.
//! * **Size**: width and height must be 1..=[`MAX_DIMENSION`] (8192); both are checked from the header
//!   before any pixel buffer is allocated. [`load_image`] refuses files over [`MAX_FILE_BYTES`] (512 MiB).
//!
//! # Transparency
//!
//! Alpha is composited away so that transparent pixels become background. The background is chosen from
//! the alpha-weighted mean luma of the image: if it is below 128 (dark ink, e.g. a black digit drawn on a
//! transparent canvas) the image is composited over white, otherwise over black; a fully transparent image
//! is black. Together with the [`Polarity::Auto`] rule this turns both "black digit on transparent" and
//! "white digit on transparent" into a white digit on black.
//!
//! # Model input ([`to_model_input`])
//!
//! 1. **Polarity**: [`Polarity::Auto`] inverts (`255 - v`) when the mean of the border pixels (outermost
//!    rows and columns, each pixel counted once) is above 127, i.e. a dark digit on light paper;
//!    [`Polarity::AsIs`] never inverts; [`Polarity::Invert`] always does.
//! 2. **Padding**: a non-square image is padded to a square of side `max(width, height)` with black (0,
//!    after polarity), centred; when the padding is odd the extra column/row goes right/bottom.
//! 3. **Resizing** to `side × side` by area averaging: each output pixel is the mean of the input it covers,
//!    weighted by exact fractional coverage, rounded half up. Downscaling by an integer factor is the plain
//!    block mean, an image already `side × side` is returned unchanged, and upscaling replicates pixels
//!    (nearest-neighbour-like, with blending only where an output pixel straddles two inputs).
//!
//! A [`GrayImage`] whose `pixels.len()` is not `width × height` (or that is empty) yields an all-black
//! input rather than a panic.

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

/// Largest accepted width or height, in pixels.
pub const MAX_DIMENSION: usize = 8192;

/// Largest image file [`load_image`] reads, in bytes (512 MiB).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// An 8-bit grayscale image, row-major, 0 = black.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Whether [`to_model_input`] inverts the image so that the digit is white on black.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Polarity {
    /// Invert when the image border is on average light (a dark digit on light paper).
    #[default]
    Auto,
    /// Keep the pixels as they are (the image is already white on black).
    AsIs,
    /// Always invert (the image is dark on light).
    Invert,
}

/// Why an image could not be loaded.
#[derive(Debug)]
pub enum ImageError {
    /// The file could not be opened or read.
    Io { path: PathBuf, source: io::Error },
    /// The file claims to be a PNG or PGM but is malformed or truncated.
    Format { path: PathBuf, reason: String },
    /// The file is well formed but not something we accept (other format, too large).
    Unsupported { path: PathBuf, reason: String },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Io { path, source } => write!(f, "cannot read image {}: {source}", path.display()),
            ImageError::Format { path, reason } => write!(f, "invalid image {}: {reason}", path.display()),
            ImageError::Unsupported { path, reason } => write!(f, "unsupported image {}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn format_error(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::Format { path: path.to_path_buf(), reason: reason.into() }
}

fn unsupported(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::Unsupported { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads `path` and decodes it as PNG or PGM, chosen by content (see the module docs).
pub fn load_image(path: &Path) -> Result<GrayImage, ImageError> {
    let io_error = |source| ImageError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unsupported(path, format!("the file is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    decode_image(&bytes, path)
}

/// Decodes an in-memory PNG or PGM file, chosen by content; `path` is only used in error messages.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<GrayImage, ImageError> {
    if bytes.starts_with(&PNG_SIGNATURE) {
        decode_png(bytes, path)
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P2") {
        decode_pgm(bytes, path)
    } else if bytes.is_empty() {
        Err(format_error(path, "the file is empty"))
    } else {
        let reason = match sniff_other_format(bytes) {
            Some(name) => format!("this looks like {name}; only PNG and PGM (P2/P5) are supported"),
            None => "not a PNG or PGM (P2/P5) file".to_string(),
        };
        Err(unsupported(path, reason))
    }
}

fn sniff_other_format(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("a JPEG file")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("a GIF file")
    } else if starts(b"BM") {
        Some("a BMP file")
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("a WebP file")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("a TIFF file")
    } else if starts(b"P1") || starts(b"P4") {
        Some("a PBM (bitmap) file")
    } else if starts(b"P3") || starts(b"P6") {
        Some("a PPM (colour) file")
    } else if starts(b"P7") {
        Some("a PAM file")
    } else if starts(&PNG_SIGNATURE[1..4]) || starts(&PNG_SIGNATURE[..4]) {
        Some("a damaged PNG file (its signature is wrong)")
    } else {
        None
    }
}

/// Checks header dimensions before anything is allocated for the pixels.
fn check_dimensions(width: u64, height: u64, path: &Path) -> Result<(usize, usize), ImageError> {
    if width == 0 || height == 0 {
        return Err(format_error(path, format!("the image has zero size ({width}×{height} pixels)")));
    }
    let max = MAX_DIMENSION as u64;
    if width > max || height > max {
        return Err(unsupported(
            path,
            format!("the image is {width}×{height} pixels; the largest accepted is {max}×{max}"),
        ));
    }
    // Both are at most 8192 here, so they fit in usize and their product does not overflow.
    Ok((width as usize, height as usize))
}

// ---------------------------------------------------------------------------------------------------------
// PNG

fn png_error(error: png::DecodingError, path: &Path) -> ImageError {
    match error {
        png::DecodingError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            format_error(path, "PNG data ends unexpectedly (truncated file)")
        }
        png::DecodingError::LimitsExceeded => unsupported(path, "the PNG needs more memory than allowed to decode"),
        other => format_error(path, format!("bad PNG: {other}")),
    }
}

/// Rejects palette chunks that png 0.18.1 does not validate and panics on
/// (image-rs/image-png#694: a PLTE length that is not a multiple of 3; a
/// tRNS with more entries than the palette). Walks the chunks before the
/// image data; anything else malformed is left to the decoder's errors.
fn check_palette_chunks(bytes: &[u8], path: &Path) -> Result<(), ImageError> {
    let color_type = bytes.get(25).copied();
    let mut palette_entries = None;
    let mut at = PNG_SIGNATURE.len();
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        match &header[4..8] {
            b"PLTE" if !len.is_multiple_of(3) || len > 768 => {
                return Err(format_error(
                    path,
                    format!("bad PNG: PLTE chunk of {len} bytes is not 1 to 256 RGB entries"),
                ));
            }
            b"PLTE" => palette_entries = Some(len / 3),
            b"tRNS" if color_type == Some(3) && len > palette_entries.unwrap_or(0) => {
                return Err(format_error(
                    path,
                    format!("bad PNG: tRNS chunk has {len} entries for a palette of {}", palette_entries.unwrap_or(0)),
                ));
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        at = at.saturating_add(12).saturating_add(len);
    }
    Ok(())
}

/// Decodes a PNG file of any colour type and bit depth to 8-bit gray (see the module docs).
pub fn decode_png(bytes: &[u8], path: &Path) -> Result<GrayImage, ImageError> {
    check_palette_chunks(bytes, path)?;
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let (width, height, interlaced) = {
        let info = decoder.read_header_info().map_err(|e| png_error(e, path))?;
        (info.width, info.height, info.interlaced)
    };
    let (width, height) = check_dimensions(u64::from(width), u64::from(height), path)?;
    let mut reader = decoder.read_info().map_err(|e| png_error(e, path))?;

    let (color, depth) = reader.output_color_type();
    let channels = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(unsupported(path, "palette PNG was not expanded")),
    };
    if depth != png::BitDepth::Eight {
        return Err(unsupported(path, format!("PNG decoded to {depth:?} bits per sample, not 8")));
    }
    let has_alpha = channels % 2 == 0;
    let pixel_count = width * height;
    let mut pixels = GrayAlpha {
        width,
        channels,
        gray: Vec::with_capacity(pixel_count),
        alpha: Vec::with_capacity(if has_alpha { pixel_count } else { 0 }),
    };

    if interlaced {
        // Adam7 rows arrive pass by pass; let the decoder assemble the full frame.
        let size = reader.output_buffer_size().ok_or_else(|| unsupported(path, "the PNG is too large to decode"))?;
        let mut frame = vec![0u8; size];
        let out = reader.next_frame(&mut frame).map_err(|e| png_error(e, path))?;
        if out.line_size == 0 {
            return Err(format_error(path, "PNG frame has empty rows"));
        }
        for row in frame.chunks_exact(out.line_size).take(height) {
            pixels.push_row(row);
        }
    } else {
        // Row by row, so only the gray result is ever held in full.
        for y in 0..height {
            match reader.next_row().map_err(|e| png_error(e, path))? {
                Some(row) => pixels.push_row(row.data()),
                None => return Err(format_error(path, format!("PNG image data ends after {y} of {height} rows"))),
            }
        }
    }
    if pixels.gray.len() != pixel_count {
        return Err(format_error(
            path,
            format!("PNG decoded to {} pixels instead of {width}×{height}", pixels.gray.len()),
        ));
    }

    let GrayAlpha { mut gray, alpha, .. } = pixels;
    if has_alpha {
        composite_alpha(&mut gray, &alpha);
    }
    Ok(GrayImage { width, height, pixels: gray })
}

/// Gray (and alpha) accumulated from 8-bit rows of 1–4 channels.
struct GrayAlpha {
    width: usize,
    channels: usize,
    gray: Vec<u8>,
    alpha: Vec<u8>,
}

impl GrayAlpha {
    fn push_row(&mut self, row: &[u8]) {
        for px in row.chunks_exact(self.channels).take(self.width) {
            match *px {
                [g] => self.gray.push(g),
                [g, a] => {
                    self.gray.push(g);
                    self.alpha.push(a);
                }
                [r, g, b] => self.gray.push(luma(r, g, b)),
                [r, g, b, a] => {
                    self.gray.push(luma(r, g, b));
                    self.alpha.push(a);
                }
                _ => {}
            }
        }
    }
}

/// Integer BT.601 luma, rounded.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    let y = (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000;
    y.min(255) as u8
}

/// Composites `gray` over white when its alpha-weighted mean is dark (below 128), else over black.
fn composite_alpha(gray: &mut [u8], alpha: &[u8]) {
    let (mut weighted, mut total) = (0u64, 0u64);
    for (&g, &a) in gray.iter().zip(alpha) {
        weighted += u64::from(g) * u64::from(a);
        total += u64::from(a);
    }
    let background: u32 = if total > 0 && weighted < 128 * total { 255 } else { 0 };
    for (g, &a) in gray.iter_mut().zip(alpha) {
        let a = u32::from(a);
        *g = ((u32::from(*g) * a + background * (255 - a) + 127) / 255) as u8;
    }
}

// ---------------------------------------------------------------------------------------------------------
// PGM

struct PgmParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl PgmParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace and `#` comments; returns whether anything was skipped.
    fn skip_separators(&mut self) -> bool {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else if b == b'#' {
                self.skip_comment();
            } else {
                break;
            }
        }
        self.pos > start
    }

    /// Skips from `#` up to and including the end of the line.
    fn skip_comment(&mut self) {
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'\n' || b == b'\r' {
                break;
            }
        }
    }

    /// Reads a decimal number that must be preceded by a separator.
    fn number(&mut self, what: &str, path: &Path) -> Result<u64, ImageError> {
        let separated = self.skip_separators();
        let Some(first) = self.peek() else {
            return Err(format_error(path, format!("PGM file ends before its {what}")));
        };
        if !separated || !first.is_ascii_digit() {
            return Err(format_error(
                path,
                format!("expected the {what} (a decimal number) at byte {}, found {:?}", self.pos, first as char),
            ));
        }
        self.digits(what, path)
    }

    /// Reads the digits at the current position; the number must end in a separator or the end of the file.
    fn digits(&mut self, what: &str, path: &Path) -> Result<u64, ImageError> {
        let mut value: u64 = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| format_error(path, format!("the PGM {what} is too large")))?;
            self.pos += 1;
        }
        match self.peek() {
            Some(b) if !b.is_ascii_whitespace() && b != b'#' => {
                Err(format_error(path, format!("unexpected {:?} at byte {} after the PGM {what}", b as char, self.pos)))
            }
            _ => Ok(value),
        }
    }
}

/// Decodes a binary (`P5`) or ASCII (`P2`) PGM file to 8-bit gray (see the module docs).
pub fn decode_pgm(bytes: &[u8], path: &Path) -> Result<GrayImage, ImageError> {
    let binary = match bytes.get(..2) {
        Some(b"P5") => true,
        Some(b"P2") => false,
        _ => return Err(format_error(path, "not a PGM file (it does not start with P5 or P2)")),
    };
    let mut p = PgmParser { bytes, pos: 2 };
    let width = p.number("width", path)?;
    let height = p.number("height", path)?;
    let maxval = p.number("maxval", path)?;
    let (width, height) = check_dimensions(width, height, path)?;
    if !(1..=65535).contains(&maxval) {
        return Err(format_error(path, format!("PGM maxval {maxval} is outside 1..=65535")));
    }
    let maxval = maxval as u32;
    let count = width * height;
    let scale = |v: u32| ((2 * v * 255 + maxval) / (2 * maxval)) as u8;
    let too_big = |v: u32, i: usize| {
        format_error(path, format!("sample {v} at pixel ({}, {}) exceeds maxval {maxval}", i % width, i / width))
    };

    let pixels = if binary {
        // Exactly one whitespace byte ends the header (a comment there runs to the end of its line).
        match p.peek() {
            Some(b'#') => p.skip_comment(),
            Some(_) => p.pos += 1,
            None => {}
        }
        let data = bytes.get(p.pos..).unwrap_or(&[]);
        let sample_bytes = if maxval > 255 { 2 } else { 1 };
        let expected = count * sample_bytes;
        if data.len() < expected {
            return Err(format_error(
                path,
                format!(
                    "truncated PGM pixel data: expected {expected} bytes ({width}×{height} samples of {sample_bytes} \
                     byte(s)), found {}",
                    data.len()
                ),
            ));
        }
        let (data, rest) = data.split_at(expected);
        if !rest.iter().all(u8::is_ascii_whitespace) {
            return Err(format_error(
                path,
                format!("{} unexpected bytes after the {expected} bytes of PGM pixel data", rest.len()),
            ));
        }
        let mut pixels = Vec::with_capacity(count);
        for (i, sample) in data.chunks_exact(sample_bytes).enumerate() {
            let v = match *sample {
                [hi, lo] => u32::from(u16::from_be_bytes([hi, lo])),
                [v] => u32::from(v),
                _ => 0,
            };
            if v > maxval {
                return Err(too_big(v, i));
            }
            pixels.push(scale(v));
        }
        pixels
    } else {
        // Each ASCII sample takes at least two bytes, which bounds the allocation by the file size.
        let remaining = bytes.len().saturating_sub(p.pos);
        let mut pixels = Vec::with_capacity(count.min(remaining / 2 + 1));
        for i in 0..count {
            p.skip_separators();
            let Some(b) = p.peek() else {
                return Err(format_error(
                    path,
                    format!("truncated PGM pixel data: expected {count} samples ({width}×{height}), found {i}"),
                ));
            };
            if !b.is_ascii_digit() {
                return Err(format_error(
                    path,
                    format!("expected a PGM sample (a decimal number) at byte {}, found {:?}", p.pos, b as char),
                ));
            }
            let v = u32::try_from(p.digits("sample", path)?).unwrap_or(u32::MAX);
            if v > maxval {
                return Err(too_big(v, i));
            }
            pixels.push(scale(v));
        }
        p.skip_separators();
        if p.pos < bytes.len() {
            return Err(format_error(
                path,
                format!("unexpected data at byte {} after the {count} PGM samples ({width}×{height})", p.pos),
            ));
        }
        pixels
    };
    Ok(GrayImage { width, height, pixels })
}

// ---------------------------------------------------------------------------------------------------------
// Model input

/// Turns `img` into `side × side` model input: polarity, centred square padding, area-average resize
/// (see the module docs). Returns an empty vector if `side × side` overflows.
pub fn to_model_input(img: &GrayImage, side: usize, polarity: Polarity) -> Vec<u8> {
    let Some(len) = side.checked_mul(side) else {
        return Vec::new();
    };
    let (width, height) = (img.width, img.height);
    let consistent = width > 0
        && height > 0
        && width.checked_mul(height) == Some(img.pixels.len())
        && width.max(height) <= u32::MAX as usize;
    if len == 0 || !consistent {
        return vec![0; len];
    }

    let invert = match polarity {
        Polarity::AsIs => false,
        Polarity::Invert => true,
        Polarity::Auto => border_is_light(img),
    };
    let square = width.max(height);
    let (x0, y0) = ((square - width) / 2, (square - height) / 2);
    let pixel = |x: usize, y: usize| -> u64 {
        let v = img.pixels.get(y * width + x).copied().unwrap_or(0);
        u64::from(if invert { 255 - v } else { v })
    };

    let spans = axis_spans(square, side);
    // Every output pixel covers `square × square` units of area (input pixels are `side × side` units).
    let area = (square as u128) * (square as u128);
    let mut out = Vec::with_capacity(len);
    for row_span in &spans {
        for col_span in &spans {
            let mut sum: u128 = 0;
            for &(py, wy) in row_span {
                let Some(y) = py.checked_sub(y0).filter(|&y| y < height) else { continue };
                // Σ wx ≤ square ≤ 2^32, so the row sum of wx × 255 fits easily in u64.
                let mut row_sum: u64 = 0;
                for &(px, wx) in col_span {
                    if let Some(x) = px.checked_sub(x0).filter(|&x| x < width) {
                        row_sum += wx * pixel(x, y);
                    }
                }
                sum += u128::from(wy) * u128::from(row_sum);
            }
            out.push(((sum + area / 2) / area).min(255) as u8);
        }
    }
    out
}

/// For each of `side` output positions along an axis of `square` input pixels: the input indices it
/// overlaps and the overlap length, in units where an input pixel is `side` long and an output pixel
/// `square` long.
fn axis_spans(square: usize, side: usize) -> Vec<Vec<(usize, u64)>> {
    let (n, m) = (square as u128, side as u128);
    (0..m)
        .map(|o| {
            let (start, end) = (o * n, (o + 1) * n);
            let mut span = Vec::new();
            let mut i = start / m;
            while i < n && i * m < end {
                let overlap = end.min((i + 1) * m) - start.max(i * m);
                // Overlaps are at most min(square, side) ≤ 2^32.
                span.push((i as usize, overlap as u64));
                i += 1;
            }
            span
        })
        .collect()
}

/// Whether the mean of the outermost rows and columns is above 127.
fn border_is_light(img: &GrayImage) -> bool {
    let (w, h) = (img.width, img.height);
    let at = |x: usize, y: usize| u64::from(img.pixels.get(y * w + x).copied().unwrap_or(0));
    let (mut sum, mut count) = (0u64, 0u64);
    for y in 0..h {
        if y == 0 || y + 1 == h {
            for x in 0..w {
                sum += at(x, y);
            }
            count += w as u64;
        } else {
            sum += at(0, y);
            count += 1;
            if w > 1 {
                sum += at(w - 1, y);
                count += 1;
            }
        }
    }
    sum > 127 * count
}

#[cfg(test)]
mod tests {
    use super::*;
    use png::{BitDepth, ColorType};

    fn path() -> &'static Path {
        Path::new("digit-test.img")
    }

    fn gray(width: usize, height: usize, pixels: Vec<u8>) -> GrayImage {
        assert_eq!(pixels.len(), width * height);
        GrayImage { width, height, pixels }
    }

    /// Encodes a PNG with the png crate's encoder.
    fn encode(
        (w, h): (u32, u32),
        color: ColorType,
        depth: BitDepth,
        data: &[u8],
        palette: Option<&[u8]>,
        trns: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(color);
            encoder.set_depth(depth);
            if let Some(palette) = palette {
                encoder.set_palette(palette.to_vec());
            }
            if let Some(trns) = trns {
                encoder.set_trns(trns.to_vec());
            }
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(data).unwrap();
            writer.finish().unwrap();
        }
        out
    }

    fn decode(bytes: &[u8]) -> GrayImage {
        decode_image(bytes, path()).unwrap_or_else(|e| panic!("decode failed: {e}"))
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }

    /// A zlib stream holding `data` in one stored (uncompressed) deflate block.
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(data.len()).unwrap();
        let mut z = vec![0x78, 0x01, 0x01];
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(data);
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        z
    }

    /// A PNG assembled by hand, so headers the encoder refuses (zero or huge sizes) can be tested.
    fn handmade_png(w: u32, h: u32, depth: u8, color_type: u8, interlace: u8, raw: Option<&[u8]>) -> Vec<u8> {
        let mut out = PNG_SIGNATURE.to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color_type, 0, 0, interlace]);
        push_chunk(&mut out, b"IHDR", &ihdr);
        if let Some(raw) = raw {
            push_chunk(&mut out, b"IDAT", &zlib_stored(raw));
        }
        push_chunk(&mut out, b"IEND", &[]);
        out
    }

    fn pattern(w: usize, h: usize) -> Vec<u8> {
        (0..w * h).map(|i| ((i % w) * 37 + (i / w) * 11 + (i * i) % 7) as u8).collect()
    }

    // ----- PNG ---------------------------------------------------------------------------------------

    #[test]
    fn png_gray8_round_trip() {
        let pixels = vec![0, 17, 255, 128, 1, 254];
        let img = decode(&encode((3, 2), ColorType::Grayscale, BitDepth::Eight, &pixels, None, None));
        assert_eq!(img, gray(3, 2, pixels));
    }

    #[test]
    fn png_gray16_keeps_high_byte() {
        let samples: [u16; 4] = [0x0000, 0x12FF, 0xFFFF, 0x8000];
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
        let img = decode(&encode((2, 2), ColorType::Grayscale, BitDepth::Sixteen, &data, None, None));
        assert_eq!(img, gray(2, 2, vec![0, 0x12, 255, 128]));
    }

    #[test]
    fn png_low_bit_depth_gray_scales_to_full_range() {
        let img = decode(&encode((8, 1), ColorType::Grayscale, BitDepth::One, &[0b1010_0001], None, None));
        assert_eq!(img.pixels, vec![255, 0, 255, 0, 0, 0, 0, 255]);
        let img = decode(&encode((3, 1), ColorType::Grayscale, BitDepth::Two, &[0b00_01_11_00], None, None));
        assert_eq!(img.pixels, vec![0, 85, 255]);
        let img = decode(&encode((2, 1), ColorType::Grayscale, BitDepth::Four, &[0x7F], None, None));
        assert_eq!(img.pixels, vec![119, 255]);
    }

    #[test]
    fn png_rgb8_uses_bt601_luma() {
        let data = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30];
        let img = decode(&encode((5, 1), ColorType::Rgb, BitDepth::Eight, &data, None, None));
        // (299 R + 587 G + 114 B + 500) / 1000
        assert_eq!(img.pixels, vec![76, 150, 29, 255, 18]);
    }

    #[test]
    fn png_rgb16_keeps_high_byte_then_luma() {
        let data = [0xFF, 0x00, 0, 0, 0, 0, 0x80, 0xFF, 0x80, 0x00, 0x80, 0x01];
        let img = decode(&encode((2, 1), ColorType::Rgb, BitDepth::Sixteen, &data, None, None));
        assert_eq!(img.pixels, vec![76, 128]);
    }

    #[test]
    fn png_rgba8_dark_ink_on_transparent_goes_over_white() {
        // opaque black, transparent black, transparent white, half-transparent black
        let data = [0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 128];
        let img = decode(&encode((2, 2), ColorType::Rgba, BitDepth::Eight, &data, None, None));
        assert_eq!(img, gray(2, 2, vec![0, 255, 255, 127]));
        // ... which Auto then turns into a white digit on black.
        assert_eq!(to_model_input(&img, 2, Polarity::Auto), vec![255, 0, 0, 128]);
    }

    #[test]
    fn png_rgba8_light_ink_on_transparent_goes_over_black() {
        let data = [255, 255, 255, 255, 200, 200, 200, 0, 255, 255, 255, 51, 100, 100, 100, 255];
        let img = decode(&encode((2, 2), ColorType::Rgba, BitDepth::Eight, &data, None, None));
        assert_eq!(img, gray(2, 2, vec![255, 0, 51, 100]));
    }

    #[test]
    fn png_gray_alpha8_composites() {
        let dark = decode(&encode((2, 1), ColorType::GrayscaleAlpha, BitDepth::Eight, &[0, 255, 200, 0], None, None));
        assert_eq!(dark.pixels, vec![0, 255]);
        let light = decode(&encode((2, 1), ColorType::GrayscaleAlpha, BitDepth::Eight, &[250, 255, 90, 0], None, None));
        assert_eq!(light.pixels, vec![250, 0]);
        let data16 = [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00];
        let img = decode(&encode((2, 1), ColorType::GrayscaleAlpha, BitDepth::Sixteen, &data16, None, None));
        assert_eq!(img.pixels, vec![255, 0]);
    }

    #[test]
    fn png_fully_transparent_is_black() {
        let img = decode(&encode((2, 1), ColorType::GrayscaleAlpha, BitDepth::Eight, &[255, 0, 0, 0], None, None));
        assert_eq!(img.pixels, vec![0, 0]);
    }

    #[test]
    fn png_palette_expands_to_luma() {
        let palette = [0, 0, 0, 255, 255, 255, 255, 0, 0];
        let img = decode(&encode((3, 1), ColorType::Indexed, BitDepth::Two, &[0b00_01_10_00], Some(&palette), None));
        assert_eq!(img.pixels, vec![0, 255, 76]);
        let img = decode(&encode((2, 2), ColorType::Indexed, BitDepth::Eight, &[2, 1, 0, 2], Some(&palette), None));
        assert_eq!(img.pixels, vec![76, 255, 0, 76]);
    }

    #[test]
    fn png_palette_and_gray_trns_count_as_alpha() {
        // Entry 0 is a transparent mid-gray, entry 1 opaque black: dark ink, so composited over white.
        let palette = [128, 128, 128, 0, 0, 0];
        let img = decode(&encode((2, 1), ColorType::Indexed, BitDepth::Eight, &[0, 1], Some(&palette), Some(&[0])));
        assert_eq!(img.pixels, vec![255, 0]);
        // Gray 100 is the transparent colour; the opaque pixel is white, so over black.
        let img = decode(&encode((2, 1), ColorType::Grayscale, BitDepth::Eight, &[100, 255], None, Some(&[0, 100])));
        assert_eq!(img.pixels, vec![0, 255]);
    }

    #[test]
    fn png_interlaced_is_deinterlaced() {
        let (w, h) = (5usize, 5usize);
        let pixels: Vec<u8> = (0..w * h).map(|i| (i * 10) as u8).collect();
        let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in passes {
            let xs: Vec<usize> = (x0..w).step_by(dx).collect();
            if xs.is_empty() {
                continue;
            }
            for y in (y0..h).step_by(dy) {
                raw.push(0); // filter type None
                raw.extend(xs.iter().map(|&x| pixels[y * w + x]));
            }
        }
        let img = decode(&handmade_png(5, 5, 8, 0, 1, Some(&raw)));
        assert_eq!(img, gray(w, h, pixels));
    }

    #[test]
    fn png_handmade_non_interlaced_sanity() {
        let raw = [0, 1, 2, 3, 0, 4, 5, 6];
        let img = decode(&handmade_png(3, 2, 8, 0, 0, Some(&raw)));
        assert_eq!(img, gray(3, 2, vec![1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn png_zero_size_header_is_rejected() {
        for (w, h) in [(0, 5), (5, 0), (0, 0)] {
            let err = decode_image(&handmade_png(w, h, 8, 0, 0, None), path()).unwrap_err();
            assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
            assert!(err.to_string().contains("digit-test.img"), "{err}");
        }
    }

    #[test]
    fn png_huge_header_is_rejected_before_decoding() {
        // No image data follows: reaching the decoder would give a "missing data" format error instead.
        for (w, h) in [(100_000, 100_000), (8193, 1), (1, 8193), (u32::MAX >> 1, u32::MAX >> 1)] {
            let err = decode_image(&handmade_png(w, h, 16, 6, 0, None), path()).unwrap_err();
            assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains(&format!("{w}×{h}")) && text.contains("8192×8192"), "{text}");
        }
        // The largest accepted size passes the size check (and then fails on the missing data).
        let err = decode_image(&handmade_png(8192, 8192, 8, 0, 0, None), path()).unwrap_err();
        assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
    }

    #[test]
    fn png_garbage_and_truncation_are_errors_not_panics() {
        let good = encode((28, 28), ColorType::Rgba, BitDepth::Eight, &pattern(28 * 4, 28), None, None);
        assert!(decode_image(&good, path()).is_ok());
        let err = decode_image(&good[..good.len() / 2], path()).unwrap_err();
        assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
        for len in 0..good.len() {
            let _ = decode_image(&good[..len], path());
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..300 {
            let mut bad = good.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = 8 + (seed as usize) % (bad.len() - 8);
                bad[at] = (seed >> 32) as u8;
            }
            let _ = decode_image(&bad, path());
        }
        let mut junk = PNG_SIGNATURE.to_vec();
        junk.extend_from_slice(b"this is not a chunk stream at all");
        let err = decode_image(&junk, path()).unwrap_err();
        assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
        assert!(decode_image(&PNG_SIGNATURE, path()).is_err());
    }

    // ----- PGM ---------------------------------------------------------------------------------------

    #[test]
    fn pgm_p5_maxval_65535_with_comments() {
        let mut file = b"P5\n# written by a test\n4 # width\n1\n# maxval next\n65535\n".to_vec();
        for v in [0u16, 25700, 32768, 65535] {
            file.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(decode(&file), gray(4, 1, vec![0, 100, 128, 255]));
    }

    #[test]
    fn pgm_p5_maxval_15_and_255() {
        let mut file = b"P5 4 1 15\n".to_vec();
        file.extend_from_slice(&[0, 7, 8, 15]);
        assert_eq!(decode(&file), gray(4, 1, vec![0, 119, 136, 255]));
        // A comment right after maxval ends the header at its end of line; a raster byte may be whitespace.
        let mut file = b"P5 2 2 255# comment\n".to_vec();
        file.extend_from_slice(&[b' ', 1, 200, b'\n']);
        assert_eq!(decode(&file), gray(2, 2, vec![32, 1, 200, 10]));
        // maxval 1 (bitmap-like) and rounding half up with an odd maxval: 1/3 → 85, 2/3 → 170.
        assert_eq!(decode(b"P5 2 1 1\n\x00\x01").pixels, vec![0, 255]);
        assert_eq!(decode(b"P5 2 1 3\n\x01\x02").pixels, vec![85, 170]);
        // 1 * 255 / 2 = 127.5 rounds up.
        assert_eq!(decode(b"P5 1 1 2\n\x01").pixels, vec![128]);
    }

    #[test]
    fn pgm_p2_maxval_15_with_comments() {
        let file = b"P2\n# an ASCII graymap\n4 2\n# another comment\n15\n0 15 7 8\n1 2 # trailing comment\n3\t14\n";
        assert_eq!(decode(file), gray(4, 2, vec![0, 255, 119, 136, 17, 34, 51, 238]));
    }

    #[test]
    fn pgm_p2_maxval_65535() {
        assert_eq!(decode(b"P2 3 1 65535 32768 65535 25700").pixels, vec![128, 255, 100]);
    }

    #[test]
    fn pgm_truncated_p5_names_expected_and_found_bytes() {
        let mut file = b"P5 3 2 255\n".to_vec();
        file.extend_from_slice(&[1, 2, 3, 4]);
        let err = decode_image(&file, path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
        assert!(text.contains("expected 6 bytes") && text.contains("found 4"), "{text}");
        assert!(text.contains("digit-test.img"), "{text}");

        let mut file = b"P5 3 1 1000\n".to_vec();
        file.extend_from_slice(&[0, 1, 0, 2, 0]);
        let text = decode_image(&file, path()).unwrap_err().to_string();
        assert!(text.contains("expected 6 bytes") && text.contains("found 5"), "{text}");

        let text = decode_image(b"P5 3 1 255", path()).unwrap_err().to_string();
        assert!(text.contains("expected 3 bytes") && text.contains("found 0"), "{text}");
    }

    #[test]
    fn pgm_truncated_p2_names_expected_and_found_samples() {
        let text = decode_image(b"P2 3 2 255\n1 2 3\n4\n", path()).unwrap_err().to_string();
        assert!(text.contains("expected 6 samples") && text.contains("found 4"), "{text}");
    }

    #[test]
    fn pgm_wrong_sample_count_or_values_are_errors() {
        let cases: [&[u8]; 9] = [
            b"P5 1 1 255\n\x01\x02",     // one byte too many
            b"P2 2 1 255\n1 2 3",        // one sample too many
            b"P2 2 1 15\n1 16",          // sample above maxval
            b"P5 2 1 15\n\x01\x10",      // binary sample above maxval
            b"P2 2 1 255\n1 x",          // not a number
            b"P2 2 1 255\n1 2x",         // number glued to junk
            b"P5 2 1 256\n\x01\x00\xff", // odd byte out with 16-bit samples
            b"P2 1 1 255\n99999999999999999999999",
            b"P5 1 1 65535\n\xff\xff junk",
        ];
        for case in cases {
            let err = decode_image(case, path()).unwrap_err();
            assert!(matches!(err, ImageError::Format { .. }), "{:?}: {err:?}", String::from_utf8_lossy(case));
        }
        let text = decode_image(b"P2 2 1 15\n1 16", path()).unwrap_err().to_string();
        assert!(text.contains("16") && text.contains("exceeds maxval 15"), "{text}");
    }

    #[test]
    fn pgm_bad_headers_are_errors() {
        let cases: [&[u8]; 10] = [
            b"P5",
            b"P5 abc 1 255\n\x00",
            b"P5 3",
            b"P5 3 1",
            b"P53 1 255\n\x00\x00\x00",
            b"P5 1 1 0\n\x00",
            b"P5 1 1 65536\n\x00\x00",
            b"P5 1 1 255x\x00",
            b"P5 99999999999999999999999 1 255\n",
            b"P5 -1 1 255\n",
        ];
        for case in cases {
            let err = decode_image(case, path()).unwrap_err();
            assert!(matches!(err, ImageError::Format { .. }), "{:?}: {err:?}", String::from_utf8_lossy(case));
        }
        assert!(decode_pgm(b"P6 1 1 255\n\x00\x00\x00", path()).is_err());
        assert!(decode_pgm(b"", path()).is_err());
    }

    #[test]
    fn pgm_zero_size_and_huge_headers_are_rejected_before_reading_pixels() {
        let err = decode_image(b"P5 0 5 255\n", path()).unwrap_err();
        assert!(matches!(err, ImageError::Format { .. }) && err.to_string().contains("zero size"), "{err}");
        let err = decode_image(b"P2 5 0 255\n", path()).unwrap_err();
        assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
        // Only three pixel bytes: a truncation error would mean the size was not checked first.
        for header in [&b"P5 100000 100000 255\n\x00\x00\x00"[..], b"P2 8193 1 255\n1 2 3", b"P5 1 4294967297 255\n"] {
            let err = decode_image(header, path()).unwrap_err();
            assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
            assert!(err.to_string().contains("8192×8192"), "{err}");
        }
    }

    #[test]
    fn pgm_fuzzed_inputs_do_not_panic() {
        let base = b"P2\n# c\n3 2\n255\n0 10 20\n30 40 255\n".to_vec();
        let mut binary = b"P5 3 2 65535\n".to_vec();
        binary.extend((0u8..12).map(|i| i * 3));
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for base in [base, binary] {
            for len in 0..=base.len() {
                let _ = decode_image(&base[..len], path());
            }
            for _ in 0..500 {
                let mut bad = base.clone();
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % bad.len();
                bad[at] = [b' ', b'#', b'\n', b'0', b'9', b'P', 0, 255][(seed >> 40) as usize % 8];
                let _ = decode_image(&bad, path());
            }
        }
    }

    // ----- Sniffing and files ------------------------------------------------------------------------

    #[test]
    fn garbage_and_other_formats_are_rejected() {
        let err = decode_image(b"hello, world", path()).unwrap_err();
        assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("digit-test.img") && err.to_string().contains("PNG"), "{err}");
        let jpeg = decode_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], path()).unwrap_err().to_string();
        assert!(jpeg.contains("JPEG"), "{jpeg}");
        let ppm = decode_image(b"P6 1 1 255\n\x00\x00\x00", path()).unwrap_err().to_string();
        assert!(ppm.contains("PPM"), "{ppm}");
        let empty = decode_image(b"", path()).unwrap_err();
        assert!(matches!(empty, ImageError::Format { .. }) && empty.to_string().contains("empty"), "{empty}");
        let err = decode_png(b"P5 1 1 255\n\x00", path()).unwrap_err();
        assert!(matches!(err, ImageError::Format { .. }), "{err:?}");
    }

    #[test]
    fn load_image_detects_format_by_content_not_extension() {
        let dir = std::env::temp_dir().join(format!("microvit-image-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png_named_pgm = dir.join("digit.pgm");
        std::fs::write(&png_named_pgm, encode((2, 1), ColorType::Grayscale, BitDepth::Eight, &[9, 8], None, None))
            .unwrap();
        assert_eq!(load_image(&png_named_pgm).unwrap(), gray(2, 1, vec![9, 8]));
        let pgm_named_png = dir.join("digit.png");
        std::fs::write(&pgm_named_png, b"P2 2 1 255 7 6").unwrap();
        assert_eq!(load_image(&pgm_named_png).unwrap(), gray(2, 1, vec![7, 6]));

        let missing = dir.join("missing.png");
        let err = load_image(&missing).unwrap_err();
        assert!(matches!(err, ImageError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.png"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        let err = load_image(&dir).unwrap_err();
        assert!(matches!(err, ImageError::Io { .. }), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // ----- to_model_input ----------------------------------------------------------------------------

    #[test]
    fn model_input_28x28_as_is_is_identity() {
        let img = gray(28, 28, pattern(28, 28));
        assert_eq!(to_model_input(&img, 28, Polarity::AsIs), img.pixels);
        let inverted: Vec<u8> = img.pixels.iter().map(|v| 255 - v).collect();
        assert_eq!(to_model_input(&img, 28, Polarity::Invert), inverted);
    }

    #[test]
    fn model_input_56x56_is_2x2_block_mean_rounded_half_up() {
        let mut pixels = pattern(56, 56);
        pixels[..2].copy_from_slice(&[1, 1]);
        pixels[56..58].copy_from_slice(&[0, 0]); // block (0, 0) sums to 2: mean 0.5 → 1
        pixels[2..4].copy_from_slice(&[1, 0]);
        pixels[58..60].copy_from_slice(&[0, 0]); // block (1, 0) sums to 1: mean 0.25 → 0
        let img = gray(56, 56, pixels);
        let out = to_model_input(&img, 28, Polarity::AsIs);
        assert_eq!((out[0], out[1]), (1, 0));
        for y in 0..28 {
            for x in 0..28 {
                let p = |dx, dy| u32::from(img.pixels[(2 * y + dy) * 56 + 2 * x + dx]);
                let sum = p(0, 0) + p(1, 0) + p(0, 1) + p(1, 1);
                assert_eq!(u32::from(out[y * 28 + x]), (sum + 2) / 4, "at ({x}, {y})");
            }
        }
    }

    #[test]
    fn model_input_fractional_downscale_and_upscale() {
        // 3×3 → 2×2: output (0, 0) covers input [0, 1.5)², weights 4:2:2:1 out of 9; the centre pixel
        // contributes a quarter of its area (1/9 of the output pixel) to each output pixel.
        let img = gray(3, 3, vec![90, 0, 0, 0, 9, 0, 0, 0, 0]);
        assert_eq!(to_model_input(&img, 2, Polarity::AsIs), vec![41, 1, 1, 1]);
        // 14×14 → 28×28 replicates each pixel into a 2×2 block.
        let small = gray(14, 14, pattern(14, 14));
        let out = to_model_input(&small, 28, Polarity::AsIs);
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(out[y * 28 + x], small.pixels[(y / 2) * 14 + x / 2]);
            }
        }
    }

    #[test]
    fn model_input_pads_non_square_centred() {
        let mut img = gray(20, 28, vec![200; 20 * 28]);
        img.pixels[0] = 77;
        let out = to_model_input(&img, 28, Polarity::AsIs);
        for y in 0..28 {
            for x in 0..28 {
                let expected = if !(4..24).contains(&x) {
                    0
                } else if (x, y) == (4, 0) {
                    77
                } else {
                    200
                };
                assert_eq!(out[y * 28 + x], expected, "at ({x}, {y})");
            }
        }
        // Wide image: rows are padded; odd padding puts the extra row at the bottom.
        let wide = gray(4, 1, vec![10, 20, 30, 40]);
        assert_eq!(to_model_input(&wide, 4, Polarity::AsIs), [vec![0; 4], vec![10, 20, 30, 40], vec![0; 8]].concat());
        let narrow = gray(3, 4, vec![50; 12]);
        assert_eq!(to_model_input(&narrow, 4, Polarity::AsIs), [50, 50, 50, 0].repeat(4));
    }

    #[test]
    fn model_input_auto_inverts_black_on_white_only() {
        // A dark "1" stroke on white paper.
        let mut paper = vec![255u8; 28 * 28];
        for y in 4..24 {
            paper[y * 28 + 13] = 0;
            paper[y * 28 + 14] = 30;
        }
        let black_on_white = gray(28, 28, paper);
        let expected: Vec<u8> = black_on_white.pixels.iter().map(|v| 255 - v).collect();
        assert_eq!(to_model_input(&black_on_white, 28, Polarity::Auto), expected);
        // The same digit white on black is left alone.
        let white_on_black = gray(28, 28, expected.clone());
        assert_eq!(to_model_input(&white_on_black, 28, Polarity::Auto), expected);
        // Padding stays black after inversion.
        let mut tall = gray(20, 28, vec![255; 20 * 28]);
        tall.pixels[14 * 20 + 10] = 0;
        let out = to_model_input(&tall, 28, Polarity::Auto);
        assert_eq!(out.iter().filter(|&&v| v != 0).count(), 1);
        assert_eq!(out[14 * 28 + 14], 255);
    }

    #[test]
    fn model_input_auto_threshold_is_border_mean_above_127() {
        let ring = |border: u8| {
            let mut p = vec![border; 5 * 5];
            p[12] = 60; // centre, not part of the border
            gray(5, 5, p)
        };
        assert_eq!(to_model_input(&ring(127), 5, Polarity::Auto)[12], 60);
        assert_eq!(to_model_input(&ring(128), 5, Polarity::Auto)[12], 195);
        // Border mean of a 3×1 image counts every pixel once: (0 + 255 + 255) / 3 = 170 > 127.
        assert_eq!(to_model_input(&gray(3, 1, vec![0, 255, 255]), 3, Polarity::Auto)[3..6], [255, 0, 0]);
    }

    #[test]
    fn model_input_all_white_image() {
        let white = gray(10, 7, vec![255; 70]);
        assert_eq!(to_model_input(&white, 28, Polarity::Auto), vec![0; 784]);
        assert_eq!(to_model_input(&white, 28, Polarity::Invert), vec![0; 784]);
        let as_is = to_model_input(&gray(28, 28, vec![255; 784]), 28, Polarity::AsIs);
        assert_eq!(as_is, vec![255; 784]);
    }

    #[test]
    fn model_input_one_pixel_image() {
        assert_eq!(to_model_input(&gray(1, 1, vec![200]), 28, Polarity::AsIs), vec![200; 784]);
        assert_eq!(to_model_input(&gray(1, 1, vec![200]), 28, Polarity::Auto), vec![55; 784]);
        assert_eq!(to_model_input(&gray(1, 1, vec![100]), 28, Polarity::Auto), vec![100; 784]);
        assert_eq!(to_model_input(&gray(1, 1, vec![100]), 1, Polarity::Invert), vec![155]);
    }

    #[test]
    fn model_input_degenerate_inputs_do_not_panic() {
        let short = GrayImage { width: 4, height: 4, pixels: vec![255; 3] };
        assert_eq!(to_model_input(&short, 28, Polarity::Auto), vec![0; 784]);
        let empty = GrayImage { width: 0, height: 5, pixels: Vec::new() };
        assert_eq!(to_model_input(&empty, 3, Polarity::Invert), vec![0; 9]);
        let lying = GrayImage { width: usize::MAX, height: 2, pixels: vec![1, 2] };
        assert_eq!(to_model_input(&lying, 2, Polarity::AsIs), vec![0; 4]);
        assert!(to_model_input(&gray(2, 2, vec![1; 4]), 0, Polarity::AsIs).is_empty());
        assert!(to_model_input(&gray(2, 2, vec![1; 4]), usize::MAX, Polarity::AsIs).is_empty());
    }

    #[test]
    fn decoded_digit_end_to_end() {
        // A dark digit drawn on white paper, saved as a 56×40 RGB PNG, becomes a centred white digit.
        let (w, h) = (56usize, 40usize);
        let mut rgb = vec![255u8; w * h * 3];
        for y in 10..30 {
            for x in 26..30 {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[0, 0, 0]);
            }
        }
        let img = decode(&encode((w as u32, h as u32), ColorType::Rgb, BitDepth::Eight, &rgb, None, None));
        let out = to_model_input(&img, 28, Polarity::default());
        // Square 56 (8 rows of padding above), halved: the stroke covers columns 13..15, rows 9..19.
        for y in 0..28 {
            for x in 0..28 {
                let on = (13..15).contains(&x) && (9..19).contains(&y);
                assert_eq!(out[y * 28 + x], if on { 255 } else { 0 }, "at ({x}, {y})");
            }
        }
    }
}
