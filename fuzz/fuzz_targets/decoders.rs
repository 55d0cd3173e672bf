//! The readers of the files around a model: idx (MNIST images and labels),
//! `.npy` arrays, and the PNG/PGM decoders of `microvit classify` with the
//! resize to model input. None may panic, hang or allocate what the input
//! does not justify; what they accept must be self-consistent.
//!
//! Input: one selector byte, then the file. Selector % 4: 0 idx, 1 npy,
//! 2 and 3 image (so the image decoders get half the time); for images,
//! selector / 4 picks the model side (1..=64) and the polarity rule.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use microvit_cli::image_input::{decode_image, to_model_input, Polarity, MAX_DIMENSION};
use microvit_dataset::{idx, npy};

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
        _ => {
            let side = 1 + usize::from(selector / 4 % 64);
            let polarity = [Polarity::Auto, Polarity::AsIs, Polarity::Invert][usize::from(selector / 4 / 64 % 3)];
            match decode_image(file, path) {
                Ok(image) => {
                    assert!((1..=MAX_DIMENSION).contains(&image.width));
                    assert!((1..=MAX_DIMENSION).contains(&image.height));
                    assert_eq!(image.pixels.len(), image.width * image.height);
                    let input = to_model_input(&image, side, polarity);
                    assert_eq!(input.len(), side * side);
                    if image.width == side && image.height == side && polarity == Polarity::AsIs {
                        assert_eq!(input, image.pixels, "an image of the model's size is used as it is");
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
});
