#!/usr/bin/env python3
"""Trains a Micro-ViT on MNIST and writes a safetensors state_dict.

    python train/train.py --out models/microvit-seed.safetensors
    python train/train.py --dim 24 --out models/microvit-4k.safetensors

Seeded and reproducible on one machine with one thread count (CPU float
reductions depend on the thread count, so it is pinned by --threads).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from microvit_model import MicroViT, metadata, normalise, read_idx

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist",
                    help="folder with the four MNIST idx files (gzipped or not)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--patch", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    def load(prefix):
        for suffix in (".gz", ""):
            images = args.data / f"{prefix}-images-idx3-ubyte{suffix}"
            labels = args.data / f"{prefix}-labels-idx1-ubyte{suffix}"
            if images.exists() and labels.exists():
                x = normalise(read_idx(images).copy()).unsqueeze(1)
                y = torch.as_tensor(read_idx(labels).astype(np.int64))
                return x, y
        raise SystemExit(f"no {prefix} idx files in {args.data}")

    train_x, train_y = load("train")
    test_x, test_y = load("t10k")

    model = MicroViT(patch_size=args.patch, dim=args.dim, heads=args.heads)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"Micro-ViT dim={args.dim} heads={args.heads}: {n_params} parameters")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = (len(train_x) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    order_gen = torch.Generator().manual_seed(args.seed)

    def test_accuracy():
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(test_x[i : i + 1000]).argmax(1) for i in range(0, len(test_x), 1000)])
        model.train()
        return (pred == test_y).float().mean().item() * 100

    start = time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(train_x), generator=order_gen)
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {total / len(train_x):.4f}  "
                  f"test {test_accuracy():.2f}%  ({time.time() - start:.0f} s)", flush=True)

    acc = test_accuracy()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = metadata(model)
    meta["microvit.test_accuracy"] = f"{acc:.2f}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=meta)
    print(f"wrote {args.out}: test accuracy {acc:.2f}%")


if __name__ == "__main__":
    main()
