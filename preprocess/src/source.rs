//! The caller's image as preprocessing reads it: a view of 8-bit pixels in
//! one of four layouts, checked once, read a row at a time as luma with
//! transparency composited away (docs/PREPROCESSING.md, steps 1 and 2).

use core::fmt;

use super::MAX_SIDE;

/// How the bytes of one pixel are laid out. Every channel is 8 bits; alpha
/// is straight (not premultiplied), 255 = opaque.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One byte per pixel: 0 = black, 255 = white.
    Gray8,
    /// Three bytes per pixel: red, green, blue.
    Rgb8,
    /// Four bytes per pixel: red, green, blue, alpha (Android `ARGB_8888`
    /// bitmaps are stored this way in memory; HTML canvas `ImageData`).
    Rgba8,
    /// Four bytes per pixel: blue, green, red, alpha (Windows DIBs, iOS
    /// `CVPixelBuffer` `kCVPixelFormatType_32BGRA`).
    Bgra8,
}

impl PixelFormat {
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Bgra8 => "bgra8",
        }
    }

    const fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba8 | PixelFormat::Bgra8)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an image description cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// Width or height is zero.
    ZeroSize { width: usize, height: usize },
    /// Width or height is above [`MAX_SIDE`].
    TooLarge { width: usize, height: usize, max: usize },
    /// A row is longer than the stride: `width × bytes per pixel > stride`.
    StrideTooSmall { stride: usize, row_bytes: usize },
    /// The buffer ends before the last pixel: it must hold
    /// `(height − 1) × stride + width × bytes per pixel` bytes.
    BufferTooShort { len: usize, needed: u128 },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SourceError::ZeroSize { width, height } => write!(f, "the image is empty ({width}×{height} pixels)"),
            SourceError::TooLarge { width, height, max } => write!(
                f,
                "the image is {width}×{height} pixels; the largest accepted is {max}×{max} (scale it down first)"
            ),
            SourceError::StrideTooSmall { stride, row_bytes } => {
                write!(f, "row stride {stride} bytes is shorter than a row of {row_bytes} bytes")
            }
            SourceError::BufferTooShort { len, needed } => {
                write!(f, "pixel buffer holds {len} bytes, the image needs {needed}")
            }
        }
    }
}

/// An 8-bit image in the caller's memory: `height` rows of `width` pixels,
/// row `y` starting at byte `y × stride`. Checked when made, so every later
/// read is in bounds.
#[derive(Clone, Copy, Debug)]
pub struct SourceImage<'a> {
    pixels: &'a [u8],
    format: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
}

impl<'a> SourceImage<'a> {
    /// Describes `pixels` as an image; `stride` is the distance in bytes from
    /// one row to the next (at least `width × bytes per pixel`; padding
    /// between rows is never read). The last row need not be padded.
    pub fn new(
        pixels: &'a [u8],
        format: PixelFormat,
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<SourceImage<'a>, SourceError> {
        if width == 0 || height == 0 {
            return Err(SourceError::ZeroSize { width, height });
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(SourceError::TooLarge { width, height, max: MAX_SIDE });
        }
        // width ≤ 8192, so this cannot overflow.
        let row_bytes = width * format.bytes_per_pixel();
        if stride < row_bytes {
            return Err(SourceError::StrideTooSmall { stride, row_bytes });
        }
        // u128: (height − 1) × stride may exceed usize for a hostile stride.
        let needed = (height as u128 - 1) * stride as u128 + row_bytes as u128;
        if (pixels.len() as u128) < needed {
            return Err(SourceError::BufferTooShort { len: pixels.len(), needed });
        }
        Ok(SourceImage { pixels, format, width, height, stride })
    }

    /// An image whose rows follow each other with no padding.
    pub fn packed(
        pixels: &'a [u8],
        format: PixelFormat,
        width: usize,
        height: usize,
    ) -> Result<SourceImage<'a>, SourceError> {
        let stride = width.saturating_mul(format.bytes_per_pixel());
        SourceImage::new(pixels, format, width, height, stride)
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The bytes of pixels `x0..x1` of row `y`.
    fn row(&self, y: usize, x0: usize, x1: usize) -> &[u8] {
        let bpp = self.format.bytes_per_pixel();
        let start = y * self.stride;
        &self.pixels[start + x0 * bpp..start + x1 * bpp]
    }
}

/// BT.601 luma in 8-bit fixed point: the weights 77, 150 and 29 sum to 256,
/// so gray (r = g = b) maps to itself.
#[inline]
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
}

/// What to do with alpha: decided once per image by [`Reader::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alpha {
    /// No alpha channel, or every pixel opaque.
    Opaque,
    /// Composite over this gray level (255 or 0).
    Over(u8),
}

/// Reads a [`SourceImage`] as luma rows.
pub(crate) struct Reader<'a> {
    image: SourceImage<'a>,
    alpha: Alpha,
}

impl<'a> Reader<'a> {
    /// Decides how transparency is composited (step 2): over white when the
    /// visible pixels are on average dark (mean luma weighted by alpha below
    /// 128: dark strokes on a transparent canvas), else over black. `None`
    /// when every pixel is fully transparent: there is nothing to see.
    pub(crate) fn new(image: SourceImage<'a>) -> Option<Reader<'a>> {
        if !image.format.has_alpha() {
            return Some(Reader { image, alpha: Alpha::Opaque });
        }
        let (mut weight, mut weighted_luma) = (0u64, 0u64);
        for y in 0..image.height {
            for px in image.row(y, 0, image.width).chunks_exact(4) {
                let (l, a) = Self::luma_alpha(image.format, px);
                weight += a as u64;
                weighted_luma += a as u64 * l as u64;
            }
        }
        let alpha = if weight == 0 {
            return None;
        } else if weight == 255 * (image.width * image.height) as u64 {
            Alpha::Opaque
        } else if weighted_luma < 128 * weight {
            Alpha::Over(255)
        } else {
            Alpha::Over(0)
        };
        Some(Reader { image, alpha })
    }

    pub(crate) fn width(&self) -> usize {
        self.image.width
    }

    pub(crate) fn height(&self) -> usize {
        self.image.height
    }

    /// Writes the luma of pixels `x0..x1` of row `y` to `out[..x1 - x0]`.
    pub(crate) fn luma_row(&self, y: usize, x0: usize, x1: usize, out: &mut [u8]) {
        let row = self.image.row(y, x0, x1);
        let out = &mut out[..x1 - x0];
        match (self.image.format, self.alpha) {
            (PixelFormat::Gray8, _) => out.copy_from_slice(row),
            (PixelFormat::Rgb8, _) => {
                for (o, px) in out.iter_mut().zip(row.chunks_exact(3)) {
                    *o = luma(px[0], px[1], px[2]);
                }
            }
            (format, Alpha::Opaque) => {
                for (o, px) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = Self::luma_alpha(format, px).0;
                }
            }
            (format, Alpha::Over(background)) => {
                for (o, px) in out.iter_mut().zip(row.chunks_exact(4)) {
                    let (l, a) = Self::luma_alpha(format, px);
                    let (l, a, b) = (l as u32, a as u32, background as u32);
                    *o = ((l * a + b * (255 - a) + 127) / 255) as u8;
                }
            }
        }
    }

    #[inline]
    fn luma_alpha(format: PixelFormat, px: &[u8]) -> (u8, u8) {
        match format {
            PixelFormat::Bgra8 => (luma(px[2], px[1], px[0]), px[3]),
            _ => (luma(px[0], px[1], px[2]), px[3]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_keeps_gray_and_weights_channels() {
        for v in 0..=255u8 {
            assert_eq!(luma(v, v, v), v);
        }
        assert_eq!(luma(255, 0, 0), 77);
        assert_eq!(luma(0, 255, 0), 149);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn rejects_bad_descriptions() {
        let px = [0u8; 64];
        assert_eq!(
            SourceImage::new(&px, PixelFormat::Gray8, 0, 3, 0).unwrap_err(),
            SourceError::ZeroSize { width: 0, height: 3 }
        );
        assert!(matches!(
            SourceImage::new(&px, PixelFormat::Gray8, MAX_SIDE + 1, 1, MAX_SIDE + 1),
            Err(SourceError::TooLarge { .. })
        ));
        assert_eq!(
            SourceImage::new(&px, PixelFormat::Rgb8, 4, 2, 11).unwrap_err(),
            SourceError::StrideTooSmall { stride: 11, row_bytes: 12 }
        );
        // The last row needs no padding: 2 rows of stride 20 with 4 RGBA pixels need 36 bytes.
        assert!(SourceImage::new(&px[..36], PixelFormat::Rgba8, 4, 2, 20).is_ok());
        assert_eq!(
            SourceImage::new(&px[..35], PixelFormat::Rgba8, 4, 2, 20).unwrap_err(),
            SourceError::BufferTooShort { len: 35, needed: 36 }
        );
        // A stride that overflows usize is reported, not wrapped.
        let err = SourceImage::new(&px, PixelFormat::Gray8, 1, 3, usize::MAX).unwrap_err();
        assert_eq!(err, SourceError::BufferTooShort { len: 64, needed: 2 * usize::MAX as u128 + 1 });
    }

    #[test]
    fn transparency_is_composited_over_the_opposite_of_the_strokes() {
        let mut out = [0u8; 3];
        // Black strokes (half and fully opaque) on a transparent canvas: over white.
        let dark = [0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0, 255];
        let image = SourceImage::packed(&dark, PixelFormat::Rgba8, 3, 1).unwrap();
        Reader::new(image).unwrap().luma_row(0, 0, 3, &mut out);
        assert_eq!(out, [255, 127, 0]);
        // White strokes in BGRA: over black.
        let light = [255, 255, 255, 0, 255, 255, 255, 255, 200, 200, 200, 255];
        let image = SourceImage::packed(&light, PixelFormat::Bgra8, 3, 1).unwrap();
        Reader::new(image).unwrap().luma_row(0, 0, 3, &mut out);
        assert_eq!(out, [0, 255, 200]);
        // Fully transparent: nothing to read.
        let clear = [9u8; 12];
        let clear: Vec<u8> = clear.iter().enumerate().map(|(i, &v)| if i % 4 == 3 { 0 } else { v }).collect();
        assert!(Reader::new(SourceImage::packed(&clear, PixelFormat::Rgba8, 3, 1).unwrap()).is_none());
    }
}
