"""Independent float64 reference of OctGPT's transformer forward (no ocnn, no
OctGPT or Tessera code), written from spec/octree.md section 4 and the
checkpoint layout in lib/models/octree/octgpt_config.ts:

  rows = [buffer: condition x B | tokens of depths F..d, masked -> condition]
  encoder on the unmasked rows (then its final norm), decoder on all rows
  (then its final norm), buffer dropped; heads on the last depth's rows.
  Block i: pos-emb added; attention with 3D RoPE (complex rotation of pairs
  (2j, 2j+1)) inside windows of K slots materialised here from a padded slot
  list (K/2 leading fillers when (i // 2) is odd, dilation when i is odd),
  a query seeing the real keys of its window whose depth <= its own; MLP
  with exact GELU.

Writes random checkpoints in the official key layout and the expected logits:
  test/fixtures/octree/octgpt_a.pth (LayerNorm, SinPosEmb)
  test/fixtures/octree/octgpt_b.pth (RMSNorm, AbsPosEmb)
  test/fixtures/octree/octgpt_expected.safetensors
Run with Debian's PyTorch:  /usr/bin/python3 scripts/reference/octgpt_reference.py
"""
import collections
import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'octree')
C, HEADS, BLOCKS, BITS, CLASSES, DEPTHS = 24, 2, 4, 6, 2, 3
FULL, K, DIL, BUFFER, GRID = 2, 8, 2, 4, 128
LABEL = 1


def random_state(norm, pos, gen):
    """A state dict with every parameter random (biases and gains too)."""
    sd = collections.OrderedDict()

    def rnd(*shape, std=0.05, mean=0.0):
        return (torch.randn(*shape, generator=gen) * std + mean).float()

    hd = C // HEADS
    sd['split_emb.weight'] = rnd(2, C, std=0.5)
    sd['class_emb.weight'] = rnd(CLASSES, C, std=0.5)
    sd['vq_proj.weight'] = rnd(C, BITS, std=0.3)
    sd['vq_proj.bias'] = rnd(C)
    for stack in ('encoder', 'decoder'):
        for i in range(BLOCKS):
            p = f'{stack}.layers.blocks.{i}'
            for n in ('norm1', 'norm2'):
                sd[f'{p}.{n}.weight'] = rnd(C, std=0.1, mean=1.0)
                if norm == 'layer':
                    sd[f'{p}.{n}.bias'] = rnd(C)
            sd[f'{p}.attention.qkv.weight'] = rnd(3 * C, C, std=0.3)
            sd[f'{p}.attention.qkv.bias'] = rnd(3 * C)
            sd[f'{p}.attention.proj.weight'] = rnd(C, C, std=0.2)
            sd[f'{p}.attention.proj.bias'] = rnd(C)
            sd[f'{p}.attention.rope.freqs'] = rnd(3, HEADS * 3 * (hd // 6), std=0.2)
            sd[f'{p}.mlp.fc1.weight'] = rnd(4 * C, C, std=0.2)
            sd[f'{p}.mlp.fc1.bias'] = rnd(4 * C)
            sd[f'{p}.mlp.fc2.weight'] = rnd(C, 4 * C, std=0.1)
            sd[f'{p}.mlp.fc2.bias'] = rnd(C)
            sd[f'{p}.pos_emb.depth_emb.weight'] = rnd(DEPTHS, C, std=0.3)
            if pos == 'abs':
                sd[f'{p}.pos_emb.absolute_emb'] = rnd(GRID, C, std=0.5)
        sd[f'{stack}_ln.weight'] = rnd(C, std=0.1, mean=1.0)
        if norm == 'layer':
            sd[f'{stack}_ln.bias'] = rnd(C)
    sd['split_head.weight'] = rnd(2, C, std=0.5)
    sd['split_head.bias'] = rnd(2)
    sd['vq_head.weight'] = rnd(2 * BITS, C, std=0.5)
    sd['vq_head.bias'] = rnd(2 * BITS)
    return sd


def cell_of(key, d):
    x = y = z = 0
    for i in range(d):
        x |= ((key >> (3 * i + 2)) & 1) << i
        y |= ((key >> (3 * i + 1)) & 1) << i
        z |= ((key >> (3 * i)) & 1) << i
    return x, y, z


def grow(keys, flags):
    """The 8 children (key << 3 | c) of every split node, in order."""
    return [(k << 3) | c for k, f in zip(keys, flags) if f for c in range(8)]


def norm_fn(x, sd, prefix, kind):
    w = sd[prefix + '.weight'].double()
    if kind == 'layer':
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * w + sd[prefix + '.bias'].double()
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w


def pos_emb(sd, p, xyz, depth, kind):
    n = xyz.shape[0]
    if kind == 'sin':
        ch = int(math.ceil(C / 6) * 2)
        out = torch.zeros(n, 3 * ch, dtype=torch.float64)
        for a in range(3):
            for j in range(ch // 2):
                ang = xyz[:, a] * (1.0 / 100 ** (2 * j / ch))
                out[:, a * ch + 2 * j] = torch.sin(ang)
                out[:, a * ch + 2 * j + 1] = torch.cos(ang)
        out = out[:, :C]
    else:
        table = sd[p + '.pos_emb.absolute_emb'].double()
        out = torch.zeros(n, C, dtype=torch.float64)
        for c in range(C):
            out[:, c] = table[xyz[:, c % 3].long(), c]
    return out + sd[p + '.pos_emb.depth_emb.weight'].double()[depth]


def rope(x, freqs, xyz):
    """x [n, H, hd]; pair j of head h turns by sum_a xyz[a] * freqs[a, h*3F + j]."""
    n, H, hd = x.shape
    half = hd // 2
    f = freqs.double().view(3, H, half)
    ang = torch.einsum('na,ahj->nhj', xyz, f)
    xc = torch.complex(x[..., 0::2], x[..., 1::2]) * torch.polar(torch.ones_like(ang), ang)
    out = torch.empty_like(x)
    out[..., 0::2] = xc.real
    out[..., 1::2] = xc.imag
    return out


def windows(n, shift, dil):
    """Token index per slot of every window (-1: filler or padding)."""
    slots = [-1] * (K // 2 if shift else 0) + list(range(n))
    block = K * dil
    slots += [-1] * ((-len(slots)) % block)
    out = []
    for b in range(0, len(slots), block):
        chunk = slots[b:b + block]
        for r in range(dil):
            out.append([chunk[s * dil + r] for s in range(K)])
    return out


def attention(q, k, v, depth, shift, dil):
    n, H, hd = q.shape
    out = torch.zeros_like(q)
    for win in windows(n, shift, dil):
        real = [t for t in win if t >= 0]
        if not real:
            continue
        idx = torch.tensor(real)
        dq = depth[idx]
        allowed = dq.unsqueeze(1) >= dq.unsqueeze(0)  # key depth <= query depth
        s = torch.einsum('qhd,khd->hqk', q[idx], k[idx]) / math.sqrt(hd)
        s = s.masked_fill(~allowed.unsqueeze(0), float('-inf'))
        out[idx] = torch.einsum('hqk,khd->qhd', torch.softmax(s, -1), v[idx])
    return out


def run_stack(sd, stack, x, xyz, depth, norm, pos):
    n = x.shape[0]
    hd = C // HEADS
    for i in range(BLOCKS):
        p = f'{stack}.layers.blocks.{i}'
        dil = 1 if i % 2 == 0 else DIL
        shift = (i // 2) % 2 == 1
        x = x + pos_emb(sd, p, xyz, depth, pos)
        h = norm_fn(x, sd, p + '.norm1', norm)
        qkv = h @ sd[p + '.attention.qkv.weight'].double().T + sd[p + '.attention.qkv.bias'].double()
        q, k, v = (qkv[:, j * C:(j + 1) * C].reshape(n, HEADS, hd) for j in range(3))
        q = rope(q, sd[p + '.attention.rope.freqs'], xyz)
        k = rope(k, sd[p + '.attention.rope.freqs'], xyz)
        a = attention(q, k, v, depth, shift, dil).reshape(n, C)
        x = x + a @ sd[p + '.attention.proj.weight'].double().T + sd[p + '.attention.proj.bias'].double()
        h = norm_fn(x, sd, p + '.norm2', norm)
        m = h @ sd[p + '.mlp.fc1.weight'].double().T + sd[p + '.mlp.fc1.bias'].double()
        m = 0.5 * m * (1 + torch.erf(m / math.sqrt(2)))
        x = x + m @ sd[p + '.mlp.fc2.weight'].double().T + sd[p + '.mlp.fc2.bias'].double()
    return x


def forward(sd, levels, emb, mask, norm, pos):
    """levels: keys per depth F..d; emb [n, C] float64; mask [n] bool. Hidden rows of the tokens."""
    cond = sd['class_emb.weight'].double()[LABEL]
    n = emb.shape[0]
    rows = torch.cat([cond.expand(BUFFER, C), torch.where(mask.unsqueeze(1), cond.expand(n, C), emb)])
    xyz = [[0.0, 0.0, 0.0]] * BUFFER
    depth = [0] * BUFFER
    for i, keys in enumerate(levels):
        d = FULL + i
        s = GRID // 2 ** d
        for key in keys:
            xyz.append([float(c * s + s // 2) for c in cell_of(key, d)])
            depth.append(i)
    xyz = torch.tensor(xyz, dtype=torch.float64)
    depth = torch.tensor(depth)
    keep = torch.cat([torch.ones(BUFFER, dtype=torch.bool), ~mask])
    xe = run_stack(sd, 'encoder', rows[keep], xyz[keep], depth[keep], norm, pos)
    rows = rows.clone()
    rows[keep] = norm_fn(xe, sd, 'encoder_ln', norm)
    xd = run_stack(sd, 'decoder', rows, xyz, depth, norm, pos)
    return norm_fn(xd, sd, 'decoder_ln', norm)[BUFFER:]


def scenario(sd, norm, pos, gen, code_depth):
    """Tokens of depths F..(F+1 or F+2): earlier depths decided, the last partly masked."""
    levels = [list(range(8 ** FULL))]
    flags = []
    last = FULL + 2 if code_depth else FULL + 1
    for d in range(FULL, last):
        f = (torch.rand(len(levels[-1]), generator=gen) < 0.35).int()
        flags.append(f)
        levels.append(grow(levels[-1], f.tolist()))
    split_emb = sd['split_emb.weight'].double()
    emb = [split_emb[f.long()] for f in flags]
    n_last = len(levels[-1])
    mask_last = torch.rand(n_last, generator=gen) < 0.5
    if code_depth:
        bits = (torch.rand(n_last, BITS, generator=gen) < 0.5).int()
        z = (bits.double() * 2 - 1) / math.sqrt(BITS)
        emb.append(z @ sd['vq_proj.weight'].double().T + sd['vq_proj.bias'].double())
        values = bits
    else:
        values = (torch.rand(n_last, generator=gen) < 0.5).int()
        emb.append(split_emb[values.long()])
    emb = torch.cat(emb)
    mask = torch.cat([torch.zeros(emb.shape[0] - n_last, dtype=torch.bool), mask_last])
    h = forward(sd, levels, emb, mask, norm, pos)[-n_last:]
    head = 'vq_head' if code_depth else 'split_head'
    logits = h @ sd[head + '.weight'].double().T + sd[head + '.bias'].double()
    return flags, values, mask_last, logits


def write_safetensors(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dt = {torch.float32: 'F32', torch.int32: 'I32'}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header['__metadata__'] = meta
    h = json.dumps(header).encode()
    h += b' ' * ((-len(h)) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def main():
    gen = torch.Generator().manual_seed(2025)
    out = {}
    for name, norm, pos, cases in (('a', 'layer', 'sin', ('split', 'code')), ('b', 'rms', 'abs', ('code',))):
        sd = random_state(norm, pos, gen)
        torch.save(sd, os.path.join(OUT, f'octgpt_{name}.pth'))
        for case in cases:
            flags, values, mask, logits = scenario(sd, norm, pos, gen, case == 'code')
            p = f'{name}_{case}'
            for i, f in enumerate(flags):
                out[f'{p}.flags{FULL + i}'] = f.int()
            out[f'{p}.values'] = values.int()
            out[f'{p}.mask'] = mask.int()
            out[f'{p}.logits'] = logits.float()
            print(p, 'tokens at the last depth', mask.numel(), 'logits', tuple(logits.shape))
    meta = {'width': str(C), 'heads': str(HEADS), 'blocks': str(BLOCKS), 'bits': str(BITS), 'fullDepth': str(FULL),
            'window': str(K), 'dilation': str(DIL), 'buffer': str(BUFFER), 'label': str(LABEL)}
    write_safetensors(os.path.join(OUT, 'octgpt_expected.safetensors'), out, meta)


if __name__ == '__main__':
    main()
