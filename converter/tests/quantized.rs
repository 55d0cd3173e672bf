//! The int8 and f16 blobs against PyTorch on all 10,000 test digits, for
//! the seed model and the 4k model, plus the int8 determinism checksum that
//! every SIMD backend must reproduce.

use microvit_converter::{convert, ConvertOptions, Encoding};
use microvit_dataset::{idx, npy, repo_root, shipped_test_set};
use microvit_engine::{argmax, crc32c, Model};

struct Outcome {
    accuracy: f64,
    agreement: f64,
    max_diff: f32,
    /// CRC-32C of the int8 path's Q.16 logits (little-endian i32, digit by
    /// digit), or 0 for other encodings.
    checksum: u32,
    blob_len: usize,
}

fn calibration() -> Vec<u8> {
    idx::read_images(&repo_root().join("data/calibration-1000-images-idx3-ubyte.gz")).unwrap().pixels
}

fn run(name: &str, encoding: Encoding) -> Outcome {
    let safetensors = std::fs::read(repo_root().join(format!("models/{name}.safetensors"))).unwrap();
    let options = ConvertOptions { encoding, calibration: Some(calibration()), ..Default::default() };
    let converted = convert(&safetensors, &options).unwrap();
    if let Some(report) = &converted.report {
        println!("{name} {}:\n{report}", encoding.name());
    }
    let committed = repo_root().join(format!("models/{name}.{}.mvit", encoding.name()));
    let committed = std::fs::read(&committed).unwrap_or_default();
    assert!(
        committed == converted.blob,
        "models/{name}.{d}.mvit is stale: run `microvit convert models/{name}.safetensors --dtype {d} -o models/{name}.{d}.mvit`",
        d = encoding.name()
    );

    let model = Model::from_bytes(&converted.blob).unwrap();
    let (images, labels) = shipped_test_set();
    let (images, labels) = idx::read_labelled(&images, &labels).unwrap();
    let golden =
        npy::decode_f32(&std::fs::read(repo_root().join(format!("tests/fixtures/{name}.logits.npy"))).unwrap())
            .unwrap();
    let classes = model.shape().classes as usize;
    let mut ws = model.workspace();
    let (mut correct, mut agree, mut max_diff) = (0, 0, 0.0f32);
    let mut fixed = Vec::with_capacity(images.len() * classes * 4);
    for (i, image) in images.iter().enumerate() {
        let logits = model.infer(image, &mut ws).unwrap();
        let want = &golden.data[i * classes..][..classes];
        correct += (argmax(logits) == labels[i] as usize) as usize;
        agree += (argmax(logits) == argmax(want)) as usize;
        max_diff = logits.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(max_diff, f32::max);
        fixed.extend(ws.logits_fixed().iter().flat_map(|v| v.to_le_bytes()));
    }
    let n = images.len() as f64;
    let outcome = Outcome {
        accuracy: 100.0 * correct as f64 / n,
        agreement: 100.0 * agree as f64 / n,
        max_diff,
        checksum: if fixed.is_empty() { 0 } else { crc32c(&fixed) },
        blob_len: converted.blob.len(),
    };
    println!(
        "{name} {}: accuracy {:.2} %, agreement with PyTorch {:.2} %, max |Δlogit| {:.4}, blob {} bytes, logits crc {:#010x}",
        encoding.name(),
        outcome.accuracy,
        outcome.agreement,
        outcome.max_diff,
        outcome.blob_len,
        outcome.checksum
    );
    outcome
}

fn pytorch_accuracy(name: &str) -> f64 {
    let json = std::fs::read_to_string(repo_root().join(format!("tests/fixtures/{name}.json"))).unwrap();
    let at = json.find("\"correct\":").unwrap() + "\"correct\":".len();
    let correct: f64 = json[at..].split(',').next().unwrap().trim().parse().unwrap();
    correct / 100.0
}

/// The committed checksum of the int8 logits: the contract every backend
/// meets bit for bit.
fn committed_checksum(name: &str) -> u32 {
    let path = repo_root().join(format!("tests/fixtures/{name}.int8.logits.crc32c"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap()
}

fn check_int8(name: &str) {
    let o = run(name, Encoding::Int8);
    let reference = pytorch_accuracy(name);
    assert!((o.accuracy - reference).abs() <= 0.3, "{name}: int8 {:.2} % vs f32 {reference:.2} %", o.accuracy);
    assert!(o.agreement >= 99.3, "{name}: int8 agrees with PyTorch on {:.2} %", o.agreement);
    assert_eq!(o.checksum, committed_checksum(name), "{name}: int8 logits changed");
}

fn check_f16(name: &str) {
    let o = run(name, Encoding::F16);
    assert!(o.agreement >= 99.9, "{name}: f16 agrees with PyTorch on {:.2} %", o.agreement);
    assert!(o.max_diff <= 0.03, "{name}: f16 max |Δlogit| {}", o.max_diff);
}

#[test]
fn seed_int8_keeps_pytorch_accuracy_and_its_checksum() {
    check_int8("microvit-seed");
}

#[test]
fn model_4k_int8_keeps_pytorch_accuracy_and_its_checksum() {
    check_int8("microvit-4k");
}

#[test]
fn seed_f16_matches_pytorch() {
    check_f16("microvit-seed");
}

#[test]
fn model_4k_f16_matches_pytorch() {
    check_f16("microvit-4k");
}

#[test]
fn seed_int8_blob_is_under_10_kb() {
    let blob = std::fs::read(repo_root().join("models/microvit-seed.int8.mvit")).unwrap();
    assert!(blob.len() <= 10_000, "{} bytes", blob.len());
}
