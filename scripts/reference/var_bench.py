#!/usr/bin/python3
"""The PyTorch side of `tessera bench var`: times class-conditional VAR
generation (CFG ramp, top-k/top-p multinomial sampling, KV caches, VQVAE
decode) with var_reference.py's float32 modules on the same safetensors
checkpoints Tessera runs, and prints one JSON line:
    {"perScaleMs": [...], "decodeMs": x, "totalMs": x, "peakRssBytes": n, "threads": n}
Usage: var_bench.py --vae V.safetensors --var M.safetensors --batch B --runs N --threads T"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import var_reference as R  # noqa: E402

DTYPES = {'F32': np.float32, 'I64': np.int64, 'I32': np.int32}


def load_safetensors(path):
    """Flat name -> tensor dict, mapped (8-byte header length, JSON header, data)."""
    with open(path, 'rb') as f:
        n = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode='r', offset=8 + n)
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        arr = raw[a:b].view(DTYPES[v['dtype']]).reshape(v['shape'])
        out[k] = torch.from_numpy(np.array(arr))  # one copy: torch wants writable memory
    return out


def sample(logits, top_k, top_p, gen):
    """The official sample_with_top_k_top_p_ (spec section 3.3) on [B, n, V]."""
    B, n, V = logits.shape
    if 0 < top_k < V:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -float('inf'))
    if 0 < top_p < 1:
        s, i = logits.sort(dim=-1, descending=False)
        drop = s.softmax(-1).cumsum(-1) <= 1 - top_p
        drop[..., -1:] = False
        logits = logits.masked_fill(drop.scatter(-1, i, drop), -float('inf'))
    p = logits.softmax(-1).view(-1, V)
    return torch.multinomial(p, 1, generator=gen).view(B, n)


@torch.no_grad()
def generate(sd, vae, labels, cfg, top_k, top_p, gen):
    conf = R.var_config(sd)
    sch, SN, B = conf['schedule'], len(conf['schedule']), labels.shape[0]
    c = R._cond(sd, torch.cat([labels, torch.full_like(labels, -1)]))
    cb = R._block_cond(sd, c)
    lp = R._level_pos(sd, sch)
    state, begin, times = R.VarState(conf['depth']), 0, []
    x = c[:, None, :] + sd['pos_start'][0] + lp[:1]
    f_hat = torch.zeros(B, conf['Cvae'], sch[-1], sch[-1])
    t0 = time.perf_counter()
    for si, pn in enumerate(sch):
        for i in range(conf['depth']):
            x = R._block(sd, i, x, cb, state, None)
        lg = R._head(sd, x, c)
        t = cfg * si / (SN - 1)
        idx = sample((1 + t) * lg[:B] - t * lg[B:], top_k, top_p, gen)
        f_hat = R.add_scale(vae, si, sch, f_hat, R.embed_codes(vae, idx, pn))
        begin += pn * pn
        if si != SN - 1:
            nxt = sch[si + 1]
            x = R._lin(sd, 'word_embed', R.next_inputs(vae, f_hat, nxt)) + lp[begin:begin + nxt * nxt]
            x = torch.cat([x, x])
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1e3)
        t0 = t1
    img = R.decode(vae, f_hat)
    return times, (time.perf_counter() - t0) * 1e3, img


def gemm_gflops():
    """This torch build's F.linear speed (Debian's may sit on a reference
    BLAS), so a reader can tell the peer's GEMM from its model code."""
    x, w = torch.randn(256, 1024), torch.randn(1024, 1024)
    torch.nn.functional.linear(x, w)
    t = time.perf_counter()
    torch.nn.functional.linear(x, w)
    return 2 * 256 * 1024 * 1024 / (time.perf_counter() - t) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vae', required=True)
    ap.add_argument('--var', required=True)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--runs', type=int, default=1)
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--cfg', type=float, default=1.5)
    ap.add_argument('--top-k', type=int, default=900)
    ap.add_argument('--top-p', type=float, default=0.96)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    vae, sd = load_safetensors(a.vae), load_safetensors(a.var)
    classes = sd['class_emb.weight'].shape[0] - 1
    labels = torch.arange(a.batch) % classes
    best = None
    for r in range(a.runs):
        gen = torch.Generator().manual_seed(r)
        per, dec, _ = generate(sd, vae, labels, a.cfg, a.top_k, a.top_p, gen)
        if best is None or sum(per) + dec < best[2]:
            best = (per, dec, sum(per) + dec)
    print(json.dumps({'perScaleMs': best[0], 'decodeMs': best[1], 'totalMs': best[2], 'threads': a.threads,
                      'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'torch': torch.__version__,
                      'gemmGflops': gemm_gflops()}))


if __name__ == '__main__':
    main()
