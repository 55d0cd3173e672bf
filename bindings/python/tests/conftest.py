"""Shared fixtures: the repository, the MNIST test set read with gzip, the models."""

import gzip
import os
import pathlib

import numpy as np
import pytest

import microvit

REPO = pathlib.Path(__file__).resolve().parents[3]
MODELS = REPO / "models"
DATA = REPO / "data"
FIXTURES = REPO / "tests" / "fixtures"
ENCODINGS = {"f32": "microvit-seed.mvit", "f16": "microvit-seed.f16.mvit", "int8": "microvit-seed.int8.mvit"}
# Correct test digits of each (docs/FIXED_POINT.md, "Measured").
CORRECT = {"f32": 9540, "f16": 9540, "int8": 9540}


def read_idx_images(path):
    raw = gzip.open(path).read()
    magic, count, rows, cols = np.frombuffer(raw[:16], ">u4")
    assert magic == 0x803, f"{path}: not idx3 images"
    return np.frombuffer(raw, np.uint8, offset=16).reshape(int(count), int(rows), int(cols))


def read_idx_labels(path):
    raw = gzip.open(path).read()
    magic, count = np.frombuffer(raw[:8], ">u4")
    assert magic == 0x801, f"{path}: not idx1 labels"
    return np.frombuffer(raw, np.uint8, offset=8)[: int(count)]


@pytest.fixture(scope="session")
def images():
    return read_idx_images(DATA / "t10k-images-idx3-ubyte.gz")


@pytest.fixture(scope="session")
def labels():
    return read_idx_labels(DATA / "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def calibration():
    return read_idx_images(DATA / "calibration-1000-images-idx3-ubyte.gz")


@pytest.fixture(params=sorted(ENCODINGS))
def encoding(request):
    return request.param


def load(encoding):
    return microvit.Model.load(MODELS / ENCODINGS[encoding])


def cli_path():
    """The release CLI (.ci/python.sh builds it); None when absent, unless CI requires it."""
    path = pathlib.Path(os.environ.get("MICROVIT_CLI", REPO / "target" / "release" / "microvit"))
    if path.is_file():
        return path
    if os.environ.get("MICROVIT_REQUIRE_CLI") == "1":
        pytest.fail(f"{path} is missing and MICROVIT_REQUIRE_CLI=1")
    pytest.skip(f"{path} not built: cargo build --release -p microvit-cli")
