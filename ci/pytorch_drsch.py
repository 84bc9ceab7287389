#!/usr/bin/python3
"""PyTorch side of ci/bench-vs-pytorch: the same network, batch, loss and thread count as
`drsch bench train` / `drsch bench encode`, timed the same way (warm-up, then repetitions of
timed runs, best repetition reported). Networks: the layer tables of core/nn_arch.c, copied
below (ARCHS) with their default input shapes: "drsch-mnist" (the authors' Caffe prototxt,
1x28x28), "drsch-cifar" (3x32x32) and "drsch-reid" (3x160x60). Convolutions are followed by a
ReLU, pooling uses Caffe's ceil mode (PyTorch ceil_mode=True with no padding: a window never
starts outside the input and averages only the pixels inside it, as oneDNN's
avg_exclude_padding does), then fc 512, fc B, tanh(s x / 2), bit weights; initialisation as
core/: convolutions N(0, 0.01), inner products N(0, 0.1), biases 0. Loss: the DRSCH loss of
core/dh_loss.c (in-batch triplets, margin -5, 10 classes per batch, plus the label-graph
Laplacian), vectorised. The JSON also holds the forward FLOPs per image (convolutions and inner
products, multiply-add = 2, as `drsch bench`), so the caller can check both ran one network.
Prints one JSON object on stdout. Run with Debian's /usr/bin/python3 (python3-torch 1.13)."""
import argparse
import ctypes
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn


# core/nn_arch.c, layer for layer: ("conv", out, kernel, stride, pad) with ReLU,
# ("max" | "ave", kernel, stride); every table then ends with fc 512, fc B, hash, bit weights.
ARCHS = {
    "drsch-mnist": ((1, 28, 28), [("conv", 32, 5, 2, 0), ("ave", 2, 1), ("conv", 64, 5, 1, 0), ("ave", 2, 1),
                                  ("conv", 128, 5, 1, 0), ("ave", 2, 1)]),
    "drsch-cifar": ((3, 32, 32), [("conv", 32, 5, 1, 2), ("max", 3, 2), ("conv", 32, 5, 1, 2), ("ave", 3, 2),
                                  ("conv", 64, 5, 1, 2), ("ave", 3, 2)]),
    "drsch-reid": ((3, 160, 60), [("conv", 32, 5, 2, 2), ("max", 2, 2), ("conv", 64, 5, 1, 2), ("max", 2, 2),
                                  ("conv", 128, 3, 1, 1), ("ave", 2, 2)]),
}


class DRSCHNet(nn.Module):
    def __init__(self, arch, bits):
        super().__init__()
        self.in_shape, table = ARCHS[arch]
        layers, c = [], self.in_shape[0]
        for kind, *p in table:
            if kind == "conv":
                out, k, stride, pad = p
                layers += [nn.Conv2d(c, out, k, stride=stride, padding=pad), nn.ReLU()]
                c = out
            elif kind == "max":
                layers.append(nn.MaxPool2d(p[0], p[1], ceil_mode=True))
            else:
                layers.append(nn.AvgPool2d(p[0], p[1], ceil_mode=True))
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *self.in_shape)).numel()
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


def forward_flops_per_image(net):
    """2 x multiply-adds of the convolutions and inner products for one image."""
    total = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total.append(2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(2 * out.numel() * m.in_features)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.hash(torch.zeros(1, *net.in_shape))
    for h in hs:
        h.remove()
    return sum(total)


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


def loaded_blas():
    """The BLAS libraries this process has mapped (the fc layers run on the system BLAS)."""
    libs = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "blas" in os.path.basename(path).lower():
                libs.add(os.path.realpath(path))
    return ", ".join(sorted(libs)) or "none"


def corename(path):
    """The kernels the OpenBLAS library at path chose for this CPU (openblas_get_corename)."""
    lib = ctypes.CDLL(path)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def openblas_core():
    """The kernels of the OpenBLAS this process runs on, or "" without OpenBLAS."""
    for path in loaded_blas().split(", "):
        if "openblas" in os.path.basename(path):
            return corename(path)
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="drsch-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--train-iters", type=int, default=50)
    ap.add_argument("--train-warmup", type=int, default=5)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--encode-iters", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--openblas-core", metavar="LIB",
                    help="print the kernels the OpenBLAS library LIB picks for this CPU and exit")
    a = ap.parse_args()
    if a.openblas_core:
        print(corename(a.openblas_core))
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = DRSCHNet(a.arch, a.bits)

    x = torch.rand(a.batch, *net.in_shape)
    labels = torch.arange(a.batch) // max(1, a.batch // 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.00333, momentum=0.0, weight_decay=0.0005)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = drsch_loss(net(x), labels, -5.0)
        loss.backward()
        opt.step()

    net.train()
    tb, tm = timed(step, a.train_warmup, a.train_iters, a.repeat)

    xe = torch.rand(a.images, *net.in_shape)

    def encode():
        with torch.no_grad():
            for i in range(0, a.images, a.batch):
                u = net.hash(xe[i:i + a.batch])
                np.packbits((u > 0).numpy(), axis=1, bitorder="little")

    net.eval()
    eb, em = timed(encode, 1, a.encode_iters, a.repeat)
    print(json.dumps({
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "blas": loaded_blas(), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "openblas_core": openblas_core(),
        "arch": a.arch, "input": list(net.in_shape), "batch": a.batch, "bits": a.bits,
        "forward_flops_per_image": forward_flops_per_image(net),
        "train_images_per_second": a.batch / tb, "train_images_per_second_mean": a.batch / tm,
        "encode_images_per_second": a.images / eb, "encode_images_per_second_mean": a.images / em,
    }))


if __name__ == "__main__":
    main()
