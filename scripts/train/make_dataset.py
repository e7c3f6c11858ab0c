#!/usr/bin/python3
"""Tessera's procedural training set: RGB images of ten coloured shapes, one
class per shape, deterministic from a fixed seed.

    /usr/bin/python3 scripts/train/make_dataset.py [--size 64] [--per-class 1200] [--out PATH]

The embedded tiny VAR uses 64x64 (the default, written to
/tmp/tessera-shapes-64.npz); --size 32 renders the same distribution at 32x32
to /tmp/tessera-shapes.npz, the set of the tiny LlamaGen (and of the first,
32x32 tiny VAR).

Each image is a shape of random hue (saturation 0.6-1, value 0.7-1) on a dark
random background (value 0.05-0.3), centred at a random position with a random
size (radius 0.21-0.38 of the side), so colour and placement never reveal the class.
Edges are anti-aliased by 4x4 supersampling. The output is an .npz with
`images` uint8 [N, size, size, 3] and `labels` int64 [N], classes interleaved
(image i has class i % 10) so any prefix is balanced. It is regenerated, not
committed."""
import argparse
import json
import math
import os

import numpy as np

SS = 4  # supersampling factor for anti-aliased edges
CLASSES = ['circle', 'square', 'triangle', 'cross', 'ring', 'star', 'diamond', 'hexagon',
           'horizontal bars', 'vertical bars']
SEED = 20261128


def regular_polygon(x, y, r, n, theta0):
    """Inside a regular n-gon with circumradius r and a vertex at angle theta0:
    every edge normal's projection is at most the apothem r cos(pi/n)."""
    inside = np.ones_like(x, dtype=bool)
    for k in range(n):
        phi = theta0 + math.pi / n + 2 * math.pi * k / n
        inside &= x * math.cos(phi) + y * math.sin(phi) <= r * math.cos(math.pi / n)
    return inside


def star(x, y, r):
    """Five-pointed star, outer radius r, inner 0.45 r, a point straight up
    (image y grows downward). The boundary radius along a ray comes from the
    edge between an outer vertex (angle 0 of its sector) and the next inner
    vertex (angle pi/5), mirrored within the sector."""
    t = np.mod(np.arctan2(y, x) + math.pi / 2, 2 * math.pi / 5)
    t = np.minimum(t, 2 * math.pi / 5 - t)
    a = np.array([r, 0.0])
    b = 0.45 * r * np.array([math.cos(math.pi / 5), math.sin(math.pi / 5)])
    nrm = np.array([b[1] - a[1], a[0] - b[0]])   # normal of the edge a->b
    c = nrm @ a
    bound = c / (nrm[0] * np.cos(t) + nrm[1] * np.sin(t))
    return np.hypot(x, y) <= bound


def bars(u, v, r):
    """Three bars across a square of half-side r: bands 0, 2, 4 of five along v."""
    band = np.floor((v + r) / (2 * r / 5))
    return (np.abs(u) <= r) & (np.abs(v) <= r) & (np.mod(band, 2) == 0)


def shape_mask(cls, x, y, r):
    if cls == 0:
        return np.hypot(x, y) <= r
    if cls == 1:
        return np.maximum(np.abs(x), np.abs(y)) <= 0.8 * r
    if cls == 2:
        return regular_polygon(x, y - 0.2 * r, 1.1 * r, 3, -math.pi / 2)
    if cls == 3:
        w = 0.3 * r
        return ((np.abs(x) <= w) & (np.abs(y) <= r)) | ((np.abs(y) <= w) & (np.abs(x) <= r))
    if cls == 4:
        d = np.hypot(x, y)
        return (d <= r) & (d >= 0.55 * r)
    if cls == 5:
        return star(x, y - 0.1 * r, 1.1 * r)
    if cls == 6:
        return np.abs(x) + np.abs(y) <= r
    if cls == 7:
        return regular_polygon(x, y, r, 6, 0.0)
    if cls == 8:
        return bars(x, y, 0.85 * r)
    if cls == 9:
        return bars(y, x, 0.85 * r)
    raise ValueError(cls)


def hsv_to_rgb(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def render(cls, rng, size):
    r = rng.uniform(0.21, 0.38) * size
    margin = r + size / 32
    cx, cy = rng.uniform(margin, size - margin, size=2)
    fg = np.array(hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1), rng.uniform(0.7, 1)))
    bg = np.array(hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.6), rng.uniform(0.05, 0.3)))
    s = (np.arange(size * SS) + 0.5) / SS
    y, x = np.meshgrid(s - cy, s - cx, indexing='ij')
    cover = shape_mask(cls, x, y, r).reshape(size, SS, size, SS).mean(axis=(1, 3))[..., None]
    img = cover * fg + (1 - cover) * bg
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make(per_class, size=32, seed=SEED):
    rng = np.random.default_rng(seed)
    n = per_class * len(CLASSES)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % len(CLASSES)
    for i in range(n):
        images[i] = render(labels[i], rng, size)
    return images, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--per-class', type=int, default=1200)
    ap.add_argument('--out', help='default /tmp/tessera-shapes-<size>.npz (/tmp/tessera-shapes.npz for 32)')
    ap.add_argument('--seed', type=int, default=SEED)
    a = ap.parse_args()
    if a.out is None:
        a.out = '/tmp/tessera-shapes.npz' if a.size == 32 else f'/tmp/tessera-shapes-{a.size}.npz'
    images, labels = make(a.per_class, a.size, a.seed)
    np.savez_compressed(a.out, images=images, labels=labels, classes=np.array(json.dumps(CLASSES)))
    print(f'{a.out}: {len(labels)} images, {os.path.getsize(a.out)} bytes')


if __name__ == '__main__':
    main()
