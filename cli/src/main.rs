//! `microvit`: convert, inspect, evaluate and run Micro-ViT models.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use microvit_cli::image_input::{self, Polarity};
use microvit_cli::{eval, model_file};
use microvit_converter::{ConvertOptions, Dtype};
use microvit_engine::{softmax, Model};

#[derive(Parser)]
#[command(name = "microvit", version, about = "Tiny Vision Transformer inference: convert, inspect, eval, classify")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    F32,
    F16,
    Int8,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a PyTorch safetensors state_dict into a microvit blob.
    Convert {
        /// The safetensors file (f32, f16 or bf16 tensors).
        input: PathBuf,
        /// The blob to write [default: INPUT with the extension .mvit].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Weight encoding of the blob.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DtypeArg,
        /// Attention heads [default: from the safetensors metadata].
        #[arg(long)]
        heads: Option<u32>,
        /// Input normalisation mean [default: metadata, else 0.1307].
        #[arg(long)]
        pixel_mean: Option<f32>,
        /// Input normalisation std [default: metadata, else 0.3081].
        #[arg(long)]
        pixel_std: Option<f32>,
        /// LayerNorm epsilon [default: metadata, else 1e-5].
        #[arg(long)]
        layer_norm_eps: Option<f32>,
    },
    /// Show a blob's shape, parameters, encoding, size, checksum and tensors.
    Inspect {
        /// A .mvit blob (or a safetensors file, converted in memory).
        model: PathBuf,
    },
    /// Accuracy, per-class accuracy and confusion matrix on a labelled set.
    Eval {
        /// Model [default: the shipped models/microvit-seed.mvit].
        model: Option<PathBuf>,
        /// idx3 images, plain or .gz [default: the shipped MNIST test set].
        #[arg(long)]
        images: Option<PathBuf>,
        /// idx1 labels, plain or .gz [default: the shipped MNIST test labels].
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Write the logits as float32 [N, classes] .npy.
        #[arg(long, value_name = "FILE.npy")]
        logits_out: Option<PathBuf>,
    },
    /// Classify PNG or PGM images (any size; see image_input.rs for the rules).
    Classify {
        /// The model (.mvit or .safetensors).
        model: PathBuf,
        /// PNG or PGM files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Digit polarity: auto inverts dark-on-light images to MNIST's light-on-dark.
        #[arg(long, value_enum, default_value = "auto")]
        polarity: PolarityArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PolarityArg {
    Auto,
    AsIs,
    Invert,
}

/// `println!` that treats a closed stdout (`microvit eval | head`) as the
/// end of the run rather than a panic.
macro_rules! say {
    ($($arg:tt)*) => { say_line(format_args!($($arg)*))? };
}

fn say_line(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert { input, output, dtype, heads, pixel_mean, pixel_std, layer_norm_eps } => {
            let dtype = match dtype {
                DtypeArg::F32 => Dtype::F32,
                DtypeArg::F16 => Dtype::F16,
                DtypeArg::Int8 => Dtype::Int8,
            };
            let options = ConvertOptions { dtype, heads, pixel_mean, pixel_std, layer_norm_eps };
            run_convert(&input, output, &options)
        }
        Command::Inspect { model } => run_inspect(&model),
        Command::Eval { model, images, labels, logits_out } => {
            run_eval(model.as_deref(), images, labels, logits_out.as_deref())
        }
        Command::Classify { model, images, polarity } => {
            let polarity = match polarity {
                PolarityArg::Auto => Polarity::Auto,
                PolarityArg::AsIs => Polarity::AsIs,
                PolarityArg::Invert => Polarity::Invert,
            };
            run_classify(&model, &images, polarity)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("microvit: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_convert(input: &Path, output: Option<PathBuf>, options: &ConvertOptions) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let converted = microvit_converter::convert(&bytes, options).map_err(|e| format!("{}: {e}", input.display()))?;
    let output = output.unwrap_or_else(|| input.with_extension("mvit"));
    std::fs::write(&output, &converted.blob).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let model = Model::from_bytes(&converted.blob).map_err(|e| format!("converted blob does not load: {e}"))?;
    say!("wrote {} ({} bytes)", output.display(), converted.blob.len());
    print_summary(&model)?;
    Ok(())
}

fn print_summary(model: &Model<'_>) -> Result<(), String> {
    let shape = model.shape();
    let config = model.config();
    let header = &model.layout().header;
    say!("shape       {shape}");
    say!("parameters  {}", shape.parameter_count());
    say!("encoding    {}", model.encoding());
    say!("size        {} bytes", model.blob().len());
    say!("checksum    {:#010x} (CRC-32C)", header.checksum);
    say!("format      version {}", header.version);
    say!(
        "input       (pixel/255 - {}) / {}, LayerNorm eps {}",
        config.pixel_mean,
        config.pixel_std,
        config.layer_norm_eps
    );
    Ok(())
}

fn run_inspect(path: &Path) -> Result<(), String> {
    let (model, source) = model_file::open(path)?;
    if source == model_file::Source::Safetensors {
        say!("{}: safetensors, shown as the f32 blob it converts to", path.display());
    }
    print_summary(&model)?;
    say!("\n{:<28} {:<5} {:<14} {:>7} {:>7}", "tensor", "type", "shape", "offset", "bytes");
    for t in &model.layout().tensors {
        let dims = t.dims.to_string();
        say!("{:<28} {:<5} {:<14} {:>7} {:>7}", t.id.name(), t.elem.name(), dims, t.offset, t.len);
    }
    Ok(())
}

fn run_eval(
    model: Option<&Path>,
    images: Option<PathBuf>,
    labels: Option<PathBuf>,
    logits_out: Option<&Path>,
) -> Result<(), String> {
    let model_path = model_file::resolve(model)?;
    let (model, _) = model_file::open(&model_path)?;
    let (shipped_images, shipped_labels) = microvit_dataset::shipped_test_set();
    let images = images.unwrap_or(shipped_images);
    let labels = labels.unwrap_or(shipped_labels);
    let (imgs, labs) = microvit_dataset::idx::read_labelled(&images, &labels).map_err(|e| e.to_string())?;
    say!(
        "model     {} ({}, {} parameters, {} bytes)",
        model_path.display(),
        model.encoding(),
        model.shape().parameter_count(),
        model.blob().len()
    );
    say!("backend   scalar reference");
    say!("images    {} ({} digits)", images.display(), imgs.len());
    let result = eval::evaluate(&model, &imgs, &labs)?;
    say!("{}", result.report().trim_end());
    if let Some(out) = logits_out {
        let npy = microvit_dataset::npy::encode_f32(&[result.len(), result.classes], &result.logits);
        std::fs::write(out, npy).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        say!("\nlogits    {} (float32 [{}, {}])", out.display(), result.len(), result.classes);
    }
    Ok(())
}

fn run_classify(model_path: &Path, images: &[PathBuf], polarity: Polarity) -> Result<(), String> {
    let (model, _) = model_file::open(model_path)?;
    let side = model.shape().image_side as usize;
    let mut ws = model.workspace();
    let mut probs = vec![0.0; model.shape().classes as usize];
    let mut failures = 0;
    for path in images {
        let image = match image_input::load_image(path) {
            Ok(img) => image_input::to_model_input(&img, side, polarity),
            Err(e) => {
                eprintln!("microvit: error: {e}");
                failures += 1;
                continue;
            }
        };
        let logits = model.infer(&image, &mut ws).map_err(|e| e.to_string())?;
        softmax(logits, &mut probs);
        let class = microvit_engine::argmax(logits);
        let list: Vec<String> = probs.iter().enumerate().map(|(c, p)| format!("{c}:{p:.3}")).collect();
        say!("{}: {class} ({:.1} %)  [{}]", path.display(), 100.0 * probs[class], list.join(" "));
    }
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} of {} images could not be read", images.len())),
    }
}
