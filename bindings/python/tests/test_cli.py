"""Cross-checks with the CLI (the Rust engine through another door): the
logits of `microvit eval --logits-out`, the blobs of `microvit convert`, the
attention of `microvit explain --attention-out`, bit for bit."""

import os
import subprocess

import numpy as np
import pytest

import microvit
from conftest import CORRECT, ENCODINGS, MODELS, cli_path, load


def run_cli(*args, backend=None):
    env = {k: v for k, v in os.environ.items() if k != "MICROVIT_BACKEND"}
    if backend:
        env["MICROVIT_BACKEND"] = backend
    done = subprocess.run([str(cli_path()), *map(str, args)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", ["scalar", None])
def test_logits_identical_to_cli_eval(encoding, images, tmp_path, backend):
    m = load(encoding)
    if backend:
        m.set_backend(backend)
    out = tmp_path / "logits.npy"
    stdout = run_cli("eval", MODELS / ENCODINGS[encoding], "--logits-out", out, backend=m.backend)
    assert f"accuracy  {CORRECT[encoding] / 100:.2f} %" in stdout
    cli_logits = np.load(out)
    _, logits = m.classify(images)
    assert cli_logits.shape == logits.shape == (10000, 10)
    assert np.array_equal(cli_logits, logits), np.abs(cli_logits - logits).max()


@pytest.mark.parametrize("dtype", ["f32", "f16", "int8"])
def test_convert_identical_to_cli_convert(dtype, calibration, tmp_path):
    st = MODELS / "microvit-seed.safetensors"
    out = tmp_path / f"seed.{dtype}.mvit"
    # The CLI's default calibration set is the 1,000 digits in data/.
    run_cli("convert", st, "--dtype", dtype, "-o", out)
    ours = microvit.convert(st, encoding=dtype, calibration=calibration if dtype == "int8" else None)
    assert ours == out.read_bytes()


def test_attention_identical_to_cli_explain(encoding, images, tmp_path):
    m = load(encoding)
    out = tmp_path / "attention.npy"
    run_cli(
        "explain", MODELS / ENCODINGS[encoding], "--test-digits", "0,1,2,3,4,5,6,7",
        "-o", tmp_path, "--attention-out", out, backend=m.backend,
    )
    cli_attention = np.load(out)
    assert cli_attention.shape == (8, 2, 17)
    for i in range(8):
        assert np.array_equal(m.attention(images[i])[2], cli_attention[i]), i
