//! Image files for `microvit classify` and `explain`: decoded by the `image`
//! crate within limits, then handed to the engine's MNIST-style
//! preprocessing (docs/PREPROCESSING.md) as 8-bit gray, RGB or RGBA.
//!
//! - **Formats**, chosen by content, never by extension: PNG, JPEG, GIF (the
//!   first frame), BMP, WebP, TIFF and PNM (PBM, PGM, PPM, PAM). 16-bit
//!   samples keep their high byte; palettes are expanded; EXIF orientation
//!   (phone photos) is applied. No gamma or colour-profile correction.
//! - **Limits**: files must be regular files of at most [`MAX_FILE_BYTES`];
//!   width and height at most [`MAX_SIDE`], checked from the header before
//!   anything is decoded; the decoded image may take at most
//!   [`MAX_DECODE_BYTES`], also checked from the header. PNG, the format of
//!   screenshots and drawing apps, is decoded row by row straight to 8 bits
//!   per sample, so a 16-bit PNG costs what an 8-bit one does.

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use microvit_engine::preprocess::{PixelFormat, SourceImage};

/// Largest accepted width or height, in pixels: the engine's limit.
pub const MAX_SIDE: usize = microvit_engine::preprocess::MAX_SIDE;

/// Largest image file read, in bytes (256 MiB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Most memory a decoded image may take (256 MiB: an 8192 × 8192 RGBA
/// image at 8 bits per sample). Formats other than PNG decode 16-bit
/// samples at 16 bits first, so such images are refused sooner.
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// A decoded image: 8 bits per sample, rows packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    /// [`PixelFormat::Gray8`], [`PixelFormat::Rgb8`] or [`PixelFormat::Rgba8`].
    pub format: PixelFormat,
    pub pixels: Vec<u8>,
}

impl Picture {
    /// The picture as the engine's preprocessing reads it.
    pub fn source(&self) -> SourceImage<'_> {
        SourceImage::packed(&self.pixels, self.format, self.width, self.height)
            .expect("a decoded picture is within the engine's limits")
    }
}

/// Why an image could not be loaded.
#[derive(Debug)]
pub enum ImageError {
    /// The file could not be opened or read.
    Io { path: PathBuf, source: io::Error },
    /// The file is an image of a known format, but malformed or truncated.
    Format { path: PathBuf, reason: String },
    /// The file is not something we accept: another format, too large, not
    /// a regular file.
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

/// Reads and decodes the image at `path` (see the module docs).
pub fn load_image(path: &Path) -> Result<Picture, ImageError> {
    let io_error = |source| ImageError::Io { path: path.to_path_buf(), source };
    // Before opening: opening a FIFO with no writer would block for ever.
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if meta.is_dir() {
        return Err(io_error(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")));
    }
    if !meta.is_file() {
        return Err(unsupported(path, "not a regular file (a FIFO, socket or device)"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(unsupported(path, format!("the file is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)).map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unsupported(path, format!("the file is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    decode_image(&bytes, path)
}

/// Decodes an image file held in memory; `path` only names it in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<Picture, ImageError> {
    if bytes.is_empty() {
        return Err(format_error(path, "the file is empty"));
    }
    let format = sniff(bytes, path)?;
    if format == ImageFormat::Png {
        check_palette_chunks(bytes, path)?;
        return decode_png(bytes, path);
    }
    let name = format_name(format);
    let decode_error = |e| image_error(e, name, path);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // The sides are checked here, from the header, for a message that
    // names them; the allocation limit stays with the decoder.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(format_error(path, format!("the image has zero size ({width}×{height} pixels)")));
    }
    if width as usize > MAX_SIDE || height as usize > MAX_SIDE {
        return Err(unsupported(
            path,
            format!("the image is {width}×{height} pixels; the largest accepted is {MAX_SIDE}×{MAX_SIDE}"),
        ));
    }
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(too_large_to_decode(path, name, decoder.total_bytes()));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    picture_of(img)
}

fn too_large_to_decode(path: &Path, format: &str, bytes: u64) -> ImageError {
    unsupported(
        path,
        format!(
            "the {format} image needs {} MiB to decode, more than the {} MiB accepted (save it with 8 bits per sample, \
             or smaller)",
            bytes.div_ceil(1 << 20),
            MAX_DECODE_BYTES >> 20
        ),
    )
}

/// The engine's view of a decoded image: gray, RGB or RGBA at 8 bits.
fn picture_of(img: DynamicImage) -> Result<Picture, ImageError> {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let (format, pixels) = if img.color().has_alpha() {
        (PixelFormat::Rgba8, img.into_rgba8().into_raw())
    } else if img.color().has_color() {
        (PixelFormat::Rgb8, img.into_rgb8().into_raw())
    } else {
        (PixelFormat::Gray8, img.into_luma8().into_raw())
    };
    Ok(Picture { width, height, format, pixels })
}

/// Decodes a PNG with the png crate, row by row into the one buffer the
/// engine reads: 16-bit samples keep their high byte as they are read
/// (`STRIP_16`), palettes and low bit depths are expanded (`EXPAND`), gray
/// with alpha becomes RGBA. Peak memory is the file plus that buffer (at
/// most [`MAX_DECODE_BYTES`]) plus a row, whatever the bit depth or
/// interlacing.
fn decode_png(bytes: &[u8], path: &Path) -> Result<Picture, ImageError> {
    use png::{BitDepth, ColorType, Transformations};
    let decode_error = |e: png::DecodingError| png_error(e, path);
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    // The png crate's own allocation limit covers its chunk buffers; the
    // image buffer is checked below, from the header.
    decoder.set_limits(png::Limits { bytes: MAX_DECODE_BYTES as usize });
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    if width == 0 || height == 0 {
        return Err(format_error(path, format!("the image has zero size ({width}×{height} pixels)")));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(unsupported(
            path,
            format!("the image is {width}×{height} pixels; the largest accepted is {MAX_SIDE}×{MAX_SIDE}"),
        ));
    }
    let (format, gray_alpha) = match reader.output_color_type() {
        (ColorType::Grayscale, BitDepth::Eight) => (PixelFormat::Gray8, false),
        (ColorType::Rgb, BitDepth::Eight) => (PixelFormat::Rgb8, false),
        (ColorType::Rgba, BitDepth::Eight) => (PixelFormat::Rgba8, false),
        (ColorType::GrayscaleAlpha, BitDepth::Eight) => (PixelFormat::Rgba8, true),
        // EXPAND | STRIP_16 leaves 8-bit gray, gray+alpha, RGB or RGBA.
        (color, depth) => return Err(format_error(path, format!("bad PNG: decodes to {color:?} at {depth:?}"))),
    };
    let bpp = format.bytes_per_pixel();
    let samples = if gray_alpha { 2 } else { bpp };
    if reader.output_line_size(width as u32) != Some(width * samples) {
        return Err(format_error(path, "bad PNG: rows of an unexpected length"));
    }
    let size = (width * height * bpp) as u64;
    if size > MAX_DECODE_BYTES {
        return Err(too_large_to_decode(path, "PNG", size));
    }
    let mut pixels = vec![0u8; width * height * bpp];
    let mut rgba_row = Vec::new();
    let mut next_line = 0;
    while let Some(row) = reader.next_interlaced_row().map_err(decode_error)? {
        let interlace = *row.interlace();
        let data = if gray_alpha {
            rgba_row.clear();
            rgba_row.extend(row.data().chunks_exact(2).flat_map(|ga| [ga[0], ga[0], ga[0], ga[1]]));
            &rgba_row[..]
        } else {
            row.data()
        };
        match interlace {
            // Rows come top to bottom (the line number is not public).
            png::InterlaceInfo::Null(_) => {
                pixels[next_line * width * bpp..][..width * bpp].copy_from_slice(data);
                next_line += 1;
            }
            png::InterlaceInfo::Adam7(info) => {
                png::expand_interlaced_row(&mut pixels, width * bpp, data, &info, 8 * bpp as u8);
            }
        }
    }
    reader.finish().map_err(decode_error)?;
    let orientation = reader
        .info()
        .exif_metadata
        .as_deref()
        .and_then(image::metadata::Orientation::from_exif_chunk)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let picture = Picture { width, height, format, pixels };
    if orientation == image::metadata::Orientation::NoTransforms {
        return Ok(picture);
    }
    let mut img = match format {
        PixelFormat::Gray8 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(width as u32, height as u32, picture.pixels).expect("sized above"),
        ),
        PixelFormat::Rgb8 => DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(width as u32, height as u32, picture.pixels).expect("sized above"),
        ),
        _ => DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(width as u32, height as u32, picture.pixels).expect("sized above"),
        ),
    };
    img.apply_orientation(orientation);
    picture_of(img)
}

/// The user-facing reading of a png crate error.
fn png_error(e: png::DecodingError, path: &Path) -> ImageError {
    match e {
        png::DecodingError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            format_error(path, "PNG data ends unexpectedly (truncated file)")
        }
        png::DecodingError::LimitsExceeded => {
            unsupported(path, format!("the PNG image needs more than {} MiB to decode", MAX_DECODE_BYTES >> 20))
        }
        other => format_error(path, format!("bad PNG: {other}")),
    }
}

/// The format of `bytes`, from their first bytes.
fn sniff(bytes: &[u8], path: &Path) -> Result<ImageFormat, ImageError> {
    const READ: [ImageFormat; 7] = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::WebP,
        ImageFormat::Tiff,
        ImageFormat::Pnm,
    ];
    match image::guess_format(bytes) {
        Ok(f) if READ.contains(&f) => Ok(f),
        Ok(f) => Err(unsupported(
            path,
            format!("{} files are not read; use PNG, JPEG, GIF, BMP, WebP, TIFF or PNM", format_name(f)),
        )),
        Err(_) => {
            let starts = |magic: &[u8]| bytes.starts_with(magic);
            let hint = if bytes.get(4..12).is_some_and(|b| {
                b.starts_with(b"ftyp") && (b.ends_with(b"heic") || b.ends_with(b"heix") || b.ends_with(b"mif1"))
            }) {
                "this looks like a HEIC/HEIF photo; convert it to JPEG or PNG first"
            } else if starts(&[0x89, b'P', b'N']) || starts(b"\x89PNG") {
                "this looks like a damaged PNG file (its signature is wrong)"
            } else {
                "not an image file this tool reads (PNG, JPEG, GIF, BMP, WebP, TIFF or PNM)"
            };
            Err(unsupported(path, hint))
        }
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::WebP => "WebP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Pnm => "PNM",
        ImageFormat::Avif => "AVIF",
        ImageFormat::Ico => "ICO",
        ImageFormat::Hdr => "HDR",
        ImageFormat::OpenExr => "OpenEXR",
        ImageFormat::Tga => "TGA",
        ImageFormat::Dds => "DDS",
        ImageFormat::Qoi => "QOI",
        ImageFormat::Farbfeld => "farbfeld",
        _ => "this image format's",
    }
}

/// The user-facing reading of an `image` crate error.
fn image_error(e: image::ImageError, format: &str, path: &Path) -> ImageError {
    use image::error::{LimitErrorKind, ParameterErrorKind};
    match e {
        image::ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => unsupported(
                path,
                format!("the {format} image is larger than {MAX_SIDE}×{MAX_SIDE} pixels, the largest accepted"),
            ),
            _ => unsupported(
                path,
                format!("the {format} image needs more than {} MiB to decode", MAX_DECODE_BYTES >> 20),
            ),
        },
        image::ImageError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            format_error(path, format!("{format} data ends unexpectedly (truncated file)"))
        }
        image::ImageError::Unsupported(u) => unsupported(path, format!("{format}: {u}")),
        image::ImageError::Parameter(p) if matches!(p.kind(), ParameterErrorKind::DimensionMismatch) => {
            format_error(path, format!("bad {format}: {p}"))
        }
        // The decoder's own words, without the crate's "Format error
        // decoding X:" preamble.
        image::ImageError::Decoding(d) => {
            let detail = std::error::Error::source(&d).map_or_else(|| d.to_string(), |e| e.to_string());
            format_error(path, format!("bad {format}: {detail}"))
        }
        other => format_error(path, format!("bad {format}: {other}")),
    }
}

/// Rejects palette chunks that png 0.18.1 (under the image crate) does not
/// validate and panics on (image-rs/image-png#694: a PLTE length that is
/// not a multiple of 3; a tRNS with more entries than the palette). Walks
/// the chunks before the image data; anything else malformed is left to
/// the decoder's errors.
fn check_palette_chunks(bytes: &[u8], path: &Path) -> Result<(), ImageError> {
    const SIGNATURE_LEN: usize = 8;
    let color_type = bytes.get(25).copied();
    let mut palette_entries = None;
    let mut at = SIGNATURE_LEN;
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

/// Writes `pixels` (`side × side` gray) as a PNG: the model input, for
/// `classify --save-input`.
pub fn write_gray_png(path: &Path, pixels: &[u8], side: usize) -> Result<(), String> {
    image::save_buffer_with_format(
        path,
        pixels,
        side as u32,
        side as u32,
        image::ExtendedColorType::L8,
        ImageFormat::Png,
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn every_format_decodes_to_the_same_pixels() {
        let gray = image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y * 7) as u8]));
        let img = DynamicImage::ImageLuma8(gray.clone());
        for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::Pnm, ImageFormat::WebP] {
            let picture = decode_image(&encode(&img, format), Path::new("x")).unwrap();
            assert_eq!((picture.width, picture.height), (5, 3), "{format:?}");
            let values: Vec<u8> = match picture.format {
                PixelFormat::Gray8 => picture.pixels.clone(),
                PixelFormat::Rgb8 => picture.pixels.chunks(3).map(|p| p[0]).collect(),
                PixelFormat::Rgba8 => picture.pixels.chunks(4).map(|p| p[0]).collect(),
                PixelFormat::Bgra8 => unreachable!(),
            };
            assert_eq!(values, gray.as_raw().as_slice(), "{format:?}");
        }
        // Lossy JPEG: the right size and colour model.
        let picture = decode_image(&encode(&img, ImageFormat::Jpeg), Path::new("x")).unwrap();
        assert_eq!((picture.width, picture.height, picture.format), (5, 3, PixelFormat::Gray8));
    }

    #[test]
    fn alpha_and_colour_are_kept_for_the_engine() {
        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 40]));
        let picture = decode_image(&encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png), Path::new("x")).unwrap();
        assert_eq!(picture.format, PixelFormat::Rgba8);
        assert_eq!(&picture.pixels[..4], &[10, 20, 30, 40]);
        let rgb = image::RgbImage::from_pixel(2, 2, image::Rgb([10, 20, 30]));
        let picture = decode_image(&encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::Png), Path::new("x")).unwrap();
        assert_eq!(picture.format, PixelFormat::Rgb8);
    }

    #[test]
    fn other_files_are_named() {
        let err = |bytes: &[u8]| decode_image(bytes, Path::new("x")).unwrap_err().to_string();
        assert!(err(b"").contains("the file is empty"));
        assert!(err(b"hello world").contains("not an image file"));
        assert!(err(b"\0\0\0\x18ftypheic\0\0\0\0").contains("HEIC"));
        assert!(err(b"\x89PNX\r\n\x1a\n").contains("damaged PNG"));
        assert!(err(b"P5 28 28 255\n\x00").contains("PNM"), "{}", err(b"P5 28 28 255\n\x00"));
    }
}
