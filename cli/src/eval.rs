//! Running a model over a labelled set: accuracy, per-class accuracy and a
//! confusion matrix.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use microvit_dataset::idx::Images;
use microvit_engine::{argmax, Model};

use crate::progress::Progress;

/// The outcome of one evaluation.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub classes: usize,
    /// `N × classes`, row per image.
    pub logits: Vec<f32>,
    pub predictions: Vec<usize>,
    pub labels: Vec<u8>,
    /// `classes × classes`: row = true class, column = predicted.
    pub confusion: Vec<usize>,
    pub elapsed: Duration,
}

/// Runs every image through `model`.
pub fn evaluate(model: &Model<'_>, images: &Images, labels: &[u8]) -> Result<Evaluation, String> {
    let shape = model.shape();
    let classes = shape.classes as usize;
    if images.side != shape.image_side as usize {
        return Err(format!("images are {s}x{s}, the model takes {m}x{m}", s = images.side, m = shape.image_side));
    }
    if images.len() != labels.len() {
        return Err(format!("{} images but {} labels", images.len(), labels.len()));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(format!("label {} of image {i} is outside the model's {classes} classes", labels[i]));
    }
    let mut ws = model.workspace();
    let mut logits = Vec::with_capacity(images.len() * classes);
    let mut predictions = Vec::with_capacity(images.len());
    let mut confusion = vec![0; classes * classes];
    let mut progress = Progress::new("eval", images.len());
    let start = Instant::now();
    for (i, (image, &label)) in images.iter().zip(labels).enumerate() {
        let out = model.infer(image, &mut ws).map_err(|e| e.to_string())?;
        let predicted = argmax(out);
        logits.extend_from_slice(out);
        predictions.push(predicted);
        confusion[label as usize * classes + predicted] += 1;
        if i % 256 == 0 {
            progress.update(i);
        }
    }
    let elapsed = start.elapsed();
    progress.finish();
    Ok(Evaluation { classes, logits, predictions, labels: labels.to_vec(), confusion, elapsed })
}

/// How many digits `reference` classifies as `result` did.
pub fn agreement(reference: &Model<'_>, images: &Images, result: &Evaluation) -> Result<usize, String> {
    if reference.shape().classes as usize != result.classes {
        let found = reference.shape().classes;
        return Err(format!("reference model has {found} classes, the evaluated one {}", result.classes));
    }
    let mut ws = reference.workspace();
    let mut same = 0;
    for (image, &predicted) in images.iter().zip(&result.predictions) {
        let logits = reference.infer(image, &mut ws).map_err(|e| format!("reference model: {e}"))?;
        same += (argmax(logits) == predicted) as usize;
    }
    Ok(same)
}

impl Evaluation {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn correct(&self) -> usize {
        (0..self.classes).map(|c| self.confusion[c * self.classes + c]).sum()
    }

    /// Accuracy in percent.
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct() as f64 / self.len().max(1) as f64
    }

    /// (true class, predicted class, count) of the off-diagonal cells, most
    /// frequent first.
    pub fn confusions(&self) -> Vec<(usize, usize, usize)> {
        let c = self.classes;
        let mut cells: Vec<_> = (0..c * c)
            .filter(|i| i / c != i % c && self.confusion[*i] > 0)
            .map(|i| (i / c, i % c, self.confusion[i]))
            .collect();
        cells.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        cells
    }

    /// The report `microvit eval` prints: [`summary`](Self::summary), a
    /// blank line, [`details`](Self::details).
    pub fn report(&self) -> String {
        format!("{}\n{}", self.summary(), self.details())
    }

    /// Accuracy and time per digit (the whole loop: inference, argmax, keeping the logits).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "accuracy  {:.2} % ({} / {})", self.accuracy(), self.correct(), self.len());
        let _ = writeln!(
            out,
            "time      {:.3} s, {:.2} µs/digit, one thread",
            self.elapsed.as_secs_f64(),
            self.elapsed.as_secs_f64() * 1e6 / self.len().max(1) as f64
        );
        out
    }

    /// Per-class accuracy, the confusion matrix, the most confused pairs.
    pub fn details(&self) -> String {
        let c = self.classes;
        let mut out = String::new();
        let _ = writeln!(out, "class   count  correct  accuracy");
        for class in 0..c {
            let row = &self.confusion[class * c..][..c];
            let count: usize = row.iter().sum();
            let right = row[class];
            let acc = 100.0 * right as f64 / count.max(1) as f64;
            let _ = writeln!(out, "{class:>5}  {count:>6}  {right:>7}  {acc:>7.2} %");
        }
        let width = self.confusion.iter().max().map_or(1, |m| m.to_string().len()).max(c.to_string().len()) + 1;
        let _ = writeln!(out, "\nconfusion matrix (rows: true class, columns: predicted)");
        let _ = write!(out, "{:>5} ", "");
        for p in 0..c {
            let _ = write!(out, "{p:>width$}");
        }
        out.push('\n');
        for t in 0..c {
            let _ = write!(out, "{t:>5} ");
            for p in 0..c {
                let _ = write!(out, "{:>width$}", self.confusion[t * c + p]);
            }
            out.push('\n');
        }
        let top: Vec<String> = self.confusions().iter().take(5).map(|(t, p, n)| format!("{t} as {p} ({n})")).collect();
        if !top.is_empty() {
            let _ = writeln!(out, "\nmost confused (true as predicted): {}", top.join(", "));
        }
        out
    }
}
