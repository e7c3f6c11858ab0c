"""Official LlamaGen outputs on tiny non-standard configurations (our own harness).

Imports Transformer/ModelArgs (autoregressive/models/gpt.py), generate()
(autoregressive/models/generate.py) and VQModel (tokenizer/tokenizer_image/
vq_model.py) from an extracted copy of the official repository
(FoundationVision/LlamaGen; never copied into this project), builds each
configuration below with seeded random weights (the zero-initialised output
layer and the unit RMSNorm weights re-drawn), saves the checkpoints in the
official layouts ({"model": state_dict} for both files) and writes:

  seq_logits  [2B, N, V]  Transformer.forward(idx, cond_idx) on a class slot and
                          N − 1 tokens (cond rows, then null-class rows)
  seq_guided  [B, N, V]   l_u + cfg·(l_c − l_u)
  <run>_ids   [B, N]      generate(..., top_k=1) token ids, for each greedy run
                          (guided with a null-class image; cfg 1 = no guidance)
  <run>_image [B,3,H,W]   clamp(decode_code(ids), −1, 1)/2 + 1/2 (sample_c2i's PNG)
  decode_ids / decode_image  decode_code of random ids (not clamped, [−1, 1])

  /usr/bin/python3 scripts/reference/official/check_llamagen.py --repo /tmp/official-llamagen --out /tmp/official-out
  /usr/bin/python3 scripts/reference/official/check_llamagen.py --repo /tmp/official-llamagen --fixtures

VQModel builds its Encoder/Decoder with ch = 128; the committed fixtures swap
in the official Encoder/Decoder classes built with ch = 32 (their own
argument) to stay small. Same key layout, same layers.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import var_llamagen_common as common  # noqa: E402

CONFIGS = {
    # 3 layers, 2 heads of 64, a 64-code VQ of the VQ-16 depth (5 levels, all 128 channels:
    # encoder/decoder_ch_mult [1,1,1,1,1]) at 256 px = 16x16 tokens.
    'llamagen_d128_l3_g16': dict(dim=128, n_layer=3, n_head=2, vocab=64, classes=9, grid=16,
                                 vq=dict(encoder_ch_mult=[1, 1, 1, 1, 1], decoder_ch_mult=[1, 1, 1, 1, 1], z_channels=32,
                                         codebook_embed_dim=4), cfg=3.0),
    # 6 heads of 32 (not the head_dim-64 rule: --heads 6), ffn_dim_multiplier 1.5 and multiple_of 64
    # (FFN 320), 24x24 tokens (the 384-px grid) on a 4x VQ whose decoder widths differ from the
    # encoder's (encoder_ch_mult [1,1,2], decoder_ch_mult [1,2,2]) = 96 px.
    'llamagen_d192_h6_g24': dict(dim=192, n_layer=2, n_head=6, heads_flag=6, vocab=50, classes=4, grid=24,
                                 ffn_dim_multiplier=1.5, multiple_of=64,
                                 vq=dict(encoder_ch_mult=[1, 1, 2], decoder_ch_mult=[1, 2, 2], z_channels=64,
                                         codebook_embed_dim=8), cfg=2.0),
    # Grouped-query attention: 4 query heads share 2 key/value heads (wqkv [(4 + 2·2)·32, 128]).
    # The official generate() cannot run it (its KV cache has n_head heads); logits only.
    'llamagen_gqa_h4_kv2': dict(dim=128, n_layer=2, n_head=4, n_kv_head=2, heads_flag=4, vocab=32, classes=3, grid=8,
                                vq=dict(encoder_ch_mult=[1, 1], decoder_ch_mult=[1, 1], z_channels=32, codebook_embed_dim=4),
                                cfg=2.0, logits_only=True),
}

# Width 32 (one head of 32: --heads 1), a one-level ch-32 VQ without the codebook_used buffer
# (codebook_show_usage=False) whose same-shaped conv kernels share one tensor (tie: see
# common.tie_same_shapes); the configurations above are untied.
FIXTURES = {
    'llamagen_fix_l2_w32_g6': dict(dim=32, n_layer=2, n_head=1, heads_flag=1, vocab=24, classes=5, grid=6, multiple_of=32,
                                   vq=dict(encoder_ch_mult=[1], decoder_ch_mult=[1], z_channels=32, codebook_embed_dim=4,
                                           codebook_show_usage=False, ch=32, num_res_blocks=1), tie=True, cfg=2.5),
    'llamagen_fix_gqa': dict(dim=32, n_layer=1, n_head=2, n_kv_head=1, heads_flag=2, vocab=24, classes=5, grid=6, multiple_of=32,
                             share_vq_with='llamagen_fix_l2_w32_g6', cfg=2.5, logits_only=True),
}


def load_official(repo):
    common.add_repo(repo)
    common.shim_llamagen_imports()
    import autoregressive.models.generate as gen
    from autoregressive.models.gpt import ModelArgs, Transformer
    from tokenizer.tokenizer_image import vq_model
    gen.torch = common.torch_for_generate()
    return gen, ModelArgs, Transformer, vq_model


def build_vq(cfg, vq_model, g):
    v = dict(cfg['vq'])
    ch = v.pop('ch', None)
    nrb = v.pop('num_res_blocks', None)
    vq = vq_model.VQModel(vq_model.ModelArgs(codebook_size=cfg['vocab'], **v))
    if ch is not None or nrb is not None:
        vq.encoder = vq_model.Encoder(ch=ch or 128, ch_mult=v['encoder_ch_mult'], num_res_blocks=nrb or 2, z_channels=v['z_channels'])
        vq.decoder = vq_model.Decoder(ch=ch or 128, ch_mult=v['decoder_ch_mult'], num_res_blocks=nrb or 2, z_channels=v['z_channels'])
    common.init_autoencoder(vq, g)
    if cfg.get('tie'):
        common.tie_same_shapes(vq)
    return vq.eval()


def run_config(name, cfg, official, out, store, vq_cache):
    gen, ModelArgs, Transformer, vq_model = official
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    shared = cfg.get('share_vq_with')
    if shared:
        vq = vq_cache[shared]
        cfg = {**cfg, 'vq': FIXTURES[shared]['vq']}
    else:
        vq = build_vq(cfg, vq_model, g)
    vq_cache[name] = vq
    model = common.build_gpt(cfg, ModelArgs, Transformer, g)
    dtype = {'float32': torch.float32, 'float16': torch.float16}[store]
    common.round_params(vq, dtype)
    common.round_params(model, dtype)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    vq_file = f'../{shared}/vq.pt' if shared else 'vq.pt'
    if not shared:
        torch.save({'model': common.state_dict_as(vq, dtype)}, os.path.join(d, 'vq.pt'))
    torch.save({'model': common.state_dict_as(model, dtype)}, os.path.join(d, 'gpt.pt'))

    G, V, ncls, s = cfg['grid'], cfg['vocab'], cfg['classes'], cfg['cfg']
    N, B = G * G, 2
    code_dim = cfg['vq']['codebook_embed_dim']
    res, meta = {}, {'config': json.dumps(cfg), 'stored_as': store}
    runs, log = [], []
    with torch.no_grad():
        # One pass over a class slot and N − 1 tokens (the naive path: no KV cache, causal SDPA).
        labels = torch.tensor([2 % ncls, ncls - 1])
        seq = torch.randint(0, V, (B, N - 1), generator=g)
        both = torch.cat([labels, torch.full_like(labels, ncls)])
        logits, _ = model(torch.cat([seq, seq]), both, input_pos=torch.arange(N))
        logits = logits.float()
        res.update(seq_labels=labels, seq_ids=seq, seq_logits=logits, seq_guided=logits[B:] + s * (logits[:B] - logits[B:]))
        meta['seq_cfg'] = s
        log.append(f'|logits| max {logits.abs().max():.3g}')

        # Greedy generate(): guided with one null-class image, and cfg 1 (no guidance).
        if not cfg.get('logits_only'):  # the official generate() cannot run GQA (its KV cache has n_head heads)
            orig = gen.sample
            margins = []

            def recording(logits, **kw):
                last = logits[:, -1, :]
                margins.append(common.margin(last))
                return orig(logits, **kw)

            gen.sample = recording
            try:
                for run, lab, scale in (('greedy', [1 % ncls, -1], s), ('nocfg', [0, ncls - 1], 1.0)):
                    margins.clear()
                    cond = torch.tensor([ncls if c < 0 else c for c in lab])
                    ids = gen.generate(model, cond, N, cfg_scale=scale, cfg_interval=-1, temperature=1.0, top_k=1, top_p=1.0,
                                       sample_logits=True)
                    img = vq.decode_code(ids.long(), [B, code_dim, G, G])  # int32 ids index only on PyTorch 2
                    res[f'{run}_labels'] = torch.tensor(lab)
                    res[f'{run}_ids'] = ids
                    res[f'{run}_image'] = (img.clamp(-1, 1) + 1) / 2
                    meta[f'{run}_cfg'] = scale
                    meta[f'{run}_min_margin'] = min(margins)
                    runs.append(run)
                    log.append(f'{run} min margin {min(margins):.2e}')
            finally:
                gen.sample = orig
        meta['greedy_runs'] = ','.join(runs)
        dec_ids = torch.randint(0, V, (B, N), generator=g)
        res['decode_ids'] = dec_ids
        res['decode_image'] = vq.decode_code(dec_ids, [B, code_dim, G, G])
        if not shared:
            # The official encode (what watermark detection re-tokenises with): encoder, quant_conv,
            # then the nearest L2-normalised code; margin = how far each choice is from a tie.
            side = G * 2 ** (len(cfg['vq']['encoder_ch_mult']) - 1)
            enc_img = torch.rand(B, 3, side, side, generator=g) * 2 - 1
            h = vq.quant_conv(vq.encoder(enc_img))
            _, _, (_, _, idx) = vq.quantize(h)
            zf = torch.nn.functional.normalize(h.permute(0, 2, 3, 1).reshape(-1, code_dim), dim=-1)
            sims = zf @ torch.nn.functional.normalize(vq.quantize.embedding.weight, dim=-1).t()
            res.update(encode_image=enc_img, encode_z=h, encode_ids=idx.view(B, G, G))
            meta['encode_min_margin'] = common.margin(sims)
            log.append(f'encode min margin {meta["encode_min_margin"]:.2e}')
    common.save_safetensors(res, meta, os.path.join(d, 'expected.safetensors'))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    ds = 2 ** (len(cfg['vq']['decoder_ch_mult']) - 1)
    print(f'{name}: grid {G} ({G * ds} px), V={V}, {", ".join(log)}, files {size / 1024:.0f} KB')
    entry = {'name': name, 'family': 'llamagen', 'dir': name, 'tokenizer': vq_file, 'weights': 'gpt.pt', 'grid': G,
             'imageSize': G * ds}
    if 'heads_flag' in cfg:
        entry['heads'] = cfg['heads_flag']
    if cfg.get('unsupported'):
        entry['unsupported'] = cfg['unsupported']
    return entry


def main():
    common.run_main(__doc__, 'LlamaGen', load_official, CONFIGS, FIXTURES, run_config)


if __name__ == '__main__':
    main()
