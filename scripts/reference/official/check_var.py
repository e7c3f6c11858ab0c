"""Official VAR outputs on tiny non-standard configurations (our own harness).

Imports VAR, VQVAE and the VQVAE building blocks from an extracted copy of the
official repository (FoundationVision/VAR; never copied into this project),
builds each configuration below with seeded random weights (re-initialised so
AdaLN gates, heads and every zero-initialised layer are non-zero), saves the
checkpoints in the official layouts (flat state_dicts, buffers included:
var.pth, vae.pth) and writes what the official code computes:

  tf_logits   [2B, L, V]  VAR.forward under teacher forcing (cond rows, then
                          null-class rows; inputs from the quantizer's own
                          idxBl_to_var_input of the ids tf_ids)
  tf_guided   [B, L, V]   (1+t)·cond − t·uncond per scale, t = cfg·si/(SN−1)
  greedy_ids  [B, L]      autoregressive_infer_cfg(top_k=1, top_p=0) token ids
  greedy_image [B,3,H,W]  its image in [0, 1]
  decode_image [B,3,H,W]  VQVAE.idxBl_to_img(tf_ids) in [-1, 1]

into <out>/<config>/expected.safetensors, plus <out>/manifest.json. The
Tessera side is test/official-conformance.test.ts (TESSERA_OFFICIAL_DIR=<out>
points it at this output instead of test/fixtures/official/var-llamagen).

  /usr/bin/python3 scripts/reference/official/check_var.py --repo /tmp/official-var --out /tmp/official-out
  /usr/bin/python3 scripts/reference/official/check_var.py --repo /tmp/official-var --fixtures   # the committed tiny ones

Configurations beyond what the VQVAE class exposes (other ch_mult,
num_res_blocks, attention off) replace vae.encoder / vae.decoder with the
official basic_vae.Encoder / Decoder built with those arguments: the key
layout and every layer are the official ones.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import var_llamagen_common as common  # noqa: E402

# name -> settings. vae: VQVAE(...) arguments; ch_mult / num_res_blocks / using_sa /
# using_mid_sa swap in basic_vae.Encoder/Decoder built with them.
CONFIGS = {
    # Plain AdaLN, 2 heads of 64, a 5-scale schedule not in the official table, a
    # VQVAE of the official shape (ch_mult 1,1,2,2,4) at ch 32; one head's
    # scale_mul above ln 100 (the clamp).
    'var_d3_w128_h2': dict(depth=3, width=128, heads=2, patch_nums=(1, 2, 3, 4, 6), classes=11, V=64, Cvae=16,
                           vae=dict(ch=32, share_quant_resi=4), cfg=2.5),
    # Shared AdaLN (the d36 variant), 6 heads of 32, 3 partially shared Phi (ticks 1/2K: for 4 scales
    # the official choice is [0,0,1,2], the 1/3K ticks of K = 4 would give [0,1,1,2]).
    'var_shared_d2_w192_h6': dict(depth=2, width=192, heads=6, shared_aln=True, patch_nums=(1, 2, 4, 7), classes=5,
                                  V=50, Cvae=8, vae=dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, share_quant_resi=3),
                                  cfg=4.0),
    # First scale 2x2 (pos_start [1, 4, C]), MLP ratio 2.5, one fully shared Phi, 1x1
    # quant convs, 4 heads of 16.
    'var_first2_mlp2.5': dict(depth=2, width=64, heads=4, mlp_ratio=2.5, patch_nums=(2, 3, 5), classes=3, V=29, Cvae=8,
                              vae=dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, share_quant_resi=1, quant_conv_ks=1), cfg=1.5),
    # Non-shared Phi (PhiNonShared, K = default_qresi_counts = 5 for 6 scales, ticks 1/2K); no
    # attention in the VQVAE.
    'var_phi_nonshared': dict(depth=1, width=64, heads=1, patch_nums=(1, 2, 3, 4, 5, 6), classes=4, V=40, Cvae=8,
                              vae=dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, share_quant_resi=0, default_qresi_counts=5,
                                       using_sa=False, using_mid_sa=False), cfg=3.0),
    # quant_resi = 0: every Phi is the identity (no quant_resi tensors in the file).
    'var_phi_identity': dict(depth=1, width=64, heads=2, patch_nums=(1, 2, 3), classes=2, V=16, Cvae=4,
                             vae=dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, share_quant_resi=4, quant_resi=0.0), cfg=2.0),
}

# The committed fixtures (test/fixtures/official/var-llamagen): tiny, weights stored as float16.
# Widths of 32 and tokenizers whose same-shaped conv kernels share one tensor (tie: see
# common.tie_same_shapes) keep these files small; the configurations above are untied.
FIXTURES = {
    # 3 partially shared Phi for 4 scales: the official choice [0,0,1,2] (1/2K ticks; 1/3K gives [0,1,1,2]).
    'var_fix_d2_w32': dict(depth=2, width=32, heads=1, patch_nums=(1, 2, 3, 5), classes=6, V=24, Cvae=8,
                           vae=dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, share_quant_resi=3, using_sa=False,
                                    using_mid_sa=False), tie=True, cfg=3.0),
    # Shared AdaLN, a 2x2 first scale, MLP ratio 3, 2 heads of 16; non-shared Phi (one per scale).
    'var_fix_shared_first2': dict(depth=1, width=32, heads=2, shared_aln=True, mlp_ratio=3.0, patch_nums=(2, 3, 5),
                                  classes=3, V=20, Cvae=4, vae=dict(ch=32, ch_mult=(1,), num_res_blocks=1, share_quant_resi=0),
                                  tie=True, cfg=2.0),
    # quant_resi = 0 (identity Phi, no quant_resi tensors) and 1x1 quant convs; 4 heads of 8.
    'var_fix_phi_identity': dict(depth=1, width=32, heads=4, patch_nums=(1, 3, 4), classes=2, V=12, Cvae=4,
                                 vae=dict(ch=32, ch_mult=(1,), num_res_blocks=1, quant_resi=0.0, quant_conv_ks=1,
                                          using_mid_sa=False), tie=True, cfg=1.0),
}


def load_official(repo):
    common.add_repo(repo)
    # SHIM: huggingface_hub is only used for the VARHF mixin class (Hub upload/download); an empty
    # base class keeps models/var.py importable. No maths involved.
    common.shim_module('huggingface_hub', PyTorchModelHubMixin=type('PyTorchModelHubMixin', (), {}))
    import models.var as var_mod
    from models.basic_vae import Decoder, Encoder
    from models.var import VAR
    from models.vqvae import VQVAE
    return var_mod, VAR, VQVAE, Encoder, Decoder


def build(cfg, official, g, vae_state=None):
    """The VQVAE (random, or `vae_state` loaded into it: one tokenizer file shared by VARs of other
    schedules, as the released 256 and 512 models share theirs) and the VAR."""
    var_mod, VAR, VQVAE, Encoder, Decoder = official
    pn = tuple(cfg['patch_nums'])
    if True:
        v = dict(cfg['vae'])
        ch_mult = v.pop('ch_mult', None)
        nrb = v.pop('num_res_blocks', None)
        using_sa = v.pop('using_sa', True)
        using_mid_sa = v.pop('using_mid_sa', True)
        vae = VQVAE(vocab_size=cfg['V'], z_channels=cfg['Cvae'], test_mode=True, v_patch_nums=pn, **v)
        if ch_mult is not None or nrb is not None or not using_sa or not using_mid_sa:
            dd = dict(dropout=0.0, ch=v['ch'], z_channels=cfg['Cvae'], in_channels=3, ch_mult=ch_mult or (1, 1, 2, 2, 4),
                      num_res_blocks=2 if nrb is None else nrb, using_sa=using_sa, using_mid_sa=using_mid_sa)
            vae.encoder = Encoder(double_z=False, **dd)
            vae.decoder = Decoder(**dd)
            vae.downsample = 2 ** (len(dd['ch_mult']) - 1)
        if vae_state is None:
            common.init_autoencoder(vae, g)
        else:
            # VQVAE.load_state_dict passes assign= (PyTorch >= 2.1); its only other step, replacing a
            # quantize.ema_vocab_hit_SV of another scale count (a training statistic), is done here.
            sd = dict(vae_state)
            sd['quantize.ema_vocab_hit_SV'] = vae.quantize.ema_vocab_hit_SV
            torch.nn.Module.load_state_dict(vae, sd, strict=True)
        if cfg.get('tie'):
            common.tie_same_shapes(vae)
    model = VAR(vae_local=vae, num_classes=cfg['classes'], depth=cfg['depth'], embed_dim=cfg['width'], num_heads=cfg['heads'],
                mlp_ratio=cfg.get('mlp_ratio', 4.0), drop_rate=0., attn_drop_rate=0., drop_path_rate=0., norm_eps=1e-6,
                shared_aln=cfg.get('shared_aln', False), cond_drop_rate=0.0, attn_l2_norm=True, patch_nums=pn,
                flash_if_available=False, fused_if_available=False)
    init_var(model, g)
    return vae.eval(), model.eval()


def init_var(model, g):
    C = model.C
    for name, p in model.named_parameters():
        if name.endswith('scale_mul_1H11'):
            common.normal_(p, g, 0.4, math.log(4.0))
        elif name.endswith('ada_gss'):
            common.normal_(p, g, 0.3)
        elif p.dim() == 2 and name.endswith('.weight') and 'emb' not in name:
            # Linear layers (incl. every ada_lin: gates and shifts far from zero).
            common.normal_(p, g, common.fan_in_std(p, 0.5 if 'ada_lin' in name else 1.0))
        elif name in ('class_emb.weight', 'lvl_embed.weight', 'pos_start', 'pos_1LC'):
            common.normal_(p, g, 0.5)
        else:  # biases (q_bias, v_bias, ...)
            common.normal_(p, g, 0.2)
    with torch.no_grad():
        # One head past the cap exp(min(p, ln 100)).
        model.blocks[0].attn.scale_mul_1H11.view(-1)[0] = 5.0


def run_config(name, cfg, official, out, store, vae_cache):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    shared = cfg.get('share_vae_with')
    if shared:
        cfg = {**cfg, 'vae': FIXTURES[shared]['vae'], 'tie': FIXTURES[shared].get('tie', False)}
    vae, model = build(cfg, official, g, vae_state=vae_cache[shared].state_dict() if shared else None)
    vae_cache[name] = vae
    dtype = {'float32': torch.float32, 'float16': torch.float16}[store]
    common.round_params(vae, dtype)
    common.round_params(model, dtype)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    vae_file = f'../{shared}/vae.pth' if shared else 'vae.pth'
    if not shared:
        torch.save(common.state_dict_as(vae, dtype), os.path.join(d, 'vae.pth'))
    torch.save(common.state_dict_as(model, dtype), os.path.join(d, 'var.pth'))

    pn = model.patch_nums
    SN, L, V, ncls = len(pn), model.L, model.V, model.num_classes
    cfg_scale = cfg['cfg']
    B = 2
    res, meta = {}, {'config': json.dumps({k: v for k, v in cfg.items()}), 'schedule': ','.join(map(str, pn)), 'cfg': cfg_scale,
                     'stored_as': store}
    with torch.no_grad():
        # Teacher forcing through VAR.forward (training-mode mask, full sequence in one pass).
        labels = torch.tensor([1 % ncls, (ncls - 1)], dtype=torch.long)
        ids = [torch.randint(0, V, (B, p * p), generator=g) for p in pn]
        x_in = vae.quantize.idxBl_to_var_input(ids)
        both = torch.cat([labels, torch.full_like(labels, ncls)])
        logits = model.forward(both, torch.cat([x_in, x_in]) if x_in is not None else None).float()
        guided = torch.empty(B, L, V)
        for si, (b, e) in enumerate(model.begin_ends):
            t = cfg_scale * si / (SN - 1)
            guided[:, b:e] = (1 + t) * logits[:B, b:e] - t * logits[B:, b:e]
        res.update(tf_labels=labels, tf_ids=torch.cat(ids, 1), tf_logits=logits, tf_guided=guided)
        meta['tf_cfg'] = cfg_scale

        # Greedy official sampling: record the token ids and how far each greedy choice is from a tie.
        with common.recorded_var_sampling(official[0]) as (picked, margins):
            g_labels = torch.tensor([0, ncls], dtype=torch.long)  # class 0 and the null class
            img = model.autoregressive_infer_cfg(B=B, label_B=g_labels, g_seed=0, cfg=cfg_scale, top_k=1, top_p=0.0)
        res.update(greedy_labels=torch.tensor([0, -1]), greedy_ids=torch.cat(picked, 1), greedy_image=img.float())
        meta['greedy_cfg'] = cfg_scale
        meta['greedy_min_margin'] = min(margins)

        # The VQVAE decode of given tokens (f_hat through every Phi, post_quant_conv, decoder, clamp).
        res['decode_image'] = vae.idxBl_to_img(ids, same_shape=True, last_one=True).float()
    common.save_safetensors(res, meta, os.path.join(d, 'expected.safetensors'))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f'{name}: L={L} V={V} image {tuple(img.shape[2:])}, greedy min margin {min(margins):.2e}, '
          f'|logits| max {logits.abs().max():.3g}, files {size / 1024:.0f} KB')
    return {'name': name, 'family': 'var', 'dir': name, 'tokenizer': vae_file, 'weights': 'var.pth'}


def main():
    common.run_main(__doc__, 'VAR', load_official, CONFIGS, FIXTURES, run_config)


if __name__ == '__main__':
    main()
