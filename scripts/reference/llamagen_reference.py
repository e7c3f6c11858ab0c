#!/usr/bin/python3
"""An independent PyTorch reference for LlamaGen class-conditional inference
(the Llama-style GPT and the VQ-16 tokenizer), written from
../../../shared/spec/llamagen-and-decoding.md section 1. Plain functions over
a flat state dict in the official key layout; every architecture fact comes
from tensor shapes (heads: see gpt_config). Runs in any float dtype; the
fixtures use float64 so Tessera's float32 path is measured against something
more exact than itself.

Conformance points: RMSNorm eps 1e-5; fused wqkv rows [q|k|v]; SwiGLU
w2(silu(w1 x) * w3 x); 2D RoPE on interleaved pairs, F = hd/4 frequencies per
axis, pair j < F turns by row * w_j and j >= F by col * w_(j-F), the class
slot's row cos = sin = 0; class table row `classes` is the null class; CFG
l = l_u + s (l_c - l_u) only when s > 1 (as the official generate());
GroupNorm 32 / eps 1e-6 + swish; pad right/bottom before the stride-2 conv;
nearest x2 then conv; L2-normalised codebook on both encode and decode."""
import math
import re

import torch
import torch.nn.functional as F

RMS_EPS = 1e-5
GN_GROUPS, GN_EPS = 32, 1e-6
ROPE_BASE = 10000.0
# Official configs by name (spec table): (layers, heads, dim).
OFFICIAL_GPT = {'GPT-B': (12, 12, 768), 'GPT-L': (24, 16, 1024), 'GPT-XL': (36, 20, 1280),
                'GPT-XXL': (48, 24, 1536), 'GPT-3B': (24, 32, 3200)}


# ------------------------------------------------------------------ GPT

def count(sd, pattern):
    ids = [int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m]
    return max(ids) + 1 if ids else 0


def gpt_config(sd, heads=None, args=None):
    """Shapes give layers, dim, vocabulary, classes and FFN width. Heads are
    not in any shape: an explicit `heads` wins, then args.gpt_model naming an
    official config, else head_dim 64 (100 when dim is 3200, GPT-3B)."""
    V, dim = sd['tok_embeddings.weight'].shape
    layers = count(sd, r'layers\.(\d+)\.')
    ffn = sd['layers.0.feed_forward.w1.weight'].shape[0]
    classes = sd['cls_embedding.embedding_table.weight'].shape[0] - 1
    if heads is None and args is not None and getattr(args, 'gpt_model', None) in OFFICIAL_GPT:
        heads = OFFICIAL_GPT[args.gpt_model][1]
    if heads is None:
        heads = dim // (100 if dim == 3200 else 64)
    assert dim % heads == 0 and (dim // heads) % 4 == 0
    assert sd['layers.0.attention.wqkv.weight'].shape == (3 * dim, dim), 'no GQA in c2i'
    return dict(vocab=V, dim=dim, layers=layers, ffn=ffn, classes=classes, heads=heads, hd=dim // heads)


def rope_2d(grid, hd, prefix=1):
    """cos, sin [prefix + grid^2, hd/2]: the class slots are all zero (the
    official table prepends zero rows, not angle-0 rows)."""
    nf = hd // 4
    w = ROPE_BASE ** (-2.0 * torch.arange(nf, dtype=torch.float64) / (hd // 2))
    t = torch.arange(grid * grid)
    r, c = (t // grid).double(), (t % grid).double()
    ang = torch.cat([r[:, None] * w[None], c[:, None] * w[None]], 1)
    z = torch.zeros(prefix, hd // 2, dtype=torch.float64)
    return torch.cat([z, ang.cos()]), torch.cat([z, ang.sin()])


def rope(x, cos, sin):
    """x [B, L, H, hd]; cos/sin [L, hd/2]; rotates pairs (2j, 2j+1)."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = b * c + a * s
    return out


def rms_norm(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + RMS_EPS) * w


class Cache:
    """Per-layer K/V [B, H, len, hd] grown by concatenation (a plain list: the
    reference needs no fixed storage), with truncation for speculative tests."""
    def __init__(self, layers):
        self.k = [None] * layers
        self.v = [None] * layers

    @property
    def length(self):
        return 0 if self.k[0] is None else self.k[0].shape[2]


def gpt_step(sd, cfg, x, pos, cos, sin, cache):
    """x [B, n, dim] embeddings of slots `pos` (a list: the slots follow the
    cached ones); returns logits [B, n, V]. Causal over cache + new."""
    B, n, _ = x.shape
    H, hd, d = cfg['heads'], cfg['hd'], cfg['dim']
    c, s = cos[pos], sin[pos]
    past = cache.length
    allowed = torch.arange(past + n)[None, :] <= (past + torch.arange(n))[:, None]
    for i in range(cfg['layers']):
        p = f'layers.{i}.'
        h = rms_norm(x, sd[p + 'attention_norm.weight'])
        qkv = h @ sd[p + 'attention.wqkv.weight'].T
        q, k, v = (t.reshape(B, n, H, hd) for t in qkv.split(d, -1))
        q, k = rope(q, c, s), rope(k, c, s)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if cache.k[i] is not None:
            k, v = torch.cat([cache.k[i], k], 2), torch.cat([cache.v[i], v], 2)
        cache.k[i], cache.v[i] = k, v
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(~allowed, float('-inf')).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, n, d)
        x = x + o @ sd[p + 'attention.wo.weight'].T
        h = rms_norm(x, sd[p + 'ffn_norm.weight'])
        f = F.silu(h @ sd[p + 'feed_forward.w1.weight'].T) * (h @ sd[p + 'feed_forward.w3.weight'].T)
        x = x + f @ sd[p + 'feed_forward.w2.weight'].T
    return rms_norm(x, sd['norm.weight']) @ sd['output.weight'].T


def truncate(cache, length):
    for i in range(len(cache.k)):
        cache.k[i], cache.v[i] = cache.k[i][:, :, :length], cache.v[i][:, :, :length]


def class_rows(cfg, labels):
    """Slot-0 ids: a label < 0 is the null class (table row `classes`)."""
    return torch.tensor([cfg['classes'] if int(l) < 0 else int(l) for l in labels])


def cfg_rows(cfg, labels, guided):
    """The CFG batch: conditional rows, then as many null-class rows."""
    ids = class_rows(cfg, labels)
    return torch.cat([ids, torch.full_like(ids, cfg['classes'])]) if guided else ids


def logits_teacher_forced(sd, cfg, labels, ids, grid, guided=True):
    """One causal pass over [class, ids[:, :-1]] (no cache): raw logits
    [rows, G^2, V] for the rows of cfg_rows; the uncond rows see the same ids."""
    rows = cfg_rows(cfg, labels, guided)
    toks = ids.repeat(2, 1) if guided else ids
    x = torch.cat([sd['cls_embedding.embedding_table.weight'][rows][:, None], sd['tok_embeddings.weight'][toks[:, :-1]]], 1)
    cos, sin = rope_2d(grid, cfg['hd'])
    return gpt_step(sd, cfg, x, list(range(grid * grid)), cos, sin, Cache(cfg['layers']))


def guide(logits, B, scale):
    if scale > 1:
        u, c = logits[B:], logits[:B]
        return u + scale * (c - u)
    return logits


def decode_ar(sd, cfg, labels, grid, scale, pick):
    """Prefill with the class slot, then one token per pass with the cache.
    `pick(t, guided [B, V]) -> ids [B]`. Returns tokens [B, G^2]."""
    B, N = len(labels), grid * grid
    guided = scale > 1
    cos, sin = rope_2d(grid, cfg['hd'])
    cache = Cache(cfg['layers'])
    x = sd['cls_embedding.embedding_table.weight'][cfg_rows(cfg, labels, guided)][:, None]
    logits = gpt_step(sd, cfg, x, [0], cos, sin, cache)[:, -1]
    out = []
    for t in range(N):
        tok = pick(t, guide(logits, B, scale))
        out.append(tok)
        if t == N - 1:
            break
        feed = tok.repeat(2) if guided else tok
        logits = gpt_step(sd, cfg, sd['tok_embeddings.weight'][feed][:, None], [1 + t], cos, sin, cache)[:, -1]
    return torch.stack(out, 1)


def greedy_picker(gaps):
    def pick(t, g):
        top = g.topk(2, -1).values
        gaps.append(float((top[:, 0] - top[:, 1]).min()))
        return g.argmax(-1)
    return pick


# ---------------------------------------------- sampling (Tessera's definition)

M32 = 0xFFFFFFFF


def philox_uniform(seed, row, step):
    """Philox4x32-10 keyed by seed, counter (row, step); top 53 bits of words
    0..1 as a double in [0, 1) (native/include/tessera/sampling.h)."""
    c0, c1, c2, c3 = row & M32, (row >> 32) & M32, step & M32, (step >> 32) & M32
    k0, k1 = seed & M32, (seed >> 32) & M32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c2, c1, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p1 & M32, p0 & M32
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return (((c1 << 32) | c0) >> 11) / 9007199254740992.0


def processed_probs(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Spec section 1 'Sampling' on one row [V], float64: divide by
    max(T, 1e-5), keep logits >= the k-th largest, top-p keeping the first
    token past the threshold, softmax over the kept entries."""
    x = logits.double() / max(temperature, 1e-5)
    V = x.numel()
    keep = torch.ones(V, dtype=torch.bool)
    if 0 < top_k < V:
        keep &= x >= x.topk(top_k).values[-1]
    if 0 < top_p < 1:
        order = sorted(range(V), key=lambda i: (-float(x[i]), i))
        order = [i for i in order if keep[i]]
        p = torch.softmax(x[order], 0)
        before = torch.cumsum(p, 0) - p
        keep2 = torch.zeros(V, dtype=torch.bool)
        for r, i in enumerate(order):
            keep2[i] = r == 0 or bool(before[r] <= top_p)
        keep &= keep2
    e = torch.where(keep, torch.exp(x - x[keep].max()), torch.zeros_like(x))
    return e / e.sum()


def multinomial(p, u, margins):
    """First i with cumsum(p)_i > u; records the distance of u to the nearest
    cumulative boundary (how unambiguous the draw is)."""
    cs = torch.cumsum(p, 0)
    margins.append(float((cs - u).abs().min()))
    return int((cs > u).nonzero()[0])


def seeded_picker(seed, temperature, top_k, top_p, margins):
    """Image b draws u = philox(seed + b, row 0, step t), as Tessera does."""
    def pick(t, g):
        ids = []
        for b in range(g.shape[0]):
            p = processed_probs(g[b], temperature, top_k, top_p)
            ids.append(multinomial(p, philox_uniform(seed + b, 0, t), margins))
        return torch.tensor(ids)
    return pick


# ------------------------------------------------------------------ VQ

def vq_config(sd):
    levels = count(sd, r'encoder\.conv_blocks\.(\d+)\.')
    return dict(levels=levels, res=count(sd, r'encoder\.conv_blocks\.0\.res\.(\d+)\.'),
                vocab=sd['quantize.embedding.weight'].shape[0], code_dim=sd['quantize.embedding.weight'].shape[1])


def conv(sd, name, x, stride=1, pad=None):
    w = sd[name + '.weight']
    if pad is None:
        pad = w.shape[-1] // 2
    return F.conv2d(x, w, sd[name + '.bias'], stride=stride, padding=pad)


def gn_swish(sd, name, x, swish=True):
    h = F.group_norm(x, GN_GROUPS, sd[name + '.weight'], sd[name + '.bias'], GN_EPS)
    return h * torch.sigmoid(h) if swish else h


def res_block(sd, p, x):
    h = conv(sd, p + '.conv1', gn_swish(sd, p + '.norm1', x))
    h = conv(sd, p + '.conv2', gn_swish(sd, p + '.norm2', h))
    if p + '.nin_shortcut.weight' in sd:
        x = conv(sd, p + '.nin_shortcut', x)
    return x + h


def attn_block(sd, p, x):
    """Single head over the h*w positions, 1x1 q/k/v/proj_out, scale C^-1/2."""
    B, C, H, W = x.shape
    h = gn_swish(sd, p + '.norm', x, swish=False)
    q, k, v = (conv(sd, f'{p}.{n}', h).reshape(B, C, H * W) for n in 'qkv')
    a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(C), -1)  # [B, i, j]
    o = (v @ a.transpose(1, 2)).reshape(B, C, H, W)
    return x + conv(sd, p + '.proj_out', o)


def encode(sd, img):
    """img [B, 3, H, W] in [-1, 1] -> quant_conv(encoder(img)) [B, D, H/f, W/f]."""
    c = vq_config(sd)
    h = conv(sd, 'encoder.conv_in', img)
    for i in range(c['levels']):
        p = f'encoder.conv_blocks.{i}'
        for j in range(c['res']):
            h = res_block(sd, f'{p}.res.{j}', h)
            if f'{p}.attn.{j}.q.weight' in sd:
                h = attn_block(sd, f'{p}.attn.{j}', h)
        if i != c['levels'] - 1:
            h = conv(sd, p + '.downsample.conv', F.pad(h, (0, 1, 0, 1)), stride=2, pad=0)
    h = res_block(sd, 'encoder.mid.0', h)
    h = attn_block(sd, 'encoder.mid.1', h)
    h = res_block(sd, 'encoder.mid.2', h)
    h = conv(sd, 'encoder.conv_out', gn_swish(sd, 'encoder.norm_out', h))
    return conv(sd, 'quant_conv', h)


def quantize(sd, z):
    """Nearest L2-normalised code for each L2-normalised z vector: ids
    [B, h, w] and the smallest gap between best and second-best distance."""
    e = F.normalize(sd['quantize.embedding.weight'], dim=-1)
    zf = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
    d = (zf[:, None, :] - e[None]).pow(2).sum(-1)
    two = d.topk(2, -1, largest=False).values
    return d.argmin(-1).reshape(z.shape[0], z.shape[2], z.shape[3]), float((two[:, 1] - two[:, 0]).min())


def decode(sd, zq):
    c = vq_config(sd)
    h = conv(sd, 'decoder.conv_in', conv(sd, 'post_quant_conv', zq))
    h = res_block(sd, 'decoder.mid.0', h)
    h = attn_block(sd, 'decoder.mid.1', h)
    h = res_block(sd, 'decoder.mid.2', h)
    for i in range(c['levels']):  # conv_blocks.0 is the deepest level
        p = f'decoder.conv_blocks.{i}'
        for j in range(c['res'] + 1):
            h = res_block(sd, f'{p}.res.{j}', h)
            if f'{p}.attn.{j}.q.weight' in sd:
                h = attn_block(sd, f'{p}.attn.{j}', h)
        if i != c['levels'] - 1:
            h = conv(sd, p + '.upsample.conv', F.interpolate(h, scale_factor=2.0, mode='nearest'))
    return conv(sd, 'decoder.conv_out', gn_swish(sd, 'decoder.norm_out', h))


def decode_code(sd, ids):
    """ids [B, h, w] -> image [B, 3, h*f, w*f] (not clamped; the official
    save_image clamps to [-1, 1] before writing)."""
    e = F.normalize(sd['quantize.embedding.weight'], dim=-1)
    return decode(sd, e[ids].permute(0, 3, 1, 2).contiguous())


# -------------------------------- NAR: next-neighbour (diagonal) order (spec 5)

def nar_layers(sd):
    """(n_layer, has_vertical): a NAR checkpoint carries one block more,
    layers.{n_layer}, plus medusa_norm / medusa_output (the vertical head)."""
    n = count(sd, r'layers\.(\d+)\.')
    return (n - 1, True) if 'medusa_output.weight' in sd else (n, False)


def nar_distance(grid, slots):
    """Manhattan distance r + c of each slot (slot 0, the class, is -1)."""
    return torch.tensor([-1 if s == 0 else ((s - 1) // grid + (s - 1) % grid) for s in slots])


def block(sd, cfg, i, x, c, s, allowed):
    """One pre-norm Llama block over x [B, n, dim] with a boolean mask [n, n]."""
    B, n, _ = x.shape
    H, hd, d = cfg['heads'], cfg['hd'], cfg['dim']
    p = f'layers.{i}.'
    h = rms_norm(x, sd[p + 'attention_norm.weight'])
    q, k, v = (t.reshape(B, n, H, hd) for t in (h @ sd[p + 'attention.wqkv.weight'].T).split(d, -1))
    q, k = rope(q, c, s), rope(k, c, s)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    att = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(~allowed, float('-inf')).softmax(-1)
    x = x + (att @ v).transpose(1, 2).reshape(B, n, d) @ sd[p + 'attention.wo.weight'].T
    h = rms_norm(x, sd[p + 'ffn_norm.weight'])
    return x + (F.silu(h @ sd[p + 'feed_forward.w1.weight'].T) * (h @ sd[p + 'feed_forward.w3.weight'].T)) @ sd[p + 'feed_forward.w2.weight'].T


def nar_forward(sd, cfg, x, slots, grid):
    """x [B, n, dim]: the inputs of `slots` (slot 0 = class, 1 + t = raster
    token t; any subset, any order), no cache. Slot i attends to slot j iff
    dist(j) <= dist(i) (the class, distance -1, to itself only; everyone sees
    the class). RoPE rows are the raster slots. Returns (right, down) raw
    logits [B, n, V]: right = norm/output after the n_layer blocks (predicts
    (r, c+1)); down = block n_layer, medusa_norm, medusa_output on the same
    hidden state (predicts (r+1, c))."""
    layers, vertical = nar_layers(sd)
    assert vertical, 'not a NAR checkpoint: no medusa_output.weight'
    cos, sin = rope_2d(grid, cfg['hd'])
    c, s = cos[slots], sin[slots]
    dist = nar_distance(grid, slots)
    allowed = dist[None, :] <= dist[:, None]
    for i in range(layers):
        x = block(sd, cfg, i, x, c, s, allowed)
    right = rms_norm(x, sd['norm.weight']) @ sd['output.weight'].T
    y = block(sd, cfg, layers, x, c, s, allowed)
    down = rms_norm(y, sd['medusa_norm.weight']) @ sd['medusa_output.weight'].T
    return right, down


def nar_config(sd):
    layers, _ = nar_layers(sd)
    cfg = gpt_config(sd)
    cfg['layers'] = layers
    return cfg


def nar_cell_logits(right, down, index, r, c, grid):
    """Raw logits [B, V] for cell (r, c) from the outputs of the slots listed
    in `index` (slot -> column of right/down): (0, 0) the mean of both heads
    on the class; row 0 the right head of the left cell; column 0 the down
    head of the cell above; interior cells the mean of both."""
    if r == 0 and c == 0:
        return (right[:, index[0]] + down[:, index[0]]) / 2
    left = index.get(1 + r * grid + c - 1) if c > 0 else None
    up = index.get(1 + (r - 1) * grid + c) if r > 0 else None
    if up is None:
        return right[:, left]
    if left is None:
        return down[:, up]
    return (right[:, left] + down[:, up]) / 2


def decode_nar(sd, labels, grid, scale, pick):
    """Diagonal decoding by full recomputation (no cache): step d computes
    every cell of anti-diagonal d from the slots of diagonals < d; 2G - 1
    steps. `pick(d, guided [B·cells, V]) -> ids`, cells in row order."""
    cfg = nar_config(sd)
    B = len(labels)
    guided = scale > 1
    rows = cfg_rows(cfg, labels, guided)
    tokens = torch.zeros(B, grid * grid, dtype=torch.long)
    for d in range(2 * grid - 1):
        slots = [0] + [1 + r * grid + c for r in range(grid) for c in range(grid) if r + c < d]
        toks = tokens.repeat(2, 1) if guided else tokens
        x = torch.cat([sd['cls_embedding.embedding_table.weight'][rows][:, None],
                       sd['tok_embeddings.weight'][toks[:, [s - 1 for s in slots[1:]]]]], 1)
        right, down = nar_forward(sd, cfg, x, slots, grid)
        index = {s: j for j, s in enumerate(slots)}
        cells = [(r, d - r) for r in range(grid) if 0 <= d - r < grid]
        raw = torch.stack([nar_cell_logits(right, down, index, r, c, grid) for r, c in cells], 1)  # [rows, cells, V]
        g = guide(raw, B, scale)  # [B, cells, V]
        ids = pick(d, g.reshape(B * len(cells), -1)).reshape(B, len(cells))
        for j, (r, c) in enumerate(cells):
            tokens[:, r * grid + c] = ids[:, j]
    return tokens
