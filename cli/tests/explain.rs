//! `microvit explain` and `microvit eval --report` as a user runs them: the pictures they write, the
//! attention they show, the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use microvit_cli::draw::{self, Rgb};
use microvit_cli::explain::Layout;
use microvit_cli::report;
use microvit_dataset::{idx, npy, repo_root, shipped_test_set};
use microvit_engine::Shape;

const SEED_MODEL: &str = "models/microvit-seed.mvit";

fn microvit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microvit")).args(args).current_dir(repo_root()).output().expect("runs the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microvit-explain-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A decoded 8-bit RGB PNG.
struct Picture {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Picture {
    fn get(&self, x: usize, y: usize) -> Rgb {
        let i = 3 * (y * self.width + x);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// Decodes `path` with the png crate and checks it is a real picture: RGB8 and not one flat colour.
fn read_png(path: &Path) -> Picture {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a valid PNG");
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).expect("decodes");
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight), "{}", path.display());
    rgb.truncate(info.buffer_size());
    let colours: std::collections::HashSet<&[u8]> = rgb.chunks_exact(3).collect();
    assert!(colours.len() > 20, "{}: only {} colours", path.display(), colours.len());
    Picture { width: info.width as usize, height: info.height as usize, rgb }
}

fn golden_attention() -> npy::NpyF32 {
    let path = repo_root().join("tests/fixtures/microvit-seed.cls_attention.npy");
    npy::decode_f32(&std::fs::read(path).unwrap()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Writes `pixels` (`side × side`, white digit on black) as a dark-on-white 8-bit gray PNG, each pixel
/// a 2×2 block, so that `explain` must invert and downscale it back.
fn write_paper_digit(path: &Path, pixels: &[u8], side: usize) {
    let big = 2 * side;
    let data: Vec<u8> = (0..big * big).map(|i| 255 - pixels[(i / big / 2) * side + (i % big) / 2]).collect();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, big as u32, big as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn explain_attention_for_test_digits_0_to_7_matches_pytorch() {
    let dir = temp_dir("golden");
    let attention = dir.join("attention.npy");
    let o = microvit(&[
        "explain",
        SEED_MODEL,
        "--test-digits",
        "0,1,2,3,4,5,6,7",
        "-o",
        arg(&dir),
        "--attention-out",
        arg(&attention),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("attention.npy (float32 [8, 2, 17])"), "{}", stdout(&o));
    let ours = npy::decode_f32(&std::fs::read(&attention).unwrap()).unwrap();
    let golden = golden_attention();
    assert_eq!(golden.shape, vec![8, 2, 17]);
    assert_eq!(ours.shape, golden.shape);
    let diff = max_abs_diff(&ours.data, &golden.data);
    assert!(diff <= 1e-5, "max |Δattention| vs PyTorch {diff}");
    for (k, row) in ours.data.chunks_exact(17).enumerate() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() <= 1e-5, "digit {}, head {}: row sums to {sum}", k / 2, k % 2);
        assert!(row.iter().all(|&a| (0.0..=1.0).contains(&a)));
    }
    for i in 0..8 {
        assert!(dir.join(format!("test-digit-{i}.explain.png")).exists());
    }
}

#[test]
fn attention_rows_sum_to_one_through_the_library() {
    let (model, _) = microvit_cli::model_file::open(&repo_root().join(SEED_MODEL)).unwrap();
    let (images, _) = shipped_test_set();
    let images = idx::read_images(&images).unwrap();
    let mut ws = model.workspace();
    let golden = golden_attention();
    for i in 0..200 {
        let e = microvit_cli::explain::explain(&model, &mut ws, images.get(i)).unwrap();
        for h in 0..e.heads {
            let sum: f32 = e.row(h).iter().sum();
            assert!((sum - 1.0).abs() <= 1e-5, "digit {i}, head {h}: {sum}");
        }
        if i < 8 {
            let diff = max_abs_diff(&e.attention, &golden.data[i * 34..][..34]);
            assert!(diff <= 1e-5, "digit {i}: max |Δattention| {diff}");
        }
    }
}

#[test]
fn explain_draws_the_digit_and_each_heads_attention_on_the_patch_grid() {
    let dir = temp_dir("picture");
    let attention = dir.join("attention.npy");
    let o =
        microvit(&["explain", SEED_MODEL, "--test-digits", "0", "-o", arg(&dir), "--attention-out", arg(&attention)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("MNIST test digit 0: 7 (100.0%), true 7; most attended patch"), "{out}");

    let picture = read_png(&dir.join("test-digit-0.explain.png"));
    let layout = Layout::new(Shape::SEED, false);
    assert_eq!((picture.width, picture.height), (layout.width, layout.height));
    assert_eq!((picture.width, picture.height), (832, 392));

    let (images, _) = shipped_test_set();
    let digit = idx::read_images(&images).unwrap().get(0).to_vec();
    let attention = npy::decode_f32(&std::fs::read(&attention).unwrap()).unwrap().data;
    let vmax = (0..2).flat_map(|h| attention[h * 17 + 1..][..16].iter().copied()).fold(0.0, f32::max);
    let centre = |panel: usize, px: usize, py: usize| {
        picture.get(layout.panel_x(panel) + px * layout.scale + 4, layout.panels_y + py * layout.scale + 4)
    };
    // The plain digit, pixel for pixel (grid lines sit on patch edges, away from pixel centres).
    for py in 0..28 {
        for px in 0..28 {
            let v = digit[py * 28 + px];
            assert_eq!(centre(0, px, py), [v, v, v], "input panel at ({px}, {py})");
        }
    }
    // Each head: every background pixel of patch (r, c) has the colour of that patch's attention, so the
    // heat map sits exactly on the 4×4 grid. Rows 0..3 of a patch are skipped (the percent labels).
    let mut checked = 0;
    for h in 0..2 {
        for cell in 0..16 {
            let (r, c) = (cell / 4, cell % 4);
            let want = draw::viridis(attention[h * 17 + 1 + cell] / vmax);
            for py in 7 * r + 3..7 * r + 7 {
                for px in 7 * c..7 * c + 7 {
                    if digit[py * 28 + px] == 0 {
                        assert_eq!(centre(h + 1, px, py), want, "head {h}, patch ({r}, {c}), pixel ({px}, {py})");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 500, "{checked}");
}

#[test]
fn explain_reads_files_as_classify_does_including_polarity() {
    let dir = temp_dir("files");
    let (images, _) = shipped_test_set();
    let digit = idx::read_images(&images).unwrap().get(0).to_vec();
    let paper = dir.join("seven on paper.png");
    write_paper_digit(&paper, &digit, 28);
    let out_dir = dir.join("out");

    let auto = dir.join("auto.npy");
    let o = microvit(&[
        "explain",
        SEED_MODEL,
        arg(&paper),
        "--test-digits",
        "0",
        "-o",
        arg(&out_dir),
        "--attention-out",
        arg(&auto),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("seven on paper.png: 7 (100.0%); most attended patch"), "{}", stdout(&o));
    let picture = read_png(&out_dir.join("seven on paper.explain.png"));
    assert_eq!((picture.width, picture.height), (1072, 392), "the user's image, the input, two heads");
    // Dark on white, prepared by --polarity auto: the test digit again (up to resampling), so nearly the
    // same attention.
    let auto = npy::decode_f32(&std::fs::read(&auto).unwrap()).unwrap();
    assert_eq!(auto.shape, vec![2, 2, 17]);
    let diff = max_abs_diff(&auto.data[..34], &auto.data[34..]);
    assert!(diff < 0.01, "the file's attention differs from the test digit's by {diff}");

    // The classify command agrees on the prediction.
    let classify = microvit(&["classify", SEED_MODEL, arg(&paper)]);
    assert!(stdout(&classify).contains(": 7 (100.0 %)"), "{}", stdout(&classify));

    // --polarity as-is (light-on-dark) reads the white paper as the ink: another input, other attention.
    let as_is = dir.join("as-is.npy");
    let o = microvit(&[
        "explain",
        SEED_MODEL,
        arg(&paper),
        "--polarity",
        "as-is",
        "-o",
        arg(&out_dir),
        "--attention-out",
        arg(&as_is),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let as_is = npy::decode_f32(&std::fs::read(&as_is).unwrap()).unwrap();
    assert!(max_abs_diff(&as_is.data, &auto.data[..34]) > 1e-3);
}

#[test]
fn explain_errors() {
    let dir = temp_dir("errors");
    // Nothing to explain: a usage error, or with a model alone, an error that says so.
    let o = microvit(&["explain", "-o", arg(&dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = microvit(&["explain", SEED_MODEL, "-o", arg(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to explain: give image files or --test-digits"), "{}", stderr(&o));
    // An index past the test set.
    let o = microvit(&["explain", SEED_MODEL, "--test-digits", "3,10000", "-o", arg(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("test digit 10000 does not exist: the test set has 10000 digits"), "{}", stderr(&o));
    // An unreadable file fails the run but the other pictures are still drawn.
    let junk = dir.join("junk.png");
    std::fs::write(&junk, b"not a picture").unwrap();
    let out = dir.join("out");
    let o = microvit(&["explain", SEED_MODEL, arg(&junk), "--test-digits", "5", "-o", arg(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("junk.png"), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 of 1 images could not be read"), "{}", stderr(&o));
    read_png(&out.join("test-digit-5.explain.png"));
}

#[test]
fn eval_report_writes_pictures_and_a_markdown_page() {
    let dir = temp_dir("report");
    let o = microvit(&["eval", "--dtype", "f32", "--report", arg(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("report    {}", dir.join("report.md").display())), "{}", stdout(&o));

    let seed = Shape::SEED;
    let confusion = read_png(&dir.join("confusion.png"));
    assert_eq!((confusion.width, confusion.height), report::confusion_size(10));
    let gallery = read_png(&dir.join("misclassified.png"));
    assert_eq!((gallery.width, gallery.height), report::gallery_size(seed, report::GALLERY_LIMIT));
    let by_class = read_png(&dir.join("attention_by_class.png"));
    assert_eq!((by_class.width, by_class.height), report::class_attention_size(seed));

    // The diagonal dominates: each diagonal cell has the colour of its count, near the top of the scale,
    // and every off-diagonal cell is darker than every diagonal one.
    let cell = |t, p| {
        let (x, y, _) = report::confusion_cell(t, p);
        confusion.get(x + 3, y + 3)
    };
    assert_eq!(cell(1, 1), draw::viridis(1.0)); // 1122 correct 1s, the largest cell
    assert_eq!(cell(4, 9), draw::viridis(report::count_scale(23, 1122)));
    let darkest_diagonal = (0..10).map(|c| draw::luminance(cell(c, c))).fold(1.0, f32::min);
    let brightest_off =
        (0..100).filter(|i| i / 10 != i % 10).map(|i| draw::luminance(cell(i / 10, i % 10))).fold(0.0, f32::max);
    assert!(darkest_diagonal > 0.75 && brightest_off < 0.45, "{darkest_diagonal} vs {brightest_off}");

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "accuracy: **95.40 % (9540 / 10000)**",
        "most confused (true as predicted): 4 as 9 (23), 7 as 9 (22), 6 as 0 (21), 5 as 3 (20), 3 as 5 (19)",
        "| 4 ↔ 9 | 42 | 4 as 9: 23 | 9 as 4: 19 |",
        "3 ↔ 8 13 times (7 + 6), rank 15 of 41",
        "So 4 ↔ 9 is among the 5 most confused pairs, 3 ↔ 8 is not",
        "| 8 | 974 | 897 | 92.09 % | 0 (12), 2 (12) |",
        "The 64 most confident of the 460 mistakes",
        "![confusion matrix](confusion.png)",
        "![misclassified digits](misclassified.png)",
        "![mean CLS attention per class](attention_by_class.png)",
        "--test-digits 1681",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
}
