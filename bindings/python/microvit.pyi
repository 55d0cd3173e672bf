"""microvit: a tiny Vision Transformer for 28x28 digits, run by microvit's Rust engine."""

import os
from typing import Optional, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathOrBytes = Union[str, os.PathLike, bytes, bytearray]
U8 = npt.NDArray[np.uint8]

class Error(ValueError):
    """A bad blob, image, array, backend or conversion; the message is the engine's."""

class NoDigitError(Error):
    """classify_image found no digit (blank, noise, ink everywhere, a speck)."""

class ImageResult(TypedDict):
    # "class" is a keyword: read it as result["class"].
    logits: npt.NDArray[np.float32]
    input: U8
    box: Tuple[int, int, int, int]
    polarity: str
    contrast: int

class BenchResult(TypedDict):
    median_us: float
    min_us: float
    rounds: int
    digits: int
    backend: str

class Model:
    def __init__(self, path_or_bytes: PathOrBytes) -> None: ...
    @staticmethod
    def load(path_or_bytes: PathOrBytes) -> "Model": ...
    @property
    def encoding(self) -> str: ...
    @property
    def side(self) -> int: ...
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def pixels(self) -> int: ...
    @property
    def classes(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def parameters(self) -> int: ...
    @property
    def blob_size(self) -> int: ...
    @property
    def backend(self) -> str: ...
    def set_backend(self, name: str) -> None: ...
    def classify(
        self, images: U8, out: Optional[npt.NDArray[np.float32]] = None
    ) -> Union[Tuple[int, npt.NDArray[np.float32]], Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """One image (uint8 [28, 28] or [784]) -> (class, logits float32 [10]); a batch
        (uint8 [N, 28, 28] or [N, 784]) -> (classes int64 [N], logits float32 [N, 10]),
        GIL released. out: a C-contiguous float32 array of the logits' shape to write them
        into (and return); pass it positionally, m.classify(image, out), for the cheapest
        call (a keyword costs ~0.13 us more on this abi3-py39 build)."""
    def predict(self, image: U8) -> int: ...
    def classify_batch(
        self, images: U8, out: Optional[npt.NDArray[np.float32]] = None
    ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def attention(self, image: U8) -> Tuple[int, npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def classify_image(self, image: U8, polarity: str = "auto", bgra: bool = False) -> ImageResult: ...
    def bench(self, images: U8, rounds: int = 11, batch: bool = False) -> BenchResult: ...
    def to_bytes(self) -> bytes: ...

def convert(
    safetensors: PathOrBytes,
    encoding: str = "int8",
    calibration: Optional[Union[U8, bytes, bytearray]] = None,
    heads: Optional[int] = None,
) -> bytes: ...
def available_backends() -> list[str]: ...
