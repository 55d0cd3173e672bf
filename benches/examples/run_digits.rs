//! Runs the seed model over the first N test digits, for instruction counts
//! (valgrind --tool=callgrind) and profiles (perf record), which a timed
//! benchmark cannot give:
//!
//!     cargo build --release -p microvit-benches --example run_digits
//!     valgrind --tool=callgrind target/release/examples/run_digits int8 avx2 1000
//!
//! Prints the classes' checksum so the work cannot be optimised away. An
//! optional fourth argument names another idx file of images: an
//! uncompressed copy of the test set keeps the start-up (inflating 7.8 MB)
//! out of emulator instruction counts, where it would dwarf the digits
//! (docs/BENCHMARKS.md).

use microvit_dataset::{idx, repo_root, shipped_test_set};
use microvit_engine::{Backend, Model};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dtype, backend, count, images) = match &args[..] {
        [d, b, n, rest @ ..] if rest.len() <= 1 => (
            d.as_str(),
            b.as_str(),
            n.parse::<usize>().expect("a digit count"),
            rest.first().map_or_else(|| shipped_test_set().0, Into::into),
        ),
        _ => {
            eprintln!("usage: run_digits f32|f16|int8 scalar|avx2|avxvnni|avx512vnni|neon|dotprod COUNT [IMAGES]");
            std::process::exit(2);
        }
    };
    let file = if dtype == "f32" { "microvit-seed.mvit".into() } else { format!("microvit-seed.{dtype}.mvit") };
    let blob = std::fs::read(repo_root().join("models").join(file)).unwrap();
    let images = idx::read_images(&images).unwrap();
    let mut model = Model::from_bytes(&blob).unwrap();
    model.set_backend(Backend::parse(backend).unwrap()).unwrap();
    let mut ws = model.workspace();
    let mut sum = 0usize;
    for i in 0..count {
        sum += model.classify(images.get(i % images.len()), &mut ws).unwrap();
    }
    println!("{dtype} on {}: {count} digits, class sum {sum}", model.backend());
}
