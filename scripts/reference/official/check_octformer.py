"""Runs the OFFICIAL OctFormer blocks (octree-nn/octformer c2975ab,
models/octformer.py: OctreeT, OctFormerStage / OctFormerBlock with CPE,
OctreeAttention with its default relative position bias RPE) on a seeded
batch of octrees, with small NON-STANDARD random weights, and writes what they
compute for test/official-octgpt.test.ts (no Python at test time).

    git --git-dir=/work/.mirror/octree-nn+octformer/repo archive HEAD | tar -x -C /tmp/octformer
    git --git-dir=/work/.mirror/octree-nn+ocnn-pytorch/repo archive HEAD ocnn | tar -x -C /tmp/ocnn
    /usr/bin/python3 scripts/reference/official/check_octformer.py --repo /tmp/octformer --ocnn /tmp/ocnn \
        --out test/fixtures/official

Writes `octformer-stage.pth.gz` (a gzipped torch.save of an OctFormerStage
state dict: blocks.0 has dilation 1, blocks.1 the dilation below; float16
values with 4 mantissa bits, which load_state_dict casts back) and
`octformer-cases.bin.gz` (check_ocnn.py's container): the clouds, the input
features, the first block's output and the stage's (the second block of
the first's output), and OctreeT's window
partitions (token -> window, slot) for both dilations.

Configuration (not the released 96..384 / K 32 / D 4): width 15, 5 heads of
3, patch 13, dilation 3, mlp_ratio 3, a batch of 2 clouds at depth 5 (full
depth 2), nempty features. BatchNorm runs in eval mode on random running
statistics; every parameter (biases, norms, RPE tables) is seeded noise.

SHIMS (imports only; no maths changed):
  * `dwconv` (octree-nn/dwconv, a CUDA extension) is missing. Its
    OctreeDWConv is a subclass of ocnn.nn.OctreeDWConv with the same weights
    [27, 1, C] and a CUDA forward that sums weight[k, c] * data[neigh[h, k], c]
    over the valid neighbours of get_neigh(depth, kernel, stride, nempty);
    the stand-in is the same subclass running ocnn's own (einsum) forward.
  * ocnn is loaded as check_ocnn.py does (no torchvision); ocnn.modules is
    imported for models/octformer.py's PatchEmbed (not run here).
"""
import argparse
import gzip
import io
import os
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_ocnn  # noqa: E402


def install_dwconv(ocnn):
    class OctreeDWConv(ocnn.nn.OctreeDWConv):
        def __init__(self, channels, kernel_size=[3], nempty=False, use_bias=False):
            super().__init__(in_channels=channels, kernel_size=kernel_size, stride=1, nempty=nempty, use_bias=use_bias)
    m = types.ModuleType('dwconv')
    m.OctreeDWConv = OctreeDWConv
    sys.modules['dwconv'] = m




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--repo', required=True, help='extracted octree-nn/octformer')
    ap.add_argument('--ocnn', required=True, help='extracted octree-nn/ocnn-pytorch')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=77)
    args = ap.parse_args()

    ocnn = check_ocnn.load_ocnn(args.ocnn)
    import ocnn.modules
    ocnn.modules = sys.modules['ocnn.modules']
    install_dwconv(ocnn)
    repo = os.path.abspath(args.repo)
    if not os.path.isfile(os.path.join(repo, 'models', 'octformer.py')):
        sys.exit(f'--repo {repo}: no models/octformer.py there')
    sys.path.insert(0, os.path.join(repo, 'models'))
    import octformer as of  # models/octformer.py alone (models/__init__ pulls the segmentation heads)
    from ocnn.octree import Octree, Points, merge_octrees
    arr = check_ocnn.arr

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    C, H, K, D, ratio, depth, full = 15, 5, 13, 3, 3.0, 5, 2

    octrees, clouds = [], []
    for b, n in enumerate((120, 90)):
        c = torch.rand(2, 3, generator=g) * 1.2 - 0.6
        p = (c[torch.randint(0, 2, (n,), generator=g)] + 0.15 * torch.randn(n, 3, generator=g)).clamp(-0.95, 0.95).float()
        o = Octree(depth, full)
        o.build_octree(Points(p))
        octrees.append(o)
        clouds.append(p)
    octree = merge_octrees(octrees)
    octree.construct_all_neigh()
    N = int(octree.nnum_nempty[depth])

    stage = of.OctFormerStage(dim=C, num_heads=H, patch_size=K, dilation=D, mlp_ratio=ratio, nempty=True,
                              num_blocks=2, use_checkpoint=False)
    with torch.no_grad():
        for name, p in stage.named_parameters():
            if name.endswith('norm1.weight') or name.endswith('norm2.weight') or name.endswith('bn.weight'):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith('rpe_table'):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith('cpe.conv.weights'):
                p.copy_(torch.randn(p.shape, generator=g) / 27 ** 0.5)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        for blk in stage.blocks:
            blk.cpe.bn.running_mean.copy_(0.3 * torch.randn(C, generator=g))
            blk.cpe.bn.running_var.copy_(0.5 + torch.rand(C, generator=g))
    sd = {k: check_ocnn.coarse(v.detach().clone()).half() if v.is_floating_point() else v for k, v in stage.state_dict().items()}
    stage.load_state_dict(sd)
    stage.eval()
    buf = io.BytesIO()
    torch.save(sd, buf)
    os.makedirs(args.out, exist_ok=True)
    with gzip.open(os.path.join(args.out, 'octformer-stage.pth.gz'), 'wb', compresslevel=9) as fh:
        fh.write(buf.getvalue())

    ot = of.OctreeT(octree, K, D, nempty=True, max_depth=depth, start_depth=depth)
    x = torch.randn(N, C, generator=g)
    with torch.no_grad():
        y0 = stage.blocks[0](x, ot, depth)
        ys = stage(x, ot, depth)  # = blocks[1](y0)

    parts = []
    for dil in (1, D):
        slots = ot.patch_partition(torch.arange(N), depth, fill_value=-1)
        if dil > 1:
            slots = slots.view(-1, K, dil).transpose(1, 2).reshape(-1)
        win = torch.full((N,), -1, dtype=torch.long)
        pos = torch.full((N,), -1, dtype=torch.long)
        where = (slots >= 0).nonzero().squeeze(1)
        win[slots[where]] = where // K
        pos[slots[where]] = where % K
        parts.append({'dilation': dil, 'window': arr(win.int()), 'slot': arr(pos.int())})

    b0 = stage.blocks[0].attention.rpe
    b1 = stage.blocks[1].attention.rpe
    case = {
        'width': C, 'heads': H, 'window': K, 'dilation': D, 'mlpHidden': int(C * ratio), 'depth': depth, 'fullDepth': full,
        'rpeBound': [b0.pos_bnd, b1.pos_bnd], 'nnumNonEmpty': N,
        'clouds': [arr(p) for p in clouds], 'x': arr(x), 'block0': arr(y0), 'stage': arr(ys),
        'partitions': parts,
    }
    path = os.path.join(args.out, 'octformer-cases.bin.gz')
    check_ocnn.write_fixture(path, {'source': 'octree-nn/octformer c2975ab + ocnn-pytorch b12e899', 'seed': args.seed,
                                    'cases': [case]})
    print(f'OctFormerStage C={C} H={H} K={K} D={D} hidden={int(C * ratio)}: {N} nodes at depth {depth} '
          f'(batch {octree.batch_size}), RPE bounds {case["rpeBound"]}; wrote {path}: {os.path.getsize(path)} bytes')


if __name__ == '__main__':
    main()
