//! The `microvit` binary as a user runs it: exit codes, what it prints, the
//! files it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use microvit_dataset::{idx, npy, repo_root, shipped_test_set};
use microvit_engine::Model;

fn microvit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microvit")).args(args).output().expect("runs the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microvit-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_fails_with(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    assert!(stderr(o).starts_with("microvit: error: "), "{}", stderr(o));
    assert!(stderr(o).contains(needle), "stderr {:?} lacks {needle:?}", stderr(o));
}

/// Issue #17: with no arguments, `eval` ran the f32 scalar reference and
/// said "backend scalar reference" whatever ran. It runs what apps ship now,
/// the built-in int8 model on the fastest backend, and says which.
#[test]
fn eval_with_no_arguments_runs_the_built_in_int8_model_on_the_fastest_backend() {
    let dir = temp_dir("eval");
    let logits = dir.join("logits.npy");
    let o = microvit(&["eval", "--logits-out", arg(&logits)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let int8 = std::fs::read(repo_root().join("models/microvit-seed.int8.mvit")).unwrap();
    let model = Model::from_bytes(&int8).unwrap();
    assert!(out.contains("model     built-in microvit-seed.int8.mvit (int8, 6794 parameters, 5824 bytes)"), "{out}");
    assert!(out.contains(&format!("\nbackend   {}\n", model.backend().name())), "{out}");
    assert!(out.contains("accuracy  95.40 % (9540 / 10000)"), "{out}");
    assert!(out.contains("µs/digit"), "{out}");
    assert!(
        out.contains("agreement 99.87 % of digits get the same class as the f32 reference (9987 / 10000)"),
        "{out}"
    );
    assert!(out.contains("    0     980      958    97.76 %"), "per-class row for 0: {out}");

    // The logits it wrote are the int8 model's, bit for bit.
    let written = npy::decode_f32(&std::fs::read(&logits).unwrap()).unwrap();
    let (images, _) = shipped_test_set();
    let images = idx::read_images(&images).unwrap();
    let mut ws = model.workspace();
    for (i, image) in images.iter().enumerate().step_by(97) {
        assert_eq!(&written.data[i * 10..][..10], model.infer(image, &mut ws).unwrap(), "digit {i}");
    }

    // Forced onto the scalar pass, it says so.
    let o =
        Command::new(env!("CARGO_BIN_EXE_microvit")).arg("eval").env("MICROVIT_BACKEND", "scalar").output().unwrap();
    assert!(stdout(&o).contains("\nbackend   scalar\n"), "{}", stdout(&o));
}

/// `--dtype f32` keeps the reference: PyTorch's logits within 1e-4, on the
/// scalar pass, which is what it says.
#[test]
fn eval_dtype_f32_is_the_reference() {
    let dir = temp_dir("eval-f32");
    let logits = dir.join("logits.npy");
    let o = microvit(&["eval", "--dtype", "f32", "--logits-out", arg(&logits)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("model     built-in microvit-seed.mvit (f32,"), "{out}");
    assert!(out.contains("backend   scalar (the f32 reference pass)"), "{out}");
    assert!(out.contains("accuracy  95.40 % (9540 / 10000)"), "{out}");
    assert!(!out.contains("agreement"), "{out}");
    let written = npy::decode_f32(&std::fs::read(&logits).unwrap()).unwrap();
    let golden = std::fs::read(repo_root().join("tests/fixtures/microvit-seed.logits.npy")).unwrap();
    let golden = npy::decode_f32(&golden).unwrap();
    assert_eq!(written.shape, vec![10_000, 10]);
    let max = written.data.iter().zip(&golden.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(max <= 1e-4, "max |Δlogit| {max}");
}

/// Issue #17: the defaults were files of the build checkout. The models are
/// built in now (the same bytes as the shipped files), and a missing test
/// set is named with the flag to pass.
#[test]
fn the_models_are_built_in_and_a_missing_test_set_is_named() {
    let dir = temp_dir("built-in");
    // From another directory, with no model: the built-in int8 model.
    let seven = dir.join("seven.pgm");
    let (images, _) = shipped_test_set();
    let digit = idx::read_images(&images).unwrap().get(0).to_vec(); // a 7
    let mut pgm = b"P5 28 28 255\n".to_vec();
    pgm.extend(digit.iter().map(|p| 255 - p));
    std::fs::write(&seven, pgm).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_microvit"))
        .current_dir(&dir)
        .args(["classify", "seven.pgm"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("seven.pgm: 7 ("), "{}", stdout(&o));
    for (encoding, file) in
        [("f32", "microvit-seed.mvit"), ("f16", "microvit-seed.f16.mvit"), ("int8", "microvit-seed.int8.mvit")]
    {
        let built_in = microvit_cli::model_file::builtin::blob(microvit_engine::Encoding::from_name(encoding).unwrap());
        assert_eq!(built_in, std::fs::read(repo_root().join("models").join(file)).unwrap(), "{file}");
        let o = microvit(&["eval", "--dtype", encoding, "--images", "/nonexistent/t10k.idx3"]);
        assert_fails_with(&o, "the MNIST test set is not at /nonexistent/t10k.idx3 (it ships in the repository's data/ folder): pass --images");
    }
}

#[test]
fn eval_accepts_a_safetensors_model_and_plain_idx_files() {
    let dir = temp_dir("eval-plain");
    let (images, labels) = shipped_test_set();
    let (imgs, labs) = idx::read_labelled(&images, &labels).unwrap();
    // The first 500 digits, as uncompressed idx files.
    let (img_path, lab_path) = (dir.join("images.idx3"), dir.join("labels.idx1"));
    std::fs::write(&img_path, idx::encode(&[500, 28, 28], &imgs.pixels[..500 * 784])).unwrap();
    std::fs::write(&lab_path, idx::encode(&[500], &labs[..500])).unwrap();
    let model = repo_root().join("models/microvit-4k.safetensors");
    let o = microvit(&["eval", arg(&model), "--images", arg(&img_path), "--labels", arg(&lab_path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/ 500)"), "{}", stdout(&o));
}

#[test]
fn eval_rejects_labels_that_do_not_match_the_images() {
    let dir = temp_dir("eval-mismatch");
    let lab_path = dir.join("labels.idx1");
    std::fs::write(&lab_path, idx::encode(&[3], &[1, 2, 3])).unwrap();
    let o = microvit(&["eval", "--labels", arg(&lab_path)]);
    assert_fails_with(&o, "holds 10000 images but");
    std::fs::write(&lab_path, idx::encode(&[10_000], &[11; 10_000])).unwrap();
    let o = microvit(&["eval", "--labels", arg(&lab_path)]);
    assert_fails_with(&o, "label 11 of image 0 is outside the model's 10 classes");
}

#[test]
fn convert_writes_the_committed_blob_and_inspect_describes_it() {
    let dir = temp_dir("convert");
    let out = dir.join("seed.mvit");
    let input = repo_root().join("models/microvit-seed.safetensors");
    let o = microvit(&["convert", arg(&input), "-o", arg(&out), "--dtype", "f32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("parameters  6794"), "{}", stdout(&o));
    let committed = std::fs::read(repo_root().join("models/microvit-seed.mvit")).unwrap();
    assert!(std::fs::read(&out).unwrap() == committed, "convert output differs from models/microvit-seed.mvit");

    let o = microvit(&["inspect", arg(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "28x28 image, 7x7 patches (17 tokens), dim 32, 2 heads, 10 classes",
        "parameters  6794",
        "encoding    f32",
        &format!("size        {} bytes", committed.len()),
        "(CRC-32C)",
        "attention.in_proj_weight",
        "[96, 32]",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
}

#[test]
fn convert_errors_are_clear() {
    let dir = temp_dir("convert-errors");
    let input = repo_root().join("models/microvit-seed.safetensors");
    let not_idx = dir.join("calibration.idx3");
    std::fs::write(&not_idx, b"nope").unwrap();
    let o = microvit(&["convert", arg(&input), "--dtype", "int8", "--calibration", arg(&not_idx)]);
    assert_fails_with(&o, "calibration images:");
    let o = microvit(&["convert", arg(&dir.join("missing.safetensors"))]);
    assert_fails_with(&o, "cannot read");
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not safetensors").unwrap();
    let o = microvit(&["convert", arg(&garbage)]);
    assert_fails_with(&o, "not a valid safetensors file");
}

#[test]
fn broken_blobs_are_reported_not_crashed_on() {
    let dir = temp_dir("broken");
    let mut blob = std::fs::read(repo_root().join("models/microvit-seed.mvit")).unwrap();
    let truncated = dir.join("truncated.mvit");
    std::fs::write(&truncated, &blob[..1000]).unwrap();
    assert_fails_with(&microvit(&["inspect", arg(&truncated)]), "blob is truncated");
    let last = blob.len() - 100;
    blob[last] ^= 0x40;
    let corrupted = dir.join("corrupted.mvit");
    std::fs::write(&corrupted, &blob).unwrap();
    assert_fails_with(&microvit(&["eval", arg(&corrupted)]), "checksum mismatch");
    let empty = dir.join("empty.mvit");
    std::fs::write(&empty, b"").unwrap();
    assert_fails_with(&microvit(&["inspect", arg(&empty)]), "neither a microvit blob");
    assert_fails_with(&microvit(&["inspect", arg(&dir)]), "cannot read model");
}

#[test]
fn classify_reads_pgm_and_png_of_any_size() {
    let dir = temp_dir("classify");
    let (images, labels) = shipped_test_set();
    let (imgs, labs) = idx::read_labelled(&images, &labels).unwrap();
    // Digit 0 (a 7) as a 28x28 PGM; digit 1 (a 2) upscaled to 56x56, drawn
    // black on white, as PNG: the polarity rule must undo the inversion.
    let pgm = dir.join("seven.pgm");
    let mut bytes = b"P5\n# a test digit\n28 28\n255\n".to_vec();
    bytes.extend_from_slice(imgs.get(0));
    std::fs::write(&pgm, bytes).unwrap();
    let png_path = dir.join("two.png");
    let big: Vec<u8> = (0..56 * 56).map(|i| 255 - imgs.get(1)[(i / 56 / 2) * 28 + (i % 56) / 2]).collect();
    let mut encoder = png::Encoder::new(std::fs::File::create(&png_path).unwrap(), 56, 56);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.write_header().unwrap().write_image_data(&big).unwrap();

    let model = repo_root().join("models/microvit-seed.mvit");
    let o = microvit(&["classify", arg(&model), arg(&pgm), arg(&png_path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!((labs[0], labs[1]), (7, 2));
    assert!(out.contains("seven.pgm: 7 ("), "{out}");
    assert!(out.contains("two.png: 2 ("), "{out}");
    assert!(out.contains(" 9:0."), "lists every class probability: {out}");

    let missing = dir.join("missing.png");
    let o = microvit(&["classify", arg(&model), arg(&pgm), arg(&missing)]);
    assert_fails_with(&o, "1 of 2 images could not be read");
    assert!(stdout(&o).contains("seven.pgm: 7"), "good images are still classified");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(microvit(&[]).status.code(), Some(2));
    let o = microvit(&["classify", "model.mvit"]);
    assert_fails_with(&o, "no image files given");
    assert_eq!(microvit(&["convert", "x", "--dtype", "f64"]).status.code(), Some(2));
}
