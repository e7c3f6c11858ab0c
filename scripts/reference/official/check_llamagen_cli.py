"""Official LlamaGen generation, for comparison with `tessera generate` (our own harness).

A second conformance pass over what check_llamagen.py leaves out: the CLI's
tokens JSON and PNG on configurations the first pass did not cover. Imports
Transformer/ModelArgs, generate() and VQModel from an extracted copy of the
official repository (FoundationVision/LlamaGen; never copied into this
project), builds each configuration with seeded random weights
(check_llamagen.build_vq, var_llamagen_common.build_gpt), saves them in the
official layout ({"model": state_dict}) and records, for each greedy run:

  <run>_labels [B]            class ids (the official cond; -1 never occurs here)
  <run>_ids    [B, G*G]       generate(..., top_k=1, cfg_interval) token ids (cfg_interval -1,
                              or 7, -0.5 and 100 in the 'interval' runs: decode step i is
                              guided only while i <= cfg_interval)
  <run>_image  [B, 3, H, W]   clamp(decode_code(ids), -1, 1)/2 + 1/2, sample_c2i's
                              save_image(normalize=True, value_range=(-1, 1)) before
                              its round(255 x)
  <run>_png / _png_rows       instead of _image for the 384-px case (the committed file stays
                              small): rows 0-15, 184-199 and 368-383 of save_image's levels
                              (mul(255).add_(0.5).clamp_(0, 255) as uint8), and which rows

Runs: guided (cfg > 1, a temperature and top_p < 1, both ineffective at
top_k = 1 in the official sample()), cfg 1 and cfg 0.5 (the official code
guides only when cfg > 1: both are the conditional rows alone), and the
official cfg_interval (sample_c2i.py --cfg-interval), and top_k = 0 with
top_p = 0 (the official filter then keeps the most likely token alone).

  /usr/bin/python3 scripts/reference/official/check_llamagen_cli.py --repo /tmp/official-llamagen --fixtures
  /usr/bin/python3 scripts/reference/official/check_llamagen_cli.py --repo /tmp/official-llamagen --out /tmp/llamagen-cli-out

The Tessera side is test/official-llamagen-cli.test.ts
(TESSERA_OFFICIAL_LLAMAGEN_CLI_DIR=<out> for --out output). Fixture files are
gzip-compressed.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_llamagen  # noqa: E402
import var_llamagen_common as common  # noqa: E402


# build_gpt / build_vq settings plus runs: (name, labels, cfg, temperature, top_p[, cfg_interval[, top_k]])
# (cfg_interval -1 and top_k 1 when absent; 'topp0' is greedy through top_p = 0 with top_k = 0); heads_flag:
# the --heads the CLI needs (dims that are not multiples of 64).
CONFIGS = {
    # dim 96 = 3 heads of 32 (--heads 3), ffn_dim_multiplier 0.7 with multiple_of 16 (FFN 192),
    # an odd 5x5 grid, a 2x VQ (10 px).
    'llamagen_cli_d96_h3_g5': dict(dim=96, n_layer=1, n_head=3, heads_flag=3, vocab=40, classes=6, grid=5,
                                   ffn_dim_multiplier=0.7, multiple_of=16,
                                   vq=dict(encoder_ch_mult=[1, 1], decoder_ch_mult=[1, 1], z_channels=32, codebook_embed_dim=4,
                                           codebook_show_usage=False, ch=32, num_res_blocks=1), tie=True,
                                   runs=(('guided', (3, 5), 4.0, 0.5, 0.5), ('cfg1', (0,), 1.0, 1.0, 1.0),
                                         ('cfg05', (2,), 0.5, 1.0, 1.0), ('interval', (4, 1), 3.0, 1.0, 1.0, 7.0),
                                         ('interval_half', (5,), 6.0, 1.0, 1.0, -0.5), ('topp0', (1,), 2.0, 1.0, 0.0, -1, 0))),
    # The 384-px case: a 24x24 grid on a VQ-16-deep tokenizer (5 levels, ch_mult 1,1,1,1,1 at
    # ch 32: 16x downsampling, 384 px), one head of 64 (no --heads needed), 8-dim codes.
    'llamagen_cli_g24_vq16': dict(dim=64, n_layer=1, n_head=1, vocab=32, classes=3, grid=24, multiple_of=32,
                                  vq=dict(encoder_ch_mult=[1, 1, 1, 1, 1], decoder_ch_mult=[1, 1, 1, 1, 1], z_channels=32,
                                          codebook_embed_dim=8, codebook_show_usage=False, ch=32, num_res_blocks=1), tie=True,
                                  runs=(('guided', (1,), 2.0, 1.0, 1.0), ('interval', (2,), 2.5, 1.0, 1.0, 100.0)), png_rows=((0, 16), (184, 200), (368, 384))),
}

# Written only with --out (float32, not committed): dim 160 = 5 heads of 32 (--heads 5), two layers,
# ffn_dim_multiplier 1.5 with multiple_of 64 (FFN 320), an 8x8 grid on a 4x VQ whose decoder
# widths differ from the encoder's; and dim 128 with ONE head of 128 (--heads 1; the head-dim
# rule would say 2).
LARGE = {
    'llamagen_cli_d160_h5': dict(dim=160, n_layer=2, n_head=5, heads_flag=5, vocab=64, classes=7, grid=8,
                                 ffn_dim_multiplier=1.5, multiple_of=64,
                                 vq=dict(encoder_ch_mult=[1, 1, 2], decoder_ch_mult=[1, 2, 2], z_channels=64, codebook_embed_dim=8),
                                 runs=(('guided', (6, 0), 3.0, 1.0, 1.0), ('interval', (3,), 2.0, 0.8, 0.9, 20.0))),
    'llamagen_cli_d128_h1': dict(dim=128, n_layer=2, n_head=1, heads_flag=1, vocab=48, classes=3, grid=6,
                                 vq=dict(encoder_ch_mult=[1, 1], decoder_ch_mult=[1, 1], z_channels=32, codebook_embed_dim=4),
                                 runs=(('guided', (2,), 1.5, 1.0, 1.0),)),
}


def run_config(name, cfg, official, out, store, _cache=None):
    gen, ModelArgs, Transformer, vq_model = official
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    vq = check_llamagen.build_vq(cfg, vq_model, g)
    model = common.build_gpt(cfg, ModelArgs, Transformer, g)
    dtype = {'float32': torch.float32, 'float16': torch.float16}[store]
    common.round_params(vq, dtype)
    common.round_params(model, dtype)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    torch.save({'model': common.state_dict_as(vq, dtype)}, os.path.join(d, 'vq.pt'))
    torch.save({'model': common.state_dict_as(model, dtype)}, os.path.join(d, 'gpt.pt'))

    G, code_dim = cfg['grid'], cfg['vq']['codebook_embed_dim']
    N = G * G
    res, meta, log = {}, {'config': json.dumps({k: v for k, v in cfg.items() if k != 'runs'}), 'stored_as': store}, []
    orig = gen.sample
    margins = []

    def recording(logits, **kw):
        margins.append(common.margin(logits[:, -1, :]))
        return orig(logits, **kw)

    gen.sample = recording
    try:
        with torch.no_grad():
            for run, labels, scale, temperature, top_p, *rest in cfg['runs']:
                margins.clear()
                cond = torch.tensor(labels)
                cfg_interval, top_k = (list(rest) + [-1, 1][len(rest):])[:2]
                ids = gen.generate(model, cond, N, cfg_scale=scale, cfg_interval=cfg_interval, temperature=temperature, top_k=top_k,
                                   top_p=top_p, sample_logits=True)
                meta[f'{run}_cfg_interval'], meta[f'{run}_top_k'] = cfg_interval, top_k
                img = vq.decode_code(ids.long(), [len(labels), code_dim, G, G])  # int32 ids index only on PyTorch 2
                res[f'{run}_labels'] = cond
                res[f'{run}_ids'] = ids
                img = (img.clamp(-1, 1) + 1) / 2
                if 'png_rows' in cfg and store == 'float16':  # the committed 384-px fixture: 48 rows of the PNG's levels
                    rows = torch.cat([torch.arange(a, b) for a, b in cfg['png_rows']])
                    res[f'{run}_png_rows'] = rows
                    res[f'{run}_png'] = img[:, :, rows].mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
                else:
                    res[f'{run}_image'] = img
                meta[f'{run}_cfg'], meta[f'{run}_temperature'], meta[f'{run}_top_p'] = scale, temperature, top_p
                meta[f'{run}_min_margin'] = min(margins)
                log.append(f'{run} margin {min(margins):.1e}')
    finally:
        gen.sample = orig
    meta['runs'] = ','.join(r[0] for r in cfg['runs'])
    common.save_safetensors(res, meta, os.path.join(d, 'expected.safetensors'))
    ds = 2 ** (len(cfg['vq']['decoder_ch_mult']) - 1)
    print(f'{name}: grid {G} ({G * ds} px), {", ".join(log)}')
    entry = {'name': name, 'family': 'llamagen', 'dir': name, 'tokenizer': 'vq.pt', 'weights': 'gpt.pt', 'grid': G,
             'imageSize': G * ds}
    if 'heads_flag' in cfg:
        entry['heads'] = cfg['heads_flag']
    return entry


def main():
    common.run_main(__doc__, 'LlamaGen', check_llamagen.load_official, {**CONFIGS, **LARGE}, CONFIGS, run_config,
                    fixture_dir='llamagen-cli', gzip_fixtures=True)


if __name__ == '__main__':
    main()
