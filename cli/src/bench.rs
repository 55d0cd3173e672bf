//! `microvit bench`: latency per digit and throughput of the engine on the
//! real MNIST test digits, per encoding × backend.
//!
//! How it measures, per run (one encoding on one backend):
//!
//! 1. Warm-up: one pass over the 10,000 test digits in order (cut short
//!    after `max(seconds, 1 s)`), which also gives the run's accuracy, so a
//!    fast run is seen to be a right one; then a few untimed blocks on every
//!    thread.
//! 2. Single-digit latency: the digits are cycled through [`Model::classify`]
//!    one call at a time, and every block of [`BLOCK`] back-to-back calls is
//!    timed with [`Instant`] and divided by [`BLOCK`]. One call (a few µs) is
//!    too short to time alone without the clock's own cost and resolution
//!    showing; a block of 64 is short enough that a preemption lands in few
//!    blocks and shows in the p99 rather than in the median. So min, p50 and
//!    p99 are over per-block means, not over single calls; digits/s is all
//!    digits over the wall time of the phase.
//! 3. With `--batch N`: the same, with blocks of N digits handed over at once
//!    ([`Model::infer_batch`], which writes N × classes logits), reporting µs/digit
//!    and digits/s of that.
//!
//! With `--threads N`, N threads share the one model (each with its own
//! workspace), start together, and each times its own blocks; the latency
//! figures pool every thread's blocks, digits/s is the aggregate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use microvit_dataset::idx;
use microvit_engine::{Backend, Encoding, Model, Workspace};

use crate::model_file;

/// Calls per timed block of the single-digit latency.
pub const BLOCK: usize = 64;

/// Default measuring time, shared between the runs: `microvit bench` with no
/// arguments must stay a quick look (well under 10 s in all).
const DEFAULT_TOTAL_SECONDS: f64 = 2.5;
/// The least default measuring time of one run (phase).
const MIN_DEFAULT_SECONDS: f64 = 0.25;
/// The warm-up (accuracy) pass stops after `max(seconds, this)` even if it
/// has not seen every digit.
const MIN_WARM_UP_SECONDS: f64 = 1.0;

/// `--seconds` range: below a millisecond there is nothing to time (and a
/// duration rounds to zero), above an hour is a mistake.
pub const MIN_SECONDS: f64 = 0.001;
pub const MAX_SECONDS: f64 = 3600.0;
/// Largest `--batch`: the 10,000 test digits (a batch cycles through them,
/// so a larger one only repeats digits). Each thread holds a batch's logits.
pub const MAX_BATCH: usize = 10_000;
/// Largest `--threads`: far more than any CPU this runs on has, while the
/// threads' stacks and workspaces stay a few hundred MB at most.
pub const MAX_THREADS: usize = 256;
/// Largest `--threads × --batch`: every thread holds a batch of logits (up
/// to 64 classes), so this keeps them within 64 MiB.
pub const MAX_DIGITS_IN_FLIGHT: usize = 1 << 18;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A blob, or a safetensors file converted to each dtype in memory
    /// [default: the shipped seed blobs, one per dtype].
    pub model: Option<PathBuf>,
    /// Encodings [default: f32, f16, int8 for the shipped model; the file's
    /// own for a given blob; f32 for a given safetensors file].
    pub encodings: Vec<Encoding>,
    /// Backend names (`scalar`, `avx2`, `neon`, `auto`, `all`) [default: all
    /// this CPU has].
    pub backends: Vec<String>,
    /// Also time blocks of this many digits handed over at once.
    pub batch: Option<usize>,
    /// Threads sharing the model [default 1].
    pub threads: usize,
    /// Measuring time per run and phase [default: 2.5 s shared by the runs, at least 0.25 s each].
    pub seconds: Option<f64>,
    /// Print JSON instead of a table.
    pub json: bool,
    /// The idx images and labels timed on [default: the repository's MNIST test set].
    pub test_set: (Option<PathBuf>, Option<PathBuf>),
}

/// The figures of one run: one encoding on one backend.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub dtype: &'static str,
    /// The backend that ran, as the model reports it.
    pub backend: &'static str,
    pub model: String,
    pub threads: usize,
    /// Correct / all, when the warm-up pass saw every digit; `None` when it
    /// ran out of time first (a slow path on a busy machine): an accuracy
    /// over the first digits only would read as the model's.
    pub accuracy: Option<f64>,
    /// Digits the warm-up pass checked.
    pub checked: usize,
    pub single: Stats,
    pub batch: Option<(usize, Stats)>,
}

/// Timing of one phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Per-digit µs: block time / block length, over all blocks.
    pub us_min: f64,
    pub us_p50: f64,
    pub us_p99: f64,
    pub us_mean: f64,
    /// Digits timed (all threads).
    pub digits: u64,
    /// Wall time of the phase.
    pub seconds: f64,
    /// Aggregate digits per second: `digits / seconds`.
    pub digits_per_second: f64,
}

impl Stats {
    /// Summarises per-digit block times (µs, any order; none gives NaN
    /// times, printed as `null` in JSON).
    pub fn from_blocks(mut us: Vec<f64>, digits: u64, seconds: f64) -> Stats {
        if us.is_empty() {
            us.push(f64::NAN);
        }
        us.sort_by(f64::total_cmp);
        let rank = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
        Stats {
            us_min: us[0],
            us_p50: rank(0.50),
            us_p99: rank(0.99),
            us_mean: us.iter().sum::<f64>() / us.len() as f64,
            digits,
            seconds,
            digits_per_second: digits as f64 / seconds,
        }
    }
}

/// One model to run, before the backends are chosen.
struct Subject {
    encoding: Encoding,
    /// Its file, or the built-in blob's name.
    name: String,
    model: Model<'static>,
}

fn subjects(opts: &Options) -> Result<Vec<Subject>, String> {
    let mut encodings: Vec<Encoding> = Vec::new();
    for &e in &opts.encodings {
        if !encodings.contains(&e) {
            encodings.push(e);
        }
    }
    let mut out = Vec::new();
    match &opts.model {
        None => {
            if encodings.is_empty() {
                encodings = Encoding::ALL.to_vec();
            }
            for encoding in encodings {
                let loaded = model_file::builtin_model(Some(encoding))?;
                out.push(Subject { encoding, name: loaded.name, model: loaded.model });
            }
        }
        Some(path) if encodings.is_empty() => {
            let loaded = model_file::load(Some(path), None)?;
            out.push(Subject { encoding: loaded.model.encoding(), name: loaded.name, model: loaded.model });
        }
        Some(path) => {
            for encoding in encodings {
                let loaded = model_file::load(Some(path), Some(encoding))?;
                out.push(Subject { encoding, name: loaded.name, model: loaded.model });
            }
        }
    }
    Ok(out)
}

/// The backends asked for, checked against this CPU, in [`Backend::ALL`] order.
pub fn backends(names: &[String]) -> Result<Vec<Backend>, String> {
    if names.is_empty() {
        return Ok(Backend::available());
    }
    let mut chosen = Vec::new();
    for name in names {
        if name.trim().eq_ignore_ascii_case("all") {
            chosen.extend(Backend::available());
            continue;
        }
        let backend = Backend::parse(name)
            .and_then(Backend::checked)
            .map_err(|e| format!("--backend: {e} (this CPU has: {})", names_of(&Backend::available())))?;
        chosen.push(backend);
    }
    Ok(Backend::ALL.into_iter().filter(|b| chosen.contains(b)).collect())
}

fn names_of(backends: &[Backend]) -> String {
    backends.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
}

/// Checks the numeric options against their ranges ([`MAX_THREADS`],
/// [`MAX_BATCH`], [`MIN_SECONDS`]..=[`MAX_SECONDS`]) before anything is
/// allocated or started: out of range, they made the bench panic, abort on
/// a giant allocation or deadlock.
pub fn check_options(opts: &Options) -> Result<(), String> {
    if !(1..=MAX_THREADS).contains(&opts.threads) {
        return Err(format!("--threads must be from 1 to {MAX_THREADS}, not {}", opts.threads));
    }
    if let Some(n) = opts.batch.filter(|n| !(1..=MAX_BATCH).contains(n)) {
        return Err(format!("--batch must be from 1 to {MAX_BATCH} digits (the test set's size), not {n}"));
    }
    if let Some(n) = opts.batch.filter(|n| n * opts.threads > MAX_DIGITS_IN_FLIGHT) {
        return Err(format!(
            "--threads × --batch must be at most {MAX_DIGITS_IN_FLIGHT} digits in flight (each thread holds its \
             batch's logits), not {} × {n}",
            opts.threads
        ));
    }
    if let Some(s) = opts.seconds.filter(|s| !(MIN_SECONDS..=MAX_SECONDS).contains(s)) {
        // As written, roughly: 1e-300 rather than its 300 decimals.
        let s =
            if s == 0.0 || !s.is_finite() || (1e-4..1e7).contains(&s.abs()) { s.to_string() } else { format!("{s:e}") };
        return Err(format!("--seconds must be a number of seconds from {MIN_SECONDS} to {MAX_SECONDS}, not {s}"));
    }
    Ok(())
}

/// Runs the benchmark and reports through `say`, one line at a time (the
/// JSON is one line per run). Notes go to stderr in JSON mode.
pub fn run(opts: &Options, say: &mut dyn FnMut(String) -> Result<(), String>) -> Result<(), String> {
    check_options(opts)?;
    let backends = backends(&opts.backends)?;
    let mut subjects = subjects(opts)?;
    // A backend runs an encoding only where it has a kernel for it (f32 is
    // the scalar reference everywhere; the VNNI backends accelerate int8
    // alone): elsewhere the model falls back to scalar, a run already made.
    let mut plan: Vec<(usize, Backend)> = Vec::new();
    let mut notes = Vec::new();
    for (i, s) in subjects.iter_mut().enumerate() {
        let mut skipped = Vec::new();
        for &b in &backends {
            s.model.set_backend(b).map_err(|e| format!("{}: {e}", s.name))?;
            if s.model.backend() == b {
                plan.push((i, b));
            } else {
                skipped.push(b);
            }
        }
        if !skipped.is_empty() {
            let names = names_of(&skipped);
            notes.push(match s.model.encoding() {
                Encoding::F32 => format!("f32 is the scalar reference on every backend: not run on {names}"),
                e => format!("{} has no kernel on {names} (it would run scalar again): not run there", e.name()),
            });
        }
    }
    if plan.is_empty() {
        return Err(format!("nothing to run: {}", notes.join("; ")));
    }
    let (images_path, labels_path) = model_file::test_set(opts.test_set.0.as_deref(), opts.test_set.1.as_deref())?;
    let (images, labels) = idx::read_labelled(&images_path, &labels_path).map_err(|e| e.to_string())?;
    for s in &subjects {
        if s.model.shape().pixels() != images.side * images.side {
            return Err(format!(
                "{}: the model takes {} pixels, the MNIST test digits have {}×{}",
                s.name,
                s.model.shape().pixels(),
                images.side,
                images.side
            ));
        }
    }
    let seconds = opts.seconds.unwrap_or((DEFAULT_TOTAL_SECONDS / plan.len() as f64).max(MIN_DEFAULT_SECONDS));
    let setup = Setup { images: &images, labels: &labels, threads: opts.threads, seconds, batch: opts.batch };

    let mut results = Vec::new();
    for &(i, backend) in &plan {
        let s = &mut subjects[i];
        s.model.set_backend(backend).map_err(|e| format!("{}: {e}", s.name))?;
        results.push(run_one(&s.model, s.encoding, &s.name, &setup)?);
    }

    if opts.json {
        for note in &notes {
            eprintln!("microvit: note: {note}");
        }
        say("[".into())?;
        for (k, r) in results.iter().enumerate() {
            let comma = if k + 1 < results.len() { "," } else { "" };
            say(format!("  {}{comma}", to_json(r)))?;
        }
        return say("]".into());
    }
    for line in table(&results, &setup, &images_path) {
        say(line)?;
    }
    for note in &notes {
        say(format!("note: {note}"))?;
    }
    Ok(())
}

struct Setup<'a> {
    images: &'a idx::Images,
    labels: &'a [u8],
    threads: usize,
    seconds: f64,
    batch: Option<usize>,
}

fn run_one(model: &Model<'_>, encoding: Encoding, name: &str, setup: &Setup<'_>) -> Result<RunResult, String> {
    let images = setup.images;
    // Warm-up, and the proof that the run computes the right thing: the
    // digits in order against their labels, all of them unless that takes
    // longer than the warm-up allowance (a slow path on a busy machine).
    let mut ws = model.workspace();
    let (mut correct, mut checked) = (0usize, 0usize);
    let warm_up_end = Instant::now() + Duration::from_secs_f64(setup.seconds.max(MIN_WARM_UP_SECONDS));
    for (image, &label) in images.iter().zip(setup.labels) {
        correct += usize::from(model.classify(image, &mut ws).map_err(|e| e.to_string())? == label as usize);
        checked += 1;
        if checked % 256 == 0 && Instant::now() > warm_up_end {
            break;
        }
    }
    let accuracy = (checked == images.len()).then(|| correct as f64 / checked.max(1) as f64);

    let single = timed(model, setup, BLOCK, 0, &|ws, _, start, n, sink| {
        let mut sum = 0;
        for k in 0..n {
            let i = (start + k) % images.len();
            sum += model.classify(std::hint::black_box(images.get(i)), ws).map_err(|e| e.to_string())?;
        }
        *sink = sink.wrapping_add(sum);
        Ok(())
    })?;

    let batch = match setup.batch {
        None => None,
        Some(n) => {
            // The digits, repeated until a batch fits, back to back.
            let pool: Vec<u8> = images
                .pixels
                .iter()
                .copied()
                .cycle()
                .take(images.pixels.len().max(n * images.side * images.side))
                .collect();
            let count = pool.len() / (images.side * images.side);
            let classes = model.shape().classes as usize;
            let pixels = model.shape().pixels();
            let stats = timed(model, setup, n, n * classes, &|ws, logits, start, n, sink| {
                // Whole batches from the pool, wrapping to its start.
                let first = if start % count + n <= count { start % count } else { 0 };
                model
                    .infer_batch(std::hint::black_box(&pool[first * pixels..(first + n) * pixels]), ws, logits)
                    .map_err(|e| e.to_string())?;
                *sink = sink.wrapping_add(microvit_engine::argmax(&logits[..classes]));
                Ok(())
            })?;
            Some((n, stats))
        }
    };
    Ok(RunResult {
        dtype: encoding.name(),
        backend: model.backend().name(),
        model: name.to_string(),
        threads: setup.threads,
        accuracy,
        checked,
        single,
        batch,
    })
}

/// Work on `n` digits from digit `start` with a thread's workspace and
/// logits buffer, adding something of the result to the sink so it cannot be
/// optimised away.
type Block<'f> = dyn Fn(&mut Workspace, &mut [f32], usize, usize, &mut usize) -> Result<(), String> + Sync + 'f;

/// Where the threads of a timed phase wait for each other, so that they
/// start together. Unlike `std::sync::Barrier`, an arrival can be counted
/// without waiting: a thread that fails or panics before its start (or was
/// never spawned) is counted as it leaves, so the others, and the main
/// thread, are never left waiting for it.
struct StartLine {
    arrived: Mutex<usize>,
    all_here: Condvar,
    expected: usize,
}

impl StartLine {
    fn new(expected: usize) -> StartLine {
        StartLine { arrived: Mutex::new(0), all_here: Condvar::new(), expected }
    }

    /// Counts one arrival; with `wait`, returns once all are here.
    fn arrive(&self, wait: bool) {
        let mut n = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        *n += 1;
        if *n >= self.expected {
            self.all_here.notify_all();
        }
        while wait && *n < self.expected {
            n = self.all_here.wait(n).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A worker's place at the [`StartLine`]: waited for once, or counted when
/// dropped before that (an early error return or a panic).
struct Arrival<'a>(Option<&'a StartLine>);

impl Arrival<'_> {
    fn wait(&mut self) {
        if let Some(line) = self.0.take() {
            line.arrive(true);
        }
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if let Some(line) = self.0.take() {
            line.arrive(false);
        }
    }
}

/// Times blocks of `n` digits on every thread for `setup.seconds` (at
/// least one block each); each thread has a workspace and `out_len` floats
/// of output of its own.
fn timed(model: &Model<'_>, setup: &Setup<'_>, n: usize, out_len: usize, block: &Block<'_>) -> Result<Stats, String> {
    let threads = setup.threads;
    let len = setup.images.len();
    let line = StartLine::new(threads + 1);
    let budget = Duration::from_secs_f64(setup.seconds);
    let warm_up = Duration::from_secs_f64((setup.seconds / 10.0).min(0.05));
    let (per_thread, wall, spawn_error) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        let mut spawn_error = None;
        for t in 0..threads {
            let line = &line;
            let worker = move || -> Result<(Vec<f64>, u64), String> {
                let mut arrival = Arrival(Some(line));
                let mut ws = model.workspace();
                let mut out = vec![0.0f32; out_len];
                let mut next = t * len / threads;
                let mut sink = 0usize;
                let warm_end = Instant::now() + warm_up;
                while Instant::now() < warm_end {
                    block(&mut ws, &mut out, next, n, &mut sink)?;
                    next = (next + n) % len;
                }
                arrival.wait();
                let start = Instant::now();
                let mut us = Vec::with_capacity(4096);
                loop {
                    let t0 = Instant::now();
                    block(&mut ws, &mut out, next, n, &mut sink)?;
                    us.push(t0.elapsed().as_secs_f64() * 1e6 / n as f64);
                    next = (next + n) % len;
                    if start.elapsed() >= budget {
                        break;
                    }
                }
                std::hint::black_box(sink);
                let digits = (us.len() * n) as u64;
                Ok((us, digits))
            };
            match std::thread::Builder::new().spawn_scoped(scope, worker) {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // The threads not started count as arrived.
                    (t..threads).for_each(|_| line.arrive(false));
                    spawn_error = Some(format!("cannot start bench thread {} of {threads}: {e}", t + 1));
                    break;
                }
            }
        }
        line.arrive(true);
        let start = Instant::now();
        let joined: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a bench thread panicked".to_string())))
            .collect();
        (joined, start.elapsed().as_secs_f64(), spawn_error)
    });
    if let Some(e) = spawn_error {
        return Err(e);
    }
    let mut all = Vec::new();
    let mut digits = 0;
    for r in per_thread {
        let (us, d) = r?;
        all.extend(us);
        digits += d;
    }
    Ok(Stats::from_blocks(all, digits, wall))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finite number as JSON (3 significant decimals for µs is plenty).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

/// One run as a JSON object on one line.
pub fn to_json(r: &RunResult) -> String {
    let mut fields = vec![
        ("dtype", json_string(r.dtype)),
        ("backend", json_string(r.backend)),
        ("model", json_string(&r.model)),
        ("threads", r.threads.to_string()),
        ("block", BLOCK.to_string()),
        ("accuracy", r.accuracy.map_or("null".into(), |a| format!("{a:.4}"))),
        ("accuracy_digits", r.checked.to_string()),
        ("us_per_digit_min", json_number(r.single.us_min)),
        ("us_per_digit_p50", json_number(r.single.us_p50)),
        ("us_per_digit_p99", json_number(r.single.us_p99)),
        ("us_per_digit_mean", json_number(r.single.us_mean)),
        ("digits_per_second", json_number(r.single.digits_per_second)),
        ("digits", r.single.digits.to_string()),
        ("seconds", json_number(r.single.seconds)),
    ];
    match &r.batch {
        None => fields.extend([
            ("batch", "null".to_string()),
            ("us_per_digit_batch_p50", "null".to_string()),
            ("batch_digits_per_second", "null".to_string()),
        ]),
        Some((n, s)) => fields.extend([
            ("batch", n.to_string()),
            ("us_per_digit_batch_p50", json_number(s.us_p50)),
            ("batch_digits_per_second", json_number(s.digits_per_second)),
        ]),
    }
    let body: Vec<String> = fields.into_iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

fn table(results: &[RunResult], setup: &Setup<'_>, images_path: &Path) -> Vec<String> {
    let mut lines = vec![
        format!(
            "digits    {} ({} digits, cycled), {}",
            images_path.display(),
            setup.images.len(),
            match setup.threads {
                1 => "1 thread".to_string(),
                n => format!("{n} threads sharing one model, each with its own workspace (digits/s is their sum)"),
            }
        ),
        format!(
            "timing    {:.2} s per run after a warm-up pass over the digits; latency = each block of {BLOCK} back-to-back",
            setup.seconds
        ),
        format!("          classify calls timed with Instant, divided by {BLOCK} (min/p50/p99 are over those blocks)"),
        format!("backends  this CPU has {}", names_of(&Backend::available())),
        String::new(),
    ];
    let mut header = format!(
        "{:<5} {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11}",
        "dtype", "backend", "accuracy", "min µs", "p50 µs", "p99 µs", "mean µs", "digits/s"
    );
    if let Some(n) = setup.batch {
        let _ = write!(header, " {:>14} {:>11}", format!("batch{n} µs/dig"), "batch dig/s");
    }
    // Speed-up over the f32 reference, by p50, when it ran.
    let f32_p50 = results.iter().find(|r| r.dtype == "f32").map(|r| r.single.us_p50);
    if f32_p50.is_some() {
        header.push_str("  p50 speed-up vs f32");
    }
    lines.push(header);
    for r in results {
        let s = &r.single;
        let mut line = format!(
            "{:<5} {:<10} {:>8} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>11.0}",
            r.dtype,
            r.backend,
            r.accuracy.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
            s.us_min,
            s.us_p50,
            s.us_p99,
            s.us_mean,
            s.digits_per_second
        );
        if let Some((_, b)) = &r.batch {
            let _ = write!(line, " {:>14.3} {:>11.0}", b.us_p50, b.digits_per_second);
        }
        if let Some(base) = f32_p50 {
            let _ = write!(line, " {:>20}", format!("{:.1}×", base / s.us_p50));
        }
        lines.push(line);
    }
    let partial: Vec<String> = results
        .iter()
        .filter(|r| r.accuracy.is_none())
        .map(|r| format!("{} {}: {} of {}", r.dtype, r.backend, r.checked, setup.images.len()))
        .collect();
    if !partial.is_empty() {
        lines.push(format!(
            "accuracy '-': the warm-up pass ran out of time before the last digit ({}); more --seconds shows it",
            partial.join(", ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #17: a warm-up pass cut short showed `94.31 %*`, an accuracy
    /// over the first digits that read as the model's. Only an accuracy over
    /// every digit is shown; the ratio column says what it is.
    #[test]
    fn accuracy_only_over_every_digit_and_the_ratio_column_is_named() {
        let images = idx::Images { side: 1, pixels: vec![0; 100] };
        let setup = Setup { images: &images, labels: &[0; 100], threads: 1, seconds: 0.5, batch: None };
        let stats = |p50| Stats::from_blocks(vec![p50], 64, 1.0);
        let run = |dtype, accuracy, checked, p50| RunResult {
            dtype,
            backend: "scalar",
            model: "m".into(),
            threads: 1,
            accuracy,
            checked,
            single: stats(p50),
            batch: None,
        };
        let results = [run("f32", Some(0.954), 100, 50.0), run("f16", None, 31, 100.0)];
        let lines = table(&results, &setup, Path::new("digits.idx3"));
        let header = lines.iter().find(|l| l.starts_with("dtype")).unwrap();
        assert!(header.ends_with("p50 speed-up vs f32"), "{header}");
        let row = |dtype: &str| lines.iter().find(|l| l.starts_with(dtype)).unwrap().clone();
        assert!(row("f32 ").contains(" 95.40% "), "{}", row("f32 "));
        assert!(row("f32 ").ends_with("1.0×"), "{}", row("f32 "));
        let f16 = row("f16 ");
        assert!(f16.split_whitespace().nth(2) == Some("-") && f16.ends_with("0.5×"), "{f16}");
        assert!(lines.last().unwrap().contains("(f16 scalar: 31 of 100)"), "{lines:?}");
        let json = to_json(&results[1]);
        assert!(json.contains("\"accuracy\": null") && json.contains("\"accuracy_digits\": 31"), "{json}");
    }

    #[test]
    fn stats_rank_the_blocks() {
        let s = Stats::from_blocks((1..=100).rev().map(f64::from).collect(), 6400, 2.0);
        assert_eq!((s.us_min, s.us_p50, s.us_p99, s.us_mean), (1.0, 50.0, 99.0, 50.5));
        assert_eq!(s.digits_per_second, 3200.0);
        let one = Stats::from_blocks(vec![3.0], 64, 1.0);
        assert_eq!((one.us_min, one.us_p50, one.us_p99), (3.0, 3.0, 3.0));
    }

    #[test]
    fn backend_names_are_checked() {
        assert_eq!(backends(&[]).unwrap(), Backend::available());
        assert_eq!(backends(&["all".into()]).unwrap(), Backend::available());
        assert_eq!(backends(&["scalar".into(), "SCALAR".into()]).unwrap(), vec![Backend::Scalar]);
        assert!(backends(&["sse9".into()]).unwrap_err().contains("unknown backend"));
    }

    #[test]
    fn options_are_checked_against_their_ranges() {
        let with = |threads: usize, batch: Option<usize>, seconds: Option<f64>| {
            check_options(&Options { threads, batch, seconds, ..Default::default() })
        };
        assert_eq!(with(1, None, None), Ok(()));
        assert_eq!(with(MAX_THREADS, None, Some(MAX_SECONDS)), Ok(()));
        assert_eq!(with(26, Some(MAX_BATCH), Some(MAX_SECONDS)), Ok(()));
        assert_eq!(
            with(27, Some(MAX_BATCH), None).unwrap_err(),
            "--threads × --batch must be at most 262144 digits in flight (each thread holds its batch's logits), \
             not 27 × 10000"
        );
        assert_eq!(with(1, Some(1), Some(MIN_SECONDS)), Ok(()));
        for threads in [0, MAX_THREADS + 1, 20_000, usize::MAX] {
            let err = with(threads, None, None).unwrap_err();
            assert_eq!(err, format!("--threads must be from 1 to 256, not {threads}"));
        }
        for batch in [0, MAX_BATCH + 1, 10_000_000, 1 << 62, usize::MAX] {
            let err = with(1, Some(batch), None).unwrap_err();
            assert_eq!(err, format!("--batch must be from 1 to 10000 digits (the test set's size), not {batch}"));
        }
        let bad_seconds = [0.0, -0.0, -1.0, 1e-300, 5e-324, 0.000_999, 3600.001, 1e300, f64::INFINITY, f64::NAN];
        for seconds in bad_seconds {
            let err = with(1, None, Some(seconds)).unwrap_err();
            assert!(err.starts_with("--seconds must be a number of seconds from 0.001 to 3600, not "), "{err}");
            assert!(err.len() < 80, "{err}");
        }
    }

    /// The argument surface at random (a fuzz of the three numbers, which a
    /// libFuzzer target could only reach by running the bench): accepted
    /// exactly in range, and then everything sized from them is bounded and
    /// every duration they make is representable.
    #[test]
    fn random_numbers_are_accepted_exactly_in_range_and_bound_the_bench() {
        let mut rng = microvit_engine::synthetic::SplitMix64(18);
        for _ in 0..200_000 {
            let mut pick = |small: u64| match rng.next_u64() % 3 {
                0 => rng.next_u64() as usize,
                1 => (rng.next_u64() % small) as usize,
                _ => 1,
            };
            let (threads, batch) = (pick(300), pick(12_000));
            let batch = (batch % 4 != 3).then_some(batch);
            let seconds = match rng.next_u64() % 3 {
                0 => Some(f64::from_bits(rng.next_u64())),
                1 => Some((rng.next_u64() % 4_000_000) as f64 / 1000.0),
                _ => None,
            };
            let in_range = (1..=MAX_THREADS).contains(&threads)
                && batch.is_none_or(|n| (1..=MAX_BATCH).contains(&n) && n * threads <= MAX_DIGITS_IN_FLIGHT)
                && seconds.is_none_or(|s| (MIN_SECONDS..=MAX_SECONDS).contains(&s));
            let verdict = check_options(&Options { threads, batch, seconds, ..Default::default() });
            assert_eq!(verdict.is_ok(), in_range, "{threads} {batch:?} {seconds:?}: {verdict:?}");
            if verdict.is_ok() {
                // The digit pool, and every thread's logits (at most 64 classes).
                let n = batch.unwrap_or(BLOCK);
                assert!(10_000usize.max(n) * 784 + threads * n * 64 * 4 <= 80 << 20);
                let budget = Duration::from_secs_f64(seconds.unwrap_or(DEFAULT_TOTAL_SECONDS));
                let _ = Instant::now() + budget.max(Duration::from_secs_f64(MIN_WARM_UP_SECONDS));
            }
        }
    }

    #[test]
    fn no_blocks_is_not_a_panic() {
        let none = Stats::from_blocks(Vec::new(), 0, 1.0);
        assert!(none.us_min.is_nan() && none.us_p50.is_nan() && none.us_p99.is_nan());
        assert_eq!(none.digits, 0);
    }

    /// A block that fails or panics, on any thread, before or after the
    /// start: an error message, never a deadlock or a panic of the caller.
    #[test]
    fn failing_blocks_end_the_phase_with_an_error() {
        use microvit_engine::synthetic::random_int8_blob;
        let model = Model::from_bytes(&random_int8_blob(microvit_engine::Shape::SEED, 1)).unwrap();
        let images = idx::Images { side: 28, pixels: vec![0; 4 * 784] };
        let labels = [0u8; 4];
        let setup = Setup { images: &images, labels: &labels, threads: 3, seconds: 0.01, batch: None };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let fail_at = |at: usize, panics: bool| {
            calls.store(0, std::sync::atomic::Ordering::SeqCst);
            let block = |_: &mut Workspace, _: &mut [f32], _: usize, _: usize, _: &mut usize| {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == at {
                    if panics {
                        panic!("a block's bug");
                    }
                    return Err("a block's error".to_string());
                }
                Ok(())
            };
            timed(&model, &setup, 1, 10, &block).map(|_| ())
        };
        // The first call is in some thread's warm-up, before the start line.
        assert_eq!(fail_at(0, false), Err("a block's error".to_string()));
        assert_eq!(fail_at(0, true), Err("a bench thread panicked".to_string()));
        assert_eq!(fail_at(50, true), Err("a bench thread panicked".to_string()));
        assert_eq!(fail_at(usize::MAX, false), Ok(()));
    }

    #[test]
    fn a_thread_that_leaves_early_does_not_hold_up_the_start() {
        let line = StartLine::new(3);
        std::thread::scope(|s| {
            // One worker fails before its start, one panics: the third
            // party, like the main thread, still gets through.
            s.spawn(|| {
                let _arrival = Arrival(Some(&line));
            });
            let panicked = s.spawn(|| {
                let _arrival = Arrival(Some(&line));
                panic!("a worker's bug");
            });
            line.arrive(true);
            assert!(panicked.join().is_err());
        });
    }

    #[test]
    fn json_escapes_strings() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
