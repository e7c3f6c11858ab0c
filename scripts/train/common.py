"""Shared pieces of the tiny-VAR training scripts: the dataset, the VQVAE
state dict in the official layout (trainable), the multi-scale residual
quantizer as trained by the official VAR (VectorQuantizer2.forward), and the
checkpoint writers. The forward passes are var_reference.py's (encode,
decode, Phi, the transformer blocks), applied to trainable tensors."""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'reference'))
import var_reference as R  # noqa: E402,F401

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
MODEL_DIR = os.path.join(ROOT, 'models', 'tiny-var')
WORK = os.environ.get('TESSERA_TRAIN_DIR', '/tmp/tessera-train')
# The 32x32 set (make_dataset.py --size 32): the tiny LlamaGen's.
DATASET = os.environ.get('TESSERA_DATASET', '/tmp/tessera-shapes.npz')
# The tiny VAR's set (make_dataset.py, default --size 64).
DATASET_VAR = os.environ.get('TESSERA_DATASET', '/tmp/tessera-shapes-64.npz')

# The shipped tiny VAR: 64x64 images, 8x8 latents (3 downsamples), six
# scales. The first (32x32) model was ch_mult (1, 1, 2) on 32x32 images; the
# 64x64 one grows it by a full-resolution level (train_vqvae.py --grow-from).
SCHEDULE = (1, 2, 3, 4, 6, 8)
VAE = dict(ch=32, mult=(1, 1, 1, 2), nrb=1, z=16, vocab=256, phi_convs=4)
BETA = 0.25  # commitment weight, as in VAR's VectorQuantizer2


def setup(threads=2, seed=0):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    os.makedirs(WORK, exist_ok=True)


def load_dataset(path=DATASET):
    """images float32 [N,3,size,size] in [-1,1], labels int64 [N], class names."""
    d = np.load(path)
    x = torch.from_numpy(d['images']).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, torch.from_numpy(d['labels']).long(), json.loads(str(d['classes']))


def make_vae(g, cfg=VAE):
    """Fresh VQVAE tensors in the official key layout (VAR's vqvae.py:
    Encoder/Decoder with GroupNorm-32 ResnetBlocks, mid attention, conv
    downsample / nearest upsample, quant_conv, post_quant_conv, codebook and
    the shared Phi convolutions)."""
    sd = {}
    ch, mult, nrb, Z = cfg['ch'], cfg['mult'], cfg['nrb'], cfg['z']

    def conv(name, cout, cin, k=3, gain=1.0):
        w = torch.randn(cout, cin, k, k, generator=g) * gain * math.sqrt(2 / (cin * k * k))
        sd[name + '.weight'], sd[name + '.bias'] = w, torch.zeros(cout)

    def norm(name, c):
        sd[name + '.weight'], sd[name + '.bias'] = torch.ones(c), torch.zeros(c)

    def resnet(p, cin, cout):
        norm(p + '.norm1', cin); conv(p + '.conv1', cout, cin)
        norm(p + '.norm2', cout); conv(p + '.conv2', cout, cout, gain=0.1)
        if cin != cout:
            conv(p + '.nin_shortcut', cout, cin, 1)

    def attn(p, c):
        norm(p + '.norm', c); conv(p + '.qkv', 3 * c, c, 1, gain=0.5); conv(p + '.proj_out', c, c, 1, gain=0.1)

    conv('encoder.conv_in', ch, 3)
    cin = ch
    for i, m in enumerate(mult):
        for j in range(nrb):
            resnet(f'encoder.down.{i}.block.{j}', cin, ch * m); cin = ch * m
        if i != len(mult) - 1:
            conv(f'encoder.down.{i}.downsample.conv', cin, cin)
    resnet('encoder.mid.block_1', cin, cin); attn('encoder.mid.attn_1', cin); resnet('encoder.mid.block_2', cin, cin)
    norm('encoder.norm_out', cin); conv('encoder.conv_out', Z, cin, gain=0.5)
    conv('decoder.conv_in', cin, Z)
    resnet('decoder.mid.block_1', cin, cin); attn('decoder.mid.attn_1', cin); resnet('decoder.mid.block_2', cin, cin)
    for i in reversed(range(len(mult))):
        for j in range(nrb + 1):
            resnet(f'decoder.up.{i}.block.{j}', cin, ch * mult[i]); cin = ch * mult[i]
        if i != 0:
            conv(f'decoder.up.{i}.upsample.conv', cin, cin)
    norm('decoder.norm_out', cin); conv('decoder.conv_out', 3, cin, gain=0.5)
    sd['quantize.embedding.weight'] = torch.randn(cfg['vocab'], Z, generator=g) * 0.1
    for k in range(cfg['phi_convs']):
        conv(f'quantize.quant_resi.qresi_ls.{k}', Z, Z, gain=0.3)
    conv('quant_conv', Z, Z); conv('post_quant_conv', Z, Z)
    return sd


def nearest(z, E):
    """z [N,C], E [V,C] -> argmin_v |z - E_v|^2 (first index on ties)."""
    d = (z * z).sum(1, keepdim=True) - 2 * z @ E.t() + (E * E).sum(1)[None]
    return d.argmin(1)


def parse_schedule(text):
    return tuple(int(v) for v in text.split(','))


def msvq(sd, f, schedule=None, train=True):
    """VAR's multi-scale residual quantization (VectorQuantizer2.forward):
    per scale, area-downsample the residual, take the nearest codes, bicubic
    up, Phi, add to f_hat. Returns the straight-through f_hat, the VQ loss
    (beta * commitment + codebook, averaged over scales), the per-scale ids
    and the teacher-forcing inputs area(f_hat -> next pn) of scales 1..SN-1
    ([B, L-1, C], what VAR's word_embed reads)."""
    schedule = schedule or SCHEDULE
    B, C, H, W = f.shape
    SN = len(schedule)
    E = sd['quantize.embedding.weight']
    f_ng = f.detach()
    f_rest, f_hat = f_ng.clone(), torch.zeros_like(f_ng)
    loss, ids, inputs = 0.0, [], []
    for si, pn in enumerate(schedule):
        z = F.interpolate(f_rest, size=(pn, pn), mode='area') if si != SN - 1 else f_rest
        idx = nearest(z.permute(0, 2, 3, 1).reshape(-1, C), E.detach()).view(B, pn * pn)
        ids.append(idx)
        h = E[idx].view(B, pn, pn, C).permute(0, 3, 1, 2)
        if si != SN - 1:
            h = F.interpolate(h, size=(H, W), mode='bicubic', align_corners=False)
        h = R.phi(sd, si, SN, h)
        f_hat = f_hat + h
        f_rest = f_rest - h.detach()
        if train:
            loss = loss + BETA * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_ng)
        if si != SN - 1:
            inputs.append(F.interpolate(f_hat.detach(), size=(schedule[si + 1],) * 2, mode='area').flatten(2).transpose(1, 2))
    f_st = (f_hat.detach() - f_ng) + f if train else f_hat
    return f_st, loss / SN, ids, torch.cat(inputs, 1) if inputs else None


def save_torch(sd, path, dtype):
    torch.save({k: (v.detach().to(dtype) if v.is_floating_point() else v).clone().contiguous() for k, v in sd.items()}, path)


def save_safetensors(sd, path, dtype, metadata=None):
    """A minimal safetensors writer (8-byte little-endian header size, JSON
    header with sorted data offsets, raw little-endian data)."""
    names = {torch.float32: 'F32', torch.float16: 'F16', torch.int64: 'I64', torch.int32: 'I32'}
    header, blobs, at = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for k, t in sd.items():
        t = t.detach()
        t = (t.to(dtype) if t.is_floating_point() else t).contiguous()
        b = t.numpy().tobytes()
        header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def lr_at(peak, step, frac):
    """The generative runs' schedule: 100-step linear warm-up, then a cosine
    from the peak to 2% of it over frac in [0, 1] (the time budget or --steps)."""
    return peak * min(1, (step + 1) / 100) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
