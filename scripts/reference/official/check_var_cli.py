"""Official VAR generation and zero-shot editing, for comparison with the CLIs (our own harness).

A second conformance pass over what check_var.py leaves out: what `tessera
generate` and `tessera edit` write. Imports VAR and VQVAE from an extracted copy
of the official repository (FoundationVision/VAR; never copied into this
project) and the zero-shot editing helpers (autoregressive_infer_cfg_with_mask,
replace_embedding, get_edit_mask) from the official demo_zero_shot_edit.ipynb
of that copy: its helper cell is executed as it stands. The models are built
with seeded random weights by check_var.build (all official layers) and saved
in the official layouts. For each configuration it records:

  gen_<run>_ids / _image     autoregressive_infer_cfg(top_k=1) token ids [B, L] and image
                             [B, 3, H, W] in [0, 1], runs:
                               mixed   B = 3: two classes and the null class
                                       (label = num_classes), cfg > 1, top_p > 0
                               smooth  the same with more_smooth=True (with top_k = 1 the
                                       official Gumbel mix is over one kept entry)
                               nocfg   cfg = 0 (t = 0 at every scale: conditional logits)
  source_image [1, 3, H, W]  uint8 values of the image to edit (the test writes it as PNG)
  source_ids   [1, L]        vae.img_to_idxBl(normalize_01_into_pm1(image / 255))
  edit_<run>_ids / _image    autoregressive_infer_cfg_with_mask(top_k=1) with the demo's
                             get_edit_mask of a pixel box (as fractions x/W, y/H): the ids
                             the result is made of (the source's where replace_embedding
                             kept them, the sampled ones elsewhere) and the image, runs:
                               inpaint   null class (num_classes), box on exact .5 cells
                               outpaint  a class, cfg > 1

edit-masks.json.gz holds the demo's per-scale keep masks (get_edit_mask, then
replace_embedding's resize and threshold) for 600 pixel boxes on 5 schedules.

The box edges are chosen so that x/W·side lands on .5: Python's round() takes
the even neighbour there (0.5 -> 0, 1.5 -> 2, 5.5 -> 6, 6.5 -> 6).

  /usr/bin/python3 scripts/reference/official/check_var_cli.py --repo /tmp/official-var --fixtures
  /usr/bin/python3 scripts/reference/official/check_var_cli.py --repo /tmp/official-var --out /tmp/var-cli-out

The Tessera side is test/official-cli.test.ts (TESSERA_OFFICIAL_CLI_DIR=<out>
points it at --out output). Fixture files are gzip-compressed.
"""
import gzip
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_var  # noqa: E402
import var_llamagen_common as common  # noqa: E402


# check_var.build settings plus: gen (class labels, cfg, top_p of the mixed run), edit boxes.
CONFIGS = {
    # 3 heads of 16, 5 scales ending at 8 (16 px with a 2x VQVAE), 4 partially shared Phi over
    # 5 scales (si/(SN-1) = 0.5 is an exact tie of ticks 1/3K: float64 argmin decides),
    # attention in the VQVAE, tied same-shaped kernels (small files).
    'var_cli_h3_s5': dict(depth=2, width=48, heads=3, patch_nums=(1, 2, 3, 5, 8), classes=5, V=32, Cvae=8,
                          vae=dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, share_quant_resi=4), tie=True,
                          gen=dict(labels=(2, 4, -1), cfg=3.0, top_p=0.6),
                          edits=dict(inpaint=dict(box=(3, 1, 13, 11), mode='inpaint', label=-1, cfg=3.0),
                                     outpaint=dict(box=(1, 3, 11, 13), mode='outpaint', label=1, cfg=2.0))),
    # Shared AdaLN, a 2x2 first scale, MLP ratio 2, 2 heads of 16, non-shared Phi; 12 px.
    'var_cli_shared_first2': dict(depth=1, width=32, heads=2, shared_aln=True, mlp_ratio=2.0, patch_nums=(2, 4, 6),
                                  classes=3, V=24, Cvae=4,
                                  vae=dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, share_quant_resi=0, using_sa=False),
                                  tie=True, gen=dict(labels=(0, 2, -1), cfg=1.5, top_p=0.9),
                                  edits=dict(inpaint=dict(box=(2, 3, 9, 12), mode='inpaint', label=-1, cfg=1.5),
                                             outpaint=dict(box=(3, 0, 12, 7), mode='outpaint', label=2, cfg=4.0))),
}

# Written only with --out (float32, not committed): the official 256 schedule and VQVAE shape
# (ch_mult 1,1,2,2,4, two res blocks, attention; 16x downsampling) at ch 32: a 256x256 image,
# area bins that overlap (16 -> 13, 10, 6), boxes on exact .5 token cells.
LARGE = {
    'var_cli_256': dict(depth=2, width=128, heads=2, patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16), classes=10, V=64, Cvae=16,
                        vae=dict(ch=32, share_quant_resi=4),
                        gen=dict(labels=(7, 0, -1), cfg=4.0, top_p=0.95),
                        edits=dict(inpaint=dict(box=(40, 24, 200, 232), mode='inpaint', label=-1, cfg=3.0),
                                   edit_class=dict(box=(56, 56, 184, 200), mode='inpaint', label=3, cfg=3.0),
                                   outpaint=dict(box=(8, 40, 248, 216), mode='outpaint', label=-1, cfg=1.5))),
    # The 512 schedule with shared AdaLN (the d36 layout) at width 64: 2240 tokens, 512x512 images.
    'var_cli_512_shared': dict(depth=2, width=64, heads=1, shared_aln=True, patch_nums=(1, 2, 3, 4, 6, 9, 13, 18, 24, 32),
                               classes=4, V=48, Cvae=8, vae=dict(ch=32, share_quant_resi=4),
                               gen=dict(labels=(3, -1), cfg=3.0, top_p=0.95),
                               edits=dict(inpaint=dict(box=(72, 40, 456, 472), mode='inpaint', label=-1, cfg=3.0),
                                          edit_class=dict(box=(104, 136, 360, 408), mode='inpaint', label=2, cfg=4.0))),
}


def load_official(repo):
    official = check_var.load_official(repo)
    # SHIM: utils/data.py imports PIL and torchvision (dataset building) at module level; only its
    # normalize_01_into_pm1 is used here. Empty stand-ins keep it importable (no maths involved).
    common.shim_module('PIL.Image')
    common.shim_module('torchvision.datasets.folder', DatasetFolder=object, IMG_EXTENSIONS=())
    common.shim_module('torchvision.transforms', InterpolationMode=object, transforms=object)
    from utils.data import normalize_01_into_pm1
    # The demo's helper cell (get_edit_mask, autoregressive_infer_cfg_with_mask, replace_embedding).
    nb = json.load(open(os.path.join(repo, 'demo_zero_shot_edit.ipynb')))
    cells = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']
    cell = [c for c in cells if 'def autoregressive_infer_cfg_with_mask' in c]
    if len(cell) != 1:
        sys.exit('demo_zero_shot_edit.ipynb: no single cell defines autoregressive_infer_cfg_with_mask')
    demo = {}
    exec(compile(cell[0], 'demo_zero_shot_edit.ipynb', 'exec'), demo)
    return official, normalize_01_into_pm1, demo


def source_image(side, g):
    """A smooth random RGB image as uint8 [1, 3, side, side] (low-frequency cosines plus noise)."""
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64), indexing='ij')
    img = torch.empty(1, 3, side, side, dtype=torch.float64)
    for c in range(3):
        f = torch.rand(4, generator=g, dtype=torch.float64)
        img[0, c] = 0.5 + 0.3 * torch.cos(xx * f[0] + f[1] * 6) * torch.cos(yy * f[2] + f[3] * 6)
    img += 0.08 * torch.randn(img.shape, generator=g, dtype=torch.float64)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def run_config(name, cfg, official, out, store, _cache=None):
    (var_mod, *_), normalize_01_into_pm1, demo = official[0], official[1], official[2]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    vae, model = check_var.build(cfg, official[0], g)
    dtype = {'float32': torch.float32, 'float16': torch.float16}[store]
    common.round_params(vae, dtype)
    common.round_params(model, dtype)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    torch.save(common.state_dict_as(vae, dtype), os.path.join(d, 'vae.pth'))
    torch.save(common.state_dict_as(model, dtype), os.path.join(d, 'var.pth'))

    pn, ncls, L = model.patch_nums, model.num_classes, model.L
    res, meta = {}, {'config': json.dumps({k: v for k, v in cfg.items()}), 'schedule': ','.join(map(str, pn)), 'stored_as': store}
    log = []
    with torch.no_grad():
        with common.recorded_var_sampling(var_mod, demo) as (picked, margins):
            gen = cfg['gen']
            labels = torch.tensor([ncls if c < 0 else c for c in gen['labels']])
            runs = (('mixed', labels, gen['cfg'], gen['top_p'], False), ('smooth', labels, gen['cfg'], gen['top_p'], True),
                    ('nocfg', labels[:1], 0.0, 0.0, False))
            for run, lab, scale, top_p, smooth in runs:
                picked.clear(), margins.clear()
                img = model.autoregressive_infer_cfg(B=len(lab), label_B=lab, g_seed=0, cfg=scale, top_k=1, top_p=top_p,
                                                     more_smooth=smooth)
                res[f'gen_{run}_labels'] = torch.tensor([-1 if c == ncls else c for c in lab.tolist()])
                res[f'gen_{run}_ids'] = torch.cat(picked, 1)
                res[f'gen_{run}_image'] = img.float()
                meta[f'gen_{run}_cfg'], meta[f'gen_{run}_top_p'], meta[f'gen_{run}_min_margin'] = scale, top_p, min(margins)
                log.append(f'{run} margin {min(margins):.1e}')
            meta['gen_runs'] = ','.join(r[0] for r in runs)

            # Zero-shot editing of one image.
            side = pn[-1] * vae.downsample
            src = source_image(side, g)
            x = normalize_01_into_pm1(src.float().div(255))
            src_ids = vae.img_to_idxBl(x, pn)
            res['source_image'] = src
            res['source_ids'] = torch.cat(src_ids, 1)
            meta['source_min_gap'] = code_gap(vae, x, pn)
            log.append(f'encoder gap {meta["source_min_gap"]:.1e}')
            for run, e in cfg['edits'].items():
                picked.clear(), margins.clear()
                x0, y0, x1, y1 = e['box']
                mask = demo['get_edit_mask'](pn, y0=y0 / side, x0=x0 / side, y1=y1 / side, x1=x1 / side, device='cpu',
                                             inpainting=e['mode'] == 'inpaint')
                label = torch.tensor([ncls if e['label'] < 0 else e['label']])
                img = demo['autoregressive_infer_cfg_with_mask'](model, B=1, label_B=label, g_seed=0, cfg=e['cfg'], top_k=1,
                                                                 top_p=0.0, more_smooth=False, input_img_tokens=src_ids,
                                                                 edit_mask=mask)
                kept = []
                for si, p in enumerate(pn):  # the ids the result is made of: replace_embedding on the ids
                    both = demo['replace_embedding'](mask, picked[si].view(1, 1, p, p).double(), src_ids[si].view(1, 1, p, p).double(), p, p)
                    kept.append(both.view(1, p * p).long())
                res[f'edit_{run}_ids'] = torch.cat(kept, 1)
                res[f'edit_{run}_image'] = img.float()
                res[f'edit_{run}_mask'] = mask.to(torch.int32)
                meta[f'edit_{run}'] = json.dumps(e)
                meta[f'edit_{run}_min_margin'] = min(margins)
                log.append(f'edit {run} margin {min(margins):.1e}, {int(mask.sum())}/{mask.numel()} kept')
            meta['edit_runs'] = ','.join(cfg['edits'])
    common.save_safetensors(res, meta, os.path.join(d, 'expected.safetensors'))
    print(f'{name}: L={L} image {side}px, {", ".join(log)}')
    return {'name': name, 'family': 'var', 'dir': name, 'tokenizer': 'vae.pth', 'weights': 'var.pth', 'side': side}


def code_gap(vae, x, pn):
    """The smallest relative gap between the nearest and second-nearest code over every scale
    of the encoder's quantisation (how far a token id is from a tie), in the official expansion
    |z|^2 + |e|^2 - 2 z.e (f_to_idxBl_or_fhat's own arithmetic, repeated here to measure it)."""
    q = vae.quantize
    f = vae.quant_conv(vae.encoder(x))
    rest, SN, H = f.clone(), len(pn), pn[-1]
    E = q.embedding.weight.data
    worst = math.inf
    for si, p in enumerate(pn):
        z = torch.nn.functional.interpolate(rest, size=(p, p), mode='area') if si != SN - 1 else rest
        zc = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
        dist = (zc[:, None, :] - E.double()[None]).square().sum(-1)
        two = dist.topk(2, dim=1, largest=False).values
        worst = min(worst, ((two[:, 1] - two[:, 0]) / two[:, 1].clamp_min(1e-30)).min().item())
        idx = dist.argmin(1).view(z.shape[0], p, p)
        h = q.embedding(idx).permute(0, 3, 1, 2)
        if si != SN - 1:
            h = torch.nn.functional.interpolate(h, size=(H, H), mode='bicubic')
        rest = rest - q.quant_resi[si / (SN - 1)](h)
    return worst


# Schedules of the edit-mask table: (patch_nums, image side in pixels).
MASK_SCHEDULES = (((1, 2, 3, 4, 5, 6, 8, 10, 13, 16), 256), ((1, 2, 3, 4, 6, 9, 13, 18, 24, 32), 512),
                  ((1, 2, 3, 5, 8), 16), ((2, 4, 6), 12), ((1, 3, 7, 11), 44))


def mask_table(demo, per_schedule=120):
    """The demo's per-scale keep masks for many pixel boxes: get_edit_mask (box as fractions x/W,
    Python round()) and replace_embedding's bilinear resize + threshold (called on gt = 1,
    prediction = 0, so it returns the mask it applies). Half of the boxes have edges on half
    token cells (the .5 cases of round() and of the resize). Boxes whose rounded edges meet
    (no token; Tessera refuses them) are left out."""
    g = torch.Generator().manual_seed(4)
    cases = []
    for pn, W in MASK_SCHEDULES:
        side, cell = pn[-1], W // pn[-1]
        n = 0
        while n < per_schedule:
            step = max(1, cell // 2) if n % 2 == 0 else 1
            x0, x1 = sorted(torch.randint(0, W // step + 1, (2,), generator=g).mul(step).tolist())
            y0, y1 = sorted(torch.randint(0, W // step + 1, (2,), generator=g).mul(step).tolist())
            if x0 == x1 or y0 == y1 or round(x0 / W * side) >= round(x1 / W * side) or round(y0 / W * side) >= round(y1 / W * side):
                continue
            mode = 'inpaint' if n % 4 < 2 else 'outpaint'
            mask = demo['get_edit_mask'](pn, y0=y0 / W, x0=x0 / W, y1=y1 / W, x1=x1 / W, device='cpu', inpainting=mode == 'inpaint')
            scales = []
            for p in pn:
                m = demo['replace_embedding'](mask, torch.zeros(1, 1, p, p), torch.ones(1, 1, p, p), p, p)
                scales.append(''.join(str(int(v)) for v in m.flatten().tolist()))
            cases.append(dict(schedule=list(pn), width=W, box=[x0, y0, x1, y1], mode=mode, masks=scales))
            n += 1
    return cases


def write_mask_table(out, official):
    masks = mask_table(official[2])
    with gzip.GzipFile(os.path.join(out, 'edit-masks.json.gz'), 'wb', mtime=0) as f:
        f.write(json.dumps(masks).encode())
    print(f'edit-masks.json.gz: {len(masks)} boxes over {len(MASK_SCHEDULES)} schedules')


def main():
    common.run_main(__doc__, 'VAR', lambda repo: load_official(common.add_repo(repo)), {**CONFIGS, **LARGE}, CONFIGS, run_config,
                    fixture_dir='cli', gzip_fixtures=True, after=write_mask_table)


if __name__ == '__main__':
    main()
