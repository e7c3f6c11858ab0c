#!/usr/bin/python3
"""The shapes classifier that judges generated samples: a four-conv CNN
(3x3 convs, ReLU, stride-2 downsampling, global average pool, linear),
trained on the real images of make_dataset.py (first 10,000; the last 2,000
are held out) with blur (Gaussian sigma 0-1.2 px per 32 px of image side: 0-2.4
px at 64x64) and noise (sigma 0-0.04) augmentation, so that a soft-edged sample is judged by its shape (a tiny
VQVAE rounds corners: without blur the clean-data classifier calls 18% of
reconstructed hexagons circles), written as models/tiny-var/classifier-64.safetensors
(float32, ~250 KB; the 32x32 one, models/tiny-var/classifier.safetensors, judges the
tiny LlamaGen's 32x32 samples). Its forward uses only conv2d, ReLU, a mean and a linear, so
Tessera evaluates it with lib/ops (test/embedded.test.ts).

    /usr/bin/python3 scripts/train/train_classifier.py [--epochs 15] [--dataset /tmp/tessera-shapes-64.npz]

    /usr/bin/python3 scripts/train/train_classifier.py --eval samples.bin
        (accuracy of the committed classifier on eval_samples.mjs --save output)

Inputs are RGB in [-1, 1], NCHW, at the dataset's size (64x64 for the
shipped model; the first model's classifier was 32x32)."""
import argparse
import os
import time

import torch
import torch.nn.functional as F

import common as C

LAYERS = [('conv0', 3, 16, 1), ('conv1', 16, 32, 2), ('conv2', 32, 64, 2), ('conv3', 64, 64, 2)]


def init(g, classes):
    sd = {}
    for name, cin, cout, _ in LAYERS:
        sd[name + '.weight'] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (cin * 9)) ** 0.5
        sd[name + '.bias'] = torch.zeros(cout)
    sd['fc.weight'] = torch.randn(classes, 64, generator=g) * 64 ** -0.5
    sd['fc.bias'] = torch.zeros(classes)
    return sd


def augment(x, g):
    """Per image: Gaussian blur with sigma ~ U(0, 1.2 s) px, s = side / 32
    (separable, 6 s + 1 taps, reflect padding), then Gaussian noise with
    sigma ~ U(0, 0.04). At 32x32 this is the first model's augmentation."""
    B, s = x.shape[0], x.shape[-1] // 32
    sigma = torch.rand(B, generator=g) * 1.2 * s + 1e-3
    r = 3 * s
    t = torch.arange(-r, r + 1).float()
    k = torch.exp(-t[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)                                     # [B, 2r+1]
    xp = F.pad(x, (r, r, r, r), mode='reflect')
    cols = xp.unfold(3, 2 * r + 1, 1)                                  # [B,3,H+2r,W,2r+1]
    x = (cols * k[:, None, None, None, :]).sum(-1)
    rows = x.unfold(2, 2 * r + 1, 1)                                   # [B,3,H,W,2r+1]
    x = (rows * k[:, None, None, None, :]).sum(-1)
    return x + torch.randn(x.shape, generator=g) * torch.rand(B, 1, 1, 1, generator=g) * 0.04


def forward(sd, x):
    for name, _, _, stride in LAYERS:
        x = F.relu(F.conv2d(x, sd[name + '.weight'], sd[name + '.bias'], stride=stride, padding=1))
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])


def classifier_file(size):
    """models/tiny-var/classifier.safetensors judges 32x32 images (the tiny
    LlamaGen's, and the first tiny VAR's); classifier-<size>.safetensors other sizes."""
    return 'classifier.safetensors' if size == 32 else f'classifier-{size}.safetensors'


def load(path=os.path.join(C.MODEL_DIR, 'classifier.safetensors')):
    import json
    import struct
    import numpy as np
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    sd = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        sd[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).copy()).view(v['shape'])
    return sd


def evaluate(path):
    import json
    import numpy as np
    meta = json.load(open(path + '.json'))
    n, size = len(meta['labels']), meta['size']
    x = torch.from_numpy(np.fromfile(path, dtype=np.uint8).reshape(n, size, size, 3)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        pred = forward(load(os.path.join(C.MODEL_DIR, classifier_file(size))), x).argmax(1)
    acc = (pred == torch.tensor(meta['labels'])).float().mean().item()
    print(f'{path}: PyTorch classifier accuracy {acc:.4f} on {n} samples')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=15)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--eval', help='samples .bin from eval_samples.mjs --save')
    ap.add_argument('--dataset', default=C.DATASET_VAR)
    ap.add_argument('--out', help='default models/tiny-var/classifier-<size>.safetensors (classifier.safetensors for 32)')
    a = ap.parse_args()
    C.setup(a.threads)
    if a.eval:
        return evaluate(a.eval)
    x, y, classes = C.load_dataset(a.dataset)
    xtr, ytr, xte, yte = x[:10000], y[:10000], x[10000:], y[10000:]
    g = torch.Generator().manual_seed(2)
    sd = {k: v.requires_grad_() for k, v in init(g, len(classes)).items()}
    opt = torch.optim.Adam(sd.values(), lr=2e-3)
    t0 = time.time()
    steps = a.epochs * (len(xtr) // 64)
    for step in range(steps):
        for grp in opt.param_groups:
            grp['lr'] = 2e-3 * (1 - step / steps)
        idx = torch.randint(0, len(xtr), (64,), generator=g)
        loss = F.cross_entropy(forward(sd, augment(xtr[idx], g)), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f'step {step}/{steps} loss {loss.item():.4f} t {time.time() - t0:.0f}s', flush=True)
    with torch.no_grad():
        acc = (forward(sd, xte).argmax(1) == yte).float().mean().item()
        acc_blur = (forward(sd, augment(xte, g)).argmax(1) == yte).float().mean().item()
    print(f'held-out accuracy {acc:.4f} on {len(yte)} real images, {acc_blur:.4f} blurred and noisy', flush=True)
    a.out = a.out or os.path.join(C.MODEL_DIR, classifier_file(x.shape[-1]))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    C.save_safetensors(sd, a.out, torch.float32,
                       {'held_out_accuracy': f'{acc:.4f}', 'held_out_accuracy_augmented': f'{acc_blur:.4f}', 'input': f'RGB [-1,1] NCHW {x.shape[-1]}x{x.shape[-1]}', 'classes': ','.join(classes)})


if __name__ == '__main__':
    main()
