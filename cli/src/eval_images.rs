//! `microvit eval --images DIR`: accuracy on a folder of labelled photos and
//! drawings, each decoded and prepared as `classify` does.
//!
//! `DIR/labels.csv` names the files: a header row with at least the columns
//! `file` and `label` (a class index, or `none` for an image that holds no
//! digit), then one row per image. Optional columns: `kind` (results are
//! also given per kind) and `mnist_index` (the MNIST test digit the image
//! was made from: the same digits are then also run as MNIST tensors, so the
//! cost of the photos and drawings is measured on equal terms). The
//! realistic test set in `data/realistic/` is such a folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use microvit_engine::preprocess::Polarity;
use microvit_engine::{argmax, InferError, Model};

use crate::image_input;
use crate::progress::Progress;

/// Largest labels.csv read (a million rows of ~100 bytes).
const MAX_LABELS_BYTES: u64 = 100 << 20;

/// One row of labels.csv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labelled {
    pub file: PathBuf,
    /// The class, or `None` for an image without a digit.
    pub label: Option<usize>,
    pub kind: Option<String>,
    pub mnist_index: Option<usize>,
}

/// Reads `dir/labels.csv` (see the module docs); `classes` bounds the labels.
pub fn read_labels(dir: &Path, classes: usize) -> Result<Vec<Labelled>, String> {
    let path = dir.join("labels.csv");
    let meta = std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() > MAX_LABELS_BYTES {
        return Err(format!("{} is not a labels file of at most {} MiB", path.display(), MAX_LABELS_BYTES >> 20));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bad = |line: usize, why: String| format!("{}:{line}: {why}", path.display());
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (_, header) = lines.next().ok_or_else(|| bad(1, "the file is empty".into()))?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(file_col), Some(label_col)) = (find("file"), find("label")) else {
        return Err(bad(1, format!("the header {header:?} needs the columns file and label")));
    };
    let (kind_col, index_col) = (find("kind"), find("mnist_index"));
    let mut rows = Vec::new();
    for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(bad(n, format!("{} cells, the header has {}", cells.len(), columns.len())));
        }
        let name = cells[file_col];
        if name.is_empty() || Path::new(name).is_absolute() || name.split(['/', '\\']).any(|p| p == "..") {
            return Err(bad(n, format!("file {name:?} is not a path inside {}", dir.display())));
        }
        let label = match cells[label_col] {
            "none" => None,
            l => match l.parse::<usize>() {
                Ok(c) if c < classes => Some(c),
                _ => return Err(bad(n, format!("label {l:?} is not a class 0..{classes} or none"))),
            },
        };
        let kind = kind_col.map(|c| cells[c].to_string()).filter(|k| !k.is_empty());
        let mnist_index = match index_col.map(|c| cells[c]) {
            None | Some("") => None,
            Some(i) => Some(i.parse().map_err(|_| bad(n, format!("mnist_index {i:?} is not a number")))?),
        };
        rows.push(Labelled { file: dir.join(name), label, kind, mnist_index });
    }
    if rows.is_empty() {
        return Err(bad(1, "no images are listed".into()));
    }
    Ok(rows)
}

/// How one image came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Class(usize),
    NoDigit,
    /// The file could not be read or decoded.
    Unreadable,
}

/// Counts of one group of images.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub digits: usize,
    pub correct: usize,
    /// Digits reported as "no digit".
    pub missed: usize,
    pub blanks: usize,
    /// Images without a digit reported as such.
    pub blanks_found: usize,
    pub unreadable: usize,
}

impl Tally {
    fn add(&mut self, label: Option<usize>, outcome: Outcome) {
        match (label, outcome) {
            (_, Outcome::Unreadable) => self.unreadable += 1,
            (Some(l), o) => {
                self.digits += 1;
                self.correct += (o == Outcome::Class(l)) as usize;
                self.missed += (o == Outcome::NoDigit) as usize;
            }
            (None, o) => {
                self.blanks += 1;
                self.blanks_found += (o == Outcome::NoDigit) as usize;
            }
        }
    }

    fn accuracy(&self) -> f64 {
        100.0 * self.correct as f64 / self.digits.max(1) as f64
    }
}

/// The outcome of `microvit eval --images DIR`.
pub struct ImageEvaluation {
    pub outcomes: Vec<Outcome>,
    pub all: Tally,
    pub by_kind: BTreeMap<String, Tally>,
    /// Correct / counted when the same digits run as MNIST tensors.
    pub mnist: Option<(usize, usize)>,
    /// Decoding, and preprocessing plus inference.
    pub decode_time: Duration,
    pub model_time: Duration,
}

/// Classifies every listed image; `mnist` holds the MNIST test digits for
/// rows with an `mnist_index`.
pub fn evaluate(
    model: &Model<'_>,
    rows: &[Labelled],
    polarity: Polarity,
    mnist: Option<&microvit_dataset::idx::Images>,
) -> Result<ImageEvaluation, String> {
    let mut ws = model.workspace();
    let mut result = ImageEvaluation {
        outcomes: Vec::with_capacity(rows.len()),
        all: Tally::default(),
        by_kind: BTreeMap::new(),
        mnist: None,
        decode_time: Duration::ZERO,
        model_time: Duration::ZERO,
    };
    let mut progress = Progress::new("eval", rows.len());
    for (i, row) in rows.iter().enumerate() {
        let start = Instant::now();
        let picture = image_input::load_image(&row.file);
        result.decode_time += start.elapsed();
        let outcome = match picture {
            Err(e) => {
                eprintln!("microvit: error: {e}");
                Outcome::Unreadable
            }
            Ok(picture) => {
                let start = Instant::now();
                let outcome = match model.infer_image(&picture.source(), polarity, &mut ws) {
                    Ok(r) => Outcome::Class(argmax(r.logits)),
                    Err(InferError::NoDigit(_)) => Outcome::NoDigit,
                    Err(e) => return Err(format!("{}: {e}", row.file.display())),
                };
                result.model_time += start.elapsed();
                outcome
            }
        };
        result.all.add(row.label, outcome);
        if let Some(kind) = &row.kind {
            result.by_kind.entry(kind.clone()).or_default().add(row.label, outcome);
        }
        result.outcomes.push(outcome);
        progress.update(i + 1);
    }
    progress.finish();
    if let Some(images) = mnist {
        let side = model.shape().image_side as usize;
        if images.side == side {
            let (mut correct, mut counted) = (0, 0);
            for row in rows {
                if let (Some(label), Some(i)) = (row.label, row.mnist_index.filter(|&i| i < images.len())) {
                    counted += 1;
                    correct += (model.classify(images.get(i), &mut ws).map_err(|e| e.to_string())? == label) as usize;
                }
            }
            result.mnist = (counted > 0).then_some((correct, counted));
        }
    }
    Ok(result)
}

impl ImageEvaluation {
    /// The human-readable report.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let a = &self.all;
        let _ = writeln!(out, "accuracy  {:.2} % ({} / {} digits)", a.accuracy(), a.correct, a.digits);
        if let Some((correct, counted)) = self.mnist {
            let _ = writeln!(
                out,
                "          the same digits as MNIST tensors: {:.2} % ({correct} / {counted})",
                100.0 * correct as f64 / counted.max(1) as f64
            );
        }
        let _ = writeln!(out, "no digit  {} of {} digits missed", a.missed, a.digits);
        if a.blanks > 0 {
            let _ =
                writeln!(out, "          {} of {} images without a digit reported as such", a.blanks_found, a.blanks);
        }
        if a.unreadable > 0 {
            let _ = writeln!(out, "unread    {} images could not be read", a.unreadable);
        }
        let images = self.outcomes.len().max(1) as f64;
        let _ = writeln!(
            out,
            "time      decode {:.2} ms/image, preprocess + infer {:.1} µs/image, one thread",
            self.decode_time.as_secs_f64() * 1e3 / images,
            self.model_time.as_secs_f64() * 1e6 / images
        );
        if !self.by_kind.is_empty() {
            let _ = writeln!(out, "\nkind              digits  correct  accuracy  missed  no-digit found");
            for (kind, t) in &self.by_kind {
                let blanks = if t.blanks > 0 { format!("{} / {}", t.blanks_found, t.blanks) } else { String::new() };
                let acc = if t.digits > 0 { format!("{:.1} %", t.accuracy()) } else { "-".into() };
                let _ = writeln!(
                    out,
                    "{kind:<16} {:>7}  {:>7}  {acc:>8}  {:>6}  {blanks:>14}",
                    t.digits, t.correct, t.missed
                );
            }
        }
        out
    }
}
