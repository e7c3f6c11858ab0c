#!/usr/bin/python3
"""Trains the VQ tokenizer of Tessera's embedded tiny LlamaGen on the shapes
set (make_dataset.py, 32x32) in LlamaGen's VQModel layout, and writes
$TESSERA_TRAIN_DIR/llamagen_vq.pt as {"model": state_dict}.

    /usr/bin/python3 scripts/train/train_llamagen_vq.py [--minutes 15] [--batch 32] [--threads 1]
    /usr/bin/python3 scripts/train/train_llamagen_vq.py --eval   (PSNR and code use on the held-out images)

Architecture (the official Encoder/Decoder/VectorQuantizer, small): ch 32,
ch_mult (1, 1, 2) -> three levels, downsampling 4, so a 32x32 image is an
8x8 grid of 64 tokens; 1 res block per encoder level (2 per decoder level,
official num_res_blocks + 1), single-head attention at the deepest level and
in mid (Res-Attn-Res), GroupNorm 32 / eps 1e-6 + swish, pad-right-bottom
stride-2 downsampling, nearest x2 + conv upsampling, z_channels 64, codebook
512 x 8 with L2-normalised codes (codebook_l2_norm, as VQ-16). Keys as in
vq_ds16_c2i.pt: encoder.conv_blocks.{i}.res.{j}.*, .attn.{j}.{norm,q,k,v,proj_out},
.downsample.conv / .upsample.conv, encoder.mid.{0,1,2}, quantize.embedding.weight,
quant_conv, post_quant_conv. The forward passes are llamagen_reference.py's
(encode, decode), applied to trainable tensors.

Losses: L1 + MSE on pixels and the official quantizer losses (codebook term
mean((z_q - sg z)^2) + commitment 0.25 mean((sg z_q - z)^2), both on the
L2-normalised vectors, straight-through z_q). The official recipe adds LPIPS
and a PatchGAN loss; on flat-coloured shapes the pixel losses suffice (as for
the tiny VAR's VQVAE). The codebook starts from encoder outputs and codes
unused for 200 steps are restarted at random encoder outputs of the current
batch. The last 500 images of the set are held out (never trained on).
The run stops at --steps or after --minutes (the learning rate follows a
cosine over that budget) and checkpoints every 100 steps; --init continues
from a checkpoint with a fresh cosine (a second stage)."""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import common as C  # noqa: E402  (dataset, checkpoint writers, $TESSERA_TRAIN_DIR)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'reference'))
import llamagen_reference as R  # noqa: E402

ARCH = dict(ch=32, mult=(1, 1, 2), nrb=1, z=64, vocab=512, code_dim=8)
BETA = 0.25       # commitment weight (LlamaGen's commit_loss_beta)
HELD_OUT = 500    # the last images of the set
VQ_FILE = 'llamagen_vq.pt'


def make_vq(g, a=ARCH):
    """Fresh VQModel tensors in the official key layout (LlamaGen vq_model.py)."""
    sd = {}
    ch, mult, nrb, Z = a['ch'], a['mult'], a['nrb'], a['z']

    def conv(name, cout, cin, k=3, gain=1.0):
        sd[name + '.weight'] = torch.randn(cout, cin, k, k, generator=g) * gain * math.sqrt(2 / (cin * k * k))
        sd[name + '.bias'] = torch.zeros(cout)

    def norm(name, c):
        sd[name + '.weight'], sd[name + '.bias'] = torch.ones(c), torch.zeros(c)

    def res(p, cin, cout):
        norm(p + '.norm1', cin); conv(p + '.conv1', cout, cin)
        norm(p + '.norm2', cout); conv(p + '.conv2', cout, cout, gain=0.1)
        if cin != cout:
            conv(p + '.nin_shortcut', cout, cin, 1)

    def attn(p, c):
        norm(p + '.norm', c)
        for n in ('q', 'k', 'v'):
            conv(f'{p}.{n}', c, c, 1, gain=0.5)
        conv(p + '.proj_out', c, c, 1, gain=0.1)

    levels = len(mult)
    conv('encoder.conv_in', ch, 3)
    cin = ch
    for i, m in enumerate(mult):
        for j in range(nrb):
            res(f'encoder.conv_blocks.{i}.res.{j}', cin, ch * m); cin = ch * m
            if i == levels - 1:
                attn(f'encoder.conv_blocks.{i}.attn.{j}', cin)
        if i != levels - 1:
            conv(f'encoder.conv_blocks.{i}.downsample.conv', cin, cin)
    res('encoder.mid.0', cin, cin); attn('encoder.mid.1', cin); res('encoder.mid.2', cin, cin)
    norm('encoder.norm_out', cin); conv('encoder.conv_out', Z, cin, gain=0.5)
    conv('decoder.conv_in', cin, Z)
    res('decoder.mid.0', cin, cin); attn('decoder.mid.1', cin); res('decoder.mid.2', cin, cin)
    for n in range(levels):  # decoder.conv_blocks.0 is the deepest level
        m = mult[levels - 1 - n]
        for j in range(nrb + 1):
            res(f'decoder.conv_blocks.{n}.res.{j}', cin, ch * m); cin = ch * m
            if n == 0:
                attn(f'decoder.conv_blocks.{n}.attn.{j}', cin)
        if n != levels - 1:
            conv(f'decoder.conv_blocks.{n}.upsample.conv', cin, cin)
    norm('decoder.norm_out', cin); conv('decoder.conv_out', 3, cin, gain=0.5)
    sd['quantize.embedding.weight'] = F.normalize(torch.randn(a['vocab'], a['code_dim'], generator=g), dim=-1)
    conv('quant_conv', a['code_dim'], Z, 1)
    conv('post_quant_conv', Z, a['code_dim'], 1)
    return sd


def quantize(sd, z, train=True):
    """LlamaGen's VectorQuantizer with codebook_l2_norm: normalise z and the
    codebook, nearest code by L2, straight-through. Returns z_q [B, D, h, w],
    the quantizer loss (codebook + beta * commitment), ids [B, h, w] and the
    normalised z vectors [B*h*w, D] (for code restarts)."""
    B, D, h, w = z.shape
    zf = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, D), dim=-1)
    e = F.normalize(sd['quantize.embedding.weight'], dim=-1)
    d = (zf.detach() ** 2).sum(1, keepdim=True) - 2 * zf.detach() @ e.detach().t() + (e.detach() ** 2).sum(1)[None]
    ids = d.argmin(1)
    zq = e[ids]
    loss = None
    if train:
        loss = F.mse_loss(zq, zf.detach()) + BETA * F.mse_loss(zq.detach(), zf)
        zq = zf + (zq - zf).detach()
    zq = zq.view(B, h, w, D).permute(0, 3, 1, 2)
    return zq, loss, ids.view(B, h, w), zf


def load_vq(path=None):
    path = path or os.path.join(C.WORK, VQ_FILE)
    return {k: v.float() for k, v in torch.load(path)['model'].items()}


def tokenize(sd, x, batch=250):
    """Token ids [N, h*w] (raster order) of images x [N, 3, H, W] in [-1, 1]."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            _, _, ids, _ = quantize(sd, R.encode(sd, x[i:i + batch]), train=False)
            out.append(ids.reshape(ids.shape[0], -1))
    return torch.cat(out)


def evaluate(sd, x):
    """PSNR (dB, images in [-1, 1] mapped to [0, 1]) of the round trip, the
    codes in use and the reconstructions [N, 3, H, W] in [-1, 1]."""
    with torch.no_grad():
        ids = tokenize(sd, x)
        g = int(math.isqrt(ids.shape[1]))
        rec = torch.cat([R.decode_code(sd, ids[i:i + 250].view(-1, g, g)) for i in range(0, len(ids), 250)]).clamp(-1, 1)
        mse = ((rec - x) / 2).pow(2).mean().item()
    return 10 * math.log10(1 / mse), len(ids.unique()), rec


def save(sd, path):
    tmp = path + '.tmp'
    torch.save({'model': {k: v.detach().clone() for k, v in sd.items()}}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=15)
    ap.add_argument('--steps', type=int, default=100000)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--eval', action='store_true', help='evaluate $TESSERA_TRAIN_DIR/llamagen_vq.pt on the held-out images')
    ap.add_argument('--bench', action='store_true')
    ap.add_argument('--init', help='continue from this checkpoint (a second cosine stage)')
    a = ap.parse_args()
    C.setup(a.threads)
    x, y, _ = C.load_dataset()
    xtr, xte = x[:-HELD_OUT], x[-HELD_OUT:]
    path = os.path.join(C.WORK, VQ_FILE)
    if a.eval:
        psnr, used, rec = evaluate(load_vq(path), xte)
        print(f'held-out PSNR {psnr:.2f} dB on {len(xte)} images, {used} of {ARCH["vocab"]} codes used', flush=True)
        import train_classifier as K  # the judge of the samples: its accuracy on reconstructions is their ceiling
        with torch.no_grad():
            clf = K.load()
            acc_rec = (K.forward(clf, rec).argmax(1) == y[-HELD_OUT:]).float().mean().item()
            acc_real = (K.forward(clf, xte).argmax(1) == y[-HELD_OUT:]).float().mean().item()
        print(f'classifier accuracy: {acc_rec:.4f} on the reconstructions, {acc_real:.4f} on the originals', flush=True)
        return
    g = torch.Generator().manual_seed(11)
    sd = {k: v.requires_grad_() for k, v in make_vq(g).items()}
    if a.init:
        for k, v in load_vq(a.init).items():
            sd[k].data.copy_(v)
    opt = torch.optim.Adam(sd.values(), lr=a.lr, betas=(0.9, 0.99))
    V = ARCH['vocab']
    last_hit = torch.zeros(V)
    t0, step, budget = time.time(), 0, a.minutes * 60
    while step < a.steps:
        # Cosine over the time budget, or over --steps with --minutes 0 (step-exact reruns).
        frac = (time.time() - t0) / budget if budget > 0 else step / a.steps
        if frac >= 1:
            break
        lr = a.lr * min(1, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for grp in opt.param_groups:
            grp['lr'] = lr
        img = xtr[torch.randint(0, len(xtr), (a.batch,), generator=g)]
        z = R.encode(sd, img)
        if step == 0 and not a.init:  # codebook from encoder outputs, so every code starts in use
            zf = F.normalize(z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
            sd['quantize.embedding.weight'].data.copy_(zf[torch.randint(0, len(zf), (V,), generator=g)])
        zq, q_loss, ids, zf = quantize(sd, z)
        rec = R.decode(sd, zq)
        l1, l2 = F.l1_loss(rec, img), F.mse_loss(rec, img)
        loss = l1 + l2 + q_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        used = ids.unique()
        last_hit[used] = step
        dead = (step - last_hit > 200).nonzero().reshape(-1)
        if len(dead) and step % 50 == 0:
            sd['quantize.embedding.weight'].data[dead] = zf.detach()[torch.randint(0, len(zf), (len(dead),), generator=g)]
            last_hit[dead] = step
        if step % 10 == 0 or a.bench:
            print(f'step {step} t {time.time() - t0:.0f}s lr {lr:.2e} l1 {l1.item():.4f} mse {l2.item():.4f} '
                  f'q {q_loss.item():.4f} codes {len(used)} dead {len(dead)} psnr {10 * math.log10(4 / l2.item()):.2f}', flush=True)
            if a.bench and step == 10:
                return
        if step % 100 == 0:
            save(sd, path)
    save(sd, path)
    print(f'done: {step} steps in {time.time() - t0:.0f}s', flush=True)
    psnr, used, _ = evaluate({k: v.detach() for k, v in sd.items()}, xte)
    print(f'held-out PSNR {psnr:.2f} dB on {len(xte)} images, {used} of {V} codes used', flush=True)


if __name__ == '__main__':
    main()
