"""PyTorch twin of the Neural Hashmaps encoder, the speed anchor of `nhm bench --torch`.

Same network as crates/nhm-model (optional space-to-depth fold of the input, 3x3 conv -> BatchNorm
-> ReLU per stage, 2x2 max-pool between stages, adaptive average pool to pool_grid x pool_grid,
linear to dim, L2 normalise; at inference the optional mirror average), same batch
(64 random images, subjects of 4), same contrastive loss and AdamW step. Prints one JSON line.

Needs `pip install torch` (never a dependency of the product). Uses OMP_NUM_THREADS (default 2).
"""
import argparse, json, os, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=64)
p.add_argument("--channels", default="16,32,64,128,256")
p.add_argument("--dim", type=int, default=256)
p.add_argument("--pool-grid", type=int, default=2)
p.add_argument("--space-to-depth", type=int, default=1)
p.add_argument("--mirror-average", type=int, default=0)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--steps", type=int, default=10)
a = p.parse_args()
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
torch.manual_seed(1)


class Encoder(nn.Module):
    def __init__(self, channels, dim, grid, fold):
        super().__init__()
        layers, cin = [], fold * fold
        if fold > 1:
            layers.append(nn.PixelUnshuffle(fold))
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            if i + 1 < len(channels):
                layers.append(nn.MaxPool2d(2))
            cin = c
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj = nn.Linear(cin * grid * grid, dim)

    def forward(self, x):
        return F.normalize(self.proj(self.pool(self.body(x)).flatten(1)), dim=1, eps=1e-12)


def contrastive(e, labels, margin=1.0):
    d = torch.cdist(e, e).clamp_min(1e-9)
    same = (labels[:, None] == labels[None, :]).float()
    off = 1 - torch.eye(len(labels))
    loss = same * d**2 + (1 - same) * F.relu(margin - d) ** 2
    return (loss * off).sum() / off.sum()


enc = Encoder([int(c) for c in a.channels.split(",")], a.dim, a.pool_grid, a.space_to_depth)


def embed(x):
    if not a.mirror_average:
        return enc(x)
    return F.normalize(enc(x) + enc(torch.flip(x, dims=[3])), dim=1, eps=1e-12)


opt = torch.optim.AdamW(enc.parameters(), lr=1e-3)
x = torch.rand(a.batch, 1, a.size, a.size) * 2 - 1
y = torch.arange(a.batch) // 4
train = []
for step in range(a.steps + 1):
    t = time.perf_counter()
    loss = contrastive(enc(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    loss.item()
    if step > 0:
        train.append(time.perf_counter() - t)
enc.eval()
infer, lat = [], []
with torch.no_grad():
    for step in range(a.steps + 1):
        t = time.perf_counter()
        embed(x)[0, 0].item()
        if step > 0:
            infer.append(time.perf_counter() - t)
    for i in range(max(4 * a.steps, 10) + 1):
        t = time.perf_counter()
        embed(x[:1])[0, 0].item()
        if i > 0:
            lat.append(time.perf_counter() - t)
print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "train_images_per_sec": a.batch * len(train) / sum(train),
    "encode_images_per_sec": a.batch * len(infer) / sum(infer),
    "latency_b1_ms": statistics.median(lat) * 1e3,
}))
