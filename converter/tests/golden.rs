//! The truth is PyTorch: the committed models, converted by this converter
//! and run by the reference engine, must give PyTorch's logits (committed as
//! fixtures by train/make_fixtures.py) on all 10,000 MNIST test digits.

use std::path::PathBuf;

use microvit_converter::{convert, ConvertOptions};
use microvit_dataset::{idx, npy, repo_root, shipped_test_set};
use microvit_engine::{argmax, Model};

/// Largest |logit - PyTorch logit| allowed for the f32 reference.
const LOGIT_TOLERANCE: f32 = 1e-4;
/// Largest |attention - PyTorch attention| allowed.
const ATTENTION_TOLERANCE: f32 = 1e-5;

fn fixture(name: &str) -> npy::NpyF32 {
    let path = repo_root().join("tests/fixtures").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    npy::decode_f32(&bytes).unwrap()
}

fn model_path(name: &str, ext: &str) -> PathBuf {
    repo_root().join("models").join(format!("{name}.{ext}"))
}

fn check_model(name: &str, min_accuracy: f64) {
    let safetensors = std::fs::read(model_path(name, "safetensors")).unwrap();
    let blob = convert(&safetensors, &ConvertOptions::default()).unwrap().blob;
    let committed = std::fs::read(model_path(name, "mvit")).unwrap();
    assert!(committed == blob, "models/{name}.mvit is stale: run `microvit convert models/{name}.safetensors`");

    let model = Model::from_bytes(&blob).unwrap();
    let (images, labels) = shipped_test_set();
    let (images, labels) = idx::read_labelled(&images, &labels).unwrap();
    let golden = fixture(&format!("{name}.logits.npy"));
    let classes = model.shape().classes as usize;
    assert_eq!(golden.shape, vec![images.len(), classes]);

    let mut ws = model.workspace();
    let (mut max_diff, mut worst, mut correct, mut agree) = (0.0f32, 0, 0, 0);
    for (i, image) in images.iter().enumerate() {
        let logits = model.infer(image, &mut ws).unwrap();
        let want = &golden.data[i * classes..][..classes];
        for (a, b) in logits.iter().zip(want) {
            if (a - b).abs() > max_diff {
                max_diff = (a - b).abs();
                worst = i;
            }
        }
        correct += (argmax(logits) == labels[i] as usize) as usize;
        agree += (argmax(logits) == argmax(want)) as usize;
    }
    let accuracy = 100.0 * correct as f64 / images.len() as f64;
    println!(
        "{name}: accuracy {accuracy:.2} %, max |Δlogit| {max_diff:.2e} (digit {worst}), \
         top-1 agreement {agree}/{}",
        images.len()
    );
    assert!(max_diff <= LOGIT_TOLERANCE, "{name}: max |Δlogit| {max_diff} at digit {worst}");
    assert!(accuracy >= min_accuracy, "{name}: accuracy {accuracy:.2} % < {min_accuracy} %");
    assert_eq!(agree, images.len(), "{name}: top-1 disagrees with PyTorch on {} digits", images.len() - agree);

    let attention = fixture(&format!("{name}.cls_attention.npy"));
    let [digits, heads, tokens] = attention.shape[..] else { panic!("attention fixture shape {:?}", attention.shape) };
    assert_eq!((heads, tokens), (model.shape().heads as usize, model.shape().tokens() as usize));
    for d in 0..digits {
        model.infer(images.get(d), &mut ws).unwrap();
        for h in 0..heads {
            let want = &attention.data[(d * heads + h) * tokens..][..tokens];
            for (t, (a, b)) in ws.cls_attention(h).iter().zip(want).enumerate() {
                assert!((a - b).abs() <= ATTENTION_TOLERANCE, "{name}: digit {d} head {h} token {t}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn seed_model_matches_pytorch_on_the_mnist_test_set() {
    check_model("microvit-seed", 95.0);
}

#[test]
fn model_4k_matches_pytorch_on_the_mnist_test_set() {
    check_model("microvit-4k", 95.0);
}
