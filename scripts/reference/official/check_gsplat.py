"""Runs the OFFICIAL gsplat pure-PyTorch reference (gsplat/cuda/_torch_impl.py)
on seeded random scenes and cameras and writes its projection and renders, for
test/official-splat.test.ts to compare Tessera with (no Python at test time).

    git --git-dir=/work/.mirror/nerfstudio-project+gsplat/repo archive HEAD gsplat | tar -x -C /tmp/gsplat
    /usr/bin/python3 scripts/reference/official/check_gsplat.py --repo /tmp/gsplat \
        --out test/fixtures/official/gsplat-cases.bin.gz
    # a larger set (full images, more Gaussians) for a one-off comparison:
    /usr/bin/python3 scripts/reference/official/check_gsplat.py --repo /tmp/gsplat --large \
        --out /tmp/gsplat-large.bin.gz
    TESSERA_OFFICIAL_GSPLAT=/tmp/gsplat-large.bin.gz npx vitest run test/official-splat.test.ts

The pipeline is gsplat's own `_rasterization` (gsplat/rendering.py, the
"PyTorch autograd" rasterizer) with each step an official function:
_quat_scale_to_covar_preci -> _fully_fused_projection (pinhole, eps2d 0.3,
compensations in antialiased mode) -> opacities x compensations ->
_isect_tiles -> _isect_offset_encode -> SH colours (_spherical_harmonics on
means - camera centre, as the CUDA spherical_harmonics does; +0.5, clamped at
0, as _maybe_evaluate_sh) -> RGB+ED (depths appended as a channel, zero
background for it) -> _rasterize_to_pixels -> depth / alpha.clamp(1e-10).

SHIMS (the maths is official; these only stand in for compiled/external code):
  * `gsplat` and `gsplat.cuda` are registered as packages without running
    their __init__ (which loads the CUDA extension).
  * `gsplat.cuda._wrapper` (CUDA bindings) is replaced by a module holding the
    two type names _torch_impl imports and `rasterize_to_indices_in_range`,
    which _rasterize_to_pixels calls: a line-by-line Python transcription of
    the CUDA kernel rasterize_to_indices_3dgs_kernel
    (csrc/RasterizeToIndices3DGSSerialBatch.cu and eval_gaussian_weight in
    RasterizeToPixels3DGSDevice.cuh): per pixel, front to back, skip
    sigma < 0 or alpha = min(0.99, o e^-sigma) < 1/255, stop (exclusive) when
    T (1 - alpha) <= 1e-4, output (gaussian, pixel) pairs sorted by pixel.
  * `nerfacc.render_weight_from_alpha` / `accumulate_along_rays` (an external
    package _torch_impl.accumulate imports): weights = alpha x exclusive
    product of (1 - alpha) along each ray (float32, in order), and a
    scatter-add of weights x values per ray.

Output (gzip): u32 LE manifest length | JSON manifest | pad 8 | binary section;
arrays are {"dtype", "shape", "offset", "bytes"} into the binary section.
"""
import argparse
import math
import os
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_ocnn  # noqa: E402  (arr, write_fixture)

torch.set_num_threads(1)


# ---------------------------------------------------------------- shims
def rasterize_to_indices_in_range(range_start, range_end, transmittances, means2d, conics, opacities,
                                  image_width, image_height, tile_size, isect_offsets, flatten_ids):
    """SHIM: transcription of gsplat's CUDA rasterize_to_indices_3dgs (see the module doc)."""
    image_dims = means2d.shape[:-2]
    N = means2d.shape[-2]
    I = math.prod(image_dims)
    H, W = image_height, image_width
    th, tw = isect_offsets.shape[-2], isect_offsets.shape[-1]
    m2 = means2d.reshape(I * N, 2).float()
    co = conics.reshape(I * N, 3).float()
    op = opacities.reshape(I * N).float()
    offs = isect_offsets.reshape(I * th * tw).long()
    fl = flatten_ids.long()
    n_isects = fl.numel()
    trans_all = transmittances.reshape(I, H, W).float()
    block = tile_size * tile_size
    ly, lx = torch.meshgrid(torch.arange(tile_size), torch.arange(tile_size), indexing='ij')
    ly, lx = ly.reshape(-1), lx.reshape(-1)
    out_g, out_p = [], []
    one = torch.tensor(1.0, dtype=torch.float32)
    for image_id in range(I):
        for ty in range(th):
            for tx in range(tw):
                tile_id = ty * tw + tx
                flat = image_id * th * tw + tile_id
                start = int(offs[flat])
                end = n_isects if (image_id == I - 1 and tile_id == tw * th - 1) else int(offs[flat + 1])
                num_batches = (end - start + block - 1) // block
                if range_start >= num_batches:
                    continue
                i = ty * tile_size + ly
                j = tx * tile_size + lx
                inside = (i < H) & (j < W)
                px = j.float() + 0.5
                py = i.float() + 0.5
                trans = torch.ones(block, dtype=torch.float32)
                trans[inside] = trans_all[image_id, i[inside], j[inside]]
                done = ~inside
                pix_id = i * W + j
                lo = start + block * range_start
                hi = min(end, start + block * min(range_end, num_batches))
                for idx in range(lo, hi):
                    if bool(done.all()):
                        break
                    g = int(fl[idx])
                    dx = m2[g, 0] - px
                    dy = m2[g, 1] - py
                    c = co[g]
                    sigma = 0.5 * (c[0] * dx * dx + c[2] * dy * dy) + c[1] * dx * dy
                    alpha = torch.minimum(op[g] * torch.exp(-sigma), torch.tensor(0.99, dtype=torch.float32))
                    valid = ~((sigma < 0) | (alpha < 1.0 / 255.0)) & ~done
                    next_trans = trans * (one - alpha)
                    stop = valid & (next_trans <= 1e-4)
                    done = done | stop
                    emit = valid & ~stop
                    if bool(emit.any()):
                        pids = pix_id[emit] + image_id * H * W
                        out_p.append(pids)
                        out_g.append(torch.full_like(pids, g % N))
                    trans = torch.where(emit, next_trans, trans)
    if not out_p:
        e = torch.zeros(0, dtype=torch.long)
        return e, e, e
    p = torch.cat(out_p)
    gid = torch.cat(out_g)
    order = torch.sort(p, stable=True).indices    # the kernel writes each pixel's run at its prefix-sum offset
    p, gid = p[order], gid[order]
    return gid, p % (H * W), torch.div(p, H * W, rounding_mode='floor')


def render_weight_from_alpha(alphas, ray_indices=None, n_rays=None):
    """SHIM (nerfacc): weights = alpha * prod_{earlier samples of the ray} (1 - alpha), float32 in order."""
    n = alphas.numel()
    trans = torch.ones(n, dtype=alphas.dtype)
    if n:
        first = torch.ones(n, dtype=torch.bool)
        first[1:] = ray_indices[1:] != ray_indices[:-1]
        start = torch.cummax(torch.where(first, torch.arange(n), torch.zeros(n, dtype=torch.long)), 0).values
        rank = torch.arange(n) - start
        run = torch.ones(n, dtype=alphas.dtype)
        for k in range(1, int(rank.max()) + 1):
            sel = rank == k
            run[sel] = run[sel.nonzero().squeeze(1) - 1] * (1 - alphas[sel.nonzero().squeeze(1) - 1])
        trans = run
    return alphas * trans, trans


def accumulate_along_rays(weights, values=None, ray_indices=None, n_rays=None):
    """SHIM (nerfacc): per-ray sum of weights * values (or of weights)."""
    src = weights[..., None] if values is None else weights[..., None] * values
    out = torch.zeros((n_rays, src.shape[-1]), dtype=src.dtype)
    return out.index_add_(0, ray_indices, src)


def load_gsplat(repo):
    repo = os.path.abspath(repo)
    pkg = os.path.join(repo, 'gsplat')
    if not os.path.isfile(os.path.join(pkg, 'cuda', '_torch_impl.py')):
        sys.exit(f'--repo {repo}: no gsplat/cuda/_torch_impl.py there (extract the official repository first)')
    for name, path in [('gsplat', pkg), ('gsplat.cuda', os.path.join(pkg, 'cuda'))]:
        m = types.ModuleType(name)
        m.__path__ = [path]
        sys.modules[name] = m
    w = types.ModuleType('gsplat.cuda._wrapper')
    w.CameraModel = str
    w.RollingShutterType = int
    w.rasterize_to_indices_in_range = rasterize_to_indices_in_range
    sys.modules['gsplat.cuda._wrapper'] = w
    nf = types.ModuleType('nerfacc')
    nf.render_weight_from_alpha = render_weight_from_alpha
    nf.accumulate_along_rays = accumulate_along_rays
    sys.modules['nerfacc'] = nf
    import importlib
    ti = importlib.import_module('gsplat.cuda._torch_impl')
    mt = importlib.import_module('gsplat.cuda._math')
    const = importlib.import_module('gsplat.cuda._constants')
    return ti, mt, const


# ---------------------------------------------------------------- fixture
# The container of check_ocnn.py (arr, write_fixture), read by the same test helper.
arr, write_fixture = check_ocnn.arr, check_ocnn.write_fixture


# ---------------------------------------------------------------- scenes
def look_at(eye, target, g):
    eye, target = torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    z = target - eye
    z = z / z.norm()
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64) + 0.3 * torch.randn(3, generator=g, dtype=torch.float64)
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])
    V = torch.eye(4, dtype=torch.float64)
    V[:3, :3] = R
    V[:3, 3] = -R @ eye
    return V.float()   # Tessera reads the camera as float32 too


def make_scene(g, n, sh_degree):
    """Raw 3DGS parameters: means in a box in front of the camera, log-scales
    from tiny to large, unnormalised quaternions, opacity logits -4..5."""
    K = (sh_degree + 1) ** 2
    means = torch.rand(n, 3, generator=g) * torch.tensor([3.0, 2.4, 4.0]) - torch.tensor([1.5, 1.2, 2.0])
    log_scales = torch.rand(n, 3, generator=g) * 3.2 - 5.0
    big = torch.rand(n, generator=g) < 0.1
    log_scales[big] += 1.6
    quats = torch.randn(n, 4, generator=g)
    logits = torch.rand(n, generator=g) * 9.0 - 4.0
    sh = torch.randn(n, K, 3, generator=g) * 0.25
    sh[:, 0] = torch.randn(n, 3, generator=g) * 0.9
    # Inputs on coarse binary grids (exact in float32): they compress, and the
    # renders stay generic.
    q = lambda t, step: (torch.round(t / step) * step).float()  # noqa: E731
    return q(means, 2 ** -12), q(log_scales, 2 ** -8), q(quats, 2 ** -8), q(logits, 2 ** -8), q(sh, 2 ** -7)


def render_official(ti, mt, means, log_scales, quats, logits, sh, sh_degree, viewmat, K, W, H, near, aa, bg):
    """gsplat/rendering.py _rasterization with the torch implementations."""
    scales = torch.exp(log_scales)
    opacities = torch.sigmoid(logits)
    viewmats = viewmat[None]
    Ks = K[None]
    covars, _ = mt._quat_scale_to_covar_preci(quats, scales, True, False, triu=False)
    radii, means2d, depths, conics, comp = ti._fully_fused_projection(
        means, covars, viewmats, Ks, W, H, eps2d=0.3, near_plane=near, far_plane=1e10, calc_compensations=aa)
    op = torch.broadcast_to(opacities[None, :], (1, means.shape[0]))
    if comp is not None:
        op = op * comp
    tile = 16
    tw, th = math.ceil(W / tile), math.ceil(H / tile)
    _, isect_ids, flatten_ids = ti._isect_tiles(means2d, radii, depths, tile, tw, th, sort=True)
    offsets = ti._isect_offset_encode(isect_ids, 1, tw, th).reshape(1, th, tw)
    # spherical_harmonics (CUDA) evaluates at means - camera centre (-R^T t)
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    campos = -R.T @ t
    dirs = (means - campos)[None]
    colors = ti._spherical_harmonics(sh_degree, dirs, sh)
    colors = torch.clamp_min(colors + 0.5, 0.0)
    rgb_colors = colors[0]
    colors = torch.cat([colors, depths[..., None]], dim=-1)   # RGB+ED
    bgs = torch.cat([bg[None], torch.zeros(1, 1)], dim=-1)
    rc, ra = ti._rasterize_to_pixels(means2d, conics, colors, op, W, H, tile, offsets, flatten_ids, backgrounds=bgs)
    rgb = rc[0, ..., :3]
    depth = rc[0, ..., 3:4] / ra[0].clamp(min=1e-10)
    return {'radii': radii[0], 'means2d': means2d[0], 'depths': depths[0], 'conics': conics[0],
            'compensations': comp[0] if comp is not None else None, 'opacities': op[0], 'colors': rgb_colors,
            'rgb': rgb, 'alpha': ra[0, ..., 0], 'depth': depth[..., 0], 'isects': int(flatten_ids.numel())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', required=True, help='extracted gsplat (holds gsplat/cuda/_torch_impl.py)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--large', action='store_true', help='more Gaussians, full images (not for committing)')
    args = ap.parse_args()
    ti, mt, const = load_gsplat(args.repo)
    print(f'gsplat constants: ALPHA_THRESHOLD {const.ALPHA_THRESHOLD}, MAX_ALPHA {const.MAX_ALPHA}, '
          f'TRANSMITTANCE_THRESHOLD {const.TRANSMITTANCE_THRESHOLD}, MIN_COMPENSATION {const.MIN_COMPENSATION}')
    g = torch.Generator().manual_seed(args.seed)
    # (W, H, N, sh degree, antialiased, near, background, crop) ; crop = None (whole image) or [x0, y0, w, h]
    if args.large:
        specs = [(333, 201, 2500, 3, True, 0.2, True, None), (333, 201, 2500, 0, False, 0.2, False, None),
                 (640, 360, 4000, 2, False, 0.2, True, None), (61, 47, 400, 1, True, 0.01, True, None),
                 (17, 300, 600, 3, False, 0.2, True, None), (256, 256, 3000, 1, True, 0.2, False, None)]
    else:
        specs = [(333, 201, 260, 3, True, 0.2, True, [120, 80, 64, 28]), (61, 47, 120, 0, False, 0.2, False, None),
                 (47, 29, 90, 1, True, 0.01, True, None), (41, 23, 80, 2, False, 0.2, True, None)]
    cases = []
    for ci, (W, H, N, deg, aa, near, with_bg, crop) in enumerate(specs):
        means, ls, q, lg, sh = make_scene(g, N, deg)
        eye = [float(x) for x in (torch.randn(3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, -4.2]))]
        V = look_at(eye, [0.1, -0.1, 0.0], g)
        fx = float(W) * (0.7 + 0.6 * float(torch.rand(1, generator=g)))
        fy = fx * (0.85 + 0.3 * float(torch.rand(1, generator=g)))
        cx = W * (0.4 + 0.2 * float(torch.rand(1, generator=g)))
        cy = H * (0.4 + 0.2 * float(torch.rand(1, generator=g)))
        fx, fy, cx, cy = (float(np.float32(v)) for v in (fx, fy, cx, cy))
        Kmat = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32)
        bg = torch.rand(3, generator=g) if with_bg else torch.zeros(3)
        out = render_official(ti, mt, means, ls, q, lg, sh, deg, V, Kmat, W, H, near, aa, bg)
        vis = int((out['radii'] > 0).all(-1).sum())
        img = {}
        for k in ('rgb', 'alpha', 'depth'):
            t = out[k]
            if crop:
                x0, y0, w, h = crop
                t = t[y0:y0 + h, x0:x0 + w]
            img[k] = arr(t.float())
        proj = {k: arr(out[k].float() if k != 'radii' else out[k].int()) for k in ('means2d', 'conics', 'depths', 'radii', 'opacities', 'colors')}
        if out['compensations'] is not None:
            proj['compensations'] = arr(out['compensations'].float())
        cases.append({'name': f'{W}x{H}-n{N}-sh{deg}-{"aa" if aa else "classic"}-near{near}{"-bg" if with_bg else ""}',
                      'width': W, 'height': H, 'fx': fx, 'fy': fy, 'cx': cx, 'cy': cy, 'view': V.reshape(-1).tolist(),
                      'near': near, 'antialiased': aa, 'shDegree': deg, 'background': bg.tolist(), 'crop': crop,
                      'scene': {'means': arr(means), 'logScales': arr(ls), 'rotations': arr(q), 'opacityLogits': arr(lg), 'sh': arr(sh)},
                      'projection': proj, 'image': img, 'visible': vis, 'isects': out['isects']})
        print(f'{cases[-1]["name"]}: {vis} of {N} visible (radii > 0), {out["isects"]} tile intersections, '
              f'mean alpha {float(out["alpha"].mean()):.3f}', flush=True)
    write_fixture(args.out, {'source': 'nerfstudio-project/gsplat 90d7b4b (gsplat/cuda/_torch_impl.py)', 'seed': args.seed,
                             'constants': {'alphaThreshold': const.ALPHA_THRESHOLD, 'maxAlpha': const.MAX_ALPHA,
                                           'transmittanceThreshold': const.TRANSMITTANCE_THRESHOLD,
                                           'minCompensation': const.MIN_COMPENSATION},
                             'cases': cases})
    print(f'wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes')


if __name__ == '__main__':
    main()
