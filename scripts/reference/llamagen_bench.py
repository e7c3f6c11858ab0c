#!/usr/bin/python3
"""PyTorch peer for `tessera bench llamagen`: plain AR decoding (CFG batch,
KV cache) with the independent reference's gpt_step on the same random
weights, float32, for a few tokens only (the reference is slow); prints one
JSON line with ms per token (after prefill) and the extrapolation to G^2."""
import argparse, json, os, resource, struct, sys, time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamagen_reference as R  # noqa: E402


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    sd = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        assert v['dtype'] == 'F32'
        sd[k] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(v['shape'])
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True)
    ap.add_argument('--grid', type=int, default=16)
    ap.add_argument('--tokens', type=int, default=8)
    ap.add_argument('--cfg', type=float, default=2.0)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sd = load_safetensors(a.weights)
    cfg = R.gpt_config(sd)
    guided = a.cfg > 1
    cos, sin = (t.float() for t in R.rope_2d(a.grid, cfg['hd']))
    cache = R.Cache(cfg['layers'])
    labels = [0]
    with torch.no_grad():
        t0 = time.perf_counter(); c0 = time.process_time()
        x = sd['cls_embedding.embedding_table.weight'][R.cfg_rows(cfg, labels, guided)][:, None]
        logits = R.gpt_step(sd, cfg, x, [0], cos, sin, cache)[:, -1]
        t1 = time.perf_counter(); c1 = time.process_time()
        n = min(a.tokens, a.grid * a.grid - 1)
        for t in range(n):
            g = R.guide(logits, 1, a.cfg)
            tok = g.argmax(-1)
            feed = tok.repeat(2) if guided else tok
            logits = R.gpt_step(sd, cfg, sd['tok_embeddings.weight'][feed][:, None], [1 + t], cos, sin, cache)[:, -1]
        t2 = time.perf_counter(); c2 = time.process_time()
    ms_tok = (t2 - t1) * 1000 / n
    print(json.dumps({
        'torch': torch.__version__, 'threads': torch.get_num_threads(), 'tokensTimed': n,
        'prefillMs': (t1 - t0) * 1000, 'msPerToken': ms_tok, 'cpuMsPerToken': (c2 - c1) * 1000 / n,
        'extrapolatedMsPerImage': (t1 - t0) * 1000 + ms_tok * (a.grid * a.grid - 1),
        'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == '__main__':
    main()
