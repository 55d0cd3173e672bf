//! `microvit`: convert, inspect, evaluate and run Micro-ViT models.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use microvit_cli::image_input;
use microvit_cli::{bench, eval, explain, model_file, report};
use microvit_converter::ConvertOptions;
use microvit_engine::preprocess::Polarity;
use microvit_engine::{softmax, Encoding, InferError, Model};

#[derive(Parser)]
#[command(
    name = "microvit",
    version,
    about = "Tiny Vision Transformer inference: convert, inspect, eval, classify, explain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--dtype f32|f16|int8`: an [`Encoding`], with the names listed in `--help`.
fn encoding_parser() -> impl clap::builder::TypedValueParser<Value = Encoding> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Encoding::ALL.map(Encoding::name))
        .map(|name| Encoding::from_name(&name).expect("a listed encoding name"))
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
        #[arg(long, value_parser = encoding_parser(), default_value = "f32")]
        dtype: Encoding,
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
        /// int8: calibration digits, idx3 (.gz) [default: the 1,000 training digits built in]. Every digit
        /// sets the scales (in memory that does not grow with their number); the error report measures
        /// the first 10,000.
        #[arg(long, value_name = "IMAGES")]
        calibration: Option<PathBuf>,
    },
    /// Show a blob's shape, parameters, encoding, size, checksum and tensors.
    Inspect {
        /// A .mvit blob (or a safetensors file, converted in memory).
        model: PathBuf,
    },
    /// Accuracy, per-class accuracy and confusion matrix on a labelled set.
    Eval {
        /// Model, a blob or safetensors [default: the shipped seed model, built in, as int8 on the fastest
        /// backend; see --dtype].
        model: Option<PathBuf>,
        /// Without MODEL: the built-in seed model in this encoding (f32 is the scalar reference). With a
        /// safetensors MODEL: convert it to this encoding in memory. Either way, report agreement with the f32
        /// form.
        #[arg(long, value_parser = encoding_parser())]
        dtype: Option<Encoding>,
        /// Report top-1 agreement with this model (e.g. the f32 blob an int8 blob came from).
        #[arg(long, value_name = "MODEL")]
        reference: Option<PathBuf>,
        /// idx3 images, plain or .gz [default: the shipped MNIST test set]; or a folder of photos and drawings
        /// with a labels.csv (columns file,label[,kind][,mnist_index]), each prepared as `classify` does,
        /// e.g. data/realistic.
        #[arg(long)]
        images: Option<PathBuf>,
        /// idx1 labels, plain or .gz [default: the shipped MNIST test labels].
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Write the logits as float32 [N, classes] .npy.
        #[arg(long, value_name = "FILE.npy")]
        logits_out: Option<PathBuf>,
        /// Also write a report to DIR: report.md, confusion.png, misclassified.png, attention_by_class.png.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// With a folder of images: which way the ink goes (auto decides for each image).
        #[arg(long, value_enum, default_value = "auto")]
        polarity: PolarityArg,
    },
    /// Classify photos and drawings of a digit: PNG, JPEG, GIF, BMP, WebP, TIFF or PNM, any size up to
    /// 8192×8192. Each is prepared as MNIST digits were (ink found against its paper, scaled to 20×20, centred);
    /// a blank or noisy image is reported as "no digit".
    Classify {
        /// [MODEL] IMAGE…: a first argument that is a model (a .mvit or .safetensors name, or a file with the
        /// blob magic) runs instead of the built-in int8 seed model.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
        /// Which way the ink goes: auto decides for each image.
        #[arg(long, value_enum, default_value = "auto")]
        polarity: PolarityArg,
        /// Also save the input the model saw (28×28, white on black) as DIR/NAME.input.png.
        #[arg(long, value_name = "DIR")]
        save_input: Option<PathBuf>,
    },
    /// Draw, per image, the prediction and each head's CLS attention over the patches as a PNG.
    Explain {
        /// [MODEL] IMAGE…, as for `classify` (read and prepared as it does); without MODEL, the built-in int8
        /// seed model.
        #[arg(value_name = "FILES", required_unless_present = "test_digits")]
        files: Vec<PathBuf>,
        /// Without MODEL: the built-in seed model in this encoding; with a safetensors MODEL: convert to it.
        #[arg(long, value_parser = encoding_parser())]
        dtype: Option<Encoding>,
        /// Directory for the pictures (IMAGE-NAME.explain.png, test-digit-N.explain.png).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// Also explain digits of the MNIST test set, by index: 0,1,2.
        #[arg(long, value_delimiter = ',', value_name = "INDICES")]
        test_digits: Vec<usize>,
        /// The idx3 images --test-digits indexes [default: the repository's MNIST test set].
        #[arg(long, value_name = "IDX")]
        images: Option<PathBuf>,
        /// The idx1 labels of --images [default: the repository's MNIST test labels].
        #[arg(long, value_name = "IDX")]
        labels: Option<PathBuf>,
        /// Which way the ink goes: auto decides for each image.
        #[arg(long, value_enum, default_value = "auto")]
        polarity: PolarityArg,
        /// Also write the CLS attention as float32 [N, heads, tokens] .npy (files, then test digits).
        #[arg(long, value_name = "FILE.npy")]
        attention_out: Option<PathBuf>,
    },
    /// Latency per digit and digits/s on the MNIST test digits, per dtype × backend (see cli/src/bench.rs).
    Bench {
        /// A blob, or a safetensors file converted to each --dtype [default: the shipped seed model's
        /// f32, f16 and int8 blobs, built in].
        model: Option<PathBuf>,
        /// Encodings to run, repeatable or comma separated [default: f32,f16,int8].
        #[arg(long, value_parser = encoding_parser(), value_delimiter = ',')]
        dtype: Vec<Encoding>,
        /// Backends: scalar, avx2, avxvnni, avx512vnni, neon, dotprod, auto or all, repeatable or comma separated [default: all this CPU has].
        #[arg(long, value_delimiter = ',', value_name = "BACKEND")]
        backend: Vec<String>,
        /// Also time blocks of N digits handed over back to back (throughput), 1 to 10000.
        #[arg(long, value_name = "N")]
        batch: Option<usize>,
        /// Threads sharing the model, each with its own workspace (aggregate digits/s), 1 to 256.
        #[arg(long, default_value_t = 1, value_name = "N")]
        threads: usize,
        /// Measuring time per run, 0.001 to 3600 [default: 2.5 s shared by the runs, at least 0.25 s each].
        #[arg(long, value_name = "S")]
        seconds: Option<f64>,
        /// Print a JSON array, one object per dtype × backend run.
        #[arg(long)]
        json: bool,
        /// idx3 images to time on, plain or .gz [default: the repository's MNIST test set].
        #[arg(long, value_name = "IDX")]
        images: Option<PathBuf>,
        /// idx1 labels of --images [default: the repository's MNIST test labels].
        #[arg(long, value_name = "IDX")]
        labels: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PolarityArg {
    /// Decide from the image: the ink is what departs from the local paper.
    Auto,
    /// Dark ink on light paper (a pen, a drawing pad).
    #[value(alias = "invert")]
    DarkOnLight,
    /// Light ink on a dark ground (MNIST itself, chalk).
    #[value(alias = "as-is")]
    LightOnDark,
}

impl From<PolarityArg> for Polarity {
    fn from(p: PolarityArg) -> Polarity {
        match p {
            PolarityArg::Auto => Polarity::Auto,
            PolarityArg::DarkOnLight => Polarity::DarkOnLight,
            PolarityArg::LightOnDark => Polarity::LightOnDark,
        }
    }
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
        Command::Convert { input, output, dtype, heads, pixel_mean, pixel_std, layer_norm_eps, calibration } => {
            let options =
                ConvertOptions { encoding: dtype, heads, pixel_mean, pixel_std, layer_norm_eps, calibration: None };
            run_convert(&input, output, options, calibration.as_deref())
        }
        Command::Inspect { model } => run_inspect(&model),
        Command::Eval { model, dtype, reference, images, labels, logits_out, report, polarity } => run_eval(EvalArgs {
            model,
            dtype,
            reference,
            images,
            labels,
            logits_out,
            report_dir: report,
            polarity: polarity.into(),
        }),
        Command::Classify { files, polarity, save_input } => {
            let (model, images) = model_file::split_model(files);
            run_classify(model.as_deref(), &images, polarity.into(), save_input.as_deref())
        }
        Command::Explain {
            files,
            dtype,
            output,
            test_digits,
            images: test_images,
            labels,
            polarity,
            attention_out,
        } => {
            let (model, images) = model_file::split_model(files);
            let options = explain::Options {
                model,
                encoding: dtype,
                images,
                test_digits,
                test_set: (test_images, labels),
                out_dir: output,
                polarity: polarity.into(),
                attention_out,
            };
            explain::run(&options, &mut |line| say_line(format_args!("{line}")))
        }
        Command::Bench { model, dtype, backend, batch, threads, seconds, json, images, labels } => {
            let options = bench::Options {
                model,
                encodings: dtype,
                backends: backend,
                batch,
                threads,
                seconds,
                json,
                test_set: (images, labels),
            };
            bench::run(&options, &mut |line| say_line(format_args!("{line}")))
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

fn run_convert(
    input: &Path,
    output: Option<PathBuf>,
    mut options: ConvertOptions,
    calibration: Option<&Path>,
) -> Result<(), String> {
    // A regular file (a FIFO would block the open, a device never ends) of
    // a bounded size, checked before it is read.
    let bytes = model_file::read_model_file(input)?;
    if options.encoding == Encoding::Int8 {
        options.calibration = Some(model_file::read_calibration(calibration)?);
        let from = calibration.map_or("the 1,000 built-in training digits".into(), |p| p.display().to_string());
        eprintln!("calibrating on {from}");
    }
    let converted = microvit_converter::convert(&bytes, &options).map_err(|e| format!("{}: {e}", input.display()))?;
    let output = output.unwrap_or_else(|| input.with_extension("mvit"));
    std::fs::write(&output, &converted.blob).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let model = Model::from_bytes(&converted.blob).map_err(|e| format!("converted blob does not load: {e}"))?;
    say!("wrote {} ({} bytes)", output.display(), converted.blob.len());
    print_summary(&model)?;
    if let Some(report) = &converted.report {
        say!("\n{report}");
    }
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

struct EvalArgs {
    model: Option<PathBuf>,
    dtype: Option<Encoding>,
    reference: Option<PathBuf>,
    images: Option<PathBuf>,
    labels: Option<PathBuf>,
    logits_out: Option<PathBuf>,
    report_dir: Option<PathBuf>,
    polarity: Polarity,
}

fn run_eval(args: EvalArgs) -> Result<(), String> {
    let loaded = model_file::load(args.model.as_deref(), args.dtype)?;
    if let Some(dir) = args.images.as_deref().filter(|p| p.is_dir()) {
        return run_eval_images(&loaded.model, &loaded.name, dir, &args);
    }
    let reference = match (&args.reference, loaded.f32_model) {
        (Some(path), _) => Some((model_file::open(path)?.0, path.display().to_string())),
        (None, Some(f32_model)) => Some((f32_model, "the f32 reference".to_string())),
        (None, None) => None,
    };
    let model = loaded.model;
    let (images, labels) = model_file::test_set(args.images.as_deref(), args.labels.as_deref())?;
    let (logits_out, report_dir) = (args.logits_out.as_deref(), args.report_dir.as_deref());
    let (imgs, labs) = microvit_dataset::idx::read_labelled(&images, &labels).map_err(|e| e.to_string())?;
    say!(
        "model     {} ({}, {} parameters, {} bytes)",
        loaded.name,
        model.encoding(),
        model.shape().parameter_count(),
        model.blob().len()
    );
    say!("backend   {}", backend_line(&model));
    say!("images    {} ({} digits)", images.display(), imgs.len());
    let result = eval::evaluate(&model, &imgs, &labs)?;
    say!("{}", result.summary().trim_end());
    if let Some((reference_model, name)) = reference {
        let same = eval::agreement(&reference_model, &imgs, &result)?;
        say!(
            "agreement {:.2} % of digits get the same class as {name} ({} / {})",
            100.0 * same as f64 / result.len().max(1) as f64,
            same,
            result.len()
        );
    }
    say!("\n{}", result.details().trim_end());
    if let Some(out) = logits_out {
        let npy = microvit_dataset::npy::encode_f32(&[result.len(), result.classes], &result.logits);
        std::fs::write(out, npy).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        say!("\nlogits    {} (float32 [{}, {}])", out.display(), result.len(), result.classes);
    }
    if let Some(dir) = report_dir {
        let input =
            report::Input { model: &model, model_path: args.model.as_deref(), images_path: &images, images: &imgs };
        let written = report::write(dir, &input, &result)?;
        say!("\nreport    {}", written.display());
    }
    Ok(())
}

/// The backend that really runs `model`: f32 is the scalar reference on
/// every CPU.
fn backend_line(model: &Model<'_>) -> String {
    match model.encoding() {
        Encoding::F32 => "scalar (the f32 reference pass)".into(),
        _ => model.backend().name().to_string(),
    }
}

/// `microvit eval --images DIR`: a folder of labelled photos and drawings.
fn run_eval_images(model: &Model<'_>, model_name: &str, dir: &Path, args: &EvalArgs) -> Result<(), String> {
    for (given, flag) in [
        (args.labels.is_some(), "--labels"),
        (args.reference.is_some(), "--reference"),
        (args.logits_out.is_some(), "--logits-out"),
        (args.report_dir.is_some(), "--report"),
    ] {
        if given {
            return Err(format!("{flag} applies to idx files; {} is a folder of images", dir.display()));
        }
    }
    let rows = microvit_cli::eval_images::read_labels(dir, model.shape().classes as usize)?;
    let mnist = rows
        .iter()
        .any(|r| r.mnist_index.is_some())
        .then(|| microvit_dataset::idx::read_images(&microvit_dataset::shipped_test_set().0).ok())
        .flatten();
    say!(
        "model     {} ({}, {} parameters, {} bytes)",
        model_name,
        model.encoding(),
        model.shape().parameter_count(),
        model.blob().len()
    );
    say!("backend   {}", backend_line(model));
    say!("images    {} ({} files, polarity {})", dir.display(), rows.len(), args.polarity);
    let result = microvit_cli::eval_images::evaluate(model, &rows, args.polarity, mnist.as_ref())?;
    say!("{}", result.report().trim_end());
    Ok(())
}

fn run_classify(
    model_path: Option<&Path>,
    images: &[PathBuf],
    polarity: Polarity,
    save_input: Option<&Path>,
) -> Result<(), String> {
    if images.is_empty() {
        return Err("no image files given (the first argument is the model)".into());
    }
    let model = model_file::load(model_path, None)?.model;
    let side = model.shape().image_side as usize;
    if let Some(dir) = save_input {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut saved = std::collections::HashSet::new();
    let mut ws = model.workspace();
    let mut probs = vec![0.0; model.shape().classes as usize];
    let mut failures = 0;
    for path in images {
        let picture = match image_input::load_image(path) {
            Ok(picture) => picture,
            Err(e) => {
                eprintln!("microvit: error: {e}");
                failures += 1;
                continue;
            }
        };
        let result = match model.infer_image(&picture.source(), polarity, &mut ws) {
            Ok(result) => result,
            Err(InferError::NoDigit(why)) => {
                say!("{}: no digit ({why})", path.display());
                continue;
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        softmax(result.logits, &mut probs);
        let class = microvit_engine::argmax(result.logits);
        let list: Vec<String> = probs.iter().enumerate().map(|(c, p)| format!("{c}:{p:.3}")).collect();
        say!("{}: {class} ({:.1} %)  [{}]", path.display(), 100.0 * probs[class], list.join(" "));
        if let Some(dir) = save_input {
            let stem = path.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
            let mut name = format!("{stem}.input.png");
            let mut n = 2;
            while !saved.insert(name.clone()) {
                name = format!("{stem}-{n}.input.png");
                n += 1;
            }
            image_input::write_gray_png(&dir.join(name), result.input, side)?;
        }
    }
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} of {} images could not be read", images.len())),
    }
}
