"""The Micro-ViT, exactly as microvit's engine computes it.

This module is the contract between PyTorch and the Rust engine: the
state_dict names, the patch order and the input normalisation below are what
`microvit convert` expects. Change nothing here without changing
docs/FORMAT.md and the engine's reference forward pass.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

# MNIST's usual normalisation; stored in the safetensors metadata so the
# converter does not have to guess it.
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081


class MicroViT(nn.Module):
    def __init__(self, image_size=28, patch_size=7, dim=32, heads=2, classes=10):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError("patch_size must divide image_size")
        if dim % heads != 0:
            raise ValueError("heads must divide dim")
        self.image_size = image_size
        self.patch_size = patch_size
        self.dim = dim
        self.heads = heads
        self.classes = classes
        grid = image_size // patch_size
        tokens = grid * grid + 1
        self.patch_embed = nn.Linear(patch_size * patch_size, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def patchify(self, x):
        """(B, 1, S, S) -> (B, grid*grid, P*P): patches row-major over the
        grid, each patch flattened row-major."""
        b = x.shape[0]
        p = self.patch_size
        g = self.image_size // p
        x = x.reshape(b, g, p, g, p).permute(0, 1, 3, 2, 4)
        return x.reshape(b, g * g, p * p)

    def forward(self, x, need_weights=False):
        x = self.patch_embed(self.patchify(x))
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        h = self.norm(x)
        a, weights = self.attention(
            h, h, h, need_weights=need_weights, average_attn_weights=False
        )
        x = x + a
        logits = self.head(x[:, 0])
        return (logits, weights) if need_weights else logits


def normalise(pixels_u8):
    """u8 pixels (any shape) -> float32, as the engine does: (x/255 - mean) / std."""
    x = torch.as_tensor(pixels_u8).float() / 255.0
    return (x - PIXEL_MEAN) / PIXEL_STD


def read_idx(path):
    """Reads an idx file (optionally gzipped) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def metadata(model):
    """safetensors metadata the converter reads (strings only)."""
    return {
        "format": "pt",
        "microvit.image_size": str(model.image_size),
        "microvit.patch_size": str(model.patch_size),
        "microvit.num_heads": str(model.heads),
        "microvit.pixel_mean": repr(PIXEL_MEAN),
        "microvit.pixel_std": repr(PIXEL_STD),
        "microvit.layer_norm_eps": repr(model.norm.eps),
    }
