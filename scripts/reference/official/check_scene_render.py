"""Scene FILES and camera FILES through `tessera render`, against the OFFICIAL
gsplat code: gsplat's own exporters write some of the scene files
(gsplat/exporter.py splat2ply_bytes and splat2splat_bytes), and gsplat's
pure-PyTorch reference renders the expected images (the pipeline of
check_gsplat.py). test/official-render-files.test.ts runs the CLI on the same
files and compares the PNGs (no Python at test time).

    git --git-dir=/work/.mirror/nerfstudio-project+gsplat/repo archive HEAD gsplat | tar -x -C /tmp/gsplat
    /usr/bin/python3 scripts/reference/official/check_scene_render.py --repo /tmp/gsplat \
        --out test/fixtures/official/render-files.bin.gz

Files (all hold the same kind of random scene; the CLI must read each one
as the format defines it):
  * the INRIA 3DGS training code's PLY layout (x y z nx ny nz f_dc_0..2
    f_rest_* channel-major, opacity logit, scale_* ln, rot_* wxyz), written
    here as save_ply writes it, binary little-endian, SH degree 3;
  * gsplat's exporter PLY (no normals; f_rest from shN.permute(0, 2, 1));
  * an ascii PLY of SH degree 1; a big-endian PLY of float64 properties in a
    shuffled order with unknown extra properties, SH degree 2;
  * gsplat's exporter .splat (antimatter15: 8-bit colour, opacity and
    quaternion) and compressed PLY (PlayCanvas/SuperSplat layout, two chunks);
    the expected renders use the values those layouts decode to.
Cameras: the cameras.json the INRIA training code writes (camera_to_JSON in
utils/camera_utils.py: "position" = camera centre, "rotation" = rows of the
camera-to-world rotation, fx/fy = fov2focal, centred principal point; its
world-to-camera is getWorld2View2(R, T) = [[R^T, T], [0, 1]] with 3DGS's R =
camera-to-world rotation), transcribed below; and the issue's
{"width",...,"viewMatrix","background"} form with an off-centre principal point.

Opacities stay below 0.343 so that every pixel where a Gaussian has alpha >=
1/255 lies within 3 sigma of it: Tessera's 3-sigma tile rectangle and
gsplat's 3.33-sigma boxes then list the same contributors, and the 8-bit
images must agree to the rounding (see test/official-splat.test.ts for the
rim pixels that differ otherwise).
"""
import argparse
import base64
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_gsplat  # noqa: E402  (load_gsplat, render_official)
import check_ocnn  # noqa: E402  (arr, write_fixture)

arr, write_fixture = check_ocnn.arr, check_ocnn.write_fixture
torch.set_num_threads(1)


def rand_rotation(g):
    q = torch.randn(4, generator=g, dtype=torch.float64)
    q = q / q.norm()
    w, x, y, z = q.tolist()
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def inria_camera(g, W, H, idx):
    """A camera as the INRIA code holds it (R = camera-to-world rotation, T = world-to-camera
    translation, FoVx/FoVy) looking at the origin from about 4 units, and its cameras.json entry."""
    centre = (torch.randn(3, generator=g, dtype=torch.float64) * 0.4 + torch.tensor([0.3, -0.2, -4.0], dtype=torch.float64)).numpy()
    # camera-to-world rotation whose z axis points at the origin, with a random roll
    z = -centre / np.linalg.norm(centre)
    up = np.array([0.0, -1.0, 0.0]) + 0.3 * torch.randn(3, generator=g, dtype=torch.float64).numpy()
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)            # columns = camera axes in the world
    T = -R.T @ centre
    fovx = 0.6 + 0.3 * float(torch.rand(1, generator=g))
    fovy = 2 * math.atan(math.tan(fovx / 2) * H / W * (0.9 + 0.2 * float(torch.rand(1, generator=g))))
    fov2focal = lambda fov, pixels: pixels / (2 * math.tan(fov / 2))  # noqa: E731  (utils/graphics_utils.py)
    # camera_to_JSON (utils/camera_utils.py), step by step:
    Rt = np.zeros((4, 4))
    Rt[:3, :3] = R.transpose()
    Rt[:3, 3] = T
    Rt[3, 3] = 1.0
    W2C = np.linalg.inv(Rt)
    entry = {'id': idx, 'img_name': f'{idx:05d}', 'width': W, 'height': H, 'position': W2C[:3, 3].tolist(),
             'rotation': [r.tolist() for r in W2C[:3, :3]], 'fy': fov2focal(fovy, H), 'fx': fov2focal(fovx, W)}
    # getWorld2View2(R, T) (translate 0, scale 1): the world-to-camera matrix the training code renders with
    V = np.zeros((4, 4))
    V[:3, :3] = R.transpose()
    V[:3, 3] = T
    V[3, 3] = 1.0
    return entry, V, entry['fx'], entry['fy'], W / 2, H / 2


def make_scene(g, n, deg):
    K = (deg + 1) ** 2
    means = torch.rand(n, 3, generator=g) * torch.tensor([2.4, 2.0, 2.4]) - torch.tensor([1.2, 1.0, 1.2])
    log_scales = torch.rand(n, 3, generator=g) * 2.2 - 3.0
    quats = torch.randn(n, 4, generator=g)
    logits = torch.rand(n, generator=g) * 3.2 - 4.0      # sigmoid <= 0.31
    sh = torch.randn(n, K, 3, generator=g) * 0.3
    sh[:, 0] = torch.randn(n, 3, generator=g) * 0.9
    return {'means': means, 'logScales': log_scales, 'rotations': quats, 'opacityLogits': logits, 'sh': sh}


def inria_ply(s, fmt='binary_little_endian', dtype='float', order=None, extra=False):
    """The INRIA save_ply layout (or a variant: ascii / big-endian / double / shuffled with extra properties)."""
    n, K = s['means'].shape[0], s['sh'].shape[1]
    cols = [('x', s['means'][:, 0]), ('y', s['means'][:, 1]), ('z', s['means'][:, 2])]
    cols += [(f'n{a}', torch.zeros(n)) for a in 'xyz']
    cols += [(f'f_dc_{c}', s['sh'][:, 0, c]) for c in range(3)]
    rest = s['sh'][:, 1:].transpose(1, 2).reshape(n, -1)   # channel-major, as save_ply's f_rest
    cols += [(f'f_rest_{i}', rest[:, i]) for i in range(rest.shape[1])]
    cols += [('opacity', s['opacityLogits'])]
    cols += [(f'scale_{a}', s['logScales'][:, a]) for a in range(3)]
    cols += [(f'rot_{a}', s['rotations'][:, a]) for a in range(4)]
    types = {c[0]: dtype for c in cols}
    if extra:
        cols += [('confidence', torch.rand(n) * 5), ('red', torch.randint(0, 256, (n,)).float())]
        types['confidence'], types['red'] = 'float', 'uchar'
    if order is not None:
        cols = [cols[i] for i in order(len(cols))]
    head = f'ply\nformat {fmt} 1.0\ncomment written by check_scene_render.py\nelement vertex {n}\n'
    head += ''.join(f'property {types[name]} {name}\n' for name, _ in cols) + 'end_header\n'
    data = np.stack([c[1].double().numpy() for c in cols], axis=1)
    if fmt == 'ascii':
        body = ''.join(' '.join(repr(float(v)) if types[cols[j][0]] != 'uchar' else str(int(v)) for j, v in enumerate(row)) + '\n' for row in data)
        return head.encode() + body.encode()
    end = '<' if fmt == 'binary_little_endian' else '>'
    np_t = {'float': 'f4', 'double': 'f8', 'uchar': 'u1'}
    rec = np.dtype([(name, end + np_t[types[name]]) for name, _ in cols])
    out = np.zeros(n, rec)
    for j, (name, _) in enumerate(cols):
        out[name] = data[:, j]
    return head.encode() + out.tobytes()


def splat_decoded(raw, n):
    """The values an antimatter15 .splat holds (32 bytes a Gaussian), in the raw 3DGS parameterisation."""
    rec = np.frombuffer(raw, np.dtype([('p', '<f4', 3), ('s', '<f4', 3), ('c', 'u1', 4), ('r', 'u1', 4)]), n)
    c0 = 0.28209479177387814
    rgba = rec['c'].astype(np.float64) / 255
    op = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    return {'means': torch.tensor(rec['p']), 'logScales': torch.tensor(np.log(rec['s'].astype(np.float64))).float(),
            'rotations': torch.tensor((rec['r'].astype(np.float64) - 128) / 128).float(),
            'opacityLogits': torch.tensor(np.log(op / (1 - op))).float(),
            'sh': torch.tensor((rgba[:, :3] - 0.5) / c0).float()[:, None, :]}


def compressed_decoded(raw, n, rest):
    """The values a PlayCanvas compressed PLY (as gsplat writes it: 18-float chunks of 256, four packed
    uint32 words, uchar f_rest) decodes to, by the format's rules (spec section 2)."""
    body = raw[raw.index(b'end_header\n') + len(b'end_header\n'):]
    nc = (n + 255) // 256
    chunk = np.frombuffer(body, '<f4', nc * 18).reshape(nc, 18).astype(np.float64)
    words = np.frombuffer(body, '<u4', n * 4, nc * 72).reshape(n, 4).astype(np.int64)
    shb = np.frombuffer(body, 'u1', n * rest, nc * 72 + n * 16).reshape(n, rest).astype(np.float64)
    c = chunk[np.arange(n) // 256]
    unorm = lambda w: np.stack([(w >> 21) / 2047, ((w >> 11) & 1023) / 1023, (w & 2047) / 2047], 1)  # noqa: E731
    means = c[:, 0:3] + (c[:, 3:6] - c[:, 0:3]) * unorm(words[:, 0])
    logs = c[:, 6:9] + (c[:, 9:12] - c[:, 6:9]) * unorm(words[:, 2])
    q = np.zeros((n, 4))
    largest = words[:, 1] >> 30
    for i in range(n):
        others = [a for a in range(4) if a != largest[i]]
        for j, a in enumerate(others):
            q[i, a] = (((words[i, 1] >> (20 - 10 * j)) & 1023) / 1023 - 0.5) * math.sqrt(2)
        q[i, largest[i]] = math.sqrt(max(0.0, 1 - (q[i] ** 2).sum()))
    col = np.stack([(words[:, 3] >> s) & 255 for s in (24, 16, 8, 0)], 1) / 255
    rgb = c[:, 12:15] + (c[:, 15:18] - c[:, 12:15]) * col[:, :3]
    op = np.clip(col[:, 3], 1e-6, 1 - 1e-6)
    K = rest // 3 + 1
    sh = np.zeros((n, K, 3))
    sh[:, 0] = (rgb - 0.5) / 0.28209479177387814
    sh[:, 1:] = (((shb + 0.5) / 256 - 0.5) * 8).reshape(n, 3, K - 1).transpose(0, 2, 1)
    f = lambda a: torch.tensor(a).float()  # noqa: E731
    return {'means': f(means), 'logScales': f(logs), 'rotations': f(q), 'opacityLogits': f(np.log(op / (1 - op))), 'sh': f(sh)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', required=True, help='extracted gsplat (holds gsplat/cuda/_torch_impl.py and gsplat/exporter.py)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=23)
    args = ap.parse_args()
    ti, mt, _ = check_gsplat.load_gsplat(args.repo)
    import importlib
    exporter = importlib.import_module('gsplat.exporter')
    g = torch.Generator().manual_seed(args.seed)
    W, H = 45, 33
    cams = [inria_camera(g, W, H, i) for i in range(3)]
    cameras_json = json.dumps([c[0] for c in cams])
    cases = []

    def add(name, file_name, data, expect_scene, deg, cam, aa=False, sh_degree=None, bg=None, flags=()):
        entry, V, fx, fy, cx, cy = cam
        Kmat = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32)
        Vt = torch.tensor(V, dtype=torch.float32)
        d = deg if sh_degree is None else min(sh_degree, deg)
        Kc = (d + 1) ** 2
        bgt = torch.tensor(bg if bg is not None else [0.0, 0.0, 0.0], dtype=torch.float32)
        s = expect_scene
        out = check_gsplat.render_official(ti, mt, s['means'].float(), s['logScales'].float(), s['rotations'].float(),
                                           s['opacityLogits'].float(), s['sh'][:, :Kc].float().contiguous(), d, Vt, Kmat,
                                           W, H, 0.2, aa, bgt)
        cases.append({'name': name, 'fileName': file_name, 'file': base64.b64encode(data).decode('ascii'),
                      'flags': list(flags), 'width': W, 'height': H,
                      'image': {k: arr(out[k].float()) for k in ('rgb', 'alpha', 'depth')}})
        print(f'{name}: {len(data)} bytes, mean alpha {float(out["alpha"].mean()):.3f}, {out["isects"]} tile intersections', flush=True)

    s3 = make_scene(g, 90, 3)
    add('inria-ply-sh3-cameras.json-index2', 'inria.ply', inria_ply(s3), s3, 3, cams[2], flags=['--camera', 'cameras.json', '--camera-index', '2'])
    s3b = make_scene(g, 90, 3)
    shN = s3b['sh'][:, 1:]
    gply = exporter.splat2ply_bytes(s3b['means'], s3b['logScales'], s3b['rotations'], s3b['opacityLogits'],
                                    s3b['sh'][:, 0], shN.permute(0, 2, 1).reshape(90, -1))
    add('gsplat-exporter-ply-sh3-antialiased', 'gsplat.ply', gply, s3b, 3, cams[0], aa=True,
        flags=['--camera', 'cameras.json', '--antialiased'])
    s1 = make_scene(g, 70, 1)
    add('ascii-ply-sh1', 'ascii.ply', inria_ply(s1, fmt='ascii'), s1, 1, cams[1], flags=['--camera', 'cameras.json', '--camera-index', '1'])
    s2 = make_scene(g, 80, 2)
    perm = lambda n: torch.randperm(n, generator=g).tolist()  # noqa: E731
    add('big-endian-double-shuffled-extra-sh2-as-sh1', 'be.ply',
        inria_ply(s2, fmt='binary_big_endian', dtype='double', order=perm, extra=True), s2, 2, cams[0], sh_degree=1,
        flags=['--camera', 'cameras.json', '--sh-degree', '1'])
    s0 = make_scene(g, 80, 0)
    raw = exporter.splat2splat_bytes(s0['means'], s0['logScales'], s0['rotations'], s0['opacityLogits'], s0['sh'][:, 0])
    # the issue's camera form: off-centre principal point, a background colour
    _, V, fx, fy, _, _ = cams[1]
    cam_issue = ({'width': W, 'height': H, 'fx': fx, 'fy': fy * 1.1, 'cx': W * 0.43, 'cy': H * 0.56,
                  'viewMatrix': V.reshape(-1).tolist(), 'background': [0.2, 0.5, 0.9]}, V, fx, fy * 1.1, W * 0.43, H * 0.56)
    add('gsplat-exporter-splat-issue-camera-bg', 'scene.splat', raw, splat_decoded(raw, 80), 0, cam_issue,
        bg=[0.2, 0.5, 0.9], flags=['--camera', 'view.json'])
    s1c = make_scene(g, 300, 1)   # two chunks of the compressed layout
    shN = s1c['sh'][:, 1:].permute(0, 2, 1).reshape(300, -1)
    craw = exporter.splat2ply_bytes_compressed(s1c['means'], s1c['logScales'], s1c['rotations'], s1c['opacityLogits'],
                                               s1c['sh'][:, 0], shN)
    # The decoding above must give back what gsplat encoded (in its Morton order), to the quantisation.
    dec, order = compressed_decoded(craw, 300, 9), exporter.sort_centers(s1c['means'], torch.arange(300))
    qn = s1c['rotations'][order] / s1c['rotations'][order].norm(dim=1, keepdim=True)
    assert (dec['means'] - s1c['means'][order]).abs().max() < 2e-3
    assert (dec['logScales'] - s1c['logScales'][order]).abs().max() < 2e-3
    assert ((dec['rotations'] * qn).sum(1).abs() > 0.999).all()
    assert (torch.sigmoid(dec['opacityLogits']) - torch.sigmoid(s1c['opacityLogits'][order])).abs().max() < 2.5e-3
    assert (dec['sh'][:, 0] - s1c['sh'][order, 0]).abs().max() < 0.05
    assert (dec['sh'][:, 1:] - s1c['sh'][order, 1:]).abs().max() < 0.04
    add('gsplat-exporter-compressed-ply-sh1', 'compressed.ply', craw, compressed_decoded(craw, 300, 9), 1, cams[2],
        flags=['--camera', 'cameras.json', '--camera-index', '2'])
    write_fixture(args.out, {'source': 'nerfstudio-project/gsplat 90d7b4b (gsplat/exporter.py, gsplat/cuda/_torch_impl.py)',
                             'seed': args.seed, 'files': {'cameras.json': cameras_json, 'view.json': json.dumps(cam_issue[0])},
                             'cases': cases})
    print(f'wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes')


if __name__ == '__main__':
    main()
