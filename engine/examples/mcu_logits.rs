//! What examples/cortex-m prints for its digits, computed on the host by
//! the scalar int8 pass (the definition every kernel matches bit for bit):
//! `.ci/cortex-m.sh` compares the firmware's lines with these.

use microvit_engine::{argmax, Backend, Model};

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let read = |path: &str| std::fs::read(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut model = Model::from_bytes(&read("models/microvit-seed.int8.mvit")).unwrap();
    model.set_backend(Backend::Scalar).unwrap();
    let mut ws = model.workspace();
    let (digits, labels) = (read("examples/cortex-m/digits.bin"), read("examples/cortex-m/labels.bin"));
    for (i, (digit, label)) in digits.chunks_exact(28 * 28).zip(labels).enumerate() {
        let class = argmax(model.infer(digit, &mut ws).unwrap());
        let logits: String = ws.logits_fixed().iter().map(|l| format!(" {l}")).collect();
        println!("digit {i:2} label {label} class {class} logits{logits}");
    }
}
