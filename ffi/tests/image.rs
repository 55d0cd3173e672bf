//! The C ABI's image functions, microvit_preprocess() and
//! microvit_classify_image(), called as C calls them: every argument
//! checked, results equal the engine's in every pixel layout, "no digit" is
//! its own status and leaves the outputs untouched.

use std::ffi::CStr;
use std::ptr;

use microvit::status::last_error_message;
use microvit::*;
use microvit_engine::preprocess::{PixelFormat as EngineFormat, Polarity as EnginePolarity, SourceImage};

const INT8_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-seed.int8.mvit");

struct Loaded(*mut Model);

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: a live model owned by this guard.
        unsafe { microvit_model_free(self.0) };
    }
}

fn load(path: &str) -> Loaded {
    let blob = std::fs::read(path).unwrap();
    let mut m = ptr::null_mut();
    // SAFETY: valid buffer and out-pointer.
    assert_eq!(unsafe { microvit_model_load(blob.as_ptr(), blob.len(), &mut m) }, Status::Ok);
    Loaded(m)
}

struct Ws(*mut Workspace);

impl Drop for Ws {
    fn drop(&mut self) {
        // SAFETY: a live workspace owned by this guard.
        unsafe { microvit_workspace_free(self.0) };
    }
}

fn workspace(model: &Loaded) -> Ws {
    let mut w = ptr::null_mut();
    // SAFETY: live model, valid out-pointer.
    assert_eq!(unsafe { microvit_workspace_create(model.0, &mut w) }, Status::Ok);
    Ws(w)
}

/// A 200 × 150 gray canvas: white paper with a dark "1" and a bar, a 7 of sorts.
fn canvas() -> Vec<u8> {
    canvas_of(200, 150)
}

/// The same drawing on a `width` × `height` canvas (4:3), scaled.
fn canvas_of(width: usize, height: usize) -> Vec<u8> {
    let at = |v: usize| v * width / 200;
    let mut gray = vec![235u8; width * height];
    for y in at(30)..at(120) {
        for x in 0..at(8).max(1) {
            gray[y * width + at(110) - (y - at(30)) / 3 + x] = 25;
        }
    }
    for y in at(30)..at(38) {
        for x in at(70)..at(118) {
            gray[y * width + x] = 25;
        }
    }
    gray
}

/// The same picture in `format`, rows padded to `stride` bytes.
fn layout(gray: &[u8], width: usize, format: i32, pad: usize) -> (Vec<u8>, usize) {
    let bpp = match format {
        1 => 1,
        2 => 3,
        _ => 4,
    };
    let stride = width * bpp + pad;
    let height = gray.len() / width;
    let mut bytes = vec![0x5Au8; stride * height];
    for y in 0..height {
        for x in 0..width {
            let v = gray[y * width + x];
            let px: &[u8] = match format {
                1 => &[v],
                2 => &[v, v, v],
                _ => &[v, v, v, 255],
            };
            bytes[y * stride + x * bpp..][..bpp].copy_from_slice(px);
        }
    }
    (bytes, stride)
}

fn image(bytes: &[u8], width: u32, height: u32, stride: usize, format: i32) -> Image {
    Image { pixels: bytes.as_ptr(), len: bytes.len(), width, height, stride, format: PixelFormatArg(format) }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    class: u32,
    logits: Vec<f32>,
    probs: Vec<f32>,
    input: Vec<u8>,
    digit: Digit,
}

fn classify_image(model: &Loaded, ws: *mut Workspace, img: &Image, polarity: i32) -> Result<Outcome, Status> {
    let mut o = Outcome {
        class: u32::MAX,
        logits: vec![f32::NAN; 10],
        probs: vec![f32::NAN; 10],
        input: vec![7; 784],
        digit: Digit { polarity: Polarity::Auto, x: 9, y: 9, width: 9, height: 9, contrast: 9 },
    };
    // SAFETY: every buffer has the length passed with it.
    let status = unsafe {
        microvit_classify_image(
            model.0,
            ws,
            img,
            PolarityArg(polarity),
            &mut o.class,
            o.logits.as_mut_ptr(),
            10,
            o.probs.as_mut_ptr(),
            10,
            o.input.as_mut_ptr(),
            784,
            &mut o.digit,
        )
    };
    match status {
        Status::Ok => Ok(o),
        other => {
            // Nothing was written.
            assert_eq!(o.class, u32::MAX);
            assert!(o.logits.iter().chain(&o.probs).all(|v| v.is_nan()));
            assert!(o.input.iter().all(|&v| v == 7));
            assert_eq!(o.digit.x, 9);
            Err(other)
        }
    }
}

#[test]
fn classify_image_equals_the_engine_in_every_layout() {
    let model = load(INT8_MODEL);
    let ws = workspace(&model);
    let engine = microvit_engine::Model::from_bytes(&std::fs::read(INT8_MODEL).unwrap()).unwrap();
    let mut engine_ws = engine.workspace();
    // A quarter of the canvas under miri, where preprocessing the whole one
    // takes many minutes.
    let (width, height) = if cfg!(miri) { (50, 38) } else { (200, 150) };
    let gray = canvas_of(width, height);
    let source = SourceImage::packed(&gray, EngineFormat::Gray8, width, height).unwrap();
    let expected = engine.infer_image(&source, EnginePolarity::Auto, &mut engine_ws).unwrap();
    let (logits, input, found) = (expected.logits.to_vec(), expected.input.to_vec(), expected.digit);
    let mut probs = vec![0.0; 10];
    microvit_engine::softmax(&logits, &mut probs);
    let layouts = [(0, false), (0, true), (3, true), (64, true)];
    for format in 1..=4 {
        for (k, &(pad, explicit_stride)) in layouts.iter().enumerate() {
            // Under miri (a preprocess of this canvas takes minutes there):
            // each format once and each layout once, the workspace and NULL
            // in turn; natively every combination with both.
            if cfg!(miri) && k + 1 != format as usize {
                continue;
            }
            let (bytes, stride) = layout(&gray, width, format, pad);
            let img = image(&bytes, width as u32, height as u32, if explicit_stride { stride } else { 0 }, format);
            let both = [ws.0, ptr::null_mut()];
            let workspaces = if cfg!(miri) { &both[k % 2..][..1] } else { &both[..] };
            for &w in workspaces {
                let got = classify_image(&model, w, &img, 0).unwrap();
                assert_eq!(got.class, microvit_engine::argmax(&logits) as u32);
                assert_eq!((got.logits.as_slice(), got.probs.as_slice()), (logits.as_slice(), probs.as_slice()));
                assert_eq!(got.input, input, "format {format} pad {pad}");
                let d = got.digit;
                assert_eq!(
                    (d.x, d.y, d.width, d.height),
                    (found.x as u32, found.y as u32, found.width as u32, found.height as u32)
                );
                assert_eq!((d.polarity, d.contrast), (Polarity::DarkOnLight, found.contrast as u32));
                // microvit_preprocess() makes the same input.
                let mut prepared = vec![0u8; 784];
                let mut digit = std::mem::MaybeUninit::<Digit>::uninit();
                // SAFETY: valid image, output of 784 bytes, writable digit.
                let status = unsafe {
                    microvit_preprocess(
                        model.0,
                        w,
                        &img,
                        PolarityArg(0),
                        prepared.as_mut_ptr(),
                        784,
                        digit.as_mut_ptr(),
                    )
                };
                assert_eq!(status, Status::Ok, "{}", last_error_message());
                assert_eq!(prepared, input);
                // SAFETY: written on success.
                assert_eq!(unsafe { digit.assume_init() }, d);
            }
        }
    }
    // The polarity can be forced; forcing it the other way finds another "digit" or none.
    let (bytes, _) = layout(&gray, width, 1, 0);
    let img = image(&bytes, width as u32, height as u32, 0, 1);
    assert_eq!(classify_image(&model, ws.0, &img, 1).unwrap().input, input);
    let wrong = classify_image(&model, ws.0, &img, 2);
    assert!(wrong.as_ref().map_or(true, |o| o.input != input), "{wrong:?}");
}

#[test]
fn no_digit_is_its_own_status_and_writes_nothing() {
    let model = load(INT8_MODEL);
    let ws = workspace(&model);
    let blank = vec![200u8; 120 * 90];
    let transparent = vec![0u8; 50 * 40 * 4];
    for (img, needle) in [
        (image(&blank, 120, 90, 0, 1), "the image is blank"),
        (image(&transparent, 50, 40, 0, 3), "the image is blank"),
        (image(&blank[..1], 1, 1, 0, 1), "the image is blank"),
    ] {
        assert_eq!(classify_image(&model, ws.0, &img, 0).unwrap_err(), Status::NoDigit);
        let msg = last_error_message();
        assert!(msg.contains(needle), "{msg:?}");
        let mut prepared = vec![7u8; 784];
        // SAFETY: valid image and output.
        let status = unsafe {
            microvit_preprocess(model.0, ws.0, &img, PolarityArg(0), prepared.as_mut_ptr(), 784, ptr::null_mut())
        };
        assert_eq!(status, Status::NoDigit);
        assert!(prepared.iter().all(|&v| v == 7), "outputs are written only on success");
    }
    // SAFETY: a static string.
    let text = unsafe { CStr::from_ptr(microvit_status_str(Status::NoDigit.into())) }.to_str().unwrap();
    assert_eq!(text, "no digit found in the image");
}

#[test]
fn every_argument_is_checked() {
    let model = load(INT8_MODEL);
    let ws = workspace(&model);
    let gray = canvas();
    let good = image(&gray, 200, 150, 0, 1);
    let mut input = [0u8; 800];
    let mut probs = [0f32; 10];
    let expect = |status: Status, expected: Status, needle: &str, case: &str| {
        assert_eq!(status, expected, "{case}: {}", last_error_message());
        assert!(last_error_message().contains(needle), "{case}: {:?} lacks {needle:?}", last_error_message());
    };
    let preprocess = |m: *const Model, img: *const Image, polarity: i32, out: *mut u8, cap: usize| {
        // SAFETY: each pointer is valid for its length, or NULL, or a value
        // the checks must reject before any access.
        unsafe { microvit_preprocess(m, ws.0, img, PolarityArg(polarity), out, cap, ptr::null_mut()) }
    };
    let out = input.as_mut_ptr();
    expect(preprocess(ptr::null(), &good, 0, out, 784), Status::NullArgument, "model is NULL", "model");
    expect(preprocess(model.0, ptr::null(), 0, out, 784), Status::NullArgument, "image is NULL", "image");
    expect(preprocess(model.0, &good, 0, ptr::null_mut(), 784), Status::NullArgument, "out_input is NULL", "out");
    expect(preprocess(model.0, &good, 0, out, 783), Status::BufferTooSmall, "out_input has room for 783", "cap");
    expect(preprocess(model.0, &good, 3, out, 784), Status::InvalidArgument, "polarity 3 is not", "polarity");
    expect(preprocess(model.0, &good, -1, out, 784), Status::InvalidArgument, "polarity -1", "polarity");
    let bad = |edit: &dyn Fn(&mut Image)| {
        let mut img = good;
        edit(&mut img);
        img
    };
    let invalid = Status::InvalidArgument;
    let cases: Vec<(Image, Status, &str)> = vec![
        (bad(&|i| i.format = PixelFormatArg(0)), invalid, "image->format 0 is not"),
        (bad(&|i| i.format = PixelFormatArg(5)), invalid, "image->format 5"),
        (bad(&|i| i.pixels = ptr::null()), Status::NullArgument, "image->pixels is NULL"),
        (bad(&|i| i.width = 0), invalid, "the image is empty (0×150 pixels)"),
        (bad(&|i| i.height = 0), invalid, "the image is empty"),
        (bad(&|i| i.width = 8193), invalid, "the largest accepted is 8192×8192"),
        (bad(&|i| i.height = u32::MAX), invalid, "the largest accepted is 8192×8192"),
        (bad(&|i| i.stride = 199), invalid, "row stride 199 bytes is shorter than a row of 200 bytes"),
        (bad(&|i| i.len = 200 * 150 - 1), invalid, "pixel buffer holds 29999 bytes, the image needs 30000"),
        (bad(&|i| i.stride = usize::MAX), invalid, "the image needs"),
        (bad(&|i| i.format = PixelFormatArg(3)), invalid, "pixel buffer holds 30000 bytes, the image needs 120000"),
        (bad(&|i| i.len = usize::MAX), invalid, "image->pixels: a length of"),
    ];
    for &(ref img, expected, needle) in &cases {
        expect(preprocess(model.0, img, 0, out, 784), expected, needle, needle);
        // SAFETY: as above.
        let status = unsafe {
            microvit_classify_image(
                model.0,
                ptr::null_mut(),
                img,
                PolarityArg(0),
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
            )
        };
        expect(status, expected, needle, needle);
    }
    // Outputs overlapping the pixels or each other.
    let mut canvas_copy = gray.clone();
    let aliased = image(&canvas_copy, 200, 150, 0, 1);
    let into_pixels = canvas_copy.as_mut_ptr();
    expect(preprocess(model.0, &aliased, 0, into_pixels, 784), Status::InvalidArgument, "overlap", "alias");
    // SAFETY: as above; the two outputs overlap on purpose.
    let status = unsafe {
        microvit_classify_image(
            model.0,
            ws.0,
            &good,
            PolarityArg(0),
            ptr::null_mut(),
            probs.as_mut_ptr(),
            10,
            probs.as_mut_ptr(),
            10,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        )
    };
    expect(status, Status::InvalidArgument, "out_logits and out_probs overlap", "probs");
    // A workspace of another shape.
    let other = load(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-4k.int8.mvit"));
    let other_ws = workspace(&other);
    // SAFETY: valid arguments but for the workspace's shape.
    let status = unsafe { microvit_preprocess(model.0, other_ws.0, &good, PolarityArg(0), out, 784, ptr::null_mut()) };
    expect(status, Status::WorkspaceMismatch, "workspace", "workspace");
    // Every optional output may be left out.
    // SAFETY: valid image; all outputs NULL.
    let status = unsafe {
        microvit_classify_image(
            model.0,
            ws.0,
            &good,
            PolarityArg(0),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        )
    };
    expect(status, Status::Ok, "", "all optional");
}
