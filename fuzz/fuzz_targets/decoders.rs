//! The readers of the files around a model and of users' images: idx (MNIST
//! images and labels), `.npy` arrays, image files (the CLI's decoders) and
//! the engine's preprocessing of any image into the model's input. None may
//! panic, hang or allocate what the input does not justify; what they
//! accept must be self-consistent.
//!
//! Input: one selector byte, then the data. Selector % 4: 0 idx, 1 npy,
//! 2 an image file, decoded then preprocessed; 3 raw pixels, preprocessed
//! directly: the first 8 data bytes give the width and height (u16 each),
//! the row padding and the pixel format. For images, selector / 4 picks the
//! model side (1..=64) and the polarity.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use microvit_cli::image_input::{decode_image, MAX_SIDE};
use microvit_dataset::{idx, npy};
use microvit_engine::preprocess::{preprocess, PixelFormat, Polarity, PreprocessError, Scratch, SourceImage};

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<Scratch>> = std::cell::RefCell::new(Scratch::boxed());
}

/// Preprocesses `image` and checks what comes out.
fn check_preprocess(image: &SourceImage<'_>, selector: u8) {
    let side = 1 + usize::from(selector / 4 % 64);
    let polarity = [Polarity::Auto, Polarity::DarkOnLight, Polarity::LightOnDark][usize::from(selector / 4 / 64 % 3)];
    let mut out = vec![0xA5u8; side * side];
    let result = SCRATCH.with(|s| preprocess(image, polarity, &mut s.borrow_mut(), side, &mut out));
    match result {
        Ok(digit) => {
            assert_ne!(digit.polarity, Polarity::Auto);
            assert!(digit.width >= 1 && digit.x + digit.width <= image.width());
            assert!(digit.height >= 1 && digit.y + digit.height <= image.height());
            assert!(digit.contrast >= microvit_engine::preprocess::MIN_CONTRAST);
            assert_eq!(out.iter().max(), Some(&255), "the brightest input pixel is 255");
        }
        Err(PreprocessError::NoDigit(why)) => assert!(!why.describe().is_empty()),
        Err(e) => panic!("a valid image and output gave {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else { return };
    let path = Path::new("fuzz-input");
    match selector % 4 {
        0 => {
            if let Ok(array) = idx::parse(file, path) {
                let count: usize = array.dims.iter().product();
                assert_eq!(count, array.data.len());
                assert_eq!(idx::encode(&array.dims, &array.data), file, "idx round trip");
            }
        }
        1 => {
            if let Ok(array) = npy::decode_f32(file) {
                let count: usize = array.shape.iter().product();
                assert_eq!(count, array.data.len());
                let again = npy::decode_f32(&npy::encode_f32(&array.shape, &array.data)).expect("round trip");
                assert_eq!(again.shape, array.shape);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&again.data), bits(&array.data));
            }
        }
        2 => match decode_image(file, path) {
            Ok(picture) => {
                assert!((1..=MAX_SIDE).contains(&picture.width));
                assert!((1..=MAX_SIDE).contains(&picture.height));
                let bpp = picture.format.bytes_per_pixel();
                assert_eq!(picture.pixels.len(), picture.width * picture.height * bpp);
                check_preprocess(&picture.source(), selector);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        },
        _ => {
            let Some((header, pixels)) = file.split_at_checked(8) else { return };
            let width = usize::from(u16::from_le_bytes([header[0], header[1]]));
            let height = usize::from(u16::from_le_bytes([header[2], header[3]]));
            let pad = usize::from(u16::from_le_bytes([header[4], header[5]]));
            let format = [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8, PixelFormat::Bgra8]
                [usize::from(header[6] % 4)];
            let stride = width * format.bytes_per_pixel() + pad;
            match SourceImage::new(pixels, format, width, height, stride) {
                Ok(image) => check_preprocess(&image, selector),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
});
