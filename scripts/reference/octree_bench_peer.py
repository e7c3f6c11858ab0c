"""PyTorch peer for `tessera bench octree` (run by the bench; prints one JSON
line). Written here, not taken from ocnn:
  build: ocnn's recipe in plain torch ops - quantise, shuffled keys by bit
    spreading, sort + unique_consecutive (inverse, counts), depth-D means by
    index_add, then per depth unique parents (key >> 3) with 8 children each
    and the children table by scatter; dense depths 0..F.
  attention: OctFormer windows as a reshape [N/K, K, H, d] (tokens already in
    window order, one sample) and softmax(q kᵀ/√d) v per window in chunks.
The build reads the bench's own cloud: a float32 file of N·3 points then N·3 normals.
  /usr/bin/python3 scripts/reference/octree_bench_peer.py build <cloud.f32> <depth> <full_depth> <runs> <threads>
  /usr/bin/python3 scripts/reference/octree_bench_peer.py attention <tokens> <K> <C> <H> <runs> <threads>
"""
import json
import math
import statistics
import sys
import time

import numpy
import torch


def spread3(v):
    v = v & 0xffff
    v = (v | (v << 16)) & 0xff0000ff
    v = (v | (v << 8)) & 0x00f00f00f00f
    v = (v | (v << 4)) & 0x0c30c30c30c3
    v = (v | (v << 2)) & 0x249249249249
    return v


def build(points, normals, depth, full_depth):
    scale = 2 ** (depth - 1)
    cell = ((points + 1) * scale).long().clamp_(0, 2 ** depth - 1)
    key = (spread3(cell[:, 0]) << 2) | (spread3(cell[:, 1]) << 1) | spread3(cell[:, 2])
    skey, order = torch.sort(key)
    ukey, inverse, counts = torch.unique_consecutive(skey, return_inverse=True, return_counts=True)
    n = ukey.numel()
    pts = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, inverse, (points[order].double() + 1) * scale)
    pts = (pts / counts.unsqueeze(1)).float()
    nrm = torch.zeros(n, 3).index_add_(0, inverse, normals[order])
    nrm = torch.nn.functional.normalize(nrm, dim=1)
    keys, children = {}, {}
    node = ukey
    for d in range(depth, full_depth, -1):
        parent, pinv = torch.unique_consecutive(node >> 3, return_inverse=True)
        keys[d] = ((parent << 3).unsqueeze(1) | torch.arange(8)).reshape(-1)
        ch = torch.full((parent.numel() * 8,), -1, dtype=torch.int32)
        ch[pinv * 8 + (node & 7)] = torch.arange(node.numel(), dtype=torch.int32)
        children[d] = ch
        node = parent
    for d in range(full_depth + 1):
        keys[d] = torch.arange(8 ** d)
        children[d] = torch.arange(8 ** d, dtype=torch.int32)
    ch = torch.full((8 ** full_depth,), -1, dtype=torch.int32)
    ch[node] = torch.arange(node.numel(), dtype=torch.int32)
    children[full_depth] = ch
    return keys, children, pts, nrm


def cloud(path):
    a = torch.from_numpy(numpy.fromfile(path, dtype=numpy.float32))
    n = a.numel() // 6
    return a[:3 * n].view(n, 3), a[3 * n:].view(n, 3)


def attention(q, k, v, K, H, chunk_windows=64):
    N, C = q.shape
    d = C // H
    W = N // K
    out = torch.empty_like(q)
    qw, kw, vw = (t.view(W, K, H, d).transpose(1, 2) for t in (q, k, v))
    ow = out.view(W, K, H, d)
    for w0 in range(0, W, chunk_windows):
        w1 = min(W, w0 + chunk_windows)
        s = torch.matmul(qw[w0:w1], kw[w0:w1].transpose(-1, -2)) * (1 / math.sqrt(d))
        ow[w0:w1] = torch.matmul(torch.softmax(s, -1), vw[w0:w1]).transpose(1, 2)
    return out


def main():
    what = sys.argv[1]
    if what == 'build':
        depth, full, runs, threads = (int(x) for x in sys.argv[3:7])
        torch.set_num_threads(threads)
        p, nrm = cloud(sys.argv[2])
        build(p, nrm, depth, full)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            keys, _, _, _ = build(p, nrm, depth, full)
            ts.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({'what': 'build', 'ms': statistics.median(ts), 'nnum': [int(keys[d].numel()) for d in range(depth + 1)],
                          'torch': torch.__version__, 'threads': threads}))
    else:
        n, K, C, H, runs, threads = (int(x) for x in sys.argv[2:8])
        torch.set_num_threads(threads)
        n = (n + K - 1) // K * K
        g = torch.Generator().manual_seed(2)
        q, k, v = (torch.randn(n, C, generator=g) for _ in range(3))
        attention(q, k, v, K, H)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            attention(q, k, v, K, H)
            ts.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({'what': 'attention', 'ms': statistics.median(ts), 'tokens': n, 'torch': torch.__version__, 'threads': threads}))


if __name__ == '__main__':
    main()
