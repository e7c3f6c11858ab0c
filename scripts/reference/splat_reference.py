#!/usr/bin/python3
"""Float64 brute-force 3DGS renderer written from shared/spec/gaussian-splatting.md
§1 (not from any rasterizer's code), and the fixtures it makes for
test/splat.test.ts: forward images of random scenes, and finite-difference
gradients of a weighted sum of the outputs on a tiny, smooth scene.

    /usr/bin/python3 scripts/reference/splat_reference.py

Conventions (native/include/tessera/splat.h): OpenCV camera axes, pixel (i, j)
sampled at (i + 0.5, j + 0.5); depth = Σ w·z / Σ w; contributors = number of
Gaussians blended. The tests read only the committed JSON."""
import base64
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'splat')
C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435]


def sh_basis(d):
    x, y, z = d
    xx, yy, zz = x * x, y * y, z * z
    return np.array([C0, -C1 * y, C1 * z, -C1 * x,
                     C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy), C2[3] * x * z, C2[4] * (xx - yy),
                     C3[0] * y * (3 * xx - yy), C3[1] * x * y * z, C3[2] * y * (4 * zz - xx - yy),
                     C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy), C3[5] * z * (xx - yy),
                     C3[6] * x * (xx - 3 * yy)])


def rotation(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def project(scene, cam, aa):
    """Per visible Gaussian: (z, index, mean2d, conic, opacity, rgb, tile rect)."""
    V = np.array(cam['view']).reshape(4, 4)
    R, t = V[:3, :3], V[:3, 3]
    campos = -R.T @ t
    W, H, fx, fy, cx, cy = cam['width'], cam['height'], cam['fx'], cam['fy'], cam['cx'], cam['cy']
    gx, gy = (W + 15) // 16, (H + 15) // 16
    deg = scene['degree']
    K = (deg + 1) ** 2
    out = []
    for i in range(len(scene['logits'])):
        m = scene['means'][i]
        p = R @ m + t
        if p[2] <= 0.2:
            continue
        Rq = rotation(scene['rotations'][i])
        S = np.diag(np.exp(scene['log_scales'][i]) ** 2)
        sigma = Rq @ S @ Rq.T
        tanx, tany = 0.5 * W / fx, 0.5 * H / fy
        ux = np.clip(p[0] / p[2], -(cx / fx + 0.3 * tanx), (W - cx) / fx + 0.3 * tanx)
        uy = np.clip(p[1] / p[2], -(cy / fy + 0.3 * tany), (H - cy) / fy + 0.3 * tany)
        J = np.array([[fx / p[2], 0, -fx * ux / p[2]], [0, fy / p[2], -fy * uy / p[2]]])
        cov = J @ R @ sigma @ R.T @ J.T
        det0 = np.linalg.det(cov)
        cov = cov + 0.3 * np.eye(2)
        det = np.linalg.det(cov)
        if det <= 0:
            continue
        conic = np.linalg.inv(cov)
        o = 1 / (1 + np.exp(-scene['logits'][i]))
        if aa:
            o *= np.sqrt(max(0.000025, det0 / det))
        mean2d = np.array([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])
        mid = 0.5 * (cov[0, 0] + cov[1, 1])
        radius = np.ceil(3 * np.sqrt(mid + np.sqrt(max(0.1, mid * mid - det))))
        c = mean2d - 0.5  # the reference's integer-centred pixel frame

        def tile(v, lim):
            return int(np.clip(np.floor(v / 16), 0, lim))
        rect = (tile(c[0] - radius, gx), tile(c[0] + radius + 15, gx), tile(c[1] - radius, gy), tile(c[1] + radius + 15, gy))
        if rect[0] >= rect[1] or rect[2] >= rect[3]:
            continue
        d = (m - campos) / np.linalg.norm(m - campos)
        rgb = np.maximum(sh_basis(d)[:K] @ scene['sh'][i][:K] + 0.5, 0)
        out.append((np.float32(p[2]), i, mean2d, conic, o, rgb, p[2], rect))
    out.sort(key=lambda g: (g[0], g[1]))
    return out


def render(scene, cam, aa, bg):
    W, H = cam['width'], cam['height']
    splats = project(scene, cam, aa)
    rgb = np.zeros((H, W, 3))
    alpha = np.zeros((H, W))
    depth = np.zeros((H, W))
    count = np.zeros((H, W), dtype=np.int64)
    for y in range(H):
        for x in range(W):
            T, C, N, wsum, n = 1.0, np.zeros(3), 0.0, 0.0, 0
            for (_, _, mu, Q, o, col, z, rect) in splats:
                if not (rect[0] <= x // 16 < rect[1] and rect[2] <= y // 16 < rect[3]):
                    continue
                dx, dy = mu[0] - (x + 0.5), mu[1] - (y + 0.5)
                power = -0.5 * (Q[0, 0] * dx * dx + Q[1, 1] * dy * dy) - Q[0, 1] * dx * dy
                if power > 0:
                    continue
                a = min(0.99, o * np.exp(power))
                if a < 1 / 255:
                    continue
                if T * (1 - a) < 1e-4:
                    break
                C += col * a * T
                N += z * a * T
                wsum += a * T
                T *= 1 - a
                n += 1
            rgb[y, x] = C + T * np.asarray(bg)
            alpha[y, x] = 1 - T
            depth[y, x] = N / wsum if wsum > 0 else 0
            count[y, x] = n
    return rgb, alpha, depth, count


def look_at(eye, W, H, f):
    eye = np.asarray(eye, dtype=np.float64)
    z = -eye / np.linalg.norm(eye)
    x = np.cross(z, [0, -1, 0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    V = np.eye(4)
    V[:3, :3] = np.stack([x, y, z])
    V[:3, 3] = -V[:3, :3] @ eye
    cam = dict(fx=f, fy=1.05 * f, cx=W / 2 + 0.7, cy=H / 2 - 0.4, width=W, height=H, view=V.reshape(-1).tolist())
    # Round to float32 as the renderer will see it.
    return {k: (np.float32(v).item() if isinstance(v, float) else v) for k, v in cam.items()} | {
        'view': np.float32(V.reshape(-1)).astype(np.float64).tolist()}


def random_scene(rng, n, degree, ls_lo, ls_hi, radius):
    K = (degree + 1) ** 2
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
    sh = rng.uniform(-0.3, 0.3, (n, K, 3))
    sh[:, 0] = rng.uniform(-1.2, 1.2, (n, 3))
    return dict(degree=degree, means=f32(rng.uniform(-radius, radius, (n, 3))),
                log_scales=f32(rng.uniform(ls_lo, ls_hi, (n, 3))), rotations=f32(rng.uniform(-1, 1, (n, 4))),
                logits=f32(rng.uniform(-1.5, 2.5, n)), sh=f32(sh))


def b64(a, dtype='<f4'):
    """Little-endian base64. float32 holds the scenes exactly and the images to
    ~6e-8 relative, well inside the tests' 1e-5; gradients keep float64."""
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def scene_json(s):
    return dict(degree=s['degree'], means=b64(s['means']), logScales=b64(s['log_scales']),
                rotations=b64(s['rotations']), opacityLogits=b64(s['logits']), sh=b64(s['sh']))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2024)
    cases = []
    for degree, aa, W, H in [(3, False, 37, 23), (1, True, 37, 23), (2, True, 29, 19), (0, False, 29, 19)]:
        s = random_scene(rng, 60, degree, -3.0, -1.4, 1.0)
        cams = [look_at([0.3, -0.4, -3.0], W, H, 0.9 * W), look_at([-2.5, 0.6, -1.8], W, H, 1.1 * W)]
        bg = [0.25, 0.5, 0.75]
        views = []
        for cam in cams:
            rgb, alpha, depth, count = render(s, cam, aa, bg)
            views.append(dict(rgb=b64(rgb), alpha=b64(alpha), depth=b64(depth), contributors=b64(count, '<i4')))
        cases.append(dict(mode='antialiased' if aa else 'classic', background=bg, scene=scene_json(s), cameras=cams, views=views))
    with open(os.path.join(OUT, 'forward.json'), 'w') as f:
        json.dump(cases, f)

    # Gradients: big semi-transparent Gaussians so every α stays in about
    # [0.05, 0.5] (far from 1/255 and 0.99) and every tile is covered: the
    # loss is smooth and central differences (h = 1e-5) are exact to ~1e-9.
    s = random_scene(rng, 4, 2, 0.7, 1.0, 0.25)
    s['logits'] = np.float32(rng.uniform(-1.2, 0.0, 4)).astype(np.float64)
    W, H = 24, 18
    cams = [look_at([0.2, -0.3, -3.5], W, H, 18.0)]
    bg = [0.1, 0.2, 0.3]
    wr, wa, wd = rng.uniform(-1, 1, (H, W, 3)), rng.uniform(-1, 1, (H, W)), 0.3 * rng.uniform(-1, 1, (H, W))
    grads = {}
    for mode in ['classic', 'antialiased']:
        def loss(sc):
            rgb, alpha, depth, _ = render(sc, cams[0], mode == 'antialiased', bg)
            return (wr * rgb).sum() + (wa * alpha).sum() + (wd * depth).sum()
        g = {}
        for key in ['means', 'log_scales', 'rotations', 'logits', 'sh']:
            flat = s[key].reshape(-1)
            num = np.zeros_like(flat)
            for j in range(flat.size):
                hi = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                lo = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                hi[key].reshape(-1)[j] += 1e-5
                lo[key].reshape(-1)[j] -= 1e-5
                num[j] = (loss(hi) - loss(lo)) / 2e-5
            g[key] = b64(num, '<f8')
        grads[mode] = g
    with open(os.path.join(OUT, 'gradients.json'), 'w') as f:
        json.dump(dict(background=bg, scene=scene_json(s), cameras=cams, gradRgb=b64(wr), gradAlpha=b64(wa),
                       gradDepth=b64(wd), grads=grads), f)


if __name__ == '__main__':
    main()
