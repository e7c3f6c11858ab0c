"""`tessera octree <points.ply> --depth D --full-depth F --json out.json
--neighbors` against the OFFICIAL ocnn-pytorch code on small edge-case clouds
written as PLY files in several layouts, for test/official-octree-cli.test.ts
(no Python at test time).

    git --git-dir=/work/.mirror/octree-nn+ocnn-pytorch/repo archive HEAD ocnn | tar -x -C /tmp/ocnn
    /usr/bin/python3 scripts/reference/official/check_ocnn_cli.py --repo /tmp/ocnn \
        --out test/fixtures/official/ocnn-cli-cases.bin.gz

ocnn computes every expected value: Points + Octree.build_octree, then
construct_neigh(0) and construct_all_neigh() (the shims of check_ocnn.py).
Per depth the fixture keeps keys & (2^48 - 1) (the JSON's keys carry no batch
bits), children, nnum, nnum_nempty and the 27-slot neighbour rows.

Clouds: a single point; one point repeated (duplicates); duplicates plus
points exactly on the faces x, y, z = -1 and on interior cell boundaries;
depth 1; full depth = depth; full depth 0; an ascii PLY without normals; a
binary PLY with uchar colours and normals; a big-endian float64 PLY; a cloud
with points outside [-1, 1]^3 (Tessera leaves them out and counts them;
ocnn's build_octree would wrap their cell indices through its key masks, so
the expected octree is ocnn's build of the inside points, and the count is
checked separately). Points exactly at +1 are not used: ocnn's key mask sends
cell 2^D to 0 there (see check_ocnn.py), Tessera keeps them in the last cell.
"""
import argparse
import base64
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_ocnn  # noqa: E402

arr, write_fixture = check_ocnn.arr, check_ocnn.write_fixture
MASK48 = (1 << 48) - 1


def ply_bytes(p, n=None, rgb=None, fmt='binary_little_endian', dtype='float'):
    cols = [('x', p[:, 0], dtype), ('y', p[:, 1], dtype), ('z', p[:, 2], dtype)]
    if n is not None:
        cols += [('nx', n[:, 0], dtype), ('ny', n[:, 1], dtype), ('nz', n[:, 2], dtype)]
    if rgb is not None:
        cols += [('red', rgb[:, 0], 'uchar'), ('green', rgb[:, 1], 'uchar'), ('blue', rgb[:, 2], 'uchar')]
    head = f'ply\nformat {fmt} 1.0\nelement vertex {p.shape[0]}\n' + ''.join(f'property {t} {c}\n' for c, _, t in cols) + 'end_header\n'
    if fmt == 'ascii':
        rows = [' '.join(repr(float(np.float32(c[1][i]))) if c[2] != 'uchar' else str(int(c[1][i])) for c in cols) for i in range(p.shape[0])]
        return head.encode() + ('\n'.join(rows) + '\n').encode()
    e = '<' if fmt == 'binary_little_endian' else '>'
    np_t = {'float': 'f4', 'double': 'f8', 'uchar': 'u1'}
    rec = np.zeros(p.shape[0], np.dtype([(c, e + np_t[t]) for c, _, t in cols]))
    for c, v, _ in cols:
        rec[c] = v
    return head.encode() + rec.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', required=True, help='extracted ocnn-pytorch (holds ocnn/)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=77)
    args = ap.parse_args()
    ocnn = check_ocnn.load_ocnn(args.repo)
    Octree, Points = ocnn.octree.Octree, ocnn.octree.Points
    rng = np.random.default_rng(args.seed)
    cases = []

    def add(name, pts, depth, full, normals=None, rgb=None, fmt='binary_little_endian', dtype='float'):
        p32 = pts.astype(np.float32)
        inside = np.all((p32 >= -1) & (p32 <= 1), axis=1)
        pin = torch.from_numpy(p32[inside].copy())
        nin = torch.from_numpy(normals.astype(np.float32)[inside].copy()) if normals is not None else None
        o = Octree(depth, full, batch_size=1)
        o.build_octree(Points(pin, nin))
        check_ocnn.neigh_all(o)
        levels = [{'keys': arr(o.keys[d] & MASK48), 'children': arr(o.children[d].int()), 'nnum': int(o.nnum[d]),
                   'nnumNonEmpty': int(o.nnum_nempty[d]), 'neighbors': arr(o.neighs[d].reshape(-1).int())}
                  for d in range(depth + 1)]
        data = ply_bytes(pts, normals, rgb, fmt, dtype)
        cases.append({'name': name, 'depth': depth, 'fullDepth': full, 'points': int(pts.shape[0]),
                      'outside': int((~inside).sum()), 'file': base64.b64encode(data).decode('ascii'), 'levels': levels})
        print(f'{name}: {pts.shape[0]} points ({int((~inside).sum())} outside), nnum {[int(x) for x in o.nnum]}, '
              f'non-empty {[int(x) for x in o.nnum_nempty]}', flush=True)

    nrm = lambda k: rng.normal(size=(k, 3)) / np.linalg.norm(rng.normal(size=(k, 3)), axis=1, keepdims=True)  # noqa: E731
    add('single-point-d5-f2', np.array([[0.3, -0.61, 0.05]]), 5, 2)
    dup = np.repeat(np.array([[-0.2, 0.4, 0.77]]), 9, axis=0)
    add('one-point-nine-times-d4-f1', dup, 4, 1, normals=nrm(9))
    D = 4
    grid = (rng.integers(0, 2 ** D, size=(40, 3)) / 2 ** (D - 1) - 1.0)   # exact cell corners, incl. -1
    faces = rng.uniform(-0.9, 0.9, size=(12, 3))
    faces[np.arange(12), np.arange(12) % 3] = -1.0
    cloud = np.concatenate([grid, faces, grid[:7]])
    add('corners-faces-duplicates-d4-f2', cloud, D, 2, normals=nrm(cloud.shape[0]))
    add('depth1-f1', rng.uniform(-0.99, 0.99, size=(25, 3)), 1, 1)
    add('full-depth-equals-depth-d3', rng.uniform(-0.99, 0.99, size=(40, 3)), 3, 3)
    add('full-depth-0-d3', np.concatenate([rng.uniform(-0.99, -0.2, size=(20, 3)), [[0.5, 0.5, 0.5]]]), 3, 0)
    add('ascii-no-normals-d6-f2', rng.normal(scale=0.35, size=(60, 3)).clip(-0.98, 0.98), 6, 2, fmt='ascii')
    add('colours-normals-d5-f3', rng.uniform(-0.95, 0.95, size=(50, 3)), 5, 3, normals=nrm(50),
        rgb=rng.integers(0, 256, size=(50, 3)))
    add('big-endian-double-d7-f2', rng.normal(scale=0.3, size=(80, 3)).clip(-0.98, 0.98), 7, 2,
        normals=nrm(80), fmt='binary_big_endian', dtype='double')
    out = rng.uniform(-0.95, 0.95, size=(45, 3))
    out[:6] = [[1.5, 0, 0], [0, -1.3, 0.2], [0.1, 0.1, 2.5], [-1.2, -1.2, -1.2], [0.3, 1.08, -0.4], [1.0001, 0.5, 0.5]]
    out[6] = [-1.0000001, 0.0, 0.0]
    add('outside-points-d5-f2', out, 5, 2)
    write_fixture(args.out, {'source': 'octree-nn/ocnn-pytorch (Octree.build_octree, construct_all_neigh)',
                             'seed': args.seed, 'cases': cases})
    print(f'wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes')


if __name__ == '__main__':
    main()
