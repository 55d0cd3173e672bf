//! Writing the folded model as an int8 fixed-point blob or an f16 blob.
//! docs/FIXED_POINT.md explains each scale chosen here.

use std::fmt;

use half::f16;
use microvit_engine::format::{BlobWriter, ElemType, Encoding, ModelConfig, TensorId};
use microvit_engine::int8::{
    ln_eps_limit, round_shift, z_limit, Params, BYTE_PAIR_WEIGHT_LIMIT, LOGIT_FRAC_BITS, NORM_BITS, PATCH_WEIGHT_LIMIT,
    SCORE_FRAC_BITS, WIDE_WEIGHT_LIMIT,
};
use microvit_engine::{argmax, Model};

use crate::fold::Folded;
use crate::ConvertError;

/// Reserved at the top of i32 for the rounding offset of the z shift.
const ROUNDING_HEADROOM: i64 = 1 << 23;
/// The report's error figures are measured on at most this many of the
/// calibration digits (the first ones): the float reference costs far more
/// per digit than calibrating, and 10,000 digits measure the error well.
/// The scales are calibrated on every digit.
pub const MEASURED_DIGITS: usize = 10_000;

/// What the int8 conversion measured on the calibration digits.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantReport {
    pub calibration_images: usize,
    /// The digits the error figures below were measured on: the first
    /// `min(calibration_images, MEASURED_DIGITS)`.
    pub measured_images: usize,
    /// Bits of the per-channel patch scale multipliers (2^k at most).
    pub patch_scale_bits: u32,
    /// Largest |patch accumulator × scale + bias| seen, and the i32 limit.
    pub z_max: i64,
    pub z_shift: u32,
    /// Values that saturated on the i16 LayerNorm input grid, of all the
    /// calibration digits' LayerNorm inputs.
    pub z_saturated: usize,
    pub z_values: usize,
    pub score_frac_bits: u32,
    pub head_frac_bits: u32,
    /// Score range (float) over the measured digits, all heads.
    pub score_range: (f64, f64),
    /// Logit range (float) over the measured digits.
    pub logit_range: (f64, f64),
    /// int8 engine vs the folded f64 model on the measured digits.
    pub max_logit_error: f64,
    pub mean_logit_error: f64,
    pub top1_agreement: usize,
}

impl fmt::Display for QuantReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.measured_images;
        writeln!(f, "calibration   {} digits", self.calibration_images)?;
        writeln!(
            f,
            "patch embed   int8 weights in ±63, per-channel scale multipliers of up to {} bits",
            self.patch_scale_bits
        )?;
        writeln!(
            f,
            "layernorm in  max |z| {} on the i32 grid, shift {} to i16 ({} of {} values saturated)",
            self.z_max, self.z_shift, self.z_saturated, self.z_values
        )?;
        writeln!(
            f,
            "scores        [{:.3}, {:.3}], weights Q.{} i16, computed Q.16",
            self.score_range.0, self.score_range.1, self.score_frac_bits
        )?;
        writeln!(
            f,
            "logits        [{:.3}, {:.3}], head weights Q.{} i16, computed Q.16",
            self.logit_range.0, self.logit_range.1, self.head_frac_bits
        )?;
        write!(
            f,
            "quant error   max |Δlogit| {:.4}, mean {:.5}, top-1 agreement {}/{n} ({:.2} %) vs the float model",
            self.max_logit_error,
            self.mean_logit_error,
            self.top1_agreement,
            100.0 * self.top1_agreement as f64 / n.max(1) as f64
        )?;
        if n < self.calibration_images {
            write!(f, " (on the first {n} digits)")?;
        }
        Ok(())
    }
}

fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i16_bytes(values: &[i16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect()
}

/// Through f32, always: `half`'s `f16::from_f64` rounds once in software but
/// twice (f64 → f32 → f16) on the F16C instruction, which it uses only with
/// its `std` feature on a CPU that has it, so the same model converted
/// elsewhere could differ in a weight's last bit. f32 → f16 is rounded
/// exactly on both paths; the shipped f16 blobs were written this way.
fn f16_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|&v| f16::from_f32(v as f32).to_le_bytes()).collect()
}

/// Fraction bits for the i16 score or head weights: the largest `f` in
/// `min..=max` with `max|values| · 2^f ≤` [`WIDE_WEIGHT_LIMIT`]. Weights that
/// do not fit even at `min` bits (the fewest the engine's shifts allow) are
/// refused: clamping them would change the model silently.
fn wide_frac_bits(name: &str, values: &[f64], min: u32, max: u32) -> Result<u32, ConvertError> {
    let peak = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let limit = WIDE_WEIGHT_LIMIT as f64;
    if peak == 0.0 {
        return Ok(max);
    }
    if peak * 2f64.powi(min as i32) > limit {
        return Err(ConvertError::NotQuantizable {
            reason: format!(
                "int8 {name} weights too large: a folded weight of {peak:.3e} exceeds {:.3e}, the most an i16 holds at {min} fraction bits",
                limit / 2f64.powi(min as i32)
            ),
        });
    }
    Ok(((limit / peak).log2().floor() as i64).clamp(min as i64, max as i64) as u32)
}

/// Rows of `width` weights that sum to zero ([`centred`]), scaled by 2^bits
/// and rounded so that each integer row sums to exactly zero too (largest
/// remainder: floor every value, then round up the ones with the largest
/// fractions). The int8 LayerNorm centres each token on its rounded mean,
/// not its exact one; a zero-sum row cancels that offset exactly, and
/// changes nothing for the float model, whose normalised tokens have zero
/// mean.
fn quantize_zero_sum(values: &[f64], width: usize, bits: u32) -> Vec<i16> {
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(width) {
        let scaled: Vec<f64> = row.iter().map(|v| v * 2f64.powi(bits as i32)).collect();
        let floors: Vec<i64> = scaled.iter().map(|v| v.floor() as i64).collect();
        let up = (-floors.iter().sum::<i64>()).clamp(0, width as i64) as usize;
        let mut order: Vec<usize> = (0..width).collect();
        order.sort_by(|&a, &b| (scaled[b] - floors[b] as f64).total_cmp(&(scaled[a] - floors[a] as f64)));
        let mut q = floors;
        for &i in &order[..up] {
            q[i] += 1;
        }
        let limit = WIDE_WEIGHT_LIMIT as i64;
        out.extend(q.iter().map(|&v| v.clamp(-limit, limit) as i16));
    }
    out
}

/// `values` with every row of `width` shifted to sum to zero.
fn centred(values: &[f64], width: usize) -> Vec<f64> {
    values
        .chunks_exact(width)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / width as f64;
            row.iter().map(move |v| v - mean)
        })
        .collect()
}

/// `values`, `rows × width` with `rows` rows, with every column shifted to sum to zero.
fn centred_columns(values: &[f64], rows: usize) -> Vec<f64> {
    let width = values.len() / rows;
    let mean: Vec<f64> = (0..width).map(|c| values.iter().skip(c).step_by(width).sum::<f64>() / rows as f64).collect();
    values.iter().enumerate().map(|(i, v)| v - mean[i % width]).collect()
}

fn fixed_i32(values: &[f64], bits: u32, limit: f64) -> Vec<i32> {
    values.iter().map(|v| (v * 2f64.powi(bits as i32)).round().clamp(-limit, limit) as i32).collect()
}

/// The f16 blob: folded tensors, the big ones in half precision, the small
/// constants in f32.
pub fn f16_blob(folded: &Folded, config: ModelConfig) -> Vec<u8> {
    let mut w = BlobWriter::new(Encoding::F16, config);
    let shape = &config.shape;
    let mut add = |id: TensorId, elem: ElemType, bytes: Vec<u8>| {
        w.tensor(id, elem, id.dims(shape).as_slice(), bytes);
    };
    add(TensorId::F16PatchWeight, ElemType::F16, f16_bytes(&folded.patch_weight));
    add(TensorId::F16TokenBias, ElemType::F32, f32_bytes(&folded.token_bias));
    add(TensorId::F16ClsNorm, ElemType::F32, f32_bytes(&folded.cls_norm));
    add(TensorId::F16ScoreWeight, ElemType::F16, f16_bytes(&folded.score_weight));
    add(TensorId::F16ClsScore, ElemType::F32, f32_bytes(&folded.cls_score));
    add(TensorId::F16HeadWeight, ElemType::F16, f16_bytes(&folded.head_weight));
    add(TensorId::F16HeadBias, ElemType::F32, f32_bytes(&folded.head_bias));
    w.finish()
}

/// The patch embedding on a common i32 grid: int8 weights per output
/// channel, each channel's scale an integer multiple of the grid step.
struct PatchQuant {
    weight: Vec<i8>,
    scale: Vec<i32>,
    bias: Vec<i32>,
    /// The grid step, in units of the folded (pixel-input) model.
    step: f64,
    scale_bits: u32,
}

fn quantize_patch(folded: &Folded) -> Result<PatchQuant, ConvertError> {
    let s = &folded.shape;
    let (d, k) = (s.dim as usize, s.patch_len());
    // The loader's bound, not the weights' 7 bits: the blob's scales must
    // pass its check, which assumes the widest weights it accepts.
    let max_acc = k as i64 * 255 * PATCH_WEIGHT_LIMIT as i64;
    // Weights in ±63, not ±127: AVX2 then multiplies four pixels an
    // instruction pair (`BYTE_PAIR_WEIGHT_LIMIT`); accuracy and agreement
    // with PyTorch stay within 0.05 pp and 0.11 pp of 8 bits
    // (docs/FIXED_POINT.md, "Measured").
    let limit = BYTE_PAIR_WEIGHT_LIMIT as f64;
    // The int8 LayerNorm takes no mean (docs/FIXED_POINT.md, §3 step 2):
    // every pixel's weights and every token's bias centred over the
    // channels make z's mean zero for any image. Exact in reals: LayerNorm
    // subtracts the mean, so the float model is the same function.
    let centred_weight = centred_columns(&folded.patch_weight, d);
    let token_bias = centred(&folded.token_bias, d);
    let row_scale: Vec<f64> =
        (0..d).map(|o| centred_weight[o * k..][..k].iter().fold(0.0f64, |m, v| m.max(v.abs())) / limit).collect();
    let top = row_scale.iter().copied().fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    // The finest grid (most multiplier bits) whose worst case still fits i32.
    for bits in (0..=20u32).rev() {
        let step = top / (1u64 << bits) as f64;
        let scale: Vec<i32> = row_scale.iter().map(|r| ((r / step).ceil() as i64).max(1) as i32).collect();
        // Clamped far above i32 so the check below cannot overflow i64.
        let bias: Vec<i64> = token_bias.iter().map(|b| (b / step).round().clamp(-1e15, 1e15) as i64).collect();
        let fits = (0..d).all(|o| {
            let max_bias = bias.iter().skip(o).step_by(d).map(|b| b.abs()).max().unwrap_or(0);
            max_acc * scale[o] as i64 + max_bias + ROUNDING_HEADROOM <= i32::MAX as i64
        });
        if !fits {
            continue;
        }
        let weight = (0..d * k)
            .map(|i| {
                let q = centred_weight[i] / (scale[i / k] as f64 * step);
                q.round().clamp(-limit, limit) as i8
            })
            .collect();
        let bias = bias.into_iter().map(|b| b as i32).collect();
        return Ok(PatchQuant { weight, scale, bias, step, scale_bits: bits });
    }
    Err(ConvertError::NotQuantizable { reason: "int8 patch biases too large for the i32 accumulator grid".into() })
}

/// The int8 blob, with scales from the calibration digits (`count × S²`
/// pixels), and what it measured.
pub fn int8_blob(
    folded: &Folded,
    config: ModelConfig,
    calibration: &[u8],
) -> Result<(Vec<u8>, QuantReport), ConvertError> {
    let shape = config.shape;
    let (d, k, pixels) = (shape.dim as usize, shape.patch_len(), shape.pixels());
    if calibration.is_empty() || !calibration.len().is_multiple_of(pixels) {
        return Err(ConvertError::Calibration {
            reason: format!("{} bytes is not a whole number of {pixels}-pixel images", calibration.len()),
        });
    }
    let images = calibration.chunks_exact(pixels);
    let count = images.len();
    let patch = quantize_patch(folded)?;

    // Calibrate the shift onto the i16 LayerNorm input grid: the exact i32
    // values the engine will compute, over every calibration digit. Only
    // their largest magnitude is kept, one digit's values at a time, so
    // memory does not grow with the number of digits.
    let (side, p, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.grid());
    let patch_z = |image: &[u8], z: &mut [i64]| {
        for t in 0..shape.patches() {
            let (r, c) = (t / grid, t % grid);
            for o in 0..d {
                let mut acc = 0i64;
                for y in 0..p {
                    for x in 0..p {
                        acc += patch.weight[o * k + y * p + x] as i64 * image[(r * p + y) * side + c * p + x] as i64;
                    }
                }
                z[t * d + o] = acc * patch.scale[o] as i64 + patch.bias[t * d + o] as i64;
            }
        }
    };
    let mut z = vec![0i64; shape.patches() * d];
    let mut z_max = 0i64;
    for image in images.clone() {
        patch_z(image, &mut z);
        z_max = z.iter().fold(z_max, |m, v| m.max(v.abs()));
    }
    // LayerNorm reads z clamped to ±Zc (8191 for D ≤ 32): calibration maxima
    // at or below half of it leave digits twice as extreme room to fit.
    let z_clamp = z_limit(shape.dim) as i64;
    let z_target = (z_clamp + 1) / 2;
    let z_shift = (0..=24u32).find(|&s| round_shift(z_max, s) <= z_target).unwrap_or(24);
    // The shift puts every calibration value within ±Zc/2, so none
    // saturates; the search cannot fail (|z| < 2^31 by quantize_patch), but
    // if it did the values are counted.
    let saturate = |v: &i64| !(-z_clamp..=z_clamp).contains(&round_shift(*v, z_shift));
    let saturated = if round_shift(z_max, z_shift) <= z_target {
        0
    } else {
        images
            .clone()
            .map(|image| {
                patch_z(image, &mut z);
                z.iter().filter(|v| saturate(v)).count()
            })
            .sum()
    };
    let z_step = patch.step * 2f64.powi(z_shift as i32);
    let ln_eps = (d as f64 * folded.layer_norm_eps / (z_step * z_step)).round().min(ln_eps_limit(shape.dim) as f64);

    // The engine's normalised tokens are the float ones times
    // 2^NORM_BITS / √D (L2 norm 2^14), so the score and head weights are
    // scaled by √D / 2^NORM_BITS and centred (see quantize_zero_sum).
    // Scores and logits are built from normalised vectors, so their scales
    // follow from the weights alone.
    let root_d = (d as f64).sqrt();
    // Scores are kept in log2 units (the int8 softmax is base 2): log2 e is
    // folded into the score weights and the CLS token's scores.
    let log2e = std::f64::consts::LOG2_E;
    let score_weight = centred(&folded.score_weight.iter().map(|v| v * root_d * log2e).collect::<Vec<_>>(), d);
    let head_weight = centred(&folded.head_weight.iter().map(|v| v * root_d).collect::<Vec<_>>(), d);
    let min_bits = SCORE_FRAC_BITS - NORM_BITS;
    let score_bits = wide_frac_bits("score", &score_weight, min_bits, min_bits + 30)?;
    let head_bits = wide_frac_bits("head", &head_weight, min_bits, min_bits + 40)?;
    let params = Params {
        z_shift,
        ln_eps: ln_eps as i32,
        score_shift: score_bits + NORM_BITS - SCORE_FRAC_BITS,
        head_shift: head_bits + NORM_BITS - LOGIT_FRAC_BITS,
    };
    let limit29 = (1i64 << 29) as f64;
    let unit = 2f64.powi(NORM_BITS as i32) / root_d;
    let cls_norm: Vec<i16> = folded.cls_norm.iter().map(|v| (v * unit).round() as i16).collect();

    let mut w = BlobWriter::new(Encoding::Int8, config);
    let mut add = |id: TensorId, elem: ElemType, bytes: Vec<u8>| {
        w.tensor(id, elem, id.dims(&shape).as_slice(), bytes);
    };
    add(TensorId::Int8PatchWeight, ElemType::I8, patch.weight.iter().map(|&q| q as u8).collect());
    add(TensorId::Int8PatchScale, ElemType::I32, i32_bytes(&patch.scale));
    add(TensorId::Int8TokenBias, ElemType::I32, i32_bytes(&patch.bias));
    add(TensorId::Int8Params, ElemType::I32, i32_bytes(&params.to_raw()));
    add(TensorId::Int8ClsNorm, ElemType::I16, i16_bytes(&cls_norm));
    add(TensorId::Int8ScoreWeight, ElemType::I16, i16_bytes(&quantize_zero_sum(&score_weight, d, score_bits)));
    let cls_score: Vec<f64> = folded.cls_score.iter().map(|v| v * log2e).collect();
    add(TensorId::Int8ClsScore, ElemType::I32, i32_bytes(&fixed_i32(&cls_score, SCORE_FRAC_BITS, limit29)));
    add(TensorId::Int8HeadWeight, ElemType::I16, i16_bytes(&quantize_zero_sum(&head_weight, d, head_bits)));
    add(TensorId::Int8HeadBias, ElemType::I32, i32_bytes(&fixed_i32(&folded.head_bias, LOGIT_FRAC_BITS, limit29)));
    let blob = w.finish();

    // Measure what the engine will do against the folded f64 model.
    let model = Model::from_bytes(&blob)
        .map_err(|e| ConvertError::NotQuantizable { reason: format!("the int8 blob does not load: {e}") })?;
    let mut ws = model.workspace();
    let classes = shape.classes as usize;
    let (mut max_err, mut sum_err, mut agree) = (0.0f64, 0.0f64, 0usize);
    let (mut score_lo, mut score_hi, mut logit_lo, mut logit_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let measured = count.min(MEASURED_DIGITS);
    for image in images.take(measured) {
        let (want, _) = folded.forward(image);
        let got = model.infer(image, &mut ws).expect("calibration digits have the model's size");
        for (a, b) in got.iter().zip(&want) {
            let err = (*a as f64 - b).abs();
            max_err = max_err.max(err);
            sum_err += err;
        }
        agree += (argmax(got) == argmax_f64(&want)) as usize;
        for &l in &want {
            logit_lo = logit_lo.min(l);
            logit_hi = logit_hi.max(l);
        }
        let tokens = folded.patch_tokens(image);
        for j in 0..shape.heads as usize {
            let g = &folded.score_weight[j * d..][..d];
            for token in tokens.chunks_exact(d) {
                let n = crate::fold::normalise(token, folded.layer_norm_eps);
                let s: f64 = g.iter().zip(&n).map(|(a, b)| a * b).sum();
                score_lo = score_lo.min(s);
                score_hi = score_hi.max(s);
            }
        }
    }
    let report = QuantReport {
        calibration_images: count,
        measured_images: measured,
        patch_scale_bits: patch.scale_bits,
        z_max,
        z_shift,
        z_saturated: saturated,
        z_values: count * z.len(),
        score_frac_bits: score_bits,
        head_frac_bits: head_bits,
        score_range: (score_lo, score_hi),
        logit_range: (logit_lo, logit_hi),
        max_logit_error: max_err,
        mean_logit_error: sum_err / (measured * classes) as f64,
        top1_agreement: agree,
    };
    Ok((blob, report))
}

fn argmax_f64(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
