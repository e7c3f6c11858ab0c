"""Official NAR outputs on tiny non-standard configurations (our own harness).

Imports Transformer/ModelArgs (autoregressive/models/gpt.py: LlamaGen's GPT
with NAR's vertical head, layers.{n_layer} + medusa_norm/medusa_output) and
generate() (autoregressive/models/generate.py: one anti-diagonal per pass)
from an extracted copy of the official NAR repository's NAR-images folder
(ThisisBillhe/NAR; never copied into this project), builds each configuration
below with seeded random weights (the zero-initialised output layer and the
unit RMSNorm weights re-drawn), saves the checkpoint in the official layout
({"model": state_dict}) and writes expected.safetensors:

  tf_ids     [B, N]      random tokens (raster order) for labels tf_labels
  tf_logits  [2B, N, V]  Transformer.forward(tf_ids, cond_idx) with the official
                         proximity mask (the training path: teacher forcing in
                         the diagonal order), raster cells; rows: the labels,
                         then null-class rows. Cell (0, 0) is the mean of both
                         heads on the class, (0, c) the right head of (0, c−1),
                         (r, 0) the down head of (r−1, 0), the others the mean.
  tf_guided  [B, N, V]   l_u + cfg·(l_c − l_u)
  <run>_ids  [B, N]      generate(..., top_k=1) token ids (raster), per greedy
                         run: 'greedy' (cfg > 1, a null-class image in the
                         batch) and 'nocfg' (cfg 1 = no guidance); none for
                         the logits-only (GQA) configuration

and metadata <run>_cfg, <run>_min_margin (the smallest (top1 − top2)/max|l|
over every logit row the official sample() saw: ties are excluded).

  git --git-dir=/work/.mirror/ThisisBillhe+NAR/repo archive HEAD NAR-images | tar -x -C /tmp/official-nar
  /usr/bin/python3 scripts/reference/official/check_nar.py --repo /tmp/official-nar/NAR-images --out /tmp/official-out
  /usr/bin/python3 scripts/reference/official/check_nar.py --repo /tmp/official-nar/NAR-images --fixtures

The fixture nar_fix_l2_d24_g6 has the vocabulary (24) and grid (6) of
llamagen_fix_l2_w32_g6 so the CLI test can use that entry's VQ tokenizer.
"""
import contextlib
import json
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import var_llamagen_common as common  # noqa: E402

CONFIGS = {
    # The released grid (16x16 = 256 tokens, 31 passes), 3 trunk layers + the vertical block,
    # 2 heads of 64, a 64-token vocabulary.
    'nar_d128_l3_g16': dict(dim=128, n_layer=3, n_head=2, heads_flag=2, vocab=64, classes=9, grid=16, cfg=3.0),
    # 6 heads of 32, ffn_dim_multiplier 1.5 / multiple_of 64, an odd grid (9x9, 17 passes).
    'nar_d192_h6_g9': dict(dim=192, n_layer=2, n_head=6, heads_flag=6, vocab=50, classes=4, grid=9,
                           ffn_dim_multiplier=1.5, multiple_of=64, cfg=2.0),
}

FIXTURES = {
    # Width 24 = 2 heads of 12 (RoPE pairs: 3 per axis), FFN 64 (multiple_of 8), grid 6, V 24.
    'nar_fix_l2_d24_g6': dict(dim=24, n_layer=2, n_head=2, heads_flag=2, vocab=24, classes=5, grid=6, multiple_of=8,
                              cfg=3.0, tokenizer='../llamagen_fix_l2_w32_g6/vq.pt', image_size=6),
    # Width 16 = 4 heads of 4 (one RoPE frequency per axis), one trunk layer, an odd grid (5x5,
    # 9 passes), V 12, FFN 64 (ffn_dim_multiplier 1.5, multiple_of 16), cfg 1.5.
    'nar_fix_l1_h4_g5': dict(dim=16, n_layer=1, n_head=4, heads_flag=4, vocab=12, classes=3, grid=5, multiple_of=16,
                             ffn_dim_multiplier=1.5, cfg=1.5),
    # Grouped-query attention: 4 query heads of 4 share 2 key/value heads (wqkv [(4 + 2·2)·4, 16]), in the
    # trunk and the vertical block. The official generate() cannot run it (its KV cache has n_head
    # heads); the teacher-forced logits only.
    'nar_fix_gqa_g5': dict(dim=16, n_layer=1, n_head=4, n_kv_head=2, heads_flag=4, vocab=12, classes=3, grid=5,
                           multiple_of=16, cfg=2.0, logits_only=True),
}


def load_official(repo):
    common.add_repo(repo)
    common.shim_llamagen_imports()
    # SHIM: torch.nn.attention (PyTorch >= 2.3) only chooses the SDPA kernel (`with
    # sdpa_kernel(SDPBackend.MATH)`); on 1.13 the SDPA shim is the math kernel, so a no-op context.
    common.shim_module('torch.nn.attention', SDPBackend=types.SimpleNamespace(MATH='MATH'),
                       sdpa_kernel=lambda *a, **k: contextlib.nullcontext())
    # SHIM: tqdm (a progress bar around the pass loop) is not installed; the bare iterable.
    common.shim_module('tqdm', tqdm=lambda it, *a, **k: it)
    import autoregressive.models.generate as gen
    from autoregressive.models.gpt import ModelArgs, Transformer
    gen.torch = common.torch_for_generate()
    return gen, ModelArgs, Transformer


def proximity_mask(model, rows):
    """The training script's mask (train_c2i.py): causal over the class slot, the official
    setup_proximity_mask over the image block (distance ≤ d)."""
    L = model.cls_token_num + model.block_size
    m = torch.tril(torch.ones(L, L, dtype=torch.bool))
    model.setup_proximity_mask(m[-model.block_size:, -model.block_size:], model.block_size)
    return m.unsqueeze(0).repeat(rows, 1, 1)


def run_config(name, cfg, official, out, store, _cache):
    gen, ModelArgs, Transformer = official
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    model = common.build_gpt(cfg, ModelArgs, Transformer, g)
    dtype = {'float32': torch.float32, 'float16': torch.float16}[store]
    common.round_params(model, dtype)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    torch.save({'model': common.state_dict_as(model, dtype)}, os.path.join(d, 'gpt.pt'))

    G, V, ncls, s = cfg['grid'], cfg['vocab'], cfg['classes'], cfg['cfg']
    N, B = G * G, 2
    res, meta = {}, {'config': json.dumps(cfg), 'stored_as': store}
    runs, log = [], []
    with torch.no_grad():
        # Teacher forcing: the official training-path forward with the proximity mask (no KV cache yet).
        labels = torch.tensor([2 % ncls, ncls - 1])
        ids = torch.randint(0, V, (B, N), generator=g)
        both = torch.cat([labels, torch.full_like(labels, ncls)])
        logits, _ = model(torch.cat([ids, ids]), both, input_pos=torch.arange(N + 1), mask=proximity_mask(model, 2 * B))
        logits = logits.float()
        res.update(tf_labels=labels, tf_ids=ids, tf_logits=logits, tf_guided=logits[B:] + s * (logits[:B] - logits[B:]))
        meta['tf_cfg'] = s
        log.append(f'|logits| max {logits.abs().max():.3g}')

        # Greedy generate(): guided with one null-class image, and cfg 1 (no guidance).
        orig = gen.sample
        margins = []

        def recording(logits, **kw):
            margins.append(common.margin(logits))
            return orig(logits, **kw)

        gen.sample = recording
        try:
            for run, lab, scale in () if cfg.get('logits_only') else (('greedy', [1 % ncls, -1], s), ('nocfg', [0, ncls - 1], 1.0)):
                margins.clear()
                cond = torch.tensor([ncls if c < 0 else c for c in lab])
                out_ids = gen.generate(model, cond, N, cfg_scale=scale, cfg_interval=-1, temperature=1.0, top_k=1,
                                       top_p=1.0, sample_logits=True)
                assert len(margins) == 2 * G - 1, f'{len(margins)} sample() calls, expected {2 * G - 1}'
                res[f'{run}_labels'] = torch.tensor(lab)
                res[f'{run}_ids'] = out_ids
                meta[f'{run}_cfg'] = scale
                meta[f'{run}_min_margin'] = min(margins)
                meta[f'{run}_passes'] = len(margins)
                runs.append(run)
                log.append(f'{run} (cfg {scale}) min margin {min(margins):.2e}')
        finally:
            gen.sample = orig
        meta['greedy_runs'] = ','.join(runs)
    common.save_safetensors(res, meta, os.path.join(d, 'expected.safetensors'))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f'{name}: grid {G}, V={V}, dim {cfg["dim"]}, {cfg["n_layer"]}+1 layers, {", ".join(log)}, files {size / 1024:.0f} KB')
    entry = {'name': name, 'family': 'nar', 'dir': name, 'weights': 'gpt.pt', 'grid': G, 'heads': cfg['heads_flag']}
    if cfg.get('logits_only'):
        entry['logitsOnly'] = 'the official generate() cannot run GQA (its KV cache has n_head heads)'
    if 'tokenizer' in cfg:
        entry.update(tokenizer=cfg['tokenizer'], imageSize=cfg['image_size'])
    return entry


def main():
    common.run_main(__doc__, 'NAR (NAR-images folder)', load_official, CONFIGS, FIXTURES, run_config)


if __name__ == '__main__':
    main()
