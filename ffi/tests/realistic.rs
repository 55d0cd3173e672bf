//! The realistic sample (`data/realistic/`, 300 photos and drawings) through
//! the C ABI: each image decoded as the CLI decodes it, handed to
//! microvit_classify_image() in its own layout and again as BGRA with padded
//! rows, must get exactly the answer `microvit eval --images` gives (the
//! same digit, or "no digit"), and so the same accuracy.

use std::ptr;

use microvit::status::last_error_message;
use microvit::*;
use microvit_cli::eval_images::{evaluate, read_labels, Outcome};
use microvit_cli::image_input::load_image;
use microvit_engine::preprocess::{PixelFormat as EngineFormat, Polarity as EnginePolarity};

const INT8_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-seed.int8.mvit");

/// What microvit_classify_image() says of one image.
fn c_outcome(
    model: *const Model,
    ws: *mut Workspace,
    pixels: &[u8],
    w: usize,
    h: usize,
    stride: usize,
    format: i32,
) -> Outcome {
    let img = Image {
        pixels: pixels.as_ptr(),
        len: pixels.len(),
        width: w as u32,
        height: h as u32,
        stride,
        format: PixelFormatArg(format),
    };
    let mut class = u32::MAX;
    // SAFETY: the image describes `pixels`; one writable class.
    let status = unsafe {
        microvit_classify_image(
            model,
            ws,
            &img,
            PolarityArg(0),
            &mut class,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        )
    };
    match status {
        Status::Ok => Outcome::Class(class as usize),
        Status::NoDigit => Outcome::NoDigit,
        other => panic!("{other:?}: {}", last_error_message()),
    }
}

/// The picture as BGRA with every row padded by 12 bytes.
fn as_padded_bgra(pixels: &[u8], format: EngineFormat, w: usize, h: usize) -> (Vec<u8>, usize) {
    let stride = 4 * w + 12;
    let mut out = vec![0xEEu8; stride * h];
    let bpp = format.bytes_per_pixel();
    for y in 0..h {
        for x in 0..w {
            let p = &pixels[(y * w + x) * bpp..][..bpp];
            let bgra = match format {
                EngineFormat::Gray8 => [p[0], p[0], p[0], 255],
                EngineFormat::Rgb8 => [p[2], p[1], p[0], 255],
                EngineFormat::Rgba8 => [p[2], p[1], p[0], p[3]],
                EngineFormat::Bgra8 => [p[0], p[1], p[2], p[3]],
            };
            out[y * stride + x * 4..][..4].copy_from_slice(&bgra);
        }
    }
    (out, stride)
}

#[test]
fn the_c_abi_answers_the_realistic_sample_as_the_cli_does() {
    let dir = microvit_dataset_dir();
    let mut rows = read_labels(&dir, 10).unwrap();
    if cfg!(miri) {
        // Decoding and preparing one photo takes minutes under miri: two
        // small PNGs, a gray drawing of a digit and a transparent blank page.
        let keep = ["0086-ink-on-white.png", "0083-blank.png"];
        rows.retain(|r| r.file.file_name().is_some_and(|n| keep.iter().any(|k| n == *k)));
        assert_eq!(rows.len(), 2);
    }
    let engine = microvit_engine::Model::from_bytes(&std::fs::read(INT8_MODEL).unwrap()).unwrap();
    let cli = evaluate(&engine, &rows, EnginePolarity::Auto, None).unwrap();

    let blob = std::fs::read(INT8_MODEL).unwrap();
    let mut model = ptr::null_mut();
    // SAFETY: valid buffer and out-pointer.
    assert_eq!(unsafe { microvit_model_load(blob.as_ptr(), blob.len(), &mut model) }, Status::Ok);
    let mut ws = ptr::null_mut();
    // SAFETY: live model, valid out-pointer.
    assert_eq!(unsafe { microvit_workspace_create(model, &mut ws) }, Status::Ok);

    let (mut correct, mut digits) = (0, 0);
    for (row, &expected) in rows.iter().zip(&cli.outcomes) {
        let picture = load_image(&row.file).unwrap();
        let (w, h) = (picture.width, picture.height);
        let code = match picture.format {
            EngineFormat::Gray8 => 1,
            EngineFormat::Rgb8 => 2,
            EngineFormat::Rgba8 => 3,
            EngineFormat::Bgra8 => 4,
        };
        let own = c_outcome(model, ws, &picture.pixels, w, h, 0, code);
        assert_eq!(own, expected, "{}: C ABI {own:?}, CLI {expected:?}", row.file.display());
        let (bgra, stride) = as_padded_bgra(&picture.pixels, picture.format, w, h);
        let bgra_outcome = c_outcome(model, ptr::null_mut(), &bgra, w, h, stride, 4);
        assert_eq!(bgra_outcome, expected, "{} as padded BGRA", row.file.display());
        if let Some(label) = row.label {
            digits += 1;
            correct += (own == Outcome::Class(label)) as usize;
        }
    }
    assert_eq!((correct, digits), (cli.all.correct, cli.all.digits));
    println!("C ABI: {correct} / {digits} digits correct, every answer the CLI's");

    // SAFETY: live objects owned here.
    unsafe {
        microvit_workspace_free(ws);
        microvit_model_free(model);
    }
}

fn microvit_dataset_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/realistic")
}
