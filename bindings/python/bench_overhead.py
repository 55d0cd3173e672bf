"""What a Python call costs over the C call: the figures the README quotes.

    cargo build --release -p microvit-ffi          # target/release/libmicrovit.so, the C ABI
    python bindings/python/bench_overhead.py [--blocks 31] [--model M] [--before OLD.abi3.so]

Times, in one process and interleaved block by block (so a shared machine's
load falls on every variant alike), one pass over the 10,000 MNIST test
digits of each of:

  C     microvit_classify() per image (class + logits, and class alone) and
        microvit_classify_batch(), looped in C (bench_c_abi.c, compiled here
        with cc and linked against libmicrovit.so; ctypes calls it once per
        pass, so no ctypes cost is in the figure);
  Rust  the engine's own infer / infer_batch, timed inside Rust (Model.bench);
  Py    classify(image), classify(image, out) (out positional: a keyword
        costs ~0.13 µs more on an abi3-py39 build, where pyo3 turns its
        name into a bytes object to compare it), predict(image),
        classify(images), classify_batch(images, out=);
  old   with --before, another build of the extension (say main's), loaded
        from its .abi3.so into this process: classify(image), predict(image),
        classify(images), for a before/after from the same run.

Prints median, min and quartiles per digit over the blocks, and the
overheads: Python classify(image) minus the C call with logits, predict(image)
minus the C call with the class alone, the batch against C's batch. Checks
that every variant gives the same classes and logits as the C ABI.
A measurement, not a test: nothing fails on a slow or noisy machine.
"""

import argparse
import ctypes
import gzip
import importlib.machinery
import importlib.util
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

import microvit

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=REPO / "models" / "microvit-seed.int8.mvit", type=pathlib.Path)
    p.add_argument("--blocks", default=31, type=int, help="passes of each variant, interleaved (default 31)")
    p.add_argument(
        "--lib",
        default=pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "libmicrovit.so",
        type=pathlib.Path,
        help="the C ABI's shared library (cargo build --release -p microvit-ffi)",
    )
    p.add_argument("--before", type=pathlib.Path, help="another build's microvit.abi3.so, timed alongside")
    return p.parse_args()


def load_extension(path):
    """An extension module from a file, beside the installed one (not in sys.modules)."""
    name = "microvit.microvit"
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class CAbi:
    """The C ABI through bench_c_abi.c: the model, a workspace, the timing loops."""

    def __init__(self, lib_path, blob, n, classes):
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if cc is None:
            raise RuntimeError("no C compiler (cc) for bench_c_abi.c")
        if not lib_path.is_file():
            raise RuntimeError(f"{lib_path} missing: cargo build --release -p microvit-ffi")
        out_dir = lib_path.parent / "py-bench"
        out_dir.mkdir(exist_ok=True)
        shim = out_dir / "libmvbench.so"
        source = HERE / "bench_c_abi.c"
        subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-I", str(REPO / "include"), str(source), "-o", str(shim),
             "-L", str(lib_path.parent), f"-Wl,-rpath,{lib_path.parent}", "-lmicrovit"],
            check=True,
        )
        self.lib = ctypes.CDLL(str(lib_path))
        self.shim = ctypes.CDLL(str(shim))
        P = ctypes.c_void_p
        for f in (self.shim.mvbench_classify, self.shim.mvbench_classify_batch):
            f.restype = ctypes.c_int
            f.argtypes = [P, P, P, ctypes.c_size_t, ctypes.c_size_t, P, P, ctypes.c_size_t]
        self.lib.microvit_model_load.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(P)]
        self.lib.microvit_workspace_create.argtypes = [P, ctypes.POINTER(P)]
        self.lib.microvit_model_backend.argtypes = [P, ctypes.POINTER(ctypes.c_int)]
        self.lib.microvit_backend_name.argtypes = [ctypes.c_int]
        self.lib.microvit_backend_name.restype = ctypes.c_char_p
        self.model, self.ws = P(), P()
        if self.lib.microvit_model_load(blob, len(blob), ctypes.byref(self.model)) != 0:
            raise RuntimeError("microvit_model_load failed")
        if self.lib.microvit_workspace_create(self.model, ctypes.byref(self.ws)) != 0:
            raise RuntimeError("microvit_workspace_create failed")
        backend = ctypes.c_int()
        self.lib.microvit_model_backend(self.model, ctypes.byref(backend))
        self.backend = self.lib.microvit_backend_name(backend.value).decode()
        self.classes = np.zeros(n, np.uint32)
        self.logits = np.zeros((n, classes), np.float32)

    def _run(self, f, images, logits):
        n, pixels = images.shape[0], images[0].size
        args = (self.model, self.ws, images.ctypes.data, n, pixels, self.classes.ctypes.data,
                logits.ctypes.data if logits is not None else None, self.logits.shape[1])
        start = time.thread_time_ns()
        status = f(*args)
        elapsed = time.thread_time_ns() - start
        if status != 0:
            raise RuntimeError(f"the C ABI returned status {status}")
        return elapsed / 1000 / n

    def single(self, images):
        return self._run(self.shim.mvbench_classify, images, self.logits)

    def single_class_only(self, images):
        return self._run(self.shim.mvbench_classify, images, None)

    def batch(self, images):
        return self._run(self.shim.mvbench_classify_batch, images, self.logits)


def main():
    args = parse_args()
    raw = gzip.open(REPO / "data" / "t10k-images-idx3-ubyte.gz").read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    n = len(images)
    rows = list(images)  # the per-image views, made once, outside the timed loops
    m = microvit.Model.load(args.model)
    classes = m.classes

    def per_digit(run):
        # The thread's CPU time, not the wall clock: on a shared machine this
        # process is off the CPU for part of many passes, and that is not
        # the call's cost. Model.bench runs in this thread too (GIL released).
        start = time.thread_time_ns()
        run()
        return (time.thread_time_ns() - start) / 1000 / n

    def python_calls(method):
        """One call of `method` (a bound method, looked up once) per image."""

        def run():
            for image in rows:
                method(image)

        return lambda: per_digit(run)

    one_out = np.empty(classes, np.float32)
    out = np.empty((n, classes), np.float32)

    def singles_out():
        classify = m.classify
        for image in rows:
            classify(image, one_out)

    variants = {}
    c_abi = None
    try:
        c_abi = CAbi(args.lib, args.model.read_bytes(), n, classes)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(f"C ABI not timed: {e}", file=sys.stderr)
    if c_abi is not None:
        variants["C   microvit_classify, class + logits"] = lambda: c_abi.single(images)
        variants["C   microvit_classify, class only"] = lambda: c_abi.single_class_only(images)
    variants["Rust engine infer (Model.bench)"] = lambda: per_digit(lambda: m.bench(images, rounds=1))
    variants["Py  classify(image)"] = python_calls(m.classify)
    try:
        m.classify(rows[0], one_out)
        has_out = True
    except TypeError:  # a build without classify(image, out=)
        has_out = False
    if has_out:
        variants["Py  classify(image, out)"] = lambda: per_digit(singles_out)
    variants["Py  predict(image)"] = python_calls(m.predict)
    if c_abi is not None:
        variants["C   microvit_classify_batch"] = lambda: c_abi.batch(images)
    variants["Rust engine infer_batch (Model.bench)"] = lambda: per_digit(lambda: m.bench(images, rounds=1, batch=True))
    variants["Py  classify(images)"] = lambda: per_digit(lambda: m.classify(images))
    variants["Py  classify_batch(images, out=)"] = lambda: per_digit(lambda: m.classify_batch(images, out=out))
    old = None
    if args.before is not None:
        old = load_extension(args.before).Model.load(args.model)
        variants["old classify(image)"] = python_calls(old.classify)
        variants["old predict(image)"] = python_calls(old.predict)
        variants["old classify(images)"] = lambda: per_digit(lambda: old.classify(images))

    # Same answers everywhere, before any timing.
    want_classes, want_logits = m.classify(images)
    if c_abi is not None:
        c_abi.single(images)
        assert np.array_equal(c_abi.logits, want_logits) and np.array_equal(c_abi.classes, want_classes)
        c_abi.batch(images)
        assert np.array_equal(c_abi.logits, want_logits) and np.array_equal(c_abi.classes, want_classes)
    for i in range(0, n, 97):
        cls, logits = m.classify(rows[i])
        assert cls == want_classes[i] and np.array_equal(logits, want_logits[i])
        if has_out:
            assert m.classify(rows[i], one_out)[1] is one_out and np.array_equal(one_out, want_logits[i])
        assert m.predict(rows[i]) == cls
        if old is not None:
            assert np.array_equal(old.classify(rows[i])[1], want_logits[i]) and old.predict(rows[i]) == cls

    names = list(variants)
    times = {name: [] for name in names}
    for name in names:  # one warm-up pass each
        variants[name]()
    for block in range(args.blocks):
        # Each block starts one variant later, so none always runs first.
        for k in range(len(names)):
            name = names[(block + k) % len(names)]
            times[name].append(variants[name]())

    backend = f"C ABI backend {c_abi.backend}, " if c_abi else ""
    print(f"model {args.model.name} ({m.encoding}, Python backend {m.backend}, {backend}{n} digits), "
          f"{args.blocks} blocks, each variant once per block, interleaved; µs per digit")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{time.strftime('%Y-%m-%d %H:%MZ', time.gmtime())}, Python {sys.version.split()[0]}, "
          f"numpy {np.__version__}")
    print(f"{'':40} {'median':>7} {'min':>7} {'p25':>7} {'p75':>7}")
    med = {}
    for name in names:
        t = sorted(times[name])
        q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
        med[name] = statistics.median(t)
        print(f"{name:40} {med[name]:7.3f} {t[0]:7.3f} {q[0]:7.3f} {q[2]:7.3f}")

    def over(a, b, label):
        if a in med and b in med:
            print(f"  {label:48} {med[a] - med[b]:+.3f} µs")

    print("overhead per call (medians):")
    over("Py  classify(image)", "C   microvit_classify, class + logits", "classify(image) - C classify (class + logits)")
    over("Py  classify(image, out)", "C   microvit_classify, class + logits",
         "classify(image, out) - C classify (class + logits)")
    over("Py  predict(image)", "C   microvit_classify, class only", "predict(image) - C classify (class only)")
    over("Py  classify(image)", "Rust engine infer (Model.bench)", "classify(image) - engine infer")
    over("Py  predict(image)", "Rust engine infer (Model.bench)", "predict(image) - engine infer")
    over("old classify(image)", "C   microvit_classify, class + logits", "old classify(image) - C classify (+ logits)")
    over("old predict(image)", "C   microvit_classify, class only", "old predict(image) - C classify (class only)")
    print("batch throughput (medians):")
    for name in ("Py  classify(images)", "Py  classify_batch(images, out=)", "old classify(images)",
                 "Rust engine infer_batch (Model.bench)"):
        if name not in med:
            continue
        line = f"  {name.strip():36} {1 / med[name]:.2f} M digits/s"
        for ref in ("C   microvit_classify_batch", "Rust engine infer_batch (Model.bench)"):
            if ref in med and ref != name:
                line += f", {med[ref] / med[name] * 100:5.1f} % of {ref.split()[0]}'s throughput"
        print(line)


if __name__ == "__main__":
    main()
