//! `make-realistic`: writes the realistic test set (see `microvit_dataset::realistic`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::ImageEncoder;
use microvit_dataset::realistic::{self, Entry, Generator, Sample, CSV_HEADER};

/// Writes the realistic test set: MNIST test digits drawn as users hand them over.
///
/// Each image is one of the 10,000 MNIST test digits shipped in data/ (never a
/// training digit) drawn as a drawing-pad export, a dark-mode canvas or chalk
/// board, a transparent drawing-app PNG, a scan of grey paper, a page under
/// uneven light, a phone photo, with thick or thin strokes, or in a coloured
/// pen on coloured paper; a few images are blank pages or noise with no digit.
/// Formats: PNG (grey, RGB, RGBA), JPEG, GIF, BMP, WebP, TIFF, PGM and PPM.
#[derive(Parser)]
#[command(
    name = "make-realistic",
    after_long_help = "Writes DIR/NNNN-KIND.EXT and DIR/labels.csv \
                       (file,label,kind,format,mnist_index,width,height; label is 0-9, or none for an \
                       image without a digit). The same --seed gives byte-identical files.\n\n\
                       The committed set was made with:\n  \
                       make-realistic --seed 1 --count 300 --out data/realistic \
                       --contact-sheet docs/images/realistic-sample.png"
)]
struct Args {
    /// Seed of the set; image N is the same whatever --count is.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many images to write.
    #[arg(long, default_value_t = 300)]
    count: usize,
    /// Directory for the images and labels.csv (created if missing; files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also write a PNG grid of thumbnails, one row per group of kinds (clean drawings; scanned
    /// paper; photos; stroke widths and colour; no digit).
    #[arg(long, value_name = "FILE")]
    contact_sheet: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("make-realistic: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let generator = Generator::from_shipped_test_set(args.seed).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut entries = Vec::with_capacity(args.count);
    let mut kept = Vec::new(); // the samples, only when a contact sheet needs them
    let mut total_bytes = 0;
    for index in 0..args.count {
        let sample = generator.sample(index).map_err(|e| format!("image {index}: {e}"))?;
        write(&args.out.join(&sample.entry.file), &sample.bytes)?;
        total_bytes += sample.bytes.len();
        entries.push(sample.entry.clone());
        if args.contact_sheet.is_some() {
            kept.push(sample);
        }
        if (index + 1) % 100 == 0 || index + 1 == args.count {
            eprintln!("{:>6} / {} images, {total_bytes} bytes", index + 1, args.count);
        }
    }
    let csv: String = std::iter::once(CSV_HEADER.to_string())
        .chain(entries.iter().map(Entry::csv_row))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    write(&args.out.join("labels.csv"), csv.as_bytes())?;
    total_bytes += csv.len();
    warn_about_strays(&args.out, &entries);
    if let Some(path) = &args.contact_sheet {
        write_contact_sheet(path, &kept)?;
    }
    print_summary(&entries, total_bytes, &args.out);
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Files left by an earlier run with other settings would silently join the
/// set when someone globs the directory; name them instead of deleting them.
fn warn_about_strays(dir: &Path, entries: &[Entry]) {
    let ours: BTreeSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    let Ok(listing) = std::fs::read_dir(dir) else { return };
    let mut strays: Vec<String> = listing
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.as_bytes().first().is_some_and(u8::is_ascii_digit) && name.contains('-'))
        .filter(|name| !ours.contains(name.as_str()))
        .collect();
    if !strays.is_empty() {
        strays.sort();
        eprintln!(
            "warning: {} file(s) in {} are not in labels.csv (left from an earlier run?), e.g. {}",
            strays.len(),
            dir.display(),
            strays[0]
        );
    }
}

fn write_contact_sheet(path: &Path, samples: &[Sample]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let sheet = realistic::contact_sheet(samples).map_err(|e| fail(&e))?;
    let file = File::create(path).map_err(|e| fail(&e))?;
    PngEncoder::new_with_quality(BufWriter::new(file), CompressionType::Best, FilterType::Adaptive)
        .write_image(sheet.as_raw(), sheet.width(), sheet.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| fail(&e))?;
    eprintln!("contact sheet {} ({}×{})", path.display(), sheet.width(), sheet.height());
    Ok(())
}

/// The result, on stdout (the progress went to stderr).
fn print_summary(entries: &[Entry], total_bytes: usize, dir: &Path) {
    let (kinds, formats) = realistic::counts(entries);
    let digits = entries.iter().filter(|e| e.label.is_some()).count();
    println!(
        "wrote {} images ({digits} with a digit, {} without) and labels.csv to {}: {total_bytes} bytes",
        entries.len(),
        entries.len() - digits,
        dir.display()
    );
    let line = |counts: Vec<String>| counts.join(", ");
    println!("kinds:   {}", line(kinds.iter().map(|(k, n)| format!("{k} {n}")).collect()));
    println!("formats: {}", line(formats.iter().map(|(f, n)| format!("{f} {n}")).collect()));
}
