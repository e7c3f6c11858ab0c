#!/usr/bin/python3
"""Trains the tiny multi-scale VQVAE of Tessera's embedded VAR on the shapes
set (make_dataset.py) and writes the official-layout checkpoint.

    /usr/bin/python3 scripts/train/train_vqvae.py [--minutes 22] [--batch 32]

Losses: L1 + MSE reconstruction and VAR's VQ loss (commitment beta 0.25 +
codebook term, averaged over the scales, straight-through f_hat). The
official recipe adds LPIPS and a GAN loss; on flat-coloured shapes the pixel
losses suffice. Codes unused for 200 steps are restarted at random encoder
outputs of the current batch (the codebook is small, 256 entries). The run
stops at --steps or after --minutes (the learning rate follows a cosine over
that budget) and checkpoints every 100 steps to $TESSERA_TRAIN_DIR/vae.pth,
so a partial result always exists."""
import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

import common as C


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=22)
    ap.add_argument('--steps', type=int, default=100000)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--bench', action='store_true')
    a = ap.parse_args()
    C.setup(a.threads)
    x, y, _ = C.load_dataset()
    g = torch.Generator().manual_seed(1)
    sd = {k: v.requires_grad_() for k, v in C.make_vae(g).items()}
    # VAR stores this buffer; Tessera ignores it (zeros, like a fresh model).
    opt = torch.optim.Adam(sd.values(), lr=a.lr, betas=(0.9, 0.99))
    V = C.VAE['vocab']
    last_hit = torch.zeros(V)
    t0, step = time.time(), 0
    budget = a.minutes * 60
    while step < a.steps:
        # The schedule runs over the time budget, or over --steps with --minutes 0
        # (step-exact reruns: the budgeted runs record their step counts).
        frac = (time.time() - t0) / budget if budget > 0 else step / a.steps
        if frac >= 1:
            break
        lr = a.lr * min(1, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for grp in opt.param_groups:
            grp['lr'] = lr
        idx = torch.randint(0, len(x), (a.batch,), generator=g)
        img = x[idx]
        f = R_encode(sd, img)
        if step == 0:  # codebook from encoder outputs, so every code starts in use
            flat = f.detach().permute(0, 2, 3, 1).reshape(-1, f.shape[1])
            sd['quantize.embedding.weight'].data.copy_(flat[torch.randint(0, len(flat), (V,), generator=g)])
        f_hat, vq_loss, ids, _ = C.msvq(sd, f)
        rec = C.R.decode(sd, f_hat)
        l1, l2 = F.l1_loss(rec, img), F.mse_loss(rec, img)
        loss = l1 + l2 + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        used = torch.cat([i.reshape(-1) for i in ids]).unique()
        last_hit[used] = step
        dead = (step - last_hit > 200).nonzero().reshape(-1)
        if len(dead) and step % 50 == 0:
            flat = f.detach().permute(0, 2, 3, 1).reshape(-1, f.shape[1])
            sd['quantize.embedding.weight'].data[dead] = flat[torch.randint(0, len(flat), (len(dead),), generator=g)]
            last_hit[dead] = step
        if step % 10 == 0 or a.bench:
            el = time.time() - t0
            print(f'step {step} t {el:.0f}s lr {lr:.2e} l1 {l1.item():.4f} mse {l2.item():.4f} vq {vq_loss.item():.4f} '
                  f'codes {len(used)} dead {len(dead)} psnr {10 * math.log10(4 / l2.item()):.2f}', flush=True)
            if a.bench and step == 10:
                return
        if step % 100 == 0:
            save(sd)
    save(sd)
    print(f'done: {step} steps in {time.time() - t0:.0f}s', flush=True)


def R_encode(sd, img):
    return C.R.encode(sd, img)


def save(sd):
    out = {k: v.detach() for k, v in sd.items()}
    out['quantize.ema_vocab_hit_SV'] = torch.zeros(len(C.SCHEDULE), C.VAE['vocab'])
    tmp = os.path.join(C.WORK, 'vae.pth.tmp')
    torch.save(out, tmp)
    os.replace(tmp, os.path.join(C.WORK, 'vae.pth'))


if __name__ == '__main__':
    main()
