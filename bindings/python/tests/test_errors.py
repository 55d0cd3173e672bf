"""Every failure is a microvit.Error (a ValueError) with the engine's message."""

import numpy as np
import pytest

import microvit
from conftest import MODELS, load


def test_error_is_a_value_error():
    assert issubclass(microvit.Error, ValueError)


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "blob is truncated: 0 bytes, at least 64 needed"),
        (b"JUNK" + bytes(200), "not a microvit blob"),
    ],
)
def test_bad_bytes(blob, message):
    with pytest.raises(microvit.Error, match=message):
        microvit.Model.load(blob)


def test_corrupted_blob_names_the_checksum():
    blob = bytearray((MODELS / "microvit-seed.int8.mvit").read_bytes())
    blob[-1] ^= 0x55
    with pytest.raises(microvit.Error, match="checksum mismatch.*corrupted"):
        microvit.Model.load(bytes(blob))


def test_truncated_file_names_the_path(tmp_path):
    path = tmp_path / "cut.mvit"
    path.write_bytes((MODELS / "microvit-seed.mvit").read_bytes()[:1000])
    with pytest.raises(microvit.Error, match=r"cut\.mvit: blob is truncated"):
        microvit.Model.load(path)


def test_missing_file():
    with pytest.raises(microvit.Error, match="no-such.mvit"):
        microvit.Model.load("no-such.mvit")


def test_not_bytes_or_path():
    with pytest.raises(microvit.Error, match="must be bytes, bytearray or a path, not int"):
        microvit.Model.load(42)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((27, 28), r"shape \[N, 28, 28\] or \[N, 784\], not \[27, 28\]"),
        ((783,), r"an image must have shape \[28, 28\] or \[784\], not \[783\]"),
        ((2, 28, 27), r"a batch must have shape \[N, 28, 28\] or \[N, 784\], not \[2, 28, 27\]"),
        ((1, 1, 28, 28), r"not \[1, 1, 28, 28\]"),
        ((), r"not \[\]"),
    ],
)
def test_wrong_shape(shape, message):
    with pytest.raises(microvit.Error, match=message):
        load("int8").classify(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint16, np.int64])
def test_wrong_dtype(dtype):
    m = load("int8")
    for call in (m.classify, m.attention, m.classify_image):
        with pytest.raises(microvit.Error, match=f"must be a numpy uint8 array, this one has dtype {np.dtype(dtype)}"):
            call(np.zeros((28, 28), dtype))


def test_not_an_array():
    with pytest.raises(microvit.Error, match="must be a numpy uint8 array, not list"):
        load("int8").classify([[0] * 28] * 28)


def test_unknown_backend():
    m = load("int8")
    with pytest.raises(microvit.Error, match='unknown backend "sse9"; expected one of scalar, avx2'):
        m.set_backend("sse9")


def test_unavailable_backend_changes_nothing():
    m = load("int8")
    before = m.backend
    missing = [b for b in ("neon", "dotprod", "avx2", "avx512vnni") if b not in microvit.available_backends()]
    if not missing:
        pytest.skip("this CPU has every backend")
    with pytest.raises(microvit.Error, match=f"backend {missing[0]} is not available on this CPU"):
        m.set_backend(missing[0])
    assert m.backend == before


def test_image_errors():
    m = load("int8")
    with pytest.raises(microvit.Error, match="C = 1, 3 or 4"):
        m.classify_image(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(microvit.Error, match="unknown polarity"):
        m.classify_image(np.zeros((10, 10), np.uint8), polarity="sideways")
    with pytest.raises(microvit.Error):
        m.classify_image(np.zeros((0, 10), np.uint8))


def test_convert_errors():
    st = MODELS / "microvit-seed.safetensors"
    with pytest.raises(microvit.Error, match="int8 needs calibration digits"):
        microvit.convert(st, encoding="int8")
    with pytest.raises(microvit.Error, match='unknown encoding "int4"'):
        microvit.convert(st, encoding="int4")
    with pytest.raises(microvit.Error):
        microvit.convert(b"not safetensors", encoding="f32")


def test_bench_errors():
    with pytest.raises(microvit.Error, match="at least one digit"):
        load("int8").bench(np.zeros((0, 28, 28), np.uint8))


@pytest.mark.parametrize(
    "out",
    [np.zeros((3, 10), np.float64), np.zeros((2, 10), np.float32), np.zeros((10, 3), np.float32).T, [0.0] * 30],
)
def test_bad_out(out):
    with pytest.raises(microvit.Error, match=r"out must be a C-contiguous float32 array of shape \[3, 10\]"):
        load("int8").classify_batch(np.zeros((3, 28, 28), np.uint8), out=out)


@pytest.mark.parametrize(
    "out",
    [
        np.zeros(10, np.float64),
        np.zeros(9, np.float32),
        np.zeros((1, 10), np.float32),
        np.zeros(20, np.float32)[::2],
        np.zeros(10, ">f4"),
        np.frombuffer(bytes(40), np.float32),  # read-only
        np.zeros(41, np.uint8)[1:].view(np.float32),  # misaligned
        [0.0] * 10,
    ],
)
def test_bad_out_one_image(out):
    with pytest.raises(microvit.Error, match=r"out must be a C-contiguous, writeable float32 array of shape \[10\]"):
        load("int8").classify(np.zeros((28, 28), np.uint8), out)
