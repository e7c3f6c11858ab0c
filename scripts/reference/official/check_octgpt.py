"""Runs the OFFICIAL OctGPT transformer (octree-nn/octgpt 849d23a,
models/octgpt.py, models/octformer.py, models/positional_embedding.py,
models/vae.py's BinarySphericalQuantizer, utils/utils.py) on small
NON-STANDARD random-weight models and seeded octrees, and writes what it
computes for test/official-octgpt.test.ts (no Python at test time).

    git --git-dir=/work/.mirror/octree-nn+octgpt/repo archive HEAD | tar -x -C /tmp/octgpt
    git --git-dir=/work/.mirror/octree-nn+ocnn-pytorch/repo archive HEAD ocnn | tar -x -C /tmp/ocnn
    /usr/bin/python3 scripts/reference/official/check_octgpt.py --repo /tmp/octgpt --ocnn /tmp/ocnn \
        --out test/fixtures/official

Per configuration it writes the checkpoint the official module produces
(`octgpt-<name>.pth.gz`: a gzipped torch.save of model.state_dict() as
ocnn's thsolver saves it, or of its `{'model_dict': ...}` solver form;
float16 values with 4 mantissa bits to keep the fixtures small, which the
official load_state_dict casts back to float32), and into
`octgpt-cases.bin.gz` (the check_ocnn.py container) the split flags of the
octree that ocnn.Octree.build_octree made from a seeded cloud, the random
pre-quantisation latents of the leaf depth, the BSQ indices the official
quantizer makes of them, and, per teacher-forced pass, the token mask and the
split / code logits of OctGPT.forward (the training forward: official random
masking, encoder on the unmasked tokens, decoder on all, heads on every
token; the logits are caught with forward hooks on split_head / vq_head).
It also writes the window partitions OctreeT makes (patch_partition, with and
without the swin shift, dilation transpose) as token -> (window, slot).

Configurations are deliberately unlike the released ones (widths 12..24,
2..3 heads, 1..4 blocks per stack, 4..7 code bits, full depth 1..4, depth
stop != full depth + 3, windows 8..24, dilations 1..5, buffers 3..9, with and
without swin, LayerNorm/RMSNorm, SinPosEmb/AbsPosEmb, 1 or 4 classes).
Weights are re-drawn so no layer is trivial: OctGPT._init_weights zeroes
every bias and sets norms to 1; here every parameter (biases, norms, RoPE
frequencies, the absolute table) gets seeded noise of a size that keeps
attention logits O(1).

SHIMS (imports and one sort; no maths changed):
  * torch 1.13 lacks F.scaled_dot_product_attention: the documented math,
    softmax(q k^T * scale + attn_mask) v (float masks are added; dropout 0 in eval).
  * Import-only modules the transformer never calls are empty stand-ins:
    matplotlib, skimage, trimesh, plyfile, scipy.spatial (utils/utils.py's
    mesh and plotting helpers), ognn (the VQVAE's dual-octree decoder; only
    BinarySphericalQuantizer of models/vae.py is used), tqdm (an identity
    iterator).
  * scipy is missing: scipy.stats.truncnorm (OctGPT's mask-ratio draw) is a
    seeded rejection sampler of the same truncated normal; it only decides
    how many tokens are masked, and the masks are written to the fixture.
  * torch.sort is asked for its stable variant: on the CPU PyTorch 1.13's
    default sort scrambles equal keys, so get_depth2batch_indices (a sort of
    the batch ids, all 0 for one sample) would window the tokens in an
    arbitrary order; on CUDA, where the official code runs, sorts of more
    than 32 keys are stable and the order is the identity.
  * ocnn is loaded as check_ocnn.py does (no torchvision).
"""
import argparse
import gzip
import io
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_ocnn  # noqa: E402  (load_ocnn, arr, write_fixture)


def install_shims():
    if not hasattr(F, 'scaled_dot_product_attention'):
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            assert dropout_p == 0.0 and not is_causal
            s = scale if scale is not None else q.shape[-1] ** -0.5
            a = (q @ k.transpose(-2, -1)) * s
            if attn_mask is not None:
                a = a + attn_mask if attn_mask.dtype != torch.bool else a.masked_fill(~attn_mask, float('-inf'))
            return torch.softmax(a, dim=-1) @ v
        F.scaled_dot_product_attention = sdpa

    # torch.sort(stable=False) on the CPU is not stable in PyTorch 1.13, and
    # get_depth2batch_indices sorts batch ids that are all equal for one
    # sample: the official code would then window a scrambled token order.
    # On CUDA, where OctGPT runs, sorts of more than 32 keys are stable
    # (merge / radix sort) and the order is the identity; the shim asks for
    # that stable sort (a sorted result either way, so nothing else changes).
    if not getattr(torch.sort, '_stable_shim', False):
        sort = torch.sort

        def stable_sort(input, dim=-1, descending=False, stable=None, **kw):
            return sort(input, dim=dim, descending=descending, stable=True, **kw)
        stable_sort._stable_shim = True
        torch.sort = stable_sort

    def empty(name, **attrs):
        m = types.ModuleType(name)
        m.__path__ = []
        for k, v in attrs.items():
            setattr(m, k, v)
        sys.modules[name] = m
        return m

    class Anything:  # a placeholder class for names that are imported but never called here
        def __init__(self, *a, **k):
            raise RuntimeError('shimmed import called')

    mpl = empty('matplotlib', use=lambda *a, **k: None)
    mpl.pyplot = empty('matplotlib.pyplot')
    sk = empty('skimage')
    sk.measure = empty('skimage.measure')
    empty('trimesh')
    empty('plyfile', PlyData=Anything, PlyElement=Anything)
    og = empty('ognn')
    og.octreed = empty('ognn.octreed', OctreeD=Anything)
    og.mpu = empty('ognn.mpu')
    empty('tqdm', tqdm=lambda it, *a, **k: it)

    class TruncNorm:
        """scipy.stats.truncnorm(a, b, loc, scale) with rvs(n) by rejection."""
        def __init__(self, a, b, loc=0.0, scale=1.0):
            self.a, self.b, self.loc, self.scale = a, b, loc, scale

        def rvs(self, n):
            out = []
            while len(out) < n:
                z = np.random.standard_normal()
                if self.a <= z <= self.b:
                    out.append(self.loc + self.scale * z)
            return np.array(out)

    sc = empty('scipy')
    sc.stats = empty('scipy.stats', truncnorm=TruncNorm)
    sc.spatial = empty('scipy.spatial', cKDTree=Anything)


CONFIGS = [
    # name, model kwargs, octree/sequence settings
    dict(name='a', layout='plain', C=12, heads=2, blocks=8, classes=1, bits=5, pos='SinPosEmb', norm='LayerNorm',
         K=16, D=3, buffer=5, swin=True, full=1, stop=3, depth=5, cloud='sphere', n=400, label=0),
    dict(name='b', layout='solver', C=24, heads=2, blocks=4, classes=4, bits=7, pos='AbsPosEmb', norm='RMSNorm',
         K=24, D=5, buffer=9, swin=True, full=2, stop=4, depth=6, cloud='clusters', n=500, label=2),
    dict(name='c', layout='plain', C=18, heads=3, blocks=2, classes=1, bits=4, pos='SinPosEmb', norm='RMSNorm',
         K=8, D=1, buffer=3, swin=False, full=3, stop=4, depth=4, cloud='clusters', n=300, label=0),
    # checkpoint a's weights with other windows and depths 4..5 (a 4,096-node dense depth)
    dict(name='d', weights='a', C=12, heads=2, blocks=8, classes=1, bits=5, pos='SinPosEmb', norm='LayerNorm',
         K=20, D=2, buffer=4, swin=True, full=4, stop=5, depth=5, cloud='clusters', n=60, label=0, every=7, rates=(None,)),
]


def make_cloud(g, n, kind):
    if kind == 'sphere':
        v = torch.randn(n, 3, generator=g)
        p = 0.6 * v / v.norm(dim=1, keepdim=True) + 0.03 * torch.randn(n, 3, generator=g)
    else:
        c = torch.rand(3, 3, generator=g) * 1.4 - 0.7
        p = c[torch.randint(0, 3, (n,), generator=g)] + 0.08 * torch.randn(n, 3, generator=g)
    p = p.clamp(-0.95, 0.95).float()
    nrm = torch.randn(n, 3, generator=g)
    return p, (nrm / nrm.norm(dim=1, keepdim=True)).float()


def randomise(model, g):
    """Every parameter seeded and non-trivial (biases, norms, RoPE, tables too)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('rope.freqs'):
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith('absolute_emb'):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith('norm1.weight') or name.endswith('norm2.weight') or name.endswith('_ln.weight'):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2 and ('emb' in name):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))




def build_model(OctGPT, cfg):
    """The official OctGPT of a CONFIGS entry, as the released unconditional/category configs build it."""
    vq = types.SimpleNamespace(embedding_channels=cfg['bits'], quantizer_type='bsq')
    return OctGPT(num_embed=cfg['C'], num_heads=cfg['heads'], num_blocks=cfg['blocks'],
                  num_classes=cfg['classes'], patch_size=cfg['K'], dilation=cfg['D'],
                  buffer_size=cfg['buffer'], drop_rate=0.0, pos_emb_type=cfg['pos'],
                  norm_type=cfg['norm'], use_checkpoint=False, use_swin=cfg['swin'],
                  vqvae_config=vq, condition_type='category' if cfg['classes'] > 1 else 'none',
                  condition_policy='concat')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--repo', required=True, help='extracted octree-nn/octgpt')
    ap.add_argument('--ocnn', required=True, help='extracted octree-nn/ocnn-pytorch')
    ap.add_argument('--out', required=True, help='output folder (test/fixtures/official)')
    ap.add_argument('--seed', type=int, default=2025)
    args = ap.parse_args()

    install_shims()
    ocnn = check_ocnn.load_ocnn(args.ocnn)
    repo = os.path.abspath(args.repo)
    if not os.path.isfile(os.path.join(repo, 'models', 'octgpt.py')):
        sys.exit(f'--repo {repo}: no models/octgpt.py there')
    sys.path.insert(0, repo)
    from models.octgpt import OctGPT
    from models.octformer import OctreeT
    from models.vae import BinarySphericalQuantizer
    from utils.utils import octree2seq
    from ocnn.octree import Octree, Points
    arr = check_ocnn.arr

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    cases, saved = [], {}
    for ci, cfg in enumerate(CONFIGS):
        torch.manual_seed(args.seed + ci)
        np.random.seed(args.seed + ci)
        g = torch.Generator().manual_seed(args.seed * 7 + ci)
        model = build_model(OctGPT, cfg)
        randomise(model, g)
        if 'weights' in cfg:  # window, dilation, buffer and depths are not weights
            sd = saved[cfg['weights']]
            ckpt_name = f'octgpt-{cfg["weights"]}.pth.gz'
        else:
            # The fixture checkpoint holds float16 values; the official model runs
            # on exactly those values (load_state_dict casts them to float32).
            # Values keep 4 mantissa bits (a 1/32 grid: random weights need no
            # more), so the gzipped checkpoints stay small.
            sd = {k: check_ocnn.coarse(v.detach().clone()).half() for k, v in model.state_dict().items()}
            saved[cfg['name']] = sd
            ckpt_name = f'octgpt-{cfg["name"]}.pth.gz'
            buf = io.BytesIO()
            torch.save(sd if cfg['layout'] == 'plain' else {'model_dict': sd, 'epoch': 7}, buf)
            with gzip.open(os.path.join(args.out, ckpt_name), 'wb', compresslevel=9) as fh:
                fh.write(buf.getvalue())
        model.load_state_dict(sd)
        model.eval()

        pts, nrm = make_cloud(g, cfg['n'], cfg['cloud'])
        octree = Octree(cfg['depth'], cfg['full'])
        octree.build_octree(Points(pts, nrm))
        octree.construct_all_neigh()
        lo, hi = cfg['full'], cfg['stop']
        split = octree2seq(octree, lo, hi)
        nnum = [int(octree.nnum[d]) for d in range(octree.depth + 1)]
        n_vq = nnum[hi]
        latents = torch.randn(n_vq, cfg['bits'], generator=g)

        class Vqvae:  # the VQVAE's encoder is not run: its latents are drawn; its quantizer is official
            quantizer = BinarySphericalQuantizer(cfg['bits'])

            @staticmethod
            def extract_code(o):
                return latents
        vqvae = Vqvae()
        indices = vqvae.quantizer(latents)[1]

        passes = []
        every = cfg.get('every', 1)  # large sequences keep every k-th split row (all code rows)
        for rate in cfg.get('rates', (None, 0.15)):
            seen = {}
            orig_get_mask = model.get_mask

            def get_mask(seq_len, orders, mask_rate=None, _o=orig_get_mask, _r=rate):
                m = _o(seq_len, orders, mask_rate=_r)
                seen['mask'] = m.clone()
                return m
            model.get_mask = get_mask
            hooks = [model.split_head.register_forward_hook(lambda m, i, o: seen.__setitem__('split', o.detach().clone())),
                     model.vq_head.register_forward_hook(lambda m, i, o: seen.__setitem__('vq', o.detach().clone()))]
            cond = torch.tensor([cfg['label']]) if cfg['classes'] > 1 else None
            with torch.no_grad():
                model(octree, lo, hi, condition=cond, split=split, vqvae=vqvae)
            for h in hooks:
                h.remove()
            model.get_mask = orig_get_mask
            rows = torch.arange(0, seen['split'].shape[0], every)
            passes.append({'rate': 'official' if rate is None else rate, 'mask': arr(seen['mask'].int()),
                           'masked': int(seen['mask'].sum()), 'splitEvery': every,
                           'splitLogits': arr(seen['split'][rows].float()), 'codeLogits': arr(seen['vq'].float())})

        # Window partitions of the decoder's OctreeT (all tokens, buffer first).
        N = cfg['buffer'] + sum(nnum[lo:hi + 1])
        ot = OctreeT(octree, N, cfg['K'], cfg['D'], nempty=False, depth_list=list(range(lo, hi + 1)),
                     buffer_size=cfg['buffer'])
        parts = []
        for dil in sorted({1, cfg['D']}):
            for swin in ([False, True] if cfg['swin'] else [False]):
                slots = ot.patch_partition(torch.arange(N), fill_value=-1, use_swin=swin)
                if dil > 1:
                    slots = slots.view(-1, cfg['K'], dil).transpose(1, 2).reshape(-1)
                win = torch.full((N,), -1, dtype=torch.long)
                pos = torch.full((N,), -1, dtype=torch.long)
                where = (slots >= 0).nonzero().squeeze(1)
                win[slots[where]] = where // cfg['K']
                pos[slots[where]] = where % cfg['K']
                parts.append({'dilation': dil, 'shift': swin, 'window': arr(win.int()), 'slot': arr(pos.int())})

        cases.append({
            'name': cfg['name'], 'checkpoint': ckpt_name,
            'options': {'heads': cfg['heads'], 'window': cfg['K'], 'dilation': cfg['D'], 'bufferSize': cfg['buffer'],
                        'shiftWindows': cfg['swin'], 'fullDepth': lo, 'depthStop': hi},
            'model': {'width': cfg['C'], 'blocksPerStack': cfg['blocks'] // 2, 'classes': cfg['classes'], 'bits': cfg['bits'],
                      'pos': cfg['pos'], 'norm': cfg['norm']},
            'label': cfg['label'], 'octreeDepth': octree.depth, 'nnum': nnum,
            **({'points': arr(pts)} if cfg['n'] <= 400 else {}),
            'split': arr(split.int()), 'latents': arr(latents), 'indices': arr(indices.int()),
            'passes': passes, 'partitions': parts,
        })
        print(f"{cfg['name']}: C={cfg['C']} H={cfg['heads']} blocks={cfg['blocks']//2}+{cfg['blocks']//2} bits={cfg['bits']} "
              f"{cfg['pos']}/{cfg['norm']} K={cfg['K']} D={cfg['D']} buffer={cfg['buffer']} swin={cfg['swin']} "
              f"depths {lo}..{hi} nnum {nnum[lo:hi + 1]}; masked {[p['masked'] for p in passes]} of {N - cfg['buffer']}")
    path = os.path.join(args.out, 'octgpt-cases.bin.gz')
    check_ocnn.write_fixture(path, {'source': 'octree-nn/octgpt 849d23a + ocnn-pytorch b12e899', 'seed': args.seed,
                                    'cases': cases})
    print(f'wrote {path}: {os.path.getsize(path)} bytes')


if __name__ == '__main__':
    main()
