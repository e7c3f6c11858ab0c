#!/usr/bin/python3
"""Trains the tiny multi-scale VQVAE of Tessera's embedded VAR on the shapes
set (make_dataset.py) and writes the official-layout checkpoint.

    /usr/bin/python3 scripts/train/train_vqvae.py [--minutes 22] [--batch 32]
        [--dataset /tmp/tessera-shapes-64.npz] [--ch 32] [--mult 1,1,2,2] [--z 16] [--vocab 256]
        [--schedule 1,2,3,4,6,8]

The defaults are the shipped model's architecture (64x64 images, ch_mult
(1,1,1,2): 3 downsamples, 8x8 latents); the first 32x32 model was
--dataset /tmp/tessera-shapes.npz --mult 1,1,2.

--grow-from vae.pth starts from a trained VQVAE with one level fewer (the
32x32 model), progressive-growing style: its levels become levels 1.. of the
new one (same channels); its middle, quantizer, Phi and output convolutions
are copied; the new full-resolution level starts as an identity path
(residual blocks with zero conv2, an identity upsample conv). The new
encoder stem is fitted so that the grown encoder reproduces the old one on
the 2x2-averaged image: conv_in becomes a 3x3 patch embedding (27 of its 32
channels) and the new level's stride-2 downsample conv is the least-squares
fit (on 500 training images) of the old conv_in applied to the averaged
image. The grown model's tokens therefore match the old model's, and a VAR
trained on those carries over (train_var.py --init). With --freeze-encoder
only the decoder trains (reconstruction loss; encoder, codebook and Phi
fixed), so the tokens stay exactly those of step 0 and the training learns
the 64x64 rendering.

Without --freeze-encoder everything trains; --enc-lr-mult scales the
learning rate of the encoder side (encoder, quant_conv, codebook, Phi)
against the decoder's. --grad-loss W adds W times an L1 loss on neighbouring
pixel differences (edge_loss), which weighs the outline and its corners
more than the pixel losses do.

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
    ap.add_argument('--dataset', default=C.DATASET_VAR)
    ap.add_argument('--ch', type=int, default=C.VAE['ch'])
    ap.add_argument('--mult', default=','.join(map(str, C.VAE['mult'])))
    ap.add_argument('--z', type=int, default=C.VAE['z'], help='Cvae')
    ap.add_argument('--vocab', type=int, default=C.VAE['vocab'])
    ap.add_argument('--schedule', default=','.join(map(str, C.SCHEDULE)))
    ap.add_argument('--grow-from', help='a trained VQVAE with one level fewer (see above)')
    ap.add_argument('--freeze-encoder', action='store_true', help='train the decoder only (see above)')
    ap.add_argument('--init', help='continue from this vae.pth (same architecture; a second stage)')
    ap.add_argument('--enc-lr-mult', type=float, default=1.0,
                    help='learning rate of the encoder, quant_conv, codebook and Phi relative to --lr (the decoder\'s)')
    ap.add_argument('--grad-loss', type=float, default=0.0,
                    help='weight of an L1 loss on the horizontal and vertical pixel differences (edges and corners)')
    ap.add_argument('--eval', metavar='VAE_PTH', help='measure a trained VQVAE instead (see evaluate)')
    a = ap.parse_args()
    C.VAE.update(ch=a.ch, mult=tuple(int(v) for v in a.mult.split(',')), z=a.z, vocab=a.vocab)
    C.SCHEDULE = C.parse_schedule(a.schedule)
    print(f'vae {C.VAE} schedule {C.SCHEDULE} dataset {a.dataset}', flush=True)
    C.setup(a.threads)
    x, y, classes = C.load_dataset(a.dataset)
    if a.eval:
        return evaluate(a.eval, x, y, classes)
    g = torch.Generator().manual_seed(1)
    sd = C.make_vae(g)
    if a.grow_from:
        grow(sd, torch.load(a.grow_from), x[:500])
        save(sd)  # the grown model (with --freeze-encoder its tokens are final: train_var.py can start)
    if a.init:
        sd.update({k: v.float().clone() for k, v in torch.load(a.init).items() if k in sd})
    sd = {k: v.requires_grad_(not a.freeze_encoder or k.startswith('decoder.') or k.startswith('post_quant_conv'))
          for k, v in sd.items()}
    # VAR stores this buffer; Tessera ignores it (zeros, like a fresh model).
    is_dec = lambda k: k.startswith('decoder.') or k.startswith('post_quant_conv')  # noqa: E731
    groups = [{'params': [v for k, v in sd.items() if v.requires_grad and is_dec(k)], 'mult': 1.0},
              {'params': [v for k, v in sd.items() if v.requires_grad and not is_dec(k)], 'mult': a.enc_lr_mult}]
    opt = torch.optim.Adam([grp for grp in groups if grp['params']], lr=a.lr, betas=(0.9, 0.99))
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
            grp['lr'] = lr * grp['mult']
        idx = torch.randint(0, len(x), (a.batch,), generator=g)
        img = x[idx]
        if a.freeze_encoder:
            with torch.no_grad():
                f_hat, vq_loss, ids, _ = C.msvq(sd, R_encode(sd, img), train=False)
            rec = C.R.decode(sd, f_hat)
            l1, l2 = F.l1_loss(rec, img), F.mse_loss(rec, img)
            loss = l1 + l2 + (a.grad_loss * edge_loss(rec, img) if a.grad_loss else 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 10 == 0 or a.bench:
                print(f'step {step} t {time.time() - t0:.0f}s lr {lr:.2e} l1 {l1.item():.4f} mse {l2.item():.4f} '
                      f'psnr {10 * math.log10(4 / l2.item()):.2f}', flush=True)
                if a.bench and step == 10:
                    return
            if step % 50 == 0:
                save(sd)
            continue
        f = R_encode(sd, img)
        if step == 0 and not (a.grow_from or a.init):  # codebook from encoder outputs, so every code starts in use
            flat = f.detach().permute(0, 2, 3, 1).reshape(-1, f.shape[1])
            sd['quantize.embedding.weight'].data.copy_(flat[torch.randint(0, len(flat), (V,), generator=g)])
        f_hat, vq_loss, ids, _ = C.msvq(sd, f)
        rec = C.R.decode(sd, f_hat)
        l1, l2 = F.l1_loss(rec, img), F.mse_loss(rec, img)
        loss = l1 + l2 + vq_loss
        if a.grad_loss:
            loss = loss + a.grad_loss * edge_loss(rec, img)
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


def evaluate(path, x, y, classes):
    """PSNR and the classifier's accuracy (the committed one for this image
    size) on the reconstructions of images 10,000-10,499 (the classifier's
    held-out split; the VQVAE itself trains on all 12,000), rounded to 8 bits
    as generated images are: the ceiling for samples."""
    import train_classifier as K
    vae = {k: v.float() for k, v in torch.load(path).items()}
    x, y = x[10000:10500], y[10000:10500]
    clf = K.load(os.path.join(C.MODEL_DIR, K.classifier_file(x.shape[-1])))
    with torch.no_grad():
        rec = torch.cat([C.R.decode(vae, C.msvq(vae, C.R.encode(vae, x[i:i + 100]), train=False)[0]) for i in range(0, len(x), 100)])
        rec = ((rec + 1) * 127.5).round() / 127.5 - 1
        pred = K.forward(clf, rec).argmax(1)
        real = K.forward(clf, x).argmax(1)
    psnr = 10 * math.log10(4 / F.mse_loss(rec, x).item())
    per = {n: round((pred[y == c] == c).float().mean().item(), 3) for c, n in enumerate(classes)}
    print(f'{path}: reconstructions of 500 images: PSNR {psnr:.2f} dB, classifier accuracy '
          f'{(pred == y).float().mean().item():.4f} (real images {(real == y).float().mean().item():.4f}); per class {per}', flush=True)


def grow(sd, old, fit_images):
    """sd (fresh, L levels) <- old (L-1 levels), as described in the module docstring."""
    import re
    levels = len(C.VAE['mult'])
    shift = {'encoder.down.': 1, 'decoder.up.': 1}
    copied = 0
    for k, v in old.items():
        if k == 'quantize.ema_vocab_hit_SV':
            continue
        m = re.match(r'(encoder\.down\.|decoder\.up\.)(\d+)\.(.*)', k)
        nk = f'{m.group(1)}{int(m.group(2)) + shift[m.group(1)]}.{m.group(3)}' if m else k
        assert nk in sd and sd[nk].shape == v.shape, (k, nk, tuple(v.shape))
        sd[nk] = v.float().clone()
        copied += 1
    # The new level 0: identity residual blocks, 2x2-average down, identity up.
    for k in sd:
        if re.match(r'(encoder\.down|decoder\.up)\.0\.block\.\d+\.conv2\.', k):
            sd[k].zero_()
    # Stem: conv_in = 3x3 patch embedding (channel c*9 + ky*3 + kx = pixel (c, y+ky-1, x+kx-1)),
    # then the downsample conv = least-squares fit of old conv_in(avg_pool2(img)).
    w_in = torch.zeros_like(sd['encoder.conv_in.weight'])
    for c in range(3):
        for ky in range(3):
            for kx in range(3):
                w_in[c * 9 + ky * 3 + kx, c, ky, kx] = 1
    sd['encoder.conv_in.weight'], sd['encoder.conv_in.bias'] = w_in, torch.zeros_like(sd['encoder.conv_in.bias'])
    w_old, b_old = old['encoder.conv_in.weight'].float(), old['encoder.conv_in.bias'].float()
    xtx, xty = 0, 0
    with torch.no_grad():
        for i in range(0, len(fit_images), 50):
            img = fit_images[i:i + 50]
            h = F.conv2d(img, w_in[:27], padding=1)                                    # the 27 used channels
            feats = F.unfold(F.pad(h, (0, 1, 0, 1)), 3, stride=2)                        # [B, 243, L]
            feats = torch.cat([feats, torch.ones_like(feats[:, :1])], 1).transpose(1, 2).reshape(-1, feats.shape[1] + 1)
            target = F.conv2d(F.avg_pool2d(img, 2), w_old, b_old, padding=1).flatten(2).transpose(1, 2).reshape(-1, w_old.shape[0])
            xtx, xty = xtx + (feats.t() @ feats).double(), xty + (feats.t() @ target).double()
    sol = torch.linalg.solve(xtx + 1e-6 * torch.eye(len(xtx), dtype=xtx.dtype), xty)    # [244, 32]
    cin = w_in.shape[0]
    wd = torch.zeros(cin, cin, 3, 3)
    wd[:, :27] = sol[:-1].t().reshape(cin, 27, 3, 3).float()
    sd['encoder.down.0.downsample.conv.weight'] = wd
    sd['encoder.down.0.downsample.conv.bias'] = sol[-1].float().contiguous()
    w = sd['decoder.up.1.upsample.conv.weight']
    w.zero_()
    for c in range(w.shape[0]):
        w[c, c, 1, 1] = 1.0
    fresh = sorted({'.'.join(k.split('.')[:4]) for k in sd if '.0.' in k and (k.startswith('encoder.down.0') or k.startswith('decoder.up.0'))})
    print(f'grown from {levels - 1} levels: {copied} tensors copied; new: {fresh} + decoder.up.1.upsample', flush=True)


def edge_loss(rec, img):
    """L1 between the images' horizontal and vertical neighbour differences:
    the pixel losses barely notice a rounded corner (a few pixels), this
    term weighs the outline's position and sharpness."""
    return (F.l1_loss(rec[..., 1:] - rec[..., :-1], img[..., 1:] - img[..., :-1])
            + F.l1_loss(rec[..., 1:, :] - rec[..., :-1, :], img[..., 1:, :] - img[..., :-1, :]))


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
