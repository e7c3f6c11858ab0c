#!/usr/bin/python3
"""Trains the tiny VAR transformer of Tessera's embedded model on the shapes
set, over the frozen VQVAE from train_vqvae.py, in the official VAR layout
(per-block AdaLN, attn_l2_norm with scale_mul_1H11, q/v biases, GELU-tanh
FFN, class embedding with a null row).

    /usr/bin/python3 scripts/train/train_var.py [--minutes 28] [--batch 64]
        [--dataset /tmp/tessera-shapes-64.npz] [--schedule 1,2,3,4,6,8] [--depth 4 --width 64 --heads 4]
        [--init var.pth [--grow-depth]]

--init continues from a trained var.pth; with --grow-depth it may have fewer
blocks than --depth: its blocks are copied to blocks 0.. and the new blocks
after them start with zero AdaLN gates (g1, g2), so they add nothing and
the grown model computes exactly what the old one did at step 0.

The schedule must end at the VQVAE's latent side (8 for both the 32x32 and
the 64x64 model: the 64x64 VQVAE downsamples once more).

The official training tricks that matter here: teacher forcing over all
scales in one pass with the block-causal mask (token t sees every token of
its own and earlier scales), inputs = word_embed(area(f_hat)) of the ground
truth tokens, conditional dropout of the label to the null class with
probability 0.1 (for classifier-free guidance), AdamW (0.9, 0.95) with weight
decay 0.05, gradient clipping at 2, warm-up then cosine decay, and VAR's
initialisation (trunc-normal std sqrt(1/3C), fc2/proj scaled by
1/sqrt(2 depth), small AdaLN gains, scale_mul = log 4, head gain 0.02).
The tokens of the whole set are computed once ($TESSERA_TRAIN_DIR/tokens.pt).
Checkpoints every 100 steps to $TESSERA_TRAIN_DIR/var.pth.

Speed: Debian's PyTorch uses the reference BLAS (BLAS_INFO=generic), ~4x
slower than OpenBLAS on these GEMMs. Without touching the system, unpack
Debian's libopenblas0-pthread and put it first for this process:
    apt-get download libopenblas0-pthread && dpkg-deb -x libopenblas0-pthread_*.deb /tmp/oblas
    LD_LIBRARY_PATH=/tmp/oblas/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=1 \
        /usr/bin/python3 scripts/train/train_var.py ...
The embedded model was trained that way, 1 thread until the shared machine
was free, then 2 (--threads-later 2 --later-at <unix time>)."""
import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

import common as C

R = C.R
DEPTH, WIDTH, HEADS = 4, 64, 4  # the first stages (~30 min each on two shared cores); the shipped model grew to depth 6 (--depth 6 --grow-depth)
LABEL_DROP = 0.1


def tokenize(vae, x):
    path = os.path.join(C.WORK, 'tokens.pt')
    if os.path.exists(path) and os.path.getmtime(path) > os.path.getmtime(os.path.join(C.WORK, 'vae.pth')):
        return torch.load(path)
    ids, inputs = [], []
    with torch.no_grad():
        for i in range(0, len(x), 500):
            _, _, idx, inp = C.msvq(vae, R.encode(vae, x[i:i + 500]), train=False)
            ids.append(torch.cat(idx, 1))
            inputs.append(inp)
    out = {'ids': torch.cat(ids), 'inputs': torch.cat(inputs)}
    torch.save(out, path)
    return out


def make_var(g, classes, cvae, vocab):
    sd, C_ = {}, WIDTH
    L = sum(p * p for p in C.SCHEDULE)
    std = math.sqrt(1 / C_ / 3)

    def lin(name, n, k, bias=True, gain=1.0):
        sd[name + '.weight'] = torch.nn.init.trunc_normal_(torch.empty(n, k), std=std * gain, generator=g) if False else \
            (torch.randn(n, k, generator=g).clamp(-2, 2) * std * gain)
        if bias:
            sd[name + '.bias'] = torch.zeros(n)

    sd['class_emb.weight'] = torch.randn(classes + 1, C_, generator=g).clamp(-2, 2) * std
    sd['pos_start'] = torch.randn(1, 1, C_, generator=g).clamp(-2, 2) * std
    sd['pos_1LC'] = torch.randn(1, L, C_, generator=g).clamp(-2, 2) * std
    lin('word_embed', C_, cvae)
    sd['lvl_embed.weight'] = torch.randn(len(C.SCHEDULE), C_, generator=g).clamp(-2, 2) * std
    for i in range(DEPTH):
        p = f'blocks.{i}'
        sd[p + '.attn.scale_mul_1H11'] = torch.full((1, HEADS, 1, 1), 4.0).log()
        sd[p + '.attn.q_bias'] = torch.zeros(C_)
        sd[p + '.attn.v_bias'] = torch.zeros(C_)
        lin(p + '.attn.mat_qkv', 3 * C_, C_, bias=False)
        lin(p + '.attn.proj', C_, C_, gain=1 / math.sqrt(2 * DEPTH))
        lin(p + '.ffn.fc1', 4 * C_, C_)
        lin(p + '.ffn.fc2', C_, 4 * C_, gain=1 / math.sqrt(2 * DEPTH))
        lin(p + '.ada_lin.1', 6 * C_, C_, gain=0.5)
        sd[p + '.ada_lin.1.weight'].data[:2 * C_] *= 0.1   # the gates g1, g2 start small
    lin('head_nm.ada_lin.1', 2 * C_, C_, gain=0.5)
    lin('head', vocab, C_, gain=0.02)
    return sd


def buffers():
    sch = C.SCHEDULE
    L = sum(p * p for p in sch)
    lvl = torch.cat([torch.full((pn * pn,), si) for si, pn in enumerate(sch)]).view(1, L)
    mask = torch.where(lvl.view(L, 1) >= lvl.view(1, L), 0.0, -math.inf).view(1, 1, L, L)
    return lvl, mask


def forward(sd, labels, inputs, mask):
    x = R.var_inputs(sd, labels, [inputs], C.SCHEDULE)
    c = R._cond(sd, labels)
    for i in range(DEPTH):
        x = R._block(sd, i, x, c, None, mask)
    return R._head(sd, x, c)


def save(sd, lvl, mask):
    out = {k: v.detach().clone() for k, v in sd.items()}
    for i in range(DEPTH):
        out[f'blocks.{i}.attn.zero_k_bias'] = torch.zeros(WIDTH)
    out['lvl_1L'] = lvl
    out['attn_bias_for_masking'] = mask
    tmp = os.path.join(C.WORK, 'var.pth.tmp')
    torch.save(out, tmp)
    os.replace(tmp, os.path.join(C.WORK, 'var.pth'))


def main():
    global DEPTH, WIDTH, HEADS
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=28)
    ap.add_argument('--steps', type=int, default=100000)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--init', help='continue from this var.pth (same architecture, or fewer blocks with --grow-depth)')
    ap.add_argument('--grow-depth', action='store_true',
                    help='--init has fewer blocks than --depth: they become blocks 0.., the new ones after them start '
                         'as identities (AdaLN gates g1, g2 zero: adaLN-zero), so the model starts as the --init one')
    ap.add_argument('--width', type=int, default=WIDTH)
    ap.add_argument('--depth', type=int, default=DEPTH)
    ap.add_argument('--heads', type=int, default=HEADS)
    ap.add_argument('--threads-later', type=int, default=0, help='threads from --later-at on (a machine shared until then)')
    ap.add_argument('--later-at', type=float, default=0, help='unix time')
    ap.add_argument('--dataset', default=C.DATASET_VAR)
    ap.add_argument('--schedule', default=','.join(map(str, C.SCHEDULE)))
    a = ap.parse_args()
    DEPTH, WIDTH, HEADS = a.depth, a.width, a.heads
    C.SCHEDULE = C.parse_schedule(a.schedule)
    print(f'var depth {DEPTH} width {WIDTH} heads {HEADS} schedule {C.SCHEDULE} dataset {a.dataset} init {a.init}', flush=True)
    C.setup(a.threads)
    x, y, classes = C.load_dataset(a.dataset)
    vae = {k: v.float() for k, v in torch.load(os.path.join(C.WORK, 'vae.pth')).items()}
    t0 = time.time()
    tok = tokenize(vae, x)
    ids, inputs = tok['ids'], tok['inputs']
    print(f'tokens {tuple(ids.shape)} inputs {tuple(inputs.shape)} in {time.time() - t0:.0f}s', flush=True)
    g = torch.Generator().manual_seed(3)
    sd = {k: v.requires_grad_() for k, v in make_var(g, len(classes), inputs.shape[2], vae['quantize.embedding.weight'].shape[0]).items()}
    if a.init:
        start = torch.load(a.init)
        old_depth = len({k.split('.')[1] for k in start if k.startswith('blocks.')})
        assert old_depth == DEPTH or (a.grow_depth and old_depth < DEPTH), (old_depth, DEPTH)
        for k, v in sd.items():
            if k in start:
                v.data.copy_(start[k])
            elif k.startswith('blocks.') and int(k.split('.')[1]) >= old_depth:
                if k.split('.')[-2:] in (['1', 'weight'], ['1', 'bias']) and '.ada_lin.' in k:
                    v.data[:2 * WIDTH] = 0   # the gates: the new block adds nothing at step 0
            else:
                raise KeyError(f'{k} missing from {a.init}')
        if old_depth < DEPTH:
            print(f'grown from depth {old_depth}: blocks {old_depth}-{DEPTH - 1} start as identities', flush=True)
    lvl, mask = buffers()
    attn_mask = mask[0, 0]
    decay = [v for k, v in sd.items() if v.dim() == 2 and 'emb' not in k and 'pos' not in k]
    rest = [v for k, v in sd.items() if not (v.dim() == 2 and 'emb' not in k and 'pos' not in k)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': rest, 'weight_decay': 0}],
                            lr=a.lr, betas=(0.9, 0.95))
    t0, step, budget, ema = time.time(), 0, a.minutes * 60, None
    while step < a.steps:
        # The schedule runs over the time budget, or over --steps with --minutes 0
        # (step-exact reruns: the budgeted runs record their step counts).
        frac = (time.time() - t0) / budget if budget > 0 else step / a.steps
        if frac >= 1:
            break
        lr = C.lr_at(a.lr, step, frac)
        for grp in opt.param_groups:
            grp['lr'] = lr
        b = torch.randint(0, len(ids), (a.batch,), generator=g)
        labels = torch.where(torch.rand(a.batch, generator=g) < LABEL_DROP, torch.full_like(y[b], -1), y[b])
        logits = forward(sd, labels, inputs[b], attn_mask)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[b].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sd.values(), 2.0)
        opt.step()
        step += 1
        if a.threads_later and time.time() >= a.later_at and torch.get_num_threads() != a.threads_later:
            torch.set_num_threads(a.threads_later)
            try:  # OpenBLAS keeps its own pool (see the module docstring)
                import ctypes
                ctypes.CDLL('libblas.so.3').openblas_set_num_threads(a.threads_later)
            except (OSError, AttributeError):
                pass
            print(f'step {step}: {a.threads_later} threads', flush=True)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 20 == 0:
            with torch.no_grad():  # accuracy of the first scales (the shape's layout) on this batch
                acc = (logits[:, :14].argmax(-1) == ids[b][:, :14]).float().mean().item()
            print(f'step {step} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.4f} ema {ema:.4f} '
                  f'acc(scales 1-3) {acc:.3f}', flush=True)
        if step % 100 == 0:
            save(sd, lvl, mask)
    save(sd, lvl, mask)
    print(f'done: {step} steps in {time.time() - t0:.0f}s', flush=True)


if __name__ == '__main__':
    main()
