#!/usr/bin/env python3
"""Writes the golden fixtures the Rust tests compare against: PyTorch's own
answers for the committed models on the committed MNIST test set.

    python train/make_fixtures.py            # every models/*.safetensors

For each model NAME it writes under tests/fixtures/:
- NAME.logits.npy         float32 [10000, classes]: logits for every test digit
- NAME.cls_attention.npy  float32 [8, heads, tokens]: the CLS row of each head's
                          attention (need_weights=True, average_attn_weights=False)
                          for test digits 0..7
- NAME.json               accuracy and the versions that produced them
"""

import json
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file

from microvit_model import MicroViT, normalise, read_idx

REPO = Path(__file__).resolve().parent.parent
ATTENTION_DIGITS = 8


def load_model(path):
    with safetensors.safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    dim, patch_len = state["patch_embed.weight"].shape
    model = MicroViT(
        image_size=int(meta["microvit.image_size"]),
        patch_size=int(meta["microvit.patch_size"]),
        dim=dim,
        heads=int(meta["microvit.num_heads"]),
        classes=state["head.weight"].shape[0],
    )
    model.load_state_dict(state)
    return model.eval()


def main():
    torch.set_num_threads(1)
    images = read_idx(REPO / "data" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(REPO / "data" / "t10k-labels-idx1-ubyte.gz")
    x = normalise(images.copy()).unsqueeze(1)
    out_dir = REPO / "tests" / "fixtures"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in sys.argv[1:]] or sorted((REPO / "models").glob("*.safetensors"))
    for path in paths:
        name = path.name.removesuffix(".safetensors")
        model = load_model(path)
        with torch.no_grad():
            logits = torch.cat([model(x[i : i + 500]) for i in range(0, len(x), 500)])
            _, weights = model(x[:ATTENTION_DIGITS], need_weights=True)
        accuracy = (logits.argmax(1).numpy() == labels).mean() * 100
        np.save(out_dir / f"{name}.logits.npy", logits.numpy().astype("<f4"))
        np.save(out_dir / f"{name}.cls_attention.npy", weights[:, :, 0, :].numpy().astype("<f4"))
        summary = {
            "model": f"models/{path.name}",
            "test_images": len(labels),
            "accuracy_percent": round(float(accuracy), 2),
            "correct": int((logits.argmax(1).numpy() == labels).sum()),
            "attention_digits": ATTENTION_DIGITS,
            "torch": torch.__version__,
            "numpy": np.__version__,
        }
        (out_dir / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{name}: accuracy {accuracy:.2f}%, fixtures in {out_dir.relative_to(REPO)}")


if __name__ == "__main__":
    main()
