#!/usr/bin/python3
"""PyTorch side of ci/bench-vs-pytorch: the same network, batch, loss and thread count as
`drsch bench train` / `drsch bench encode`, timed the same way (warm-up, then repetitions of
timed runs, best repetition reported). Network "drsch-mnist" as in core/nn_arch.c (the authors'
Caffe prototxt): conv 32@5x5 s2 + ReLU + avg pool 2 s1 (ceil mode), conv 64@5x5 + ReLU + avg
pool, conv 128@5x5 + ReLU + avg pool, fc 512, fc B, tanh(s x / 2), bit weights. Loss: the
DRSCH loss of core/dh_loss.c (in-batch triplets, margin -5, 10 classes per batch, plus the
label-graph Laplacian), vectorised.
Prints one JSON object on stdout. Run with Debian's /usr/bin/python3 (python3-torch 1.13)."""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn


class DRSCHMnist(nn.Module):
    def __init__(self, bits, in_hw=28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, stride=2), nn.ReLU(), nn.AvgPool2d(2, 1, ceil_mode=True),
            nn.Conv2d(32, 64, 5), nn.ReLU(), nn.AvgPool2d(2, 1, ceil_mode=True),
            nn.Conv2d(64, 128, 5), nn.ReLU(), nn.AvgPool2d(2, 1, ceil_mode=True))
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 1, in_hw, in_hw)).numel()
        self.fc1 = nn.Linear(flat, 512)
        self.fc2 = nn.Linear(512, bits)
        self.bitw = nn.Parameter(torch.ones(bits))
        self.scale = 5.0
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        for m in (self.fc1, self.fc2):
            nn.init.normal_(m.weight, 0, 0.1)
            nn.init.zeros_(m.bias)

    def hash(self, x):
        x = self.features(x).flatten(1)
        return torch.tanh(0.5 * self.scale * self.fc2(self.fc1(x)))

    def forward(self, x):
        return self.hash(x) * self.bitw


def drsch_loss(y, labels, margin, beta=0.001, other=0.001):
    """core/dh_loss.c: in-batch triplets with margin C plus beta * tr(Y^T (D - A) Y) over the
    label graph A (1 for same label, `other` otherwise, 0 on the diagonal)."""
    d = torch.cdist(y, y).pow(2)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    mask = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    l = d[:, :, None] - d[:, None, :]
    active = mask & (l >= margin)
    triplet = ((l - margin) * active).sum() / mask.sum()
    a = torch.where(same, 1.0, other).masked_fill(eye, 0.0)
    return triplet + beta * 0.5 * (a * d).sum()


def timed(fn, warmup, iters, repeat):
    for _ in range(warmup):
        fn()
    best, total = float("inf"), 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        dt = (time.perf_counter() - t0) / iters
        best = min(best, dt)
        total += dt
    return best, total / repeat


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--train-iters", type=int, default=50)
    ap.add_argument("--train-warmup", type=int, default=5)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--encode-iters", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = DRSCHMnist(a.bits)

    x = torch.rand(a.batch, 1, 28, 28)
    labels = torch.arange(a.batch) // max(1, a.batch // 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.00333, momentum=0.0, weight_decay=0.0005)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = drsch_loss(net(x), labels, -5.0)
        loss.backward()
        opt.step()

    net.train()
    tb, tm = timed(step, a.train_warmup, a.train_iters, a.repeat)

    xe = torch.rand(a.images, 1, 28, 28)

    def encode():
        with torch.no_grad():
            for i in range(0, a.images, a.batch):
                u = net.hash(xe[i:i + a.batch])
                np.packbits((u > 0).numpy(), axis=1, bitorder="little")

    net.eval()
    eb, em = timed(encode, 1, a.encode_iters, a.repeat)
    print(json.dumps({
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "batch": a.batch, "bits": a.bits,
        "train_images_per_second": a.batch / tb, "train_images_per_second_mean": a.batch / tm,
        "encode_images_per_second": a.images / eb, "encode_images_per_second_mean": a.images / em,
    }))


if __name__ == "__main__":
    main()
