//! Photos and drawings from C: `microvit_image`, `microvit_preprocess()` and
//! `microvit_classify_image()`, on the engine's preprocessing
//! (docs/PREPROCESSING.md).

use microvit_engine as engine;
use microvit_engine::preprocess::{PixelFormat as EnginePixelFormat, Polarity as EnginePolarity, SourceImage};
use microvit_engine::shape::limits;

use crate::args::{disjoint, input, output, span, Span};
use crate::handles::{self, Model, Workspace};
use crate::output_span;
use crate::status::{bail, fail, guard, Status};

/// How the bytes of one pixel are laid out (microvit_image.format). Every
/// channel is 8 bits; alpha is straight (not premultiplied), 255 = opaque.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One byte per pixel: 0 = black, 255 = white.
    Gray8 = 1,
    /// Three bytes per pixel: red, green, blue.
    Rgb8 = 2,
    /// Four bytes per pixel: red, green, blue, alpha (HTML canvas ImageData,
    /// Android ARGB_8888 bitmaps as copyPixelsToBuffer() writes them).
    Rgba8 = 3,
    /// Four bytes per pixel: blue, green, red, alpha (iOS
    /// kCVPixelFormatType_32BGRA, Windows 32-bit DIBs).
    Bgra8 = 4,
}

/// A `microvit_pixel_format` as received from C (any `int32_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormatArg(pub i32);

impl From<PixelFormat> for PixelFormatArg {
    fn from(f: PixelFormat) -> PixelFormatArg {
        PixelFormatArg(f as i32)
    }
}

impl PixelFormatArg {
    fn to_engine(self) -> Option<EnginePixelFormat> {
        Some(match self.0 {
            1 => EnginePixelFormat::Gray8,
            2 => EnginePixelFormat::Rgb8,
            3 => EnginePixelFormat::Rgba8,
            4 => EnginePixelFormat::Bgra8,
            _ => return None,
        })
    }
}

/// Which way the ink goes.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// Decide from the image (the default): the ink is what departs from the
    /// local paper.
    Auto = 0,
    /// Dark ink on light paper: a pen on paper, a drawing pad.
    DarkOnLight = 1,
    /// Light ink on a dark ground: MNIST itself, chalk on a blackboard.
    LightOnDark = 2,
}

/// A `microvit_polarity` as received from C (any `int32_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolarityArg(pub i32);

impl From<Polarity> for PolarityArg {
    fn from(p: Polarity) -> PolarityArg {
        PolarityArg(p as i32)
    }
}

impl PolarityArg {
    fn to_engine(self) -> Option<EnginePolarity> {
        Some(match self.0 {
            0 => EnginePolarity::Auto,
            1 => EnginePolarity::DarkOnLight,
            2 => EnginePolarity::LightOnDark,
            _ => return None,
        })
    }
}

impl Polarity {
    fn from_engine(p: EnginePolarity) -> Polarity {
        match p {
            EnginePolarity::Auto => Polarity::Auto,
            EnginePolarity::DarkOnLight => Polarity::DarkOnLight,
            EnginePolarity::LightOnDark => Polarity::LightOnDark,
        }
    }
}

/// An 8-bit image in the caller's memory: height rows of width pixels, row
/// y starting at pixels + y * stride. Width and height are at most
/// MICROVIT_MAX_IMAGE_SIDE.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Image {
    /// The first byte of the first row.
    pub pixels: *const u8,
    /// Bytes readable at pixels: at least (height - 1) * stride + width *
    /// bytes per pixel (the last row need not be padded).
    pub len: usize,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from the start of one row to the next; 0 means width * bytes
    /// per pixel (rows packed).
    pub stride: usize,
    /// The pixel layout.
    pub format: PixelFormatArg,
}

/// Where preprocessing found the digit, and how it read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digit {
    /// The polarity used: MICROVIT_POLARITY_DARK_ON_LIGHT or
    /// MICROVIT_POLARITY_LIGHT_ON_DARK (what AUTO decided).
    pub polarity: Polarity,
    /// The digit's box in image pixels: left column, top row, width, height.
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// How far the ink rises above the paper's noise, 20..255.
    pub contrast: u32,
}

impl Digit {
    fn from_engine(d: &engine::preprocess::Digit) -> Digit {
        // Coordinates are below MAX_SIDE (8192), so they fit in u32.
        Digit {
            polarity: Polarity::from_engine(d.polarity),
            x: d.x as u32,
            y: d.y as u32,
            width: d.width as u32,
            height: d.height as u32,
            contrast: d.contrast as u32,
        }
    }
}

/// Largest width and height microvit_preprocess() and
/// microvit_classify_image() accept, in pixels. Scale larger photos down
/// first.
pub const MICROVIT_MAX_IMAGE_SIDE: u32 = 8192;
const _: () = assert!(MICROVIT_MAX_IMAGE_SIDE as usize == engine::preprocess::MAX_SIDE);

/// The largest model input and logit count of the shape family, for results
/// held until they can be written.
const MAX_PIXELS: usize = (limits::MAX_IMAGE_SIDE * limits::MAX_IMAGE_SIDE) as usize;
const MAX_CLASSES: usize = limits::MAX_CLASSES as usize;

/// Checks the image descriptor and the pixels it points to.
///
/// # Safety
/// `image` is NULL or points to a readable `Image` whose `pixels` hold `len`
/// readable bytes.
unsafe fn source_image<'a>(image: *const Image) -> Result<(SourceImage<'a>, Span), Status> {
    span("image", image, 1)?;
    // SAFETY: non-NULL and aligned (checked); readable by the contract. Every
    // bit pattern is a valid `Image` (pointers, integers).
    let image = unsafe { image.read() };
    let Some(format) = image.format.to_engine() else {
        bail!(Status::InvalidArgument, "image->format {} is not a microvit_pixel_format", image.format.0);
    };
    let pixels = span("image->pixels", image.pixels, image.len)?;
    let (width, height) = (image.width as usize, image.height as usize);
    let stride = match image.stride {
        0 => width.saturating_mul(format.bytes_per_pixel()),
        s => s,
    };
    // SAFETY: checked by `span`; `len` readable bytes by the contract.
    let bytes = unsafe { input(image.pixels, image.len) };
    match SourceImage::new(bytes, format, width, height, stride) {
        Ok(source) => Ok((source, pixels)),
        Err(e) => bail!(Status::InvalidArgument, "image: {e}"),
    }
}

fn polarity(p: PolarityArg) -> Result<EnginePolarity, Status> {
    match p.to_engine() {
        Some(p) => Ok(p),
        None => bail!(Status::InvalidArgument, "polarity {} is not a microvit_polarity", p.0),
    }
}

fn image_status(e: &engine::InferError) -> Status {
    match e {
        engine::InferError::NoDigit(_) => Status::NoDigit,
        other => crate::status::infer_status(other),
    }
}

/// Turns a photo or drawing of a digit into the model's input, the way MNIST
/// was made (docs/PREPROCESSING.md): the ink found against its paper
/// (polarity AUTO decides which way it goes), scaled so its longer side is
/// 20/28 of the model's side, white on black, centred by its centre of mass.
/// Integer-only: the same bytes on every CPU.
///
/// Writes shape.pixels bytes to out_input (input_capacity must be at least
/// that, else BUFFER_TOO_SMALL) and, if out_digit is not NULL, where the
/// digit was found. An image with no digit (blank, only noise, ink
/// everywhere, a speck) returns NO_DIGIT, and the last error message says
/// which; a bad descriptor returns INVALID_ARGUMENT. Outputs are written
/// only on success. With a workspace this function never allocates.
///
/// # Safety
/// image points to a readable microvit_image whose pixels hold len readable
/// bytes; out_input has room for input_capacity bytes; out_digit is NULL or
/// writable; model is a live model; workspace is NULL or a live workspace
/// not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn microvit_preprocess(
    model: *const Model,
    workspace: *mut Workspace,
    image: *const Image,
    polarity: PolarityArg,
    out_input: *mut u8,
    input_capacity: usize,
    out_digit: *mut Digit,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        let pixels = model.shape().pixels();
        // SAFETY: forwarded from the caller.
        let (source, source_span) = unsafe { source_image(image) }?;
        let polarity = self::polarity(polarity)?;
        if out_input.is_null() {
            bail!(Status::NullArgument, "out_input is NULL");
        }
        let spans = [
            Some(source_span),
            output_span("out_input", (out_input, input_capacity), pixels)?,
            output_span("out_digit", (out_digit, 1), 1)?,
        ];
        disjoint(&spans)?;
        if !workspace.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { handles::checked_workspace(model, workspace) }?;
        }
        // The result goes to the caller's buffers only on success.
        let mut prepared = [0u8; MAX_PIXELS];
        // SAFETY: forwarded from the caller.
        let digit = unsafe {
            handles::with_workspace(model, workspace, |ws| {
                let (digit, input) =
                    model.preprocess(&source, polarity, ws).map_err(|e| fail(image_status(&e), format_args!("{e}")))?;
                prepared[..pixels].copy_from_slice(input);
                Ok(digit)
            })
        }?;
        // SAFETY: checked by `span` and `disjoint` above; room for the
        // length by the caller's contract.
        unsafe { output(out_input, pixels) }.copy_from_slice(&prepared[..pixels]);
        if !out_digit.is_null() {
            // SAFETY: as above, one `Digit`.
            unsafe { output(out_digit, 1) }.copy_from_slice(&[Digit::from_engine(&digit)]);
        }
        Ok(())
    })
}

/// Classifies a photo or drawing of a digit of any size:
/// microvit_preprocess() then microvit_classify() on the result. The class,
/// logits and probabilities are optional outputs as in microvit_classify();
/// out_input (input_capacity >= shape.pixels) receives the prepared model
/// input, for display, and out_digit where the digit was found; both are
/// optional too.
///
/// Returns NO_DIGIT, never a class, for an image with no digit (the last
/// error message says why). Statuses, workspace, overlap and allocation
/// rules as microvit_classify() and microvit_preprocess().
///
/// # Safety
/// As microvit_preprocess() and microvit_classify().
#[no_mangle]
pub unsafe extern "C" fn microvit_classify_image(
    model: *const Model,
    workspace: *mut Workspace,
    image: *const Image,
    polarity: PolarityArg,
    out_class: *mut u32,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_probs: *mut f32,
    probs_capacity: usize,
    out_input: *mut u8,
    input_capacity: usize,
    out_digit: *mut Digit,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        let shape = model.shape();
        let (pixels, classes) = (shape.pixels(), shape.classes as usize);
        // SAFETY: forwarded from the caller.
        let (source, source_span) = unsafe { source_image(image) }?;
        let polarity = self::polarity(polarity)?;
        let spans = [
            Some(source_span),
            output_span("out_class", (out_class, 1), 1)?,
            output_span("out_logits", (out_logits, logits_capacity), classes)?,
            output_span("out_probs", (out_probs, probs_capacity), classes)?,
            output_span("out_input", (out_input, input_capacity), pixels)?,
            output_span("out_digit", (out_digit, 1), 1)?,
        ];
        disjoint(&spans)?;
        if !workspace.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { handles::checked_workspace(model, workspace) }?;
        }
        // The results go to the caller's buffers only on success.
        let (mut prepared, mut logits) = ([0u8; MAX_PIXELS], [0f32; MAX_CLASSES]);
        // SAFETY: forwarded from the caller.
        let digit = unsafe {
            handles::with_workspace(model, workspace, |ws| {
                let result = model
                    .infer_image(&source, polarity, ws)
                    .map_err(|e| fail(image_status(&e), format_args!("{e}")))?;
                prepared[..pixels].copy_from_slice(result.input);
                logits[..classes].copy_from_slice(result.logits);
                Ok(result.digit)
            })
        }?;
        let logits = &logits[..classes];
        // SAFETY: (the five outputs) checked by `span` and `disjoint` above;
        // room for the lengths by the caller's contract.
        if !out_class.is_null() {
            // SAFETY: see above.
            unsafe { output(out_class, 1) }.copy_from_slice(&[engine::argmax(logits) as u32]);
        }
        if !out_logits.is_null() {
            // SAFETY: see above.
            unsafe { output(out_logits, classes) }.copy_from_slice(logits);
        }
        if !out_probs.is_null() {
            // SAFETY: see above.
            engine::softmax(logits, unsafe { output(out_probs, classes) });
        }
        if !out_input.is_null() {
            // SAFETY: see above.
            unsafe { output(out_input, pixels) }.copy_from_slice(&prepared[..pixels]);
        }
        if !out_digit.is_null() {
            // SAFETY: see above.
            unsafe { output(out_digit, 1) }.copy_from_slice(&[Digit::from_engine(&digit)]);
        }
        Ok(())
    })
}
