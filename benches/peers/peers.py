#!/usr/bin/env python3
"""microvit against the engines people would use instead, on the same model
and the same 10,000 MNIST test digits. Driven by benches/peers/run.sh:

    peers.py export OUT      # ONNX graphs (batch-1 and dynamic batch), ORT's
                             # int8 QDQ quantisation, the digits as float32
    peers.py bench OUT       # times ONNX Runtime and PyTorch, reads
                             # OUT/microvit.json and OUT/tract.json, prints
                             # the table (and writes OUT/peers.md)

How each engine is timed (medians over short intervals, as `microvit bench`):
- single: one image per call, the digits in order, after a warm-up of 500;
  each call is timed alone (a peer's call takes 20 µs or more, so the
  clock's cost is under 1 %), and the figure is the median over all 10,000
  calls. microvit's figure is `microvit bench`'s p50: a microvit call takes
  1-5 µs, so it times blocks of 64 calls and divides by 64. Either way each
  timed interval is well under a scheduler time slice, so preemption by the
  machine's other processes lands in the tail, not in the median.
- batched: one call over all 10,000 digits (dynamic-batch graph), median of
  3 calls after a warm-up call, divided by 10,000 (microvit: blocks of
  10,000 digits through `Model::infer_batch`, `microvit bench --batch 10000`).
- one thread everywhere: torch.set_num_threads(1); ORT intra_op = inter_op
  = 1 with every graph optimisation; tract runs on the calling thread.
- accuracy: each peer's predictions over all 10,000 digits of its timed
  pass, which must equal PyTorch's (the int8 QDQ graph excepted: printed);
  microvit's from `microvit eval` on each blob with MICROVIT_BACKEND set to
  the backend that was timed. Any mismatch makes `bench` exit 1.
The peers get the digits already normalised to float32 (microvit takes the
u8 pixels and normalises them itself, inside its timing).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "train"))

from microvit_model import MicroViT, normalise, read_idx  # noqa: E402

WARM_UP = 500
CALIBRATION_DIGITS = 500
BATCH_ROUNDS = 3
SIDE = 28


def load_model(path):
    """The seed model from its safetensors file (as train/make_fixtures.py)."""
    import safetensors
    from safetensors.torch import load_file

    with safetensors.safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    dim, _ = state["patch_embed.weight"].shape
    model = MicroViT(
        image_size=int(meta["microvit.image_size"]),
        patch_size=int(meta["microvit.patch_size"]),
        dim=dim,
        heads=int(meta["microvit.num_heads"]),
        classes=state["head.weight"].shape[0],
    )
    model.load_state_dict(state)
    return model.eval()


def test_set():
    images = read_idx(REPO / "data" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(REPO / "data" / "t10k-labels-idx1-ubyte.gz")
    x = normalise(images.copy()).unsqueeze(1).numpy().astype(np.float32)
    return np.ascontiguousarray(x), labels.astype(np.int64)


# --------------------------------------------------------------------- export


def export_onnx(model, path, batch, dynamic):
    """Exports with the default (dynamo) exporter; falls back to the
    TorchScript exporter if that fails. Returns which one made the file."""
    example = (torch.zeros(batch, 1, SIDE, SIDE),)
    try:
        kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=1 << 20)},)} if dynamic else {}
        program = torch.onnx.export(model, example, dynamo=True, input_names=["image"], output_names=["logits"], **kwargs)
        program.save(str(path))
        return "dynamo"
    except Exception as e:  # noqa: BLE001 - any exporter failure means: try the other one
        print(f"dynamo export of {path.name} failed ({type(e).__name__}: {e}); using the TorchScript exporter", file=sys.stderr)
        axes = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
        torch.onnx.export(
            model, example, str(path), dynamo=False, input_names=["image"], output_names=["logits"], dynamic_axes=axes
        )
        return "torchscript"


def quantize(src, dst, calibration):
    """ONNX Runtime's static int8 QDQ quantisation, per channel, calibrated
    on `calibration` (N, 1, 28, 28 float32), one digit per calibration run."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    prepared = dst.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(src), str(prepared))
    except Exception as e:  # noqa: BLE001
        print(f"quant_pre_process of {src.name} failed ({e}); quantising the graph as exported", file=sys.stderr)
        prepared = src
    quantize_static(
        str(prepared),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def cmd_export(out):
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = load_model(REPO / "models" / "microvit-seed.safetensors")
    exporters = {}
    for name, batch, dynamic in [("b1", 1, False), ("dyn", 4, True)]:
        exporters[name] = export_onnx(model, out / f"microvit-seed.{name}.onnx", batch, dynamic)
    calibration = read_idx(REPO / "data" / "calibration-1000-images-idx3-ubyte.gz")[:CALIBRATION_DIGITS]
    calibration = normalise(calibration.copy()).unsqueeze(1).numpy().astype(np.float32)
    for name in ["b1", "dyn"]:
        quantize(out / f"microvit-seed.{name}.onnx", out / f"microvit-seed.{name}.int8-qdq.onnx", calibration)
    x, labels = test_set()
    x.tofile(out / "test-images.f32")
    labels.astype(np.uint8).tofile(out / "test-labels.u8")
    (out / "export.json").write_text(json.dumps({"exporters": exporters}))
    print(f"exported to {out}: b1 graph by the {exporters['b1']} exporter, dynamic-batch graph by the {exporters['dyn']} exporter")


# ---------------------------------------------------------------------- bench


def time_single(call, x, labels):
    """call(one_image (1,1,28,28)) -> logits (1, classes). Returns (median
    µs of one call over all digits, accuracy)."""
    for i in range(WARM_UP):
        call(x[i : i + 1])
    per_call = np.empty(len(x))
    predictions = np.empty(len(x), dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(len(x)):
        image = x[i : i + 1]
        t0 = clock()
        logits = call(image)
        per_call[i] = (clock() - t0) / 1e3
        predictions[i] = int(np.argmax(logits))
    return float(np.median(per_call)), float((predictions == labels).mean())


def time_batched(call, x, labels):
    """call(all images) -> logits (N, classes)."""
    call(x)
    times = []
    for _ in range(BATCH_ROUNDS):
        t0 = time.perf_counter()
        logits = call(x)
        times.append((time.perf_counter() - t0) * 1e6 / len(x))
    return float(np.median(times)), float((np.asarray(logits).argmax(1) == labels).mean())


def ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def peer_rows(out, x, labels):
    import onnxruntime as ort

    rows = []
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    model = load_model(REPO / "models" / "microvit-seed.safetensors")

    def torch_call(images):
        with torch.no_grad():
            return model(torch.from_numpy(images)).numpy()

    single = time_single(torch_call, x, labels)
    batched = time_batched(torch_call, x, labels)
    rows.append(dict(engine=f"PyTorch {torch.__version__} eager", dtype="f32", single=single, batched=batched))
    print(f"  PyTorch eager: {single[0]:.2f} µs/digit single, {batched[0]:.2f} batched", file=sys.stderr)

    for dtype, suffix in [("f32", ""), ("int8 QDQ", ".int8-qdq")]:
        single = time_single(ort_session(out / f"microvit-seed.b1{suffix}.onnx"), x, labels)
        batched = time_batched(ort_session(out / f"microvit-seed.dyn{suffix}.onnx"), x, labels)
        rows.append(dict(engine=f"ONNX Runtime {ort.__version__}", dtype=dtype, single=single, batched=batched))
        print(f"  ORT {dtype}: {single[0]:.2f} µs/digit single, {batched[0]:.2f} batched", file=sys.stderr)

    tract_file = out / "tract.json"
    if tract_file.exists():
        t = json.loads(tract_file.read_text())
        batched = (t["batched_us"], t["batched_accuracy"]) if t["batched_us"] is not None else None
        rows.append(dict(engine=f"tract {t['tract']}", dtype="f32", single=(t["single_us_p50"], t["accuracy"]), batched=batched))
        if t.get("batched_error"):
            print(f"  tract batched: {t['batched_error']}", file=sys.stderr)
    else:
        print(f"  no {tract_file}: tract left out", file=sys.stderr)
    return rows


def microvit_eval(args, backend=None):
    """The report of `microvit eval ARGS` (all 10,000 digits), with the
    backend forced by MICROVIT_BACKEND, or left to run-time detection."""
    binary = os.environ.get("MICROVIT_BIN", str(REPO / "target" / "release" / "microvit"))
    env = {k: v for k, v in os.environ.items() if k != "MICROVIT_BACKEND"}
    if backend:
        env["MICROVIT_BACKEND"] = backend
    return subprocess.run([binary, "eval", *args], env=env, check=True, capture_output=True, text=True).stdout


def microvit_accuracy(model, dtype, backend):
    """The accuracy of the bench run's model on its backend. `bench` names
    its built-in models "built-in NAME": `eval --dtype` runs the same blob."""
    what = ["--dtype", dtype] if model.startswith("built-in ") else [model]
    text = microvit_eval(what, backend)
    correct, total = re.search(r"^accuracy .*\((\d+) / (\d+)\)", text, re.M).groups()
    return int(correct) / int(total)


def detected_backend():
    """The int8 backend microvit's run-time detection picks on this CPU."""
    return re.search(r"^backend\s+(\S+)", microvit_eval(["--dtype", "int8"]), re.M).group(1)


def microvit_rows(out):
    runs = json.loads((out / "microvit.json").read_text())
    rows = []
    for r in runs:
        batched = (r["us_per_digit_batch_p50"], None) if r.get("us_per_digit_batch_p50") else None
        accuracy = microvit_accuracy(r["model"], r["dtype"], r["backend"])
        rows.append(
            dict(
                engine=f"microvit ({r['backend']})",
                dtype=r["dtype"],
                single=(r["us_per_digit_p50"], accuracy),
                batched=batched,
                backend=r["backend"],
            )
        )
    return rows


def cmd_bench(out):
    x, labels = test_set()
    print("timing the peers (one thread each) ...", file=sys.stderr)
    rows = microvit_rows(out) + peer_rows(out, x, labels)
    reference = next(r for r in rows if r["engine"].startswith("PyTorch"))["single"][1]

    # The base of the ratios: microvit int8 on the backend this CPU picks.
    int8 = {r["backend"]: r for r in rows if r["engine"].startswith("microvit") and r["dtype"] == "int8"}
    base = int8.get(detected_backend())
    failures = []
    lines = [
        "| engine | dtype | µs/digit single | µs/digit batched (10,000 in one call) | accuracy | × microvit int8 single | × batched |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s_us, s_acc = r["single"]
        b_us, b_acc = r["batched"] if r["batched"] else (None, None)
        accuracies = [a for a in (s_acc, b_acc) if a is not None]
        # Float engines must give PyTorch's classes; microvit's int8 keeps
        # its accuracy within the int8 bar (0.3 pp, docs/FIXED_POINT.md).
        tolerance = 0.003 if r["dtype"] == "int8" else 1e-9
        if "QDQ" not in r["dtype"] and any(abs(a - reference) > tolerance for a in accuracies):
            failures.append(f"{r['engine']} {r['dtype']}: accuracy {accuracies} differs from PyTorch's {reference:.4f}")
        acc = f"{100 * s_acc:.2f} %"
        if b_acc is not None and abs(b_acc - s_acc) > 1e-9:
            acc += f" / batched {100 * b_acc:.2f} %"
        ratio_s = f"{s_us / base['single'][0]:.1f}×" if base else "–"
        ratio_b = f"{b_us / base['batched'][0]:.1f}×" if base and b_us and base["batched"] else "–"
        b_text = f"{b_us:.2f}" if b_us else "–"
        lines.append(f"| {r['engine']} | {r['dtype']} | {s_us:.2f} | {b_text} | {acc} | {ratio_s} | {ratio_b} |")
    exporters = json.loads((out / "export.json").read_text())["exporters"]
    notes = [
        "",
        f"PyTorch's accuracy (the truth): {100 * reference:.2f} %. ONNX graphs exported by the "
        f"{exporters['b1']} exporter (batch-1) and the {exporters['dyn']} exporter (dynamic batch).",
        "Ratios are µs/digit over microvit int8's "
        + (f"on {base['backend']}" if base else "(not run)")
        + "; above 1× means slower than microvit.",
    ]
    text = "\n".join(lines + notes)
    print(text)
    (out / "peers.md").write_text(text + "\n")
    for f in failures:
        print(f"MISMATCH: {f}", file=sys.stderr)
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["export", "bench"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        cmd_export(args.out)
        return 0
    return cmd_bench(args.out)


if __name__ == "__main__":
    sys.exit(main())
