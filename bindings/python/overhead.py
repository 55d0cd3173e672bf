"""Per-call overhead of the Python binding against the engine's own time, and
batch throughput: the figures .ci/python.sh prints and the README quotes.

    python bindings/python/overhead.py [MODEL]    # default models/microvit-seed.int8.mvit
"""

import gzip
import pathlib
import statistics
import sys
import time

import numpy as np

import microvit

REPO = pathlib.Path(__file__).resolve().parents[2]
model_path = sys.argv[1] if len(sys.argv) > 1 else REPO / "models" / "microvit-seed.int8.mvit"
raw = gzip.open(REPO / "data" / "t10k-images-idx3-ubyte.gz").read()
images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
n = len(images)
rows = list(images)  # the views made once, outside the timed loops
m = microvit.Model.load(model_path)
ROUNDS = 11


def us_per_digit(run):
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e6 / n


def singles():
    classify = m.classify
    for image in rows:
        classify(image)


def predictions():
    predict = m.predict
    for image in rows:
        predict(image)


# Rust and Python rounds interleaved, so a shared machine's load falls on both.
out = np.empty((n, m.classes), np.float32)
timings = {"rust_single": [], "py_single": [], "py_predict": [], "rust_batch": [], "py_batch": [], "py_out": []}
for _ in range(ROUNDS):
    timings["rust_single"].append(m.bench(images, rounds=1)["median_us"])
    timings["py_single"].append(us_per_digit(singles))
    timings["py_predict"].append(us_per_digit(predictions))
    timings["rust_batch"].append(m.bench(images, rounds=1, batch=True)["median_us"])
    timings["py_batch"].append(us_per_digit(lambda: m.classify(images)))
    timings["py_out"].append(us_per_digit(lambda: m.classify_batch(images, out=out)))

print(f"model     {model_path} ({m.encoding}, backend {m.backend}), {n} digits, {ROUNDS} rounds interleaved")
for stat in (min, statistics.median):
    rust_single, py_single, py_predict, rust_batch, py_batch, py_out = (stat(timings[k]) for k in timings)
    print(f"{stat.__name__} of the rounds:")
    print(f"  single  Rust infer {rust_single:.3f} µs/digit; Python classify(image) {py_single:.3f} µs/call "
          f"(overhead {py_single - rust_single:+.3f} µs), predict(image) {py_predict:.3f} µs/call "
          f"(overhead {py_predict - rust_single:+.3f} µs)")
    print(f"  batch   Rust infer_batch {rust_batch:.3f} µs/digit ({1 / rust_batch:.2f} M digits/s); "
          f"Python classify(images) {py_batch:.3f} µs/digit ({1 / py_batch:.2f} M digits/s), "
          f"{py_batch / rust_batch * 100:.1f} % of the Rust time; classify_batch(images, out=) {py_out:.3f} "
          f"µs/digit ({1 / py_out:.2f} M digits/s), {py_out / rust_batch * 100:.1f} %")
