//! Properties of the f32 forward pass: argument errors, attention that is a
//! probability distribution, determinism, and agreement with an independent
//! f64 implementation of the Micro-ViT written from its definition
//! (train/microvit_model.py) and fed the weights `Model::state_dict` returns.

use std::collections::HashMap;
use std::sync::OnceLock;

use microvit_engine::format::{ModelConfig, TensorId};
use microvit_engine::synthetic::{f32_blob, random_f32_blob, random_image, random_state_dict};
use microvit_engine::{argmax, softmax, InferError, Model, Shape, Workspace};
use proptest::prelude::*;

// ---------------------------------------------------------------- f64 model

/// What the f64 model computes for one image.
struct Reference {
    logits: Vec<f64>,
    /// Per head, the CLS token's attention over all tokens.
    cls_attention: Vec<Vec<f64>>,
}

/// `nn.Linear`: `out[o] = bias[o] + Σ_i weight[o][i] · input[i]`, weight `[out, in]`.
fn linear(weight: &[f64], bias: &[f64], input: &[f64]) -> Vec<f64> {
    assert_eq!(weight.len(), bias.len() * input.len());
    (0..bias.len())
        .map(|o| bias[o] + (0..input.len()).map(|i| weight[o * input.len() + i] * input[i]).sum::<f64>())
        .collect()
}

/// `nn.LayerNorm`: biased variance, eps inside the square root.
fn layer_norm(x: &[f64], weight: &[f64], bias: &[f64], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter().enumerate().map(|(i, v)| (v - mean) / (var + eps).sqrt() * weight[i] + bias[i]).collect()
}

fn softmax_f64(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The Micro-ViT in f64, from the model's own state_dict and config.
fn forward_f64(model: &Model<'_>, image: &[u8]) -> Reference {
    let shape = model.shape();
    let config = model.config();
    let weights: HashMap<&str, Vec<f64>> =
        model.state_dict().into_iter().map(|(name, v)| (name, v.iter().map(|&x| x as f64).collect())).collect();
    let w = |name: &str| -> &[f64] { &weights[name] };

    let side = shape.image_side as usize;
    let p = shape.patch_side as usize;
    let d = shape.dim as usize;
    let heads = shape.heads as usize;
    let head_dim = d / heads;
    let grid = side / p;
    let tokens = grid * grid + 1;
    let (mean, std, eps) = (config.pixel_mean as f64, config.pixel_std as f64, config.layer_norm_eps as f64);
    assert_eq!(image.len(), side * side);

    // Token 0: the CLS token; then the patches row-major over the grid, each
    // patch's pixels flattened row-major and normalised.
    let mut x: Vec<Vec<f64>> = vec![w("cls_token").to_vec()];
    for grid_row in 0..grid {
        for grid_col in 0..grid {
            let mut patch = Vec::with_capacity(p * p);
            for y in 0..p {
                for xx in 0..p {
                    let pixel = image[(grid_row * p + y) * side + grid_col * p + xx] as f64;
                    patch.push((pixel / 255.0 - mean) / std);
                }
            }
            x.push(linear(w("patch_embed.weight"), w("patch_embed.bias"), &patch));
        }
    }
    assert_eq!(x.len(), tokens);
    let pos = w("pos_embed");
    for (t, token) in x.iter_mut().enumerate() {
        for (j, v) in token.iter_mut().enumerate() {
            *v += pos[t * d + j];
        }
    }

    // Pre-norm, then Q, K, V for every token (rows of in_proj: q, k, v).
    let qkv: Vec<Vec<f64>> = x
        .iter()
        .map(|token| {
            let h = layer_norm(token, w("norm.weight"), w("norm.bias"), eps);
            linear(w("attention.in_proj_weight"), w("attention.in_proj_bias"), &h)
        })
        .collect();

    // Only the CLS token's output reaches the head, so only its query row is
    // needed: softmax(q·kᵀ / √head_dim) · v per head, heads concatenated.
    let mut context = vec![0.0; d];
    let mut cls_attention = Vec::with_capacity(heads);
    for head in 0..heads {
        let q = &qkv[0][head * head_dim..][..head_dim];
        let scores: Vec<f64> = (0..tokens)
            .map(|j| {
                let k = &qkv[j][d + head * head_dim..][..head_dim];
                q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (head_dim as f64).sqrt()
            })
            .collect();
        let probs = softmax_f64(&scores);
        for (c, out) in context[head * head_dim..][..head_dim].iter_mut().enumerate() {
            *out = (0..tokens).map(|j| probs[j] * qkv[j][2 * d + head * head_dim + c]).sum();
        }
        cls_attention.push(probs);
    }
    let attended = linear(w("attention.out_proj.weight"), w("attention.out_proj.bias"), &context);
    let cls: Vec<f64> = x[0].iter().zip(&attended).map(|(a, b)| a + b).collect();
    Reference { logits: linear(w("head.weight"), w("head.bias"), &cls), cls_attention }
}

/// Checks the engine against the f64 model on one image; returns the
/// largest logit error relative to the logits' scale.
fn compare(model: &Model<'_>, ws: &mut Workspace, image: &[u8]) -> Result<f64, String> {
    let shape = model.shape();
    let logits = model.infer(image, ws).map_err(|e| e.to_string())?.to_vec();
    let reference = forward_f64(model, image);
    if logits.len() != reference.logits.len() {
        return Err(format!("{shape}: {} logits, expected {}", logits.len(), reference.logits.len()));
    }
    let scale = reference.logits.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for (c, (&got, &want)) in logits.iter().zip(&reference.logits).enumerate() {
        if !got.is_finite() {
            return Err(format!("{shape}: logit {c} is {got}"));
        }
        let err = (got as f64 - want).abs() / scale;
        worst = worst.max(err);
        if err > 1e-4 {
            return Err(format!("{shape}: logit {c} is {got}, the f64 model gives {want} (scale {scale})"));
        }
    }
    for (h, want) in reference.cls_attention.iter().enumerate() {
        let got = ws.cls_attention(h);
        if got.len() != want.len() {
            return Err(format!("{shape}: head {h} attends over {} tokens, expected {}", got.len(), want.len()));
        }
        for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
            if (g as f64 - w).abs() > 1e-5 {
                return Err(format!("{shape}: head {h} CLS attention to token {j} is {g}, the f64 model gives {w}"));
            }
        }
    }
    Ok(worst)
}

/// Attention of every head is a probability distribution over the tokens.
fn check_attention_is_distribution(shape: Shape, ws: &Workspace) -> Result<(), String> {
    for h in 0..shape.heads as usize {
        let probs = ws.cls_attention(h);
        if probs.len() != shape.tokens() as usize {
            return Err(format!("{shape}: head {h} has {} attention weights", probs.len()));
        }
        if let Some(p) = probs.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(format!("{shape}: head {h} has attention weight {p}"));
        }
        let sum: f32 = probs.iter().sum();
        if (sum - 1.0).abs() > 1e-5 {
            return Err(format!("{shape}: head {h} attention sums to {sum}"));
        }
    }
    Ok(())
}

const FIXED_SHAPES: [Shape; 8] = [
    Shape::SEED,
    // The largest image and token count, with many heads.
    Shape { image_side: 64, patch_side: 4, dim: 128, heads: 8, classes: 10 },
    // One head.
    Shape { image_side: 28, patch_side: 7, dim: 32, heads: 1, classes: 10 },
    // One patch covering the whole image: two tokens.
    Shape { image_side: 28, patch_side: 28, dim: 32, heads: 2, classes: 10 },
    Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 },
    // head_dim 1, the family's upper corner.
    Shape { image_side: 64, patch_side: 4, dim: 128, heads: 128, classes: 64 },
    // The smallest model: dim 1, so LayerNorm leaves only its bias.
    Shape { image_side: 2, patch_side: 2, dim: 1, heads: 1, classes: 1 },
    // Non-square-number friendly sizes.
    Shape { image_side: 30, patch_side: 5, dim: 20, heads: 5, classes: 3 },
];

/// `FIXED_SHAPES` with their indices. Under miri, which checks the unsafe
/// code for undefined behaviour and runs every f32 operation in software
/// (one inference of the seed shape takes tens of seconds, building its blob
/// as long), only three: the seed shape, the two-token one and dim 1. The
/// others run the same code with other loop counts; the native run checks
/// them all.
fn fixed_shapes() -> impl Iterator<Item = (usize, Shape)> {
    const UNDER_MIRI: [usize; 3] = [0, 3, 6];
    FIXED_SHAPES.into_iter().enumerate().filter(|(i, _)| !cfg!(miri) || UNDER_MIRI.contains(i))
}

/// The random f32 model of fixed shape `i`, built once per test binary and
/// shared by the tests (building is a large part of a test under miri).
fn fixed_model(i: usize) -> Model<'static> {
    static BLOBS: [OnceLock<Vec<u8>>; FIXED_SHAPES.len()] = [const { OnceLock::new() }; FIXED_SHAPES.len()];
    let blob = BLOBS[i].get_or_init(|| random_f32_blob(FIXED_SHAPES[i], i as u64));
    Model::from_bytes(blob).unwrap()
}

/// Random images per model and shape: one under miri, where an inference
/// takes tens of seconds.
const RANDOM_IMAGES: u64 = if cfg!(miri) { 1 } else { 3 };

// ---------------------------------------------------------------- (a) errors

#[test]
fn wrong_image_size_is_an_error() {
    let model = fixed_model(0);
    let mut ws = model.workspace();
    for len in [0usize, 1, 783, 785, 28 * 29, 32 * 32] {
        let image = vec![0u8; len];
        let err = model.infer(&image, &mut ws).unwrap_err();
        assert_eq!(err, InferError::ImageSize { expected: 784, found: len });
        let msg = err.to_string();
        assert!(msg.contains("784") && msg.contains(&len.to_string()), "{msg}");
        assert_eq!(model.classify(&image, &mut ws), Err(InferError::ImageSize { expected: 784, found: len }));
    }
    // The workspace still works afterwards.
    model.infer(&[0u8; 784], &mut ws).unwrap();
}

#[test]
fn workspace_of_another_shape_is_an_error() {
    let model = fixed_model(0);
    let image = random_image(&Shape::SEED, 2);
    let others = [
        Shape { dim: 24, ..Shape::SEED },
        Shape { heads: 1, ..Shape::SEED },
        Shape { classes: 9, ..Shape::SEED },
        Shape { patch_side: 4, ..Shape::SEED },
        Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 },
    ];
    for other in others {
        let mut ws = Workspace::new(other, microvit_engine::Encoding::F32);
        let err = model.infer(&image, &mut ws).unwrap_err();
        assert_eq!(err, InferError::WorkspaceMismatch, "workspace for {other}");
        assert!(!err.to_string().is_empty());
        assert_eq!(model.classify(&image, &mut ws), Err(InferError::WorkspaceMismatch));
    }
    // A workspace of another model of the same shape is fine.
    let twin = Model::from_bytes(&random_f32_blob(Shape::SEED, 99)).unwrap();
    let mut ws = twin.workspace();
    let a = model.infer(&image, &mut ws).unwrap().to_vec();
    let mut own = model.workspace();
    assert_eq!(a, model.infer(&image, &mut own).unwrap());
    // The image size is checked first.
    let mut wrong = Workspace::new(others[0], microvit_engine::Encoding::F32);
    assert_eq!(model.infer(&image[1..], &mut wrong).unwrap_err(), InferError::ImageSize { expected: 784, found: 783 });
}

// ---------------------------------------------------------------- (b) attention

#[test]
fn cls_attention_is_a_distribution_for_every_head() {
    for (i, shape) in fixed_shapes() {
        let model = fixed_model(i);
        let mut ws = model.workspace();
        for seed in 0..RANDOM_IMAGES {
            model.infer(&random_image(&shape, seed), &mut ws).unwrap();
            check_attention_is_distribution(shape, &ws).unwrap();
        }
        // Extreme images too.
        for fill in [0u8, 255] {
            model.infer(&vec![fill; shape.pixels()], &mut ws).unwrap();
            check_attention_is_distribution(shape, &ws).unwrap();
        }
    }
}

// ---------------------------------------------------------------- (c) determinism

#[test]
fn inference_is_deterministic_and_independent_of_workspace_history() {
    for (i, shape) in fixed_shapes() {
        let model = fixed_model(i);
        let (a, b) = (random_image(&shape, 1), random_image(&shape, 2));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let mut ws = model.workspace();
        let first = bits(model.infer(&a, &mut ws).unwrap());
        let attention_first = ws.cls_attention(0).to_vec();
        assert_eq!(first, bits(model.infer(&a, &mut ws).unwrap()), "{shape}: same image twice");
        let other = bits(model.infer(&b, &mut ws).unwrap());
        assert_eq!(first, bits(model.infer(&a, &mut ws).unwrap()), "{shape}: after another image");
        assert_eq!(attention_first, ws.cls_attention(0), "{shape}: attention after another image");
        let mut fresh = model.workspace();
        assert_eq!(first, bits(model.infer(&a, &mut fresh).unwrap()), "{shape}: fresh workspace");
        if shape.dim > 1 {
            assert_ne!(first, other, "{shape}: two random images give the same logits");
        }
        assert_eq!(model.classify(&a, &mut ws).unwrap(), argmax(&f32s(&first)));
        // ws.logits() holds the last inference.
        model.infer(&b, &mut ws).unwrap();
        assert_eq!(bits(ws.logits()), other);
    }
}

fn f32s(bits: &[u32]) -> Vec<f32> {
    bits.iter().map(|&b| f32::from_bits(b)).collect()
}

#[test]
fn threads_sharing_a_model_agree() {
    let shape = Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 };
    let model = Model::from_bytes(&random_f32_blob(shape, 5)).unwrap();
    // Under miri, where this took over 40 minutes with 4 threads of 4
    // images of 65 tokens, 2 threads of 2 images: still concurrent reads of
    // one model.
    let (threads, count) = if cfg!(miri) { (2, 2) } else { (4, 16) };
    let images: Vec<Vec<u8>> = (0..count).map(|s| random_image(&shape, s)).collect();
    let mut ws = model.workspace();
    let serial: Vec<Vec<f32>> = images.iter().map(|im| model.infer(im, &mut ws).unwrap().to_vec()).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut ws = model.workspace();
                for (im, want) in images.iter().zip(&serial).rev() {
                    assert_eq!(model.infer(im, &mut ws).unwrap(), &want[..]);
                }
            });
        }
    });
}

// ---------------------------------------------------------------- (d) the f64 model

#[test]
fn state_dict_returns_the_stored_tensors() {
    let shape = Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 };
    let tensors = random_state_dict(&shape, 77);
    let model = Model::from_bytes(&f32_blob(ModelConfig::mnist(shape), &tensors)).unwrap();
    let sd = model.state_dict();
    assert_eq!(sd.len(), 12);
    for ((name, values), (id, want)) in sd.iter().zip(&tensors) {
        assert_eq!(*name, id.name());
        assert_eq!(values.len(), id.dims(&shape).elements().unwrap());
        assert!(values.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}");
    }
    let names: Vec<&str> = sd.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TensorId::STATE_DICT.map(TensorId::name));
}

/// A model whose output follows by hand: with dim 1, LayerNorm leaves only
/// its bias, so all keys are equal, attention is uniform and the context is
/// the one value vector. Checks the f64 model as much as the engine.
#[test]
fn hand_computed_model() {
    let shape = Shape { image_side: 2, patch_side: 2, dim: 1, heads: 1, classes: 2 };
    let tensors: Vec<(TensorId, Vec<f32>)> = vec![
        (TensorId::PatchEmbedWeight, vec![0.1, -0.2, 0.3, 0.4]),
        (TensorId::PatchEmbedBias, vec![0.7]),
        (TensorId::ClsToken, vec![0.5]),
        (TensorId::PosEmbed, vec![0.25, -8.0]),
        (TensorId::NormWeight, vec![3.0]),
        (TensorId::NormBias, vec![1.5]),
        (TensorId::InProjWeight, vec![0.9, -0.6, 2.0]),
        (TensorId::InProjBias, vec![0.1, 0.2, -1.0]),
        (TensorId::OutProjWeight, vec![0.5]),
        (TensorId::OutProjBias, vec![0.25]),
        (TensorId::HeadWeight, vec![1.0, -3.0]),
        (TensorId::HeadBias, vec![0.5, 0.0]),
    ];
    let model = Model::from_bytes(&f32_blob(ModelConfig::mnist(shape), &tensors)).unwrap();
    let mut ws = model.workspace();
    // context = v = 2·1.5 − 1 = 2; attended = 0.5·2 + 0.25 = 1.25;
    // cls = 0.5 + 0.25 + 1.25 = 2; logits = [2 + 0.5, −6].
    let logits = model.infer(&[0, 50, 100, 255], &mut ws).unwrap().to_vec();
    assert_eq!(logits, [2.5, -6.0]);
    assert_eq!(ws.cls_attention(0), [0.5, 0.5]);
    let reference = forward_f64(&model, &[0, 50, 100, 255]);
    assert_eq!(reference.logits, [2.5, -6.0]);
    assert_eq!(reference.cls_attention, [vec![0.5, 0.5]]);
}

#[test]
fn f32_engine_matches_f64_model_on_fixed_shapes() {
    for (i, shape) in fixed_shapes() {
        let model = fixed_model(i);
        let mut ws = model.workspace();
        for seed in 0..RANDOM_IMAGES {
            compare(&model, &mut ws, &random_image(&shape, seed)).unwrap();
        }
        compare(&model, &mut ws, &vec![255; shape.pixels()]).unwrap();
        compare(&model, &mut ws, &vec![0; shape.pixels()]).unwrap();
    }
}

/// The forward pass uses the blob's normalisation and epsilon, not MNIST's.
#[test]
fn f32_engine_uses_the_header_parameters() {
    let shape = Shape::SEED;
    let tensors = random_state_dict(&shape, 4);
    let image = random_image(&shape, 4);
    let mut results = Vec::new();
    for config in [
        ModelConfig::mnist(shape),
        ModelConfig { pixel_mean: 0.5, ..ModelConfig::mnist(shape) },
        ModelConfig { pixel_std: 1.0, ..ModelConfig::mnist(shape) },
        ModelConfig { layer_norm_eps: 0.5, ..ModelConfig::mnist(shape) },
    ] {
        let model = Model::from_bytes(&f32_blob(config, &tensors)).unwrap();
        assert_eq!(*model.config(), config);
        let mut ws = model.workspace();
        compare(&model, &mut ws, &image).unwrap();
        results.push(model.infer(&image, &mut ws).unwrap().to_vec());
    }
    for i in 1..results.len() {
        assert_ne!(results[0], results[i], "changing header parameter set {i} changed nothing");
    }
}

#[test]
fn softmax_of_logits_is_a_distribution() {
    let model = fixed_model(0);
    let mut ws = model.workspace();
    let logits = model.infer(&random_image(&Shape::SEED, 8), &mut ws).unwrap();
    let mut probs = vec![0.0; logits.len()];
    softmax(logits, &mut probs);
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert_eq!(argmax(&probs), argmax(logits));
}

/// Any shape of the family: patch side, grid, heads, head_dim and classes
/// within the limits (image side ≤ 64, ≤ 257 tokens, dim ≤ 128).
fn family_shape() -> impl Strategy<Value = Shape> {
    // The grid first, so that many-token shapes are as likely as few-token ones.
    (1u32..=16).prop_flat_map(|grid| (2u32..=64 / grid, Just(grid), 1u32..=8, 1u32..=16, 1u32..=64)).prop_map(
        |(p, grid, heads, head_dim, classes)| Shape {
            image_side: p * grid,
            patch_side: p,
            dim: heads * head_dim,
            heads,
            classes,
        },
    )
}

fn family_config() -> impl Strategy<Value = (Shape, ModelConfig)> {
    (family_shape(), -1.0f32..1.0, 0.05f32..2.0, 1e-6f32..0.1).prop_map(|(shape, pixel_mean, pixel_std, eps)| {
        (shape, ModelConfig { shape, pixel_mean, pixel_std, layer_norm_eps: eps })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[cfg_attr(miri, ignore)]
    #[test]
    fn f32_engine_matches_f64_model_on_random_shapes(
        (shape, config) in family_config(),
        seed in any::<u64>(),
        image_seed in any::<u64>(),
    ) {
        prop_assert!(shape.validate().is_ok(), "strategy made {shape:?}");
        let model = Model::from_bytes(&f32_blob(config, &random_state_dict(&shape, seed))).unwrap();
        let mut ws = model.workspace();
        for s in 0..2 {
            let image = random_image(&shape, image_seed.wrapping_add(s));
            compare(&model, &mut ws, &image).map_err(TestCaseError::fail)?;
            check_attention_is_distribution(shape, &ws).map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn infer_with_attention_returns_each_heads_cls_row() {
    let shape = Shape { image_side: 32, patch_side: 8, dim: 24, heads: 3, classes: 7 };
    let blob = microvit_engine::synthetic::random_f32_blob(shape, 11);
    let model = Model::from_bytes(&blob).unwrap();
    let image = microvit_engine::synthetic::random_image(&shape, 5);
    let mut ws = model.workspace();
    let plain = model.infer(&image, &mut ws).unwrap().to_vec();
    let tokens = shape.tokens() as usize;
    let mut attention = vec![0.0; 3 * tokens];
    let logits = model.infer_with_attention(&image, &mut ws, &mut attention).unwrap().to_vec();
    assert_eq!(logits, plain);
    for head in 0..3 {
        assert_eq!(&attention[head * tokens..][..tokens], ws.cls_attention(head));
        let sum: f32 = attention[head * tokens..][..tokens].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "head {head} sums to {sum}");
    }
    let mut short = vec![0.0; 3 * tokens - 1];
    assert_eq!(
        model.infer_with_attention(&image, &mut ws, &mut short),
        Err(microvit_engine::InferError::AttentionBufferSize { expected: 3 * tokens, found: 3 * tokens - 1 })
    );
}
