"""The seed's model (or, with --model cnn, examples/models/cnn.json) in
PyTorch on Fashion-MNIST, timed.

nn.Linear 784->64->64->10 with ReLU, Glorot-uniform weights and zero biases
(Keras's initialisation); the CNN: conv 3x3 32 (same) -> relu -> batch
norm -> max pool 2 -> conv 3x3 64 -> relu -> batch norm -> max pool 2 ->
dense 128 relu -> dropout 0.3 -> dense 10, He-normal kernels as loom's
description, batch norm momentum 0.01 (Keras's 0.99) and eps 1e-3;
Adam (lr 1e-3, eps 1e-7 as in Keras),
cross-entropy on the logits, a fresh torch.randperm each epoch and manual
batching (the last batch may be short, as in Keras). Only the training
loop is timed. Prints one JSON line.
"""
import argparse
import json
import sys
import time

import fmnist

args = fmnist.common_args(argparse.ArgumentParser(description=__doc__)).parse_args()

import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(args.threads)
try:
    torch.set_num_interop_threads(args.threads)
except RuntimeError:
    pass  # already fixed by an earlier parallel op
torch.manual_seed(args.seed)

xtr, ytr, xte, yte = (torch.from_numpy(a) for a in fmnist.load(args.data))

if args.model == "cnn":
    xtr, xte = xtr.reshape(-1, 1, 28, 28), xte.reshape(-1, 1, 28, 28)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(32, eps=1e-3, momentum=0.01), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(64, eps=1e-3, momentum=0.01), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    nn.init.xavier_uniform_(model[-1].weight)  # the softmax layer: Glorot, as loom's and Keras's default
else:
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = nn.CrossEntropyLoss()

n = len(xtr)
times = []
t0 = time.perf_counter()
for epoch in range(args.epochs):
    e0 = time.perf_counter()
    model.train()
    perm = torch.randperm(n)
    for i in range(0, n, args.batch):
        idx = perm[i:i + args.batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
    times.append(time.perf_counter() - e0)
fit_s = time.perf_counter() - t0

model.eval()
with torch.no_grad():
    correct = 0
    for i in range(0, len(xte), 1000):
        correct += int((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum())
acc = correct / len(xte)

print(json.dumps({
    "peer": "pytorch",
    "model": args.model,
    "version": f"torch {torch.__version__}",
    "samples_per_s": args.epochs * n / fit_s,
    "last_epoch_samples_per_s": n / times[-1],
    "test_accuracy": acc,
    "epochs": args.epochs,
    "batch": args.batch,
    "threads": args.threads,
    "fit_seconds": fit_s,
    "epoch_seconds": times,
}))
sys.stdout.flush()
