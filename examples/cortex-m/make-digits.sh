#!/usr/bin/env bash
# Writes digits.bin and labels.bin: the first 16 images (784 bytes each)
# and labels of the committed MNIST test set, without their idx headers.
set -euo pipefail
cd "$(dirname "$0")"
zcat ../../data/t10k-images-idx3-ubyte.gz | tail -c +17 | head -c $((16 * 784)) > digits.bin
zcat ../../data/t10k-labels-idx1-ubyte.gz | tail -c +9 | head -c 16 > labels.bin
