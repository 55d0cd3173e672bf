//! safetensors → converter, to f32, f16 and int8 (calibrated on 2 images):
//! never a panic, and every blob the converter returns loads and runs (the
//! converter must refuse what it cannot encode rather than write a blob the
//! engine rejects). An f32 blob holds the state_dict bit for bit.
//!
//! Input: one option byte, then the safetensors file. Option bits 0-1: the
//! `heads` option (from the metadata, 1, 2, or 4); bits 2-3: the calibration
//! images (black and white, two copies of the input's first bytes, an
//! image of the wrong size, or none).

#![no_main]

use libfuzzer_sys::fuzz_target;
use microvit_converter::{convert, infer_config, read_safetensors, ConvertError, ConvertOptions};
use microvit_engine::{Encoding, Model};

fn calibration(choice: u8, pixels: usize, data: &[u8]) -> Option<Vec<u8>> {
    match choice {
        0 => Some([vec![0u8; pixels], vec![255u8; pixels]].concat()),
        1 => Some((0..2 * pixels).map(|i| data.get(i % data.len().max(1)).copied().unwrap_or(0)).collect()),
        2 => Some(vec![7u8; pixels + 1]),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, file)) = data.split_first() else { return };
    let heads = [None, Some(1), Some(2), Some(4)][(opts & 3) as usize];
    let base = ConvertOptions { heads, ..Default::default() };
    // The shape, when the file gets that far, sizes the calibration images.
    let pixels = read_safetensors(file)
        .ok()
        .and_then(|sd| infer_config(&sd, &base).ok())
        .map_or(28 * 28, |config| config.shape.pixels());

    let mut f32_config = None;
    for encoding in Encoding::ALL {
        let calibration = match encoding {
            Encoding::Int8 => calibration((opts >> 2) & 3, pixels, file),
            _ => None,
        };
        let options = ConvertOptions { encoding, calibration, ..base.clone() };
        match convert(file, &options) {
            Ok(converted) => {
                let model = Model::from_bytes(&converted.blob)
                    .unwrap_or_else(|e| panic!("the converter wrote a {} blob that does not load: {e}", encoding.name()));
                assert_eq!(model.encoding(), encoding);
                assert_eq!(*model.config(), converted.config);
                assert_eq!(converted.report.is_some(), encoding == Encoding::Int8);
                let shape = model.shape();
                let mut ws = model.workspace();
                let image: Vec<u8> = (0..shape.pixels()).map(|i| (i * 29 % 256) as u8).collect();
                let logits = model.infer(&image, &mut ws).expect("a converted model runs");
                assert_eq!(logits.len(), shape.classes as usize);
                assert!(logits.iter().all(|v| v.is_finite()), "{} logits {logits:?}", encoding.name());
                if model.encoding() == Encoding::F32 {
                    // The state_dict comes back bit for bit.
                    let sd = read_safetensors(file).expect("it converted");
                    for (name, values) in model.state_dict() {
                        let original = &sd.get(name).expect("every tensor is in the file").data;
                        let same = original.iter().zip(values).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same && original.len() == values.len(), "{name} changed in conversion");
                    }
                    f32_config = Some(converted.config);
                } else if let Some(config) = f32_config {
                    assert_eq!(config, converted.config, "{} conversion read another config", encoding.name());
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                // A file that converts to f32 only fails later for reasons of
                // the encoding, never of the file itself.
                if f32_config.is_some() {
                    assert!(
                        matches!(e, ConvertError::Calibration { .. } | ConvertError::NotQuantizable { .. }),
                        "{} failed after f32 succeeded: {e:?}",
                        encoding.name()
                    );
                }
            }
        }
    }
});
