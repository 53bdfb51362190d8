"""Fashion-MNIST from the gzipped IDX files, the same bytes loom reads.

Shared by the peer programs so Keras and PyTorch see identical arrays:
float32 pixels scaled by 1/255 in rows of 784, uint8 labels. The CNN
reshapes the rows to images: [N, 1, 28, 28] for PyTorch (NCHW, as loom),
[N, 28, 28, 1] for Keras (TensorFlow's CPU convolutions are NHWC).
"""
import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"


def _idx(path, want_dims):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = raw[3]
    if dims != want_dims:
        raise ValueError(f"{path}: {dims} dimensions, expected {want_dims}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {shape}")
    return body.reshape(shape)


def load(data_dir=DEFAULT_DIR):
    """Returns (x_train, y_train, x_test, y_test)."""
    def part(name, dims):
        return _idx(os.path.join(data_dir, name), dims)

    xtr = part("train-images-idx3-ubyte.gz", 3)
    ytr = part("train-labels-idx1-ubyte.gz", 1)
    xte = part("t10k-images-idx3-ubyte.gz", 3)
    yte = part("t10k-labels-idx1-ubyte.gz", 1)
    scale = np.float32(1.0 / 255.0)
    xtr = xtr.reshape(len(xtr), -1).astype(np.float32) * scale
    xte = xte.reshape(len(xte), -1).astype(np.float32) * scale
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def common_args(parser):
    parser.add_argument("--data", default=DEFAULT_DIR)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                        help="mlp: the seed's 784-64-64-10; cnn: examples/models/cnn.json")
    return parser
