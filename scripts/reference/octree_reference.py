"""Independent float64 reference for the octree attention path (no ocnn, no
Tessera code): an octree built from sets of occupied cells, nempty
neighbours by coordinate lookup, OctFormer's block forward (dwconv CPE + BN,
windowed attention on materialised windows with the -1000 batch mask, MLP
with exact GELU) and OctGPT-style windowed attention with 3D RoPE and
shifted, dilated windows.

Writes test/fixtures/octree/block.safetensors. Run with Debian's PyTorch:
    /usr/bin/python3 scripts/reference/octree_reference.py
"""
import json
import math
import os
import struct

import torch

torch.manual_seed(7)
OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'octree')
DEPTH, FULL_DEPTH, BATCH = 5, 2, 2
C, HEADS, K = 24, 4, 8


def cloud():
    """Two samples: points on a sphere and on a box surface, with normals."""
    pts, nrm, bid = [], [], []
    n = torch.randn(300, 3, dtype=torch.float64)
    n = n / n.norm(dim=1, keepdim=True)
    pts.append(0.8 * n); nrm.append(n); bid.append(torch.zeros(300, dtype=torch.int32))
    p = torch.rand(200, 3, dtype=torch.float64) * 1.4 - 0.7
    face = torch.randint(0, 3, (200,))
    side = torch.randint(0, 2, (200,)).double() * 1.4 - 0.7
    p[torch.arange(200), face] = side
    nn_ = torch.zeros(200, 3, dtype=torch.float64)
    nn_[torch.arange(200), face] = torch.sign(side)
    pts.append(p); nrm.append(nn_); bid.append(torch.ones(200, dtype=torch.int32))
    return torch.cat(pts).float(), torch.cat(nrm).float(), torch.cat(bid)


def key(x, y, z, d):
    k = 0
    for i in range(d):
        k |= (((x >> i) & 1) << (3 * i + 2)) | (((y >> i) & 1) << (3 * i + 1)) | (((z >> i) & 1) << (3 * i))
    return k


def leaves(points, bids):
    """Non-empty depth-D nodes in (batch, key) order with their cell coordinates."""
    side = 2 ** DEPTH
    cells = set()
    for p, b in zip(points.tolist(), bids.tolist()):
        c = [min(int((v + 1.0) * side / 2), side - 1) for v in p]
        cells.add((b, key(*c, DEPTH), tuple(c)))
    return sorted(cells)


def neighbours(nodes):
    """nempty 27-slot table: slot 9(dx+1)+3(dy+1)+(dz+1), rank of the neighbour or -1."""
    rank = {(b, c): i for i, (b, _, c) in enumerate(nodes)}
    t = torch.full((len(nodes), 27), -1, dtype=torch.int64)
    for i, (b, _, (x, y, z)) in enumerate(nodes):
        for s in range(27):
            q = (b, (x + s // 9 - 1, y + (s // 3) % 3 - 1, z + s % 3 - 1))
            if q in rank:
                t[i, s] = rank[q]
    return t


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def windows(n_tokens, batch, k, dilation, shift):
    """OctFormer patch_partition + dilation (and OctGPT's K/2 leading fillers):
    a [W, K] table of token indices (-1 = filler/pad) and batch ids."""
    lead = k // 2 if shift else 0
    block = k * dilation
    length = -(-(lead + n_tokens) // block) * block
    idx = torch.full((length,), -1, dtype=torch.int64)
    idx[lead:lead + n_tokens] = torch.arange(n_tokens)
    b = torch.full((length,), BATCH, dtype=torch.int64)
    b[lead:lead + n_tokens] = batch
    if dilation > 1:
        idx = idx.view(-1, k, dilation).transpose(1, 2).reshape(-1)
        b = b.view(-1, k, dilation).transpose(1, 2).reshape(-1)
    return idx.view(-1, k), b.view(-1, k)


def window_attention(q, k, v, batch, kk, dilation, shift):
    n = q.shape[0]
    idx, b = windows(n, batch, kk, dilation, shift)
    W = idx.shape[0]
    def gather(t):
        g = torch.zeros(W, kk, t.shape[1], dtype=t.dtype)
        m = idx >= 0
        g[m] = t[idx[m]]
        return g.view(W, kk, HEADS, -1).transpose(1, 2)  # [W, H, K, d]
    qw, kw, vw = gather(q), gather(k), gather(v)
    logits = qw @ kw.transpose(-1, -2) / math.sqrt(qw.shape[-1])
    logits = logits + (b[:, None, :, None] != b[:, None, None, :]).double() * -1000.0
    o = torch.softmax(logits, -1) @ vw                   # [W, H, K, d]
    o = o.transpose(1, 2).reshape(W * kk, -1)
    out = torch.zeros(n, q.shape[1], dtype=q.dtype)
    flat = idx.reshape(-1)
    out[flat[flat >= 0]] = o[flat >= 0]
    return out


def block(x, nb, batch, w, dilation):
    C_ = x.shape[1]
    g = torch.zeros(x.shape[0], 27, C_, dtype=x.dtype)
    m = nb >= 0
    g[m] = x[nb[m]]
    conv = (g * w['cpe_weight'][None]).sum(1)
    bn = (conv - w['bn_mean']) / torch.sqrt(w['bn_var'] + 1e-5) * w['bn_weight'] + w['bn_bias']
    x = x + bn
    h = torch.nn.functional.layer_norm(x, (C_,), w['norm1_weight'], w['norm1_bias'], 1e-5)
    qkv = h @ w['qkv_weight'].T + w['qkv_bias']
    q, k, v = qkv[:, :C_], qkv[:, C_:2 * C_], qkv[:, 2 * C_:]
    a = window_attention(q, k, v, batch, K, dilation, False)
    x = x + a @ w['proj_weight'].T + w['proj_bias']
    h = torch.nn.functional.layer_norm(x, (C_,), w['norm2_weight'], w['norm2_bias'], 1e-5)
    m = gelu(h @ w['fc1_weight'].T + w['fc1_bias'])
    return x + m @ w['fc2_weight'].T + w['fc2_bias']


def rope(t, xyz, phi, theta):
    """OctGPT mixed 3D RoPE on [N, H·d] (interleaved pairs, d divisible by 6)."""
    d = t.shape[1] // HEADS
    F = d // 6
    mag = 100.0 ** (-(6.0 * torch.arange(F, dtype=torch.float64)) / d)
    out = t.clone().view(-1, HEADS, d // 2, 2)
    for h in range(HEADS):
        p, th = float(phi[h]), float(theta[h])
        fx = torch.cat([mag * math.sin(th) * math.cos(p), mag * math.sin(th) * math.cos(math.pi / 2 + p),
                        mag * math.sin(th + math.pi / 2) * math.cos(p)])
        fy = torch.cat([mag * math.sin(th) * math.sin(p), mag * math.sin(th) * math.sin(math.pi / 2 + p),
                        mag * math.sin(th + math.pi / 2) * math.sin(p)])
        fz = torch.cat([mag * math.cos(th), mag * math.cos(th), mag * math.cos(th + math.pi / 2)])
        ang = xyz[:, 0:1] * fx + xyz[:, 1:2] * fy + xyz[:, 2:3] * fz   # [N, 3F]
        a, b = out[:, h, :3 * F, 0].clone(), out[:, h, :3 * F, 1].clone()
        out[:, h, :3 * F, 0] = a * torch.cos(ang) - b * torch.sin(ang)
        out[:, h, :3 * F, 1] = a * torch.sin(ang) + b * torch.cos(ang)
    return out.view(t.shape)


def save(tensors, metadata, path):
    names = {torch.float32: 'F32', torch.int32: 'I32'}
    header, blobs, at = {'__metadata__': metadata}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[name] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def main():
    pts, nrm, bid = cloud()
    nodes = leaves(pts.double(), bid)
    n = len(nodes)
    batch = torch.tensor([b for b, _, _ in nodes])
    nb = neighbours(nodes)
    hidden = 4 * C
    r = lambda *s, scale=0.3: (torch.randn(*s, dtype=torch.float64) * scale).float()
    w32 = {
        'cpe_weight': r(27, C), 'bn_weight': 1 + r(C, scale=0.1), 'bn_bias': r(C, scale=0.1),
        'bn_mean': r(C, scale=0.1), 'bn_var': (torch.rand(C, dtype=torch.float64) + 0.5).float(),
        'norm1_weight': 1 + r(C, scale=0.1), 'norm1_bias': r(C, scale=0.1),
        'qkv_weight': r(3 * C, C), 'qkv_bias': r(3 * C, scale=0.1),
        'proj_weight': r(C, C), 'proj_bias': r(C, scale=0.1),
        'norm2_weight': 1 + r(C, scale=0.1), 'norm2_bias': r(C, scale=0.1),
        'fc1_weight': r(hidden, C), 'fc1_bias': r(hidden, scale=0.1),
        'fc2_weight': r(C, hidden, scale=0.15), 'fc2_bias': r(C, scale=0.1),
    }
    w = {k: v.double() for k, v in w32.items()}
    x = r(n, C, scale=1.0)
    out_d1 = block(x.double(), nb, batch, w, 1)
    out_d2 = block(x.double(), nb, batch, w, 2)
    # OctGPT attention: RoPE at cell centres of a 128 grid, shifted + dilated windows.
    xyz = torch.tensor([c for _, _, c in nodes], dtype=torch.float64)
    pos = (xyz + 0.5) * 128 / 2 ** DEPTH
    phi = torch.rand(HEADS, dtype=torch.float64) * 2 * math.pi
    theta = torch.rand(HEADS, dtype=torch.float64) * math.pi / 2
    phi, theta = phi.float().double(), theta.float().double()  # the angles the fixture stores
    q, k, v = r(n, C, scale=1.0), r(n, C, scale=1.0), r(n, C, scale=1.0)
    attn = window_attention(rope(q.double(), pos, phi, theta), rope(k.double(), pos, phi, theta), v.double(),
                            batch, K, 2, True)
    tensors = {'points': pts, 'normals': nrm, 'batch_ids': bid, 'x': x, 'neighbors': nb.int(),
               'keys_lo': torch.tensor([kk for _, kk, _ in nodes], dtype=torch.int32),
               'out_dilation1': out_d1.float(), 'out_dilation2': out_d2.float(),
               'q': q, 'k': k, 'v': v, 'phi': phi.float(), 'theta': theta.float(), 'attn_rope_shift_dil2': attn.float()}
    tensors.update({k: v for k, v in w32.items()})
    meta = {'depth': str(DEPTH), 'full_depth': str(FULL_DEPTH), 'batch_size': str(BATCH), 'channels': str(C),
            'heads': str(HEADS), 'window': str(K), 'generator': 'scripts/reference/octree_reference.py'}
    os.makedirs(OUT, exist_ok=True)
    save(tensors, meta, os.path.join(OUT, 'block.safetensors'))
    print('nodes', n, 'fixture bytes', os.path.getsize(os.path.join(OUT, 'block.safetensors')))


if __name__ == '__main__':
    main()
