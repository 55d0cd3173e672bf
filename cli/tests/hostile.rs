//! The `microvit` binary on hostile and broken input: empty files,
//! directories, unreadable paths, absurd declared sizes, NaN and infinite
//! weights, images of the wrong size, labels that do not match. Each must
//! end with a clear message on stderr and exit status 1: never a panic
//! (these tests run the debug build, where arithmetic overflow panics too),
//! never a giant allocation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use microvit_dataset::{idx, repo_root, shipped_test_set};
use microvit_engine::format;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_microvit")
}

fn microvit(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("runs the binary")
}

/// Runs the binary with its address space capped at 2 GiB, so that an
/// allocation sized from a hostile header fails the test rather than pass
/// on a big machine.
#[cfg(unix)]
fn microvit_capped(args: &[&str]) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args)
        .output()
        .expect("runs the binary under sh")
}

#[cfg(not(unix))]
fn microvit_capped(args: &[&str]) -> Output {
    microvit(args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microvit-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn shipped(name: &str) -> PathBuf {
    repo_root().join("models").join(name)
}

/// Exit status 1, one clear message naming the problem, no panic.
#[track_caller]
fn assert_clean_failure(o: &Output, needle: &str) {
    let (out, err) = (stdout(o), stderr(o));
    assert!(!err.contains("panicked") && !out.contains("panicked"), "a panic:\n{err}");
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(err.starts_with("microvit: error: "), "{err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

#[track_caller]
fn assert_success(o: &Output) {
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
    assert_eq!(o.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
}

/// Test images and labels as plain idx files: `n` digits.
fn idx_files(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let (images, labels) = shipped_test_set();
    let (imgs, labs) = idx::read_labelled(&images, &labels).unwrap();
    let (i, l) = (dir.join("images.idx3"), dir.join("labels.idx1"));
    std::fs::write(&i, idx::encode(&[n, 28, 28], &imgs.pixels[..n * 784])).unwrap();
    std::fs::write(&l, idx::encode(&[n], &labs[..n])).unwrap();
    (i, l)
}

/// A safetensors file with the given JSON header and data.
fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

// ---------------------------------------------------------------- empty files

#[test]
fn empty_files_are_refused_wherever_a_file_is_read() {
    let dir = temp_dir("empty");
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let e = arg(&empty);
    let model = shipped("microvit-seed.mvit");
    let (images, labels) = idx_files(&dir, 5);
    assert_clean_failure(&microvit(&["inspect", e]), "neither a microvit blob");
    assert_clean_failure(&microvit(&["eval", e]), "neither a microvit blob");
    // Named as a model, an empty file is an empty model; unnamed, an empty image.
    let empty_model = dir.join("empty.mvit");
    std::fs::write(&empty_model, b"").unwrap();
    assert_clean_failure(&microvit(&["classify", arg(&empty_model), e]), "neither a microvit blob");
    assert_clean_failure(&microvit(&["classify", e, e]), "2 of 2 images could not be read");
    assert_clean_failure(&microvit(&["convert", e, "-o", arg(&dir.join("x.mvit"))]), "not a valid safetensors file");
    assert_clean_failure(
        &microvit(&["eval", "--images", e, "--labels", arg(&labels)]),
        "shorter than the 4-byte magic",
    );
    assert_clean_failure(
        &microvit(&["eval", "--images", arg(&images), "--labels", e]),
        "shorter than the 4-byte magic",
    );
    let st = shipped("microvit-seed.safetensors");
    let o = microvit(&["convert", arg(&st), "-o", arg(&dir.join("x.mvit")), "--dtype", "int8", "--calibration", e]);
    assert_clean_failure(&o, "calibration images:");
    // An empty image among good ones: reported, the others still classified.
    let o = microvit(&["classify", arg(&model), e]);
    assert_clean_failure(&o, "the file is empty");
    assert!(stderr(&o).contains("1 of 1 images could not be read"), "{}", stderr(&o));
}

// ---------------------------------------------------------------- directories

#[test]
fn directories_are_refused_wherever_a_file_is_expected() {
    let dir = temp_dir("dirs");
    let d = arg(&dir);
    let model = shipped("microvit-seed.mvit");
    let (images, labels) = idx_files(&dir, 5);
    assert_clean_failure(&microvit(&["inspect", d]), "cannot read model");
    assert_clean_failure(&microvit(&["eval", d]), "cannot read model");
    assert_clean_failure(&microvit(&["classify", d, arg(&images)]), "cannot read image");
    assert_clean_failure(&microvit(&["convert", d]), "cannot read");
    assert_clean_failure(&microvit(&["classify", arg(&model), d]), "cannot read image");
    assert_clean_failure(&microvit(&["eval", "--images", d, "--labels", arg(&labels)]), d);
    assert_clean_failure(&microvit(&["eval", "--images", arg(&images), "--labels", d]), d);
    // A directory as the output of convert or of --logits-out.
    let st = shipped("microvit-4k.safetensors");
    assert_clean_failure(&microvit(&["convert", arg(&st), "-o", d]), "cannot write");
    let o = microvit(&["eval", "--images", arg(&images), "--labels", arg(&labels), "--logits-out", d]);
    assert_clean_failure(&o, "cannot write");
}

// ---------------------------------------------------------------- unreadable paths

/// Whether this process reads files whatever their permissions (root, or
/// CAP_DAC_OVERRIDE): then mode 000 does not make a file unreadable.
#[cfg(unix)]
fn reads_anything(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::write(&probe, b"x").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::read(&probe).is_ok()
}

#[cfg(unix)]
#[test]
fn unreadable_files_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("unreadable");
    let locked = dir.join("locked.mvit");
    std::fs::copy(shipped("microvit-seed.mvit"), &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let image = dir.join("locked.pgm");
    let mut pgm = b"P5 28 28 255\n".to_vec();
    pgm.extend([0u8; 784]);
    std::fs::write(&image, pgm).unwrap();
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o000)).unwrap();
    let model = shipped("microvit-seed.mvit");

    if reads_anything(&dir) {
        // Running as root: permissions do not apply, the files are read.
        assert_success(&microvit(&["inspect", arg(&locked)]));
        assert_success(&microvit(&["classify", arg(&model), arg(&image)]));
    } else {
        assert_clean_failure(&microvit(&["inspect", arg(&locked)]), "Permission denied");
        assert_clean_failure(&microvit(&["eval", arg(&locked)]), "Permission denied");
        assert_clean_failure(&microvit(&["classify", arg(&model), arg(&image)]), "Permission denied");
    }

    // Unreadable for everyone, root included: a path through a regular file,
    // a dangling symlink and a symlink loop.
    let through_file = model.join("inner.mvit");
    assert_clean_failure(&microvit(&["inspect", arg(&through_file)]), "cannot read model");
    assert_clean_failure(&microvit(&["classify", arg(&model), arg(&through_file)]), "cannot read image");
    let dangling = dir.join("dangling.mvit");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
    assert_clean_failure(&microvit(&["inspect", arg(&dangling)]), "cannot read model");
    let (a, b) = (dir.join("loop-a"), dir.join("loop-b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    assert_clean_failure(&microvit(&["inspect", arg(&a)]), "cannot read model");
    assert_clean_failure(&microvit(&["eval", "--images", arg(&a)]), arg(&a));
    assert_clean_failure(&microvit(&["convert", arg(&a)]), "cannot read");
}

// ---------------------------------------------------------------- FIFOs and devices

/// Runs the binary (address space capped as in `microvit_capped`) and kills
/// it if it has not finished within 20 s: a blocked open fails the test
/// rather than hang it.
#[cfg(unix)]
fn microvit_within_20s(args: &[&str]) -> Output {
    use std::process::Stdio;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs the binary under sh");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("waits").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("microvit {args:?} was still running after 20 s (blocked on a FIFO?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("collects the output")
}

/// Issue #18: a FIFO with no writer blocked classify, inspect, eval and
/// convert for ever (opening it blocks), and /dev/zero as a model was read
/// until memory ran out. Every file the tool reads whole is refused from
/// its metadata, before it is opened.
#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_before_they_are_opened() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("model.mvit");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs").success());
    let f = arg(&fifo);
    let model = shipped("microvit-seed.mvit");
    let st = shipped("microvit-seed.safetensors");
    let (images, labels) = idx_files(&dir, 5);
    let not_regular = "not a regular file (a FIFO, socket or device)";
    let x = dir.join("x.mvit");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["inspect", f], format!("cannot read model {f}: {not_regular}")),
        (vec!["classify", f, arg(&images)], format!("cannot read model {f}: {not_regular}")),
        (vec!["eval", f], format!("cannot read model {f}: {not_regular}")),
        (vec!["bench", f], format!("cannot read model {f}: {not_regular}")),
        (vec!["explain", f, "--test-digits", "0", "-o", arg(&dir)], format!("cannot read model {f}: {not_regular}")),
        (vec!["eval", "--reference", f], format!("cannot read model {f}: {not_regular}")),
        (vec!["eval", "--images", f, "--labels", arg(&labels)], format!("{f}: {not_regular}")),
        (vec!["eval", "--images", arg(&images), "--labels", f], format!("{f}: {not_regular}")),
        (vec!["convert", f, "-o", arg(&x)], format!("cannot read model {f}: {not_regular}")),
        (
            vec!["convert", arg(&st), "-o", arg(&x), "--dtype", "int8", "--calibration", f],
            format!("calibration images: {f}: {not_regular}"),
        ),
        (vec!["classify", arg(&model), f], format!("unsupported image {f}: {not_regular}")),
    ];
    for (args, needle) in &cases {
        assert_clean_failure(&microvit_within_20s(args), needle);
    }
    // Devices: /dev/zero never ends, /dev/null is empty; both refused alike.
    for device in ["/dev/zero", "/dev/null"] {
        let needle = format!("cannot read model {device}: {not_regular}");
        assert_clean_failure(&microvit_within_20s(&["inspect", device]), &needle);
        let o = microvit_within_20s(&["eval", "--images", device, "--labels", arg(&labels)]);
        assert_clean_failure(&o, &format!("{device}: {not_regular}"));
        assert_clean_failure(&microvit_within_20s(&["convert", device, "-o", arg(&x)]), not_regular);
    }
}

// ---------------------------------------------------------------- absurd sizes

#[test]
fn huge_declared_sizes_in_safetensors_allocate_nothing() {
    let dir = temp_dir("huge");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // A header length of 2^64 - 1 bytes.
        ("header-length", [u64::MAX.to_le_bytes().to_vec(), b"{}".to_vec()].concat(), "not a valid safetensors file"),
        // 2^80 elements.
        (
            "tensor-elements",
            safetensors_raw(
                r#"{"head.bias":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            "not a valid safetensors file",
        ),
        // 4 EiB of data in an 8-byte file.
        (
            "data-offsets",
            safetensors_raw(
                r#"{"head.bias":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,4611686018427387904]}}"#,
                &[0; 8],
            ),
            "not a valid safetensors file",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        assert_clean_failure(&microvit_capped(&["convert", arg(&path), "-o", arg(&dir.join("x.mvit"))]), needle);
        assert_clean_failure(&microvit_capped(&["inspect", arg(&path)]), needle);
    }

    // Every tensor present and empty, one declared [0, 2^64 - 1]: no data is
    // needed, and the shape arithmetic must not overflow.
    let names = [
        "patch_embed.weight",
        "patch_embed.bias",
        "cls_token",
        "pos_embed",
        "norm.weight",
        "norm.bias",
        "attention.in_proj_weight",
        "attention.in_proj_bias",
        "attention.out_proj.weight",
        "attention.out_proj.bias",
        "head.weight",
        "head.bias",
    ];
    for (tensor, dims, needle) in [
        ("patch_embed.weight", "[0,18446744073709551615]", "is not a square patch"),
        ("pos_embed", "[1,18446744073709551615,0]", "is not a square grid"),
    ] {
        let fields: Vec<String> = names
            .iter()
            .map(|n| {
                let shape = if *n == tensor {
                    dims
                } else if *n == "patch_embed.weight" {
                    "[0,49]"
                } else {
                    "[0]"
                };
                format!(r#""{n}":{{"dtype":"F32","shape":{shape},"data_offsets":[0,0]}}"#)
            })
            .collect();
        let header = format!(r#"{{"__metadata__":{{"microvit.num_heads":"2"}},{}}}"#, fields.join(","));
        let path = dir.join("zero-by-max.safetensors");
        std::fs::write(&path, safetensors_raw(&header, &[])).unwrap();
        assert_clean_failure(&microvit_capped(&["convert", arg(&path), "-o", arg(&dir.join("x.mvit"))]), needle);
    }
}

#[test]
fn huge_declared_sizes_in_blobs_and_idx_files_allocate_nothing() {
    let dir = temp_dir("huge-blob");
    let good = std::fs::read(shipped("microvit-seed.int8.mvit")).unwrap();
    // blob_len of 4 GiB - 1.
    let mut long = good.clone();
    long[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    // 65535 tensor table entries, checksum restamped.
    let mut table = good.clone();
    table[18..20].copy_from_slice(&u16::MAX.to_le_bytes());
    format::restamp_checksum(&mut table);
    // An image side of 65535 pixels, checksum restamped.
    let mut side = good.clone();
    side[20..22].copy_from_slice(&u16::MAX.to_le_bytes());
    format::restamp_checksum(&mut side);
    for (name, bytes, needle) in [
        ("long", long, "blob is truncated"),
        ("table", table, "tensor table of 65535 entries"),
        ("side", side, "image side 65535"),
    ] {
        let path = dir.join(format!("{name}.mvit"));
        std::fs::write(&path, bytes).unwrap();
        assert_clean_failure(&microvit_capped(&["inspect", arg(&path)]), needle);
    }
    // idx headers declaring 2^96 and 2^32 pixels with no data.
    let labels = dir.join("labels.idx1");
    std::fs::write(&labels, idx::encode(&[1], &[0])).unwrap();
    for (name, dims, needle) in [
        ("huge", vec![u32::MAX as usize, u32::MAX as usize, u32::MAX as usize], "declare more than"),
        ("big", vec![1, 65536, 65536], "declare more than"),
        ("short", vec![1, 28, 28], "need 784 data bytes, file has 0"),
    ] {
        let path = dir.join(format!("{name}.idx3"));
        std::fs::write(&path, idx::encode(&dims, &[])).unwrap();
        assert_clean_failure(&microvit_capped(&["eval", "--images", arg(&path), "--labels", arg(&labels)]), needle);
    }
}

// ---------------------------------------------------------------- NaN and infinity

#[test]
fn nan_and_infinite_weights_are_refused() {
    let dir = temp_dir("nan");
    let st = std::fs::read(shipped("microvit-seed.safetensors")).unwrap();
    // The last 4 bytes of the file are the last f32 of some tensor's data.
    for (name, value, needle) in
        [("nan", f32::NAN, "holds NaN at index"), ("inf", f32::NEG_INFINITY, "holds -inf at index")]
    {
        let mut bad = st.clone();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&value.to_le_bytes());
        let path = dir.join(format!("{name}.safetensors"));
        std::fs::write(&path, bad).unwrap();
        assert_clean_failure(&microvit(&["convert", arg(&path), "-o", arg(&dir.join("x.mvit"))]), needle);
        assert_clean_failure(&microvit(&["inspect", arg(&path)]), needle);
        assert_clean_failure(&microvit(&["eval", arg(&path), "--dtype", "int8"]), needle);
    }
    // In a blob with a valid checksum (a hostile file, not a corrupted one).
    let blob = std::fs::read(shipped("microvit-seed.mvit")).unwrap();
    let layout = format::parse(&blob).unwrap();
    let at = layout.tensor(format::TensorId::HeadBias).offset + 4 * 3;
    for value in [f32::NAN, f32::INFINITY] {
        let mut bad = blob.clone();
        bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
        format::restamp_checksum(&mut bad);
        let path = dir.join("nan.mvit");
        std::fs::write(&path, bad).unwrap();
        let needle = "tensor head.bias has a NaN or infinite value at index 3";
        assert_clean_failure(&microvit(&["inspect", arg(&path)]), needle);
        assert_clean_failure(&microvit(&["classify", arg(&path), arg(&path)]), needle);
    }
    // Header parameters: NaN pixel_std.
    let mut bad = blob.clone();
    bad[36..40].copy_from_slice(&f32::NAN.to_le_bytes());
    format::restamp_checksum(&mut bad);
    let path = dir.join("nan-std.mvit");
    std::fs::write(&path, bad).unwrap();
    assert_clean_failure(&microvit(&["inspect", arg(&path)]), "pixel_std = NaN is not usable");
    // And as a command-line option.
    let st_path = shipped("microvit-4k.safetensors");
    let o = microvit(&["convert", arg(&st_path), "-o", arg(&dir.join("x.mvit")), "--pixel-std", "NaN"]);
    assert_clean_failure(&o, "pixel_std = NaN is not usable");
    let o = microvit(&["convert", arg(&st_path), "-o", arg(&dir.join("x.mvit")), "--layer-norm-eps", "inf"]);
    assert_clean_failure(&o, "layer_norm_eps = inf is not usable");
}

/// Issue #18: huge but finite weights converted and loaded, and every
/// inference printed `0 (NaN %)` with exit status 0. Now refused with the
/// tensor, the value and the bound named.
#[test]
fn huge_finite_weights_are_refused() {
    let dir = temp_dir("huge-weights");
    let st = std::fs::read(shipped("microvit-seed.safetensors")).unwrap();
    let mut bad = st.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&3e38f32.to_le_bytes());
    let path = dir.join("huge.safetensors");
    std::fs::write(&path, bad).unwrap();
    for dtype in ["f32", "f16"] {
        let o = microvit(&["convert", arg(&path), "-o", arg(&dir.join("x.mvit")), "--dtype", dtype]);
        assert_clean_failure(&o, "tensor pos_embed holds 3e38 at index 543, beyond the ±1048576.0");
        assert_clean_failure(&o, "that keeps every logit finite");
    }
    assert_clean_failure(&microvit(&["inspect", arg(&path)]), "holds 3e38 at index");
    assert_clean_failure(&microvit(&["eval", arg(&path), "--dtype", "int8"]), "holds 3e38 at index");
    // Blobs with a valid checksum: an f32 weight and an f16 blob's f32 constant.
    for (model, tensor, needle) in [
        ("microvit-seed.mvit", format::TensorId::HeadBias, "tensor head.bias holds 3e38 at index 3"),
        ("microvit-seed.f16.mvit", format::TensorId::F16HeadBias, "tensor f16.head_bias holds 3e38 at index 3"),
    ] {
        let blob = std::fs::read(shipped(model)).unwrap();
        let at = format::parse(&blob).unwrap().tensor(tensor).offset + 4 * 3;
        let mut bad = blob.clone();
        bad[at..at + 4].copy_from_slice(&3e38f32.to_le_bytes());
        format::restamp_checksum(&mut bad);
        let path = dir.join(model);
        std::fs::write(&path, bad).unwrap();
        let image = dir.join("digit.pgm");
        let mut pgm = b"P5 28 28 255\n".to_vec();
        pgm.extend((0..784).map(|i| if (i % 28) / 9 == 1 { 255u8 } else { 0 }));
        std::fs::write(&image, pgm).unwrap();
        assert_clean_failure(&microvit(&["inspect", arg(&path)]), needle);
        assert_clean_failure(&microvit(&["classify", arg(&path), arg(&image)]), needle);
        assert_clean_failure(&microvit(&["eval", arg(&path)]), needle);
    }
}

// ---------------------------------------------------------------- wrong sizes

fn write_png(path: &Path, width: u32, height: u32, pixels: &[u8]) {
    let mut encoder = png::Encoder::new(std::fs::File::create(path).unwrap(), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.write_header().unwrap().write_image_data(pixels).unwrap();
}

#[test]
fn images_of_the_wrong_size_are_refused_or_resized() {
    let dir = temp_dir("sizes");
    let model = shipped("microvit-seed.mvit");
    let m = arg(&model);
    // eval: idx images of another side, not square, or of no side.
    let labels = dir.join("labels.idx1");
    std::fs::write(&labels, idx::encode(&[2], &[1, 2])).unwrap();
    for (dims, needle) in [
        ([2, 32, 32], "images are 32x32, the model takes 28x28"),
        ([2, 28, 27], "are not [count, side, side] images"),
        ([2, 0, 0], "are not [count, side, side] images"),
    ] {
        let path = dir.join("images.idx3");
        let n = dims.iter().product();
        std::fs::write(&path, idx::encode(&dims, &vec![9; n])).unwrap();
        assert_clean_failure(&microvit(&["eval", "--images", arg(&path), "--labels", arg(&labels)]), needle);
    }
    // classify: beyond 8192 pixels a side, zero-sized, declared larger than the data.
    let wide = dir.join("wide.png");
    write_png(&wide, 9000, 1, &vec![0; 9000]);
    assert_clean_failure(&microvit(&["classify", m, arg(&wide)]), "the largest accepted is 8192×8192");
    let cases: [(&str, &[u8], &str); 4] = [
        ("huge.pgm", b"P5 100000 100000 255\n", "the largest accepted is 8192×8192"),
        ("zero.pgm", b"P5 0 28 255\n", "zero size"),
        ("short.pgm", b"P5 28 28 255\n0123456789", "PNM data ends unexpectedly (truncated file)"),
        ("maxval.pgm", b"P2 1 1 0\n0\n", "bad PNM: Image MAXVAL is zero"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_clean_failure(&microvit_capped(&["classify", m, arg(&path)]), needle);
    }
    // Any size that is well formed is resized: 1×1, 3000×2, 28×28.
    let (tiny, strip, exact) = (dir.join("tiny.png"), dir.join("strip.png"), dir.join("exact.pgm"));
    write_png(&tiny, 1, 1, &[255]);
    write_png(&strip, 3000, 2, &vec![128; 6000]);
    let mut pgm = b"P5 28 28 255\n".to_vec();
    pgm.extend([0u8; 784]);
    std::fs::write(&exact, pgm).unwrap();
    let o = microvit(&["classify", m, arg(&tiny), arg(&strip), arg(&exact)]);
    assert_success(&o);
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
}

// ---------------------------------------------------------------- labels

#[test]
fn labels_that_do_not_match_the_images_are_refused() {
    let dir = temp_dir("labels");
    let (images, labels) = idx_files(&dir, 20);
    let (i, l) = (arg(&images), arg(&labels));
    // More labels than images, and fewer.
    let more = dir.join("more.idx1");
    std::fs::write(&more, idx::encode(&[21], &[1; 21])).unwrap();
    assert_clean_failure(&microvit(&["eval", "--images", i, "--labels", arg(&more)]), "holds 20 images but");
    let fewer = dir.join("fewer.idx1");
    std::fs::write(&fewer, idx::encode(&[0], &[])).unwrap();
    assert_clean_failure(&microvit(&["eval", "--images", i, "--labels", arg(&fewer)]), "holds 0 labels");
    // Images and labels swapped.
    assert_clean_failure(&microvit(&["eval", "--images", l, "--labels", i]), "are not [count, side, side] images");
    // A label file of rank 2.
    let rank2 = dir.join("rank2.idx1");
    std::fs::write(&rank2, idx::encode(&[20, 1], &[1; 20])).unwrap();
    assert_clean_failure(&microvit(&["eval", "--images", i, "--labels", arg(&rank2)]), "are not [count] labels");
    // A label past the model's classes, and the 4k model's 10 classes too.
    let bad = dir.join("bad.idx1");
    let mut values = vec![3u8; 20];
    values[17] = 255;
    std::fs::write(&bad, idx::encode(&[20], &values)).unwrap();
    let o = microvit(&["eval", "--images", i, "--labels", arg(&bad)]);
    assert_clean_failure(&o, "label 255 of image 17 is outside the model's 10 classes");
    // A label file that is not gzip despite its name.
    let fake_gz = dir.join("labels.idx1.gz");
    std::fs::write(&fake_gz, idx::encode(&[20], &values)).unwrap();
    assert_clean_failure(&microvit(&["eval", "--images", i, "--labels", arg(&fake_gz)]), "gzip");
    // The matching pair works.
    assert_success(&microvit(&["eval", "--images", i, "--labels", l]));
}

// ---------------------------------------------------------------- environment

#[test]
fn a_bad_microvit_backend_variable_is_reported_at_load() {
    let model = shipped("microvit-seed.int8.mvit");
    let run = |value: &str| Command::new(bin()).env("MICROVIT_BACKEND", value).args(["inspect", arg(&model)]).output();
    let o = run("sse9").unwrap();
    assert_clean_failure(
        &o,
        "MICROVIT_BACKEND: unknown backend \"sse9\"; expected one of scalar, avx2, avxvnni, avx512vnni, neon, dotprod, auto",
    );
    let missing = if cfg!(target_arch = "aarch64") { "avx2" } else { "neon" };
    let o = run(missing).unwrap();
    assert_clean_failure(&o, &format!("MICROVIT_BACKEND: backend {missing} is not available on this CPU"));
    assert_success(&run("scalar").unwrap());
}

// ---------------------------------------------------------------- decoder regressions

/// Found by the decoders fuzz target (10-minute run): a palette PNG whose
/// PLTE chunk is 28 bytes made png 0.18.1 panic (image-rs/image-png#694).
/// Now a format error naming the chunk, from the library and from the CLI.
#[test]
fn a_plte_chunk_that_is_not_whole_rgb_entries_is_a_format_error() {
    let png_bytes: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x05, 0x00, 0x00, 0x00, 0x07, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x1c, 0x50, 0x4c, 0x54, 0x45, 0x00, 0x50, 0x34, 0x00, 0x00, 0xff, 0xff, 0xfe, 0xff, 0x00, 0x00, 0x00, 0x80,
        0xff, 0x01, 0x1d, 0x33, 0x4a, 0x00, 0x00, 0x00, 0x02, 0x74, 0x52, 0x4e, 0x53, 0xff, 0x80, 0x08, 0x0f, 0xb3,
        0x6a, 0x00, 0x00, 0x00, 0x1e, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf6, 0x62, 0x54, 0x66, 0x60, 0x00,
        0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x82,
    ];
    let err = microvit_cli::image_input::decode_image(png_bytes, Path::new("plte.png")).unwrap_err();
    assert!(err.to_string().contains("PLTE chunk of 28 bytes is not 1 to 256 RGB entries"), "{err}");
    let dir = temp_dir("plte");
    let path = dir.join("plte.png");
    std::fs::write(&path, png_bytes).unwrap();
    let model = shipped("microvit-seed.mvit");
    assert_clean_failure(&microvit(&["classify", arg(&model), arg(&path)]), "PLTE chunk of 28 bytes");
}

// ---------------------------------------------------------------- memory bounds

/// Runs the binary with its address space capped at `mib` MiB: a command
/// that allocates more fails (and so does the test) on any machine.
#[cfg(unix)]
fn microvit_within_mib(mib: usize, args: &[&str]) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", mib * 1024))
        .arg(bin())
        .args(args)
        .output()
        .expect("runs the binary under sh")
}

/// Writes `len` zero bytes through `out` a MiB at a time.
fn write_zeros(out: &mut impl std::io::Write, mut len: usize) {
    let chunk = vec![0u8; 1 << 20];
    while len > 0 {
        let n = len.min(chunk.len());
        out.write_all(&chunk[..n]).unwrap();
        len -= n;
    }
}

/// Issue #17: a model file is read whole, so a huge one (here a sparse file
/// of 4 GiB: no disk used) was read until memory ran out. Its size is now
/// checked first, for every command that reads a model.
#[cfg(unix)]
#[test]
fn huge_model_files_are_refused_from_their_size() {
    let dir = temp_dir("huge-model");
    let huge = dir.join("huge.safetensors");
    std::fs::File::create(&huge).unwrap().set_len(4 << 30).unwrap();
    let h = arg(&huge);
    let needle = format!("cannot read model {h}: 4294967296 bytes, more than the 268435456 accepted");
    for args in [
        vec!["inspect", h],
        vec!["convert", h, "-o", "/dev/null"],
        vec!["eval", h],
        vec!["eval", "--reference", h],
        vec!["bench", h],
        vec!["classify", h, "x.png"],
    ] {
        assert_clean_failure(&microvit_within_mib(256, &args), &needle);
    }
}

/// Issue #17: `eval` decompressed a whole gzipped image file (here 512 MiB
/// of zeros in 0.5 MB) before noticing that the labels file holds 10
/// labels. Both headers are read first now, and the counts compared.
#[cfg(unix)]
#[test]
fn a_gzip_bomb_of_images_is_refused_from_its_header() {
    use flate2::{write::GzEncoder, Compression};
    let dir = temp_dir("gzip-bomb");
    let count = (512 << 20) / 784;
    let images = dir.join("bomb-images.idx3.gz");
    let mut gz = GzEncoder::new(std::fs::File::create(&images).unwrap(), Compression::fast());
    std::io::Write::write_all(&mut gz, &idx::encode(&[count, 28, 28], &[])).unwrap();
    write_zeros(&mut gz, count * 784);
    gz.finish().unwrap();
    assert!(std::fs::metadata(&images).unwrap().len() < 4 << 20);
    let labels = dir.join("labels.idx1");
    std::fs::write(&labels, idx::encode(&[10], &[0; 10])).unwrap();
    let o = microvit_within_mib(256, &["eval", "--images", arg(&images), "--labels", arg(&labels)]);
    assert_clean_failure(&o, &format!("holds {count} images but {} holds 10 labels", labels.display()));
    // A plain file must be as long as its header says, before it is read.
    let short = dir.join("short.idx3");
    let mut file = std::fs::File::create(&short).unwrap();
    std::io::Write::write_all(&mut file, &idx::encode(&[count, 28, 28], &[])).unwrap();
    drop(file);
    let o = microvit_within_mib(256, &["eval", "--images", arg(&short), "--labels", arg(&labels)]);
    assert_clean_failure(&o, "need 536870656 data bytes, file has 0");
}

/// CRC-32 (ISO-HDLC) of PNG chunks.
fn png_crc(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Issue #17: an 8192 × 8192 RGBA PNG at 16 bits per sample, interlaced (a
/// 2 MB file), took ~800 MB to classify: the whole 16-bit image, then an
/// 8-bit copy. PNGs are decoded straight to 8 bits now, row by row: the
/// 256 MiB an 8-bit RGBA image of that size needs, no more.
#[cfg(unix)]
#[test]
fn a_16_bit_interlaced_png_costs_what_an_8_bit_one_does() {
    use flate2::{write::ZlibEncoder, Compression};
    let dir = temp_dir("png16");
    let side = 8192usize;
    // Adam7 passes (x0, y0, dx, dy): every scanline is a filter byte and
    // 8 bytes a pixel, all zero (filter None, transparent black).
    let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
    let raw: usize =
        passes.iter().map(|&(x0, y0, dx, dy)| (side - y0).div_ceil(dy) * (1 + 8 * (side - x0).div_ceil(dx))).sum();
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    write_zeros(&mut z, raw);
    let idat = z.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let body = [kind, data].concat();
        png.extend_from_slice(&body);
        png.extend_from_slice(&png_crc(&body).to_be_bytes());
    };
    let mut ihdr = [(side as u32).to_be_bytes(), (side as u32).to_be_bytes()].concat();
    ihdr.extend_from_slice(&[16, 6, 0, 0, 1]); // 16 bits, RGBA, deflate, filter 0, Adam7
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &idat);
    chunk(b"IEND", &[]);
    let path = dir.join("big16.png");
    std::fs::write(&path, &png).unwrap();
    let o = microvit_within_mib(512, &["classify", arg(&path)]);
    assert_success(&o);
    assert!(stdout(&o).contains("no digit (the image is blank"), "{}", stdout(&o));
}
