"""Local data loaders for the bundled sample models.

Two data sets are used, both available without network access:

* scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``, shipped inside
  the scikit-learn package): 1797 images.  Fixed split: the first 1400 images
  are the training set, the remaining 397 the held-out test set.  Pixels
  (originally 0..16) are scaled to [0, 1]; each image is shaped [1, 8, 8].

* The MNIST *test* set (Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0),
  read from the gzipped IDX files in ``<repo>/../shared/data/mnist``.  Only
  these 10,000 images are available, so images 0-7999 are used for training
  and images 8000-9999 for evaluation.  Pixels are scaled to [0, 1]; each
  image is shaped [1, 28, 28].

All loaders return ``(x_train, y_train, x_test, y_test)`` with float32 images
(N, 1, H, W) and int64 labels (N,).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MNIST_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "mnist"))

DIGITS_N_TRAIN = 1400
MNIST_N_TRAIN = 8000

MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"


def load_digits_split():
    """scikit-learn 8x8 digits: first 1400 images train, last 397 test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    n = DIGITS_N_TRAIN
    return x[:n].copy(), y[:n].copy(), x[n:].copy(), y[n:].copy()


def _read_idx(path: str, magic_expected: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic != magic_expected:
        raise ValueError(f"{path}: bad IDX magic 0x{magic:08x}, expected 0x{magic_expected:08x}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    off = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=off)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} bytes of data, found {arr.size}")
    return arr.reshape(dims)


def load_mnist_split(shared_dir: str | None = None):
    """MNIST test set only: images 0-7999 train, images 8000-9999 test.

    ``shared_dir`` is the directory holding the two gzipped IDX files; it
    defaults to ``<repo>/../shared/data/mnist``.
    """
    d = shared_dir or DEFAULT_MNIST_DIR
    img_path = os.path.join(d, MNIST_IMAGES)
    lbl_path = os.path.join(d, MNIST_LABELS)
    missing = [p for p in (img_path, lbl_path) if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            "MNIST files not found: " + ", ".join(missing)
            + f". Expected {MNIST_IMAGES} and {MNIST_LABELS} (the MNIST test set, gzipped IDX) in {d!r};"
            " pass shared_dir=... (or --mnist-dir) to point elsewhere."
        )
    imgs = _read_idx(img_path, 0x00000803)
    lbls = _read_idx(lbl_path, 0x00000801)
    if imgs.shape != (10000, 28, 28) or lbls.shape != (10000,):
        raise ValueError(f"unexpected MNIST shapes {imgs.shape}, {lbls.shape}")
    x = (imgs.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = lbls.astype(np.int64)
    n = MNIST_N_TRAIN
    return x[:n].copy(), y[:n].copy(), x[n:].copy(), y[n:].copy()
