#!/usr/bin/python3
"""Trains the class-conditional GPT of Tessera's embedded tiny LlamaGen on the
shapes set, over the frozen tokenizer from train_llamagen_vq.py, in the
official LlamaGen GPT layout, and exports both into models/tiny-llamagen/.

    /usr/bin/python3 scripts/train/train_llamagen_gpt.py [--minutes 45] [--batch 64] [--threads 1]
        [--dim 128] [--layers 4] [--out llamagen_gpt.pt]
    /usr/bin/python3 scripts/train/train_llamagen_gpt.py --export [--cfg 2 --top-k 0 --top-p 1]

Architecture (LlamaGen gpt.py, small): pre-norm Llama blocks, RMSNorm eps
1e-5, fused wqkv [q|k|v], SwiGLU FFN of int(8 dim / 3) rounded up to a
multiple of 256, no biases, head_dim 64 (the head count Tessera's loader
derives from shapes), 2D RoPE (base 10000, interleaved pairs, the class slot's
row zero), class table of 10 + 1 rows (row 10 = the null class for CFG),
one class token, 8x8 = 64 image tokens from the 512-code tokenizer. The
forward pass is llamagen_reference.py's gpt_step (the PyTorch reference
Tessera is tested against), applied to trainable tensors.

Training, as the official train_c2i.py where it matters: teacher forcing
over [class, tokens[:-1]] with cross-entropy on all 64 tokens; the class is
swapped for the null class with probability 0.1 (class_dropout_prob, for
classifier-free guidance); embedding dropout 0.1 on the input embeddings
(token_dropout_p); AdamW (0.9, 0.95), weight decay 0.05, gradient clipping
at 1.0; weights N(0, 0.02), output head zero-initialised. Departures, for a
run of under an hour on one CPU thread: learning rate 1e-3 with a 100-step
warm-up and a cosine decay over the budget (official: 1e-4 constant at batch
256), no residual/FFN dropout (the run is under-fitted, not over-fitted), and
the token sequences of each image and of its left-right mirror image (every
class of the set is mirror-symmetric, and the placement distribution is
too; the official code pre-extracts ten-crop augmented codes the same way).
The tokens are computed once ($TESSERA_TRAIN_DIR/llamagen_tokens.pt).

--export writes models/tiny-llamagen/: vq.pt and gpt.pt ({"model": state_dict}
as the official vq_ds16_c2i.pt / c2i_*.pt files load), vq.safetensors and
gpt.safetensors, float16 (Tessera computes in float32), draft.pt /
draft.safetensors when a drafter was trained (--out llamagen_draft.pt), and
model.json (class names, image size, sampling defaults)."""
import argparse
import json
import math
import os
import shutil
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import common as C  # noqa: E402
import train_llamagen_vq as VQ  # noqa: E402

R = VQ.R
MODEL_DIR = os.path.join(C.ROOT, 'models', 'tiny-llamagen')
LABEL_DROP = 0.1   # class_dropout_prob
EMB_DROP = 0.1     # token_dropout_p (element-wise on the input embeddings)
GRID = 8


def ffn_width(dim):
    return math.ceil(int(8 * dim / 3) / 256) * 256


def make_gpt(g, dim, layers, vocab, classes):
    sd = {}

    def w(name, *shape):
        sd[name] = torch.randn(*shape, generator=g) * 0.02

    f = ffn_width(dim)
    w('cls_embedding.embedding_table.weight', classes + 1, dim)
    w('tok_embeddings.weight', vocab, dim)
    for i in range(layers):
        p = f'layers.{i}.'
        w(p + 'attention.wqkv.weight', 3 * dim, dim)
        w(p + 'attention.wo.weight', dim, dim)
        w(p + 'feed_forward.w1.weight', f, dim)
        w(p + 'feed_forward.w3.weight', f, dim)
        w(p + 'feed_forward.w2.weight', dim, f)
        sd[p + 'attention_norm.weight'] = torch.ones(dim)
        sd[p + 'ffn_norm.weight'] = torch.ones(dim)
    sd['norm.weight'] = torch.ones(dim)
    sd['output.weight'] = torch.zeros(vocab, dim)
    return sd


def tokens(vq_path):
    """Token ids [2N, 64] of every image and of its mirror image, and labels [2N]."""
    path = os.path.join(C.WORK, 'llamagen_tokens.pt')
    if os.path.exists(path) and os.path.getmtime(path) > os.path.getmtime(vq_path):
        return torch.load(path)
    x, y, _ = C.load_dataset()
    vq = VQ.load_vq(vq_path)
    t0 = time.time()
    ids = torch.cat([VQ.tokenize(vq, x), VQ.tokenize(vq, x.flip(3))])
    out = {'ids': ids, 'labels': torch.cat([y, y])}
    torch.save(out, path)
    print(f'tokenised {len(ids)} images in {time.time() - t0:.0f}s', flush=True)
    return out


def forward(sd, cfg, labels, ids, cos, sin, train=True):
    """Raw logits [B, 64, V]: slot 0 the class (labels < 0 = null), slot 1 + t token t."""
    cls = sd['cls_embedding.embedding_table.weight'][torch.where(labels < 0, torch.full_like(labels, cfg['classes']), labels)]
    x = torch.cat([cls[:, None], sd['tok_embeddings.weight'][ids[:, :-1]]], 1)
    if train:
        x = F.dropout(x, EMB_DROP)
    return R.gpt_step(sd, cfg, x, list(range(ids.shape[1])), cos, sin, R.Cache(cfg['layers']))


def export(a):
    MODEL_DIR = a.dest
    os.makedirs(MODEL_DIR, exist_ok=True)
    _, _, classes = C.load_dataset()
    files = [('vq', VQ.VQ_FILE), ('gpt', 'llamagen_gpt.pt'), ('draft', 'llamagen_draft.pt')]
    for name, src in files:
        src = os.path.join(C.WORK, src)
        if not os.path.exists(src):
            if name == 'draft':
                continue
            raise SystemExit(f'{src} is missing: train it first')
        sd = {k: v.detach().to(torch.float16).clone().contiguous() for k, v in torch.load(src)['model'].items()}
        torch.save({'model': sd}, os.path.join(MODEL_DIR, f'{name}.pt'))
        C.save_safetensors(sd, os.path.join(MODEL_DIR, f'{name}.safetensors'), torch.float16)
    meta = {
        'classes': classes, 'image_size': 32, 'grid': GRID,
        # The judge of the samples: the tiny VAR's classifier (same images, 32x32).
        'classifier': '../tiny-var/classifier.safetensors',
        'sampling': {'cfg': a.cfg, 'top_k': a.top_k, 'top_p': a.top_p, 'temperature': 1.0},
        'trained_by': 'scripts/train/ (make_dataset.py, train_llamagen_vq.py, train_llamagen_gpt.py --export)',
    }
    with open(os.path.join(MODEL_DIR, 'model.json'), 'w') as f:
        f.write(json.dumps(meta, indent=1) + '\n')
    for n in sorted(os.listdir(MODEL_DIR)):
        print(n, os.path.getsize(os.path.join(MODEL_DIR, n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=45)
    ap.add_argument('--steps', type=int, default=100000)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--dim', type=int, default=128)
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--out', default='llamagen_gpt.pt', help='file name in $TESSERA_TRAIN_DIR (llamagen_draft.pt for a drafter)')
    ap.add_argument('--seed', type=int, default=5)
    ap.add_argument('--bench', action='store_true')
    ap.add_argument('--init', help='continue from this checkpoint (same architecture; a fresh cosine: a second stage)')
    ap.add_argument('--export', action='store_true')
    ap.add_argument('--cfg', type=float, default=2.0)
    ap.add_argument('--top-k', type=int, default=0)
    ap.add_argument('--top-p', type=float, default=1.0)
    ap.add_argument('--dest', default=MODEL_DIR, help='--export: the model directory')
    a = ap.parse_args()
    C.setup(a.threads, a.seed)
    if a.export:
        return export(a)
    vq_path = os.path.join(C.WORK, VQ.VQ_FILE)
    if a.bench:  # speed only: random tokens, no tokenizer needed
        ids, y = torch.randint(0, VQ.ARCH['vocab'], (1000, GRID * GRID)), torch.arange(1000) % 10
    else:
        data = tokens(vq_path)
        ids, y = data['ids'], data['labels']
    V, classes = VQ.ARCH['vocab'], int(y.max()) + 1
    g = torch.Generator().manual_seed(a.seed)
    sd = {k: v.requires_grad_() for k, v in make_gpt(g, a.dim, a.layers, V, classes).items()}
    if a.init:
        for k, v in torch.load(a.init)['model'].items():
            sd[k].data.copy_(v)
    cfg = R.gpt_config(sd)
    print(f'GPT dim {a.dim} layers {a.layers} heads {cfg["heads"]} ffn {cfg["ffn"]} vocab {V} classes {classes}: '
          f'{sum(v.numel() for v in sd.values()) / 1e6:.2f}M parameters; {len(ids)} sequences', flush=True)
    cos, sin = (t.float() for t in R.rope_2d(GRID, cfg['hd']))
    decay = [v for k, v in sd.items() if v.dim() == 2]
    rest = [v for k, v in sd.items() if v.dim() != 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': rest, 'weight_decay': 0}],
                            lr=a.lr, betas=(0.9, 0.95))
    path = os.path.join(C.WORK, a.out)
    t0, step, budget, ema = time.time(), 0, a.minutes * 60, None
    while step < a.steps:
        frac = (time.time() - t0) / budget if budget > 0 else step / a.steps
        if frac >= 1:
            break
        lr = C.lr_at(a.lr, step, frac)
        for grp in opt.param_groups:
            grp['lr'] = lr
        b = torch.randint(0, len(ids), (a.batch,), generator=g)
        labels = torch.where(torch.rand(a.batch, generator=g) < LABEL_DROP, torch.full_like(y[b], -1), y[b])
        logits = forward(sd, cfg, labels, ids[b], cos, sin)
        loss = F.cross_entropy(logits.reshape(-1, V), ids[b].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sd.values(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 20 == 0 or a.bench:
            print(f'step {step} t {time.time() - t0:.0f}s cpu {time.process_time():.0f}s lr {lr:.2e} loss {loss.item():.4f} ema {ema:.4f}', flush=True)
            if a.bench and step == 5:
                return
        if step % 100 == 0:
            save(sd, path)
    save(sd, path)
    print(f'done: {step} steps in {time.time() - t0:.0f}s', flush=True)


def save(sd, path):
    tmp = path + '.tmp'
    torch.save({'model': {k: v.detach().clone() for k, v in sd.items()}}, tmp)
    os.replace(tmp, path)


if __name__ == '__main__':
    main()
