//! Times tract on the Micro-ViT ONNX graphs, as benches/peers/peers.py times
//! ONNX Runtime and PyTorch: single-image calls on the batch-1 graph (each
//! call timed, the median over all digits after a warm-up of 500), and one
//! call over all digits on the dynamic-batch graph (median of 3 calls after a
//! warm-up call).
//!
//! usage: microvit-peer-tract MODEL_B1.onnx MODEL_DYN.onnx IMAGES.f32 LABELS.u8
//!
//! IMAGES.f32 holds the digits already normalised, N × 1 × 28 × 28 float32
//! little-endian; LABELS.u8 their N labels. Prints one JSON object.

use std::time::Instant;

use tract_onnx::prelude::*;

const SIDE: usize = 28;

fn read_f32(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [b1_path, dyn_path, images_path, labels_path] = &args[..] else {
        eprintln!("usage: microvit-peer-tract MODEL_B1.onnx MODEL_DYN.onnx IMAGES.f32 LABELS.u8");
        std::process::exit(2);
    };
    let pixels = read_f32(images_path);
    let labels = std::fs::read(labels_path)?;
    let n = labels.len();
    assert_eq!(pixels.len(), n * SIDE * SIDE, "images and labels disagree");

    // Single image per call, on the batch-1 graph.
    let single = tract_onnx::onnx()
        .model_for_path(b1_path)?
        .with_input_fact(0, f32::fact([1, 1, SIDE, SIDE]).into())?
        .into_optimized()?
        .into_runnable()?;
    let inputs: Vec<Tensor> = pixels
        .chunks_exact(SIDE * SIDE)
        .map(|p| Tensor::from_shape(&[1, 1, SIDE, SIDE], p))
        .collect::<TractResult<_>>()?;
    let run_one = |i: usize| -> TractResult<usize> {
        let out = single.run(tvec!(inputs[i].clone().into()))?;
        Ok(argmax(out[0].try_as_plain_ram()?.as_slice::<f32>()?))
    };
    for i in 0..n.min(500) {
        run_one(i)?; // warm-up
    }
    let mut correct = 0usize;
    let mut calls = Vec::with_capacity(n);
    let start = Instant::now();
    for (i, &label) in labels.iter().enumerate() {
        let t0 = Instant::now();
        let class = run_one(i)?;
        calls.push(t0.elapsed().as_secs_f64() * 1e6);
        correct += usize::from(class == label as usize);
    }
    let single_mean = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let single_p50 = median(calls);

    // All digits in one call, on the dynamic-batch graph made concrete.
    let (batched_p50, batched_correct, batched_error) = match batched(dyn_path, &pixels, &labels) {
        Ok((us, c)) => (Some(us), Some(c), None),
        Err(e) => (None, None, Some(format!("{e:#}"))),
    };
    let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.4}"));
    let error = batched_error.map_or("null".to_string(), |e| format!("{:?}", e.replace('"', "'")));
    println!(
        "{{\"single_us_p50\": {single_p50:.4}, \"single_us_mean\": {single_mean:.4}, \"accuracy\": {:.6}, \
         \"batched_us\": {}, \"batched_accuracy\": {}, \"batched_error\": {error}, \"tract\": \"0.23.9\"}}",
        correct as f64 / n as f64,
        num(batched_p50),
        num(batched_correct.map(|c| c as f64 / n as f64)),
    );
    Ok(())
}

fn batched(path: &str, pixels: &[f32], labels: &[u8]) -> TractResult<(f64, usize)> {
    let n = labels.len();
    // The graph's batch dimension is the symbol `batch` (pinning the input
    // fact to N conflicts with the value_info that names it): substitute N
    // for it in the typed model, then optimise for that shape.
    let typed = tract_onnx::onnx().model_for_path(path)?.into_typed()?;
    let batch = typed.symbols.sym("batch");
    let subs = std::collections::HashMap::from([(batch, TDim::from(n as i64))]);
    let model = typed.set_symbols(&subs)?.into_optimized()?.into_runnable()?;
    let input = Tensor::from_shape(&[n, 1, SIDE, SIDE], pixels)?;
    let mut times = Vec::new();
    let mut correct = 0;
    for round in 0..4 {
        let t0 = Instant::now();
        let out = model.run(tvec!(input.clone().into()))?;
        let dt = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        let logits = out[0].try_as_plain_ram()?.as_slice::<f32>()?;
        correct = logits.chunks_exact(logits.len() / n).zip(labels).filter(|(l, &y)| argmax(l) == y as usize).count();
        if round > 0 {
            times.push(dt); // the first call is the warm-up
        }
    }
    Ok((median(times), correct))
}
