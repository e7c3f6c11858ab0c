#!/usr/bin/python3
"""Writes test/fixtures/llamagen/gpt_nar.pt (a tiny NAR checkpoint: the
fixture GPT gpt.pt plus the vertical head, i.e. one more block layers.2,
medusa_norm and medusa_output, all random, stored bfloat16 in the DDP layout)
and expected_nar.safetensors from the float64 reference
(llamagen_reference.nar_forward / decode_nar, spec section 5):
- nar_tf_ids [2, 36]: random tokens of grid 6 for labels 3 and 7;
- nar_right, nar_down [4, 37, 64]: both heads' raw logits for every slot
  (class, then raster tokens) of the CFG batch [3, 7, null, null] in one
  pass with the diagonal mask;
- nar_greedy [2, 36]: diagonal greedy decoding (top-1 of the CFG-2.0 mix).
Seeds are tried until every greedy choice has a margin > 2e-3. Run after
make_llamagen_fixtures.py:  /usr/bin/python3 scripts/reference/make_llamagen_nar_fixtures.py"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import llamagen_reference as R  # noqa: E402
from make_var_fixtures import save_safetensors  # noqa: E402

DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'llamagen')
GRID, LABELS, CFG, MARGIN = 6, [3, 7], 2.0, 2e-3


def main():
    base = torch.load(os.path.join(DIR, 'gpt.pt'), map_location='cpu')['model']
    V, d = base['tok_embeddings.weight'].shape
    ffn = base['layers.0.feed_forward.w1.weight'].shape[0]
    n = R.count(base, r'layers\.(\d+)\.')
    for seed in range(100):
        g = torch.Generator().manual_seed(1000 + seed)
        sd = dict(base)
        p = f'layers.{n}.'
        sd[p + 'attention.wqkv.weight'] = torch.randn(3 * d, d, generator=g) / math.sqrt(d)
        sd[p + 'attention.wo.weight'] = torch.randn(d, d, generator=g) / math.sqrt(d)
        sd[p + 'feed_forward.w1.weight'] = torch.randn(ffn, d, generator=g) / math.sqrt(d)
        sd[p + 'feed_forward.w3.weight'] = torch.randn(ffn, d, generator=g) / math.sqrt(d)
        sd[p + 'feed_forward.w2.weight'] = torch.randn(d, ffn, generator=g) / math.sqrt(ffn)
        sd[p + 'attention_norm.weight'] = 1 + 0.1 * torch.randn(d, generator=g)
        sd[p + 'ffn_norm.weight'] = 1 + 0.1 * torch.randn(d, generator=g)
        sd['medusa_norm.weight'] = 1 + 0.1 * torch.randn(d, generator=g)
        sd['medusa_output.weight'] = torch.randn(V, d, generator=g) / math.sqrt(d) * 4
        sd = {k: v.bfloat16() for k, v in sd.items()}
        sd64 = {k: v.double() for k, v in sd.items()}
        gaps = []
        greedy = R.decode_nar(sd64, LABELS, GRID, CFG, R.greedy_picker(gaps))
        if min(gaps) > MARGIN:
            break
    else:
        raise SystemExit('no seed gave greedy margins > 2e-3')
    cfg = R.nar_config(sd64)
    N = GRID * GRID
    ids = torch.randint(0, V, (2, N), generator=g)
    rows = R.cfg_rows(cfg, LABELS, True)
    x = torch.cat([sd64['cls_embedding.embedding_table.weight'][rows][:, None], sd64['tok_embeddings.weight'][ids.repeat(2, 1)]], 1)
    right, down = R.nar_forward(sd64, cfg, x, list(range(1 + N)), GRID)
    args = argparse.Namespace(gpt_model='GPT-tiny-nar', image_size=12, downsample_size=2, cls_token_num=1, vocab_size=V)
    torch.save({'model': sd, 'optimizer': {}, 'steps': 0, 'args': args}, os.path.join(DIR, 'gpt_nar.pt'))
    meta = {'labels': '3,7', 'cfg': str(CFG), 'grid': str(GRID), 'seed': str(1000 + seed), 'min_greedy_margin': f'{min(gaps):.6g}'}
    save_safetensors({'nar_tf_ids': ids.int(), 'nar_right': right.float(), 'nar_down': down.float(), 'nar_greedy': greedy.int()},
                     meta, os.path.join(DIR, 'expected_nar.safetensors'))
    print('gpt_nar.pt and expected_nar.safetensors:', meta)


if __name__ == '__main__':
    main()
