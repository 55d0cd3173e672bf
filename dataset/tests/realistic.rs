//! The realistic test set: its generator is deterministic, the committed
//! sample in `data/realistic/` is exactly what the generator makes, and the
//! sample's `labels.csv` agrees with its files and with MNIST.
//!
//! When the generator is changed on purpose (or a new version of the `image`
//! crate encodes some format differently), `committed_files_match_the_generator`
//! fails; regenerate the committed set and its contact sheet with
//!
//! ```sh
//! rm data/realistic/[0-9]*
//! cargo run --release -p microvit-dataset --bin make-realistic -- --seed 1 --count 300 \
//!     --out data/realistic --contact-sheet docs/images/realistic-sample.png
//! ```
//!
//! and update the counts in `data/realistic/README.md`.

use std::collections::BTreeSet;
use std::path::Path;

use microvit_dataset::idx;
use microvit_dataset::realistic::{self, Format, Generator, Kind};

/// How many samples the generator tests render (each takes a little time in a
/// debug build; twelve cover most kinds and formats with seed 1).
const RENDERED: usize = 12;

#[test]
fn generating_twice_gives_identical_bytes() {
    let first = Generator::from_shipped_test_set(7).unwrap();
    let again = Generator::from_shipped_test_set(7).unwrap();
    let forward: Vec<_> = (0..RENDERED).map(|i| first.sample(i).unwrap()).collect();
    // Backwards: a sample must not depend on the ones rendered before it.
    for i in (0..RENDERED).rev() {
        let sample = again.sample(i).unwrap();
        assert_eq!(sample.entry, forward[i].entry);
        assert!(sample.bytes == forward[i].bytes, "sample {i} ({}) differs between two runs", sample.entry.file);
    }
    let other_seed = Generator::from_shipped_test_set(8).unwrap();
    let differs = (0..RENDERED).filter(|&i| other_seed.sample(i).unwrap().bytes != forward[i].bytes).count();
    assert_eq!(differs, RENDERED, "seeds 7 and 8 should give different images");
}

#[test]
fn committed_files_match_the_generator() {
    let dir = realistic::shipped_dir();
    let entries = realistic::read_labels(&dir.join("labels.csv")).unwrap();
    let generator = Generator::from_shipped_test_set(1).unwrap();
    for (i, committed) in entries.iter().enumerate().take(RENDERED) {
        let sample = generator.sample(i).unwrap();
        assert_eq!(
            &sample.entry, committed,
            "labels.csv row {i} is not what seed 1 gives: regenerate (see the top of this file)"
        );
        let bytes = std::fs::read(dir.join(&committed.file)).unwrap();
        assert!(
            bytes == sample.bytes,
            "{} ({} bytes) differs from what seed 1 gives ({} bytes): regenerate (see the top of this file)",
            committed.file,
            bytes.len(),
            sample.bytes.len()
        );
    }
}

#[test]
fn committed_labels_agree_with_files_and_mnist() {
    let dir = realistic::shipped_dir();
    let entries = realistic::read_labels(&dir.join("labels.csv")).unwrap();
    assert_eq!(entries.len(), 300);
    let (_, labels) = {
        let (images, labels) = microvit_dataset::shipped_test_set();
        idx::read_labelled(&images, &labels).unwrap()
    };
    let mut total_bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.file, format!("{i:04}-{}.{}", e.kind, e.format.extension()));
        assert_eq!(e.label.is_some(), e.kind.has_digit(), "{}", e.file);
        if let (Some(label), Some(index)) = (e.label, e.mnist_index) {
            assert_eq!(
                label, labels[index],
                "{}: label {label} but MNIST test digit {index} is a {}",
                e.file, labels[index]
            );
        }
        let path = dir.join(&e.file);
        total_bytes += std::fs::metadata(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display())).len();
        assert_eq!(dimensions(&path, e.format), (e.width, e.height), "{}", e.file);
    }
    let (kinds, formats) = realistic::counts(&entries);
    for kind in Kind::ALL {
        assert!(kinds.get(&kind).is_some_and(|&n| n >= 5), "kind {kind}: {:?}", kinds.get(&kind));
    }
    for format in Format::ALL {
        assert!(formats.get(&format).is_some_and(|&n| n >= 5), "format {format}: {:?}", formats.get(&format));
    }
    // The repository carries this set: keep it small.
    assert!(total_bytes <= 4_500_000, "the committed images take {total_bytes} bytes");
    // Files left over from an earlier generation would be measured too.
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    for file in std::fs::read_dir(&dir).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        assert!(
            listed.contains(name.as_str()) || name == "labels.csv" || name == "README.md",
            "{name} is not in labels.csv"
        );
    }
}

/// The image's size as its own header gives it, read by the decoder of the
/// format the row names (so a mislabelled format fails too).
fn dimensions(path: &Path, format: Format) -> (u32, u32) {
    let mut reader = image::ImageReader::open(path).unwrap();
    reader.set_format(format.image_format());
    reader.into_dimensions().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
