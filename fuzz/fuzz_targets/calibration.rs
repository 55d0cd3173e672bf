//! int8 calibration on arbitrary digits (issue #18: a calibration file of
//! 1.4 million blank digits made the converter reserve 5.6 GB and abort):
//! an idx file as `convert --calibration` reads it (`idx::parse`, then
//! `[count, side, side]` images), or the raw bytes as the library's
//! calibration buffer, into a fixed model.
//!
//! Checks: never a panic; a buffer that is not whole images of the model's
//! side is a `Calibration` error and nothing else fails; every blob that
//! converts loads, runs with finite logits on every calibration digit, and
//! its report counts the digits (measuring at most `MEASURED_DIGITS`).
//! Memory stays flat whatever the number of digits (libFuzzer's
//! `-rss_limit_mb` catches a regression, at the scale an input allows).
//!
//! Input: one mode byte, then the bytes. Bit 0: the bytes are an idx file
//! (else raw pixels). Bits 1-2: the model: the shipped seed model (28×28),
//! or a synthetic one of side 4, 8 or 12 (patch side 2, 4 or 6), made once.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use microvit_converter::quantize::MEASURED_DIGITS;
use microvit_converter::{
    convert_state_dict, read_safetensors, ConvertError, ConvertOptions, Encoding, StateDict, Tensor,
};
use microvit_dataset::idx;
use microvit_engine::format::TensorId;
use microvit_engine::synthetic::random_state_dict;
use microvit_engine::{Model, Shape};

const SEED_MODEL: &[u8] = include_bytes!("../../models/microvit-seed.safetensors");

/// The models, with the pixels of one of their images.
fn models() -> &'static [(StateDict, usize); 4] {
    static MODELS: OnceLock<[(StateDict, usize); 4]> = OnceLock::new();
    MODELS.get_or_init(|| {
        let synthetic = |image_side: u32, patch_side: u32| {
            let shape = Shape { image_side, patch_side, dim: 8, heads: 2, classes: 3 };
            let mut sd = StateDict::default();
            for (id, data) in random_state_dict(&shape, u64::from(image_side)) {
                let dims = id.dims(&shape).as_slice().iter().map(|&d| d as usize).collect();
                sd.tensors.insert(TensorId::name(id).to_string(), Tensor { dims, data });
            }
            sd.metadata.insert("microvit.num_heads".into(), "2".into());
            (sd, shape.pixels())
        };
        let seed = read_safetensors(SEED_MODEL).expect("the shipped model reads");
        [(seed, 28 * 28), synthetic(4, 2), synthetic(8, 4), synthetic(12, 6)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let (sd, pixels) = &models()[usize::from(mode >> 1) % 4];
    let pixels = *pixels;
    let calibration = if mode & 1 == 1 {
        // As the CLI reads a calibration file: images of any side, which
        // must then be the model's.
        match idx::parse(bytes, std::path::Path::new("calibration.idx3")) {
            Ok(a) if a.dims.len() == 3 && a.dims[1] == a.dims[2] && a.dims[1] > 0 => a.data,
            Ok(_) | Err(_) => return,
        }
    } else {
        bytes.to_vec()
    };
    let options = ConvertOptions {
        encoding: Encoding::Int8,
        calibration: Some(calibration.clone()),
        ..ConvertOptions::default()
    };
    match convert_state_dict(sd, &options) {
        Ok(converted) => {
            let model = Model::from_bytes(&converted.blob).expect("a converted int8 blob loads");
            assert_eq!(model.shape().pixels(), pixels);
            assert!(!calibration.is_empty() && calibration.len() % pixels == 0);
            let report = converted.report.expect("int8 reports its calibration");
            let count = calibration.len() / pixels;
            assert_eq!(report.calibration_images, count);
            assert_eq!(report.measured_images, count.min(MEASURED_DIGITS));
            assert_eq!(report.z_saturated, 0, "the shift is chosen so that no calibration value saturates");
            let mut ws = model.workspace();
            for image in calibration.chunks_exact(pixels) {
                let logits = model.infer(image, &mut ws).expect("calibration digits have the model's size");
                assert!(logits.iter().all(|v| v.is_finite()));
            }
        }
        Err(ConvertError::Calibration { reason }) => {
            assert!(!reason.is_empty());
            assert!(calibration.is_empty() || !calibration.len().is_multiple_of(pixels), "{reason}");
        }
        Err(e) => panic!("only the calibration digits can be wrong here: {e:?}"),
    }
});
