"""Runs the OFFICIAL ocnn-pytorch octree code on seeded random point clouds and
writes what it computes, for test/official-octree.test.ts to compare Tessera
with (no Python at test time).

    git --git-dir=/work/.mirror/octree-nn+ocnn-pytorch/repo archive HEAD ocnn | tar -x -C /tmp/ocnn
    /usr/bin/python3 scripts/reference/official/check_ocnn.py --repo /tmp/ocnn \
        --out test/fixtures/official/ocnn-cases.bin.gz

Only ocnn's own functions compute the outputs: Octree.build_octree,
octree_grow_full, construct_neigh / construct_all_neigh, get_neigh (every
kernel, stride 1/2, nempty), get_input_feature, xyzb, batch_id, search_key,
octree_split + octree_grow, merge_octrees, and shuffled_key.xyz2key/key2xyz.
This file only makes inputs and serialises results. Nothing of ocnn is copied.

SHIMS (imports only, the maths is untouched):
  * `packaging.version` (imported by ocnn/utils.py for a torch version check)
    is missing from Debian: a tiny parse() comparing the numeric parts.
  * ocnn/__init__.py imports ocnn.models, which needs torchvision: the
    package module is registered without running __init__, and the
    sub-packages used here (ocnn.octree, ocnn.nn, ocnn.utils) are imported
    normally.

Inputs are float32, as the official code uses them. Besides plain random
clouds the cases hold points one float32 ulp either side of cell boundaries
and points within 1e-6 of the box faces (but inside the open box: ocnn maps
a point whose (p + 1) rounds to 2 in float32 to cell 2^D, which its key
masks back to 0; see the note printed for the `face_wrap` probe).

Output (--out, gzipped): u32 LE length | JSON manifest | binary section
(8-byte aligned); each array in the manifest is {"dtype", "shape", "offset",
"bytes"} into the binary section (little endian). Large int tables are kept
as a SHA-256 of their int32 LE bytes plus a few sampled rows.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import types

import numpy as np
import torch


def load_ocnn(repo):
    repo = os.path.abspath(repo)
    pkg = os.path.join(repo, 'ocnn')
    if not os.path.isfile(os.path.join(pkg, 'octree', 'octree.py')):
        sys.exit(f'--repo {repo}: no ocnn/octree/octree.py there (extract the official repository first)')
    try:
        import packaging.version  # noqa: F401
    except ImportError:  # SHIM: only torch version comparisons use it
        def parse(v):
            return tuple(int(x) for x in re.findall(r'\d+', v.split('+')[0])[:3])
        p = types.ModuleType('packaging')
        p.__path__ = []
        pv = types.ModuleType('packaging.version')
        pv.parse = parse
        p.version = pv
        sys.modules['packaging'] = p
        sys.modules['packaging.version'] = pv
    # SHIM: register the package without its __init__ (which imports torchvision).
    m = types.ModuleType('ocnn')
    m.__path__ = [pkg]
    sys.modules['ocnn'] = m
    import ocnn.octree
    import ocnn.nn
    import ocnn.utils
    m.octree, m.nn, m.utils = ocnn.octree, ocnn.nn, ocnn.utils
    return ocnn


BLOBS = []   # raw little-endian bytes of every array, in order
BLOB_SIZE = [0]


def coarse(t):
    """Rounds float values to 4 mantissa bits (exact in float16)."""
    if not t.is_floating_point():
        return t
    m, e = torch.frexp(t.float())
    return torch.ldexp(torch.round(m * 32) / 32, e)


def arr(a, dtype=None):
    """A typed array as {"dtype", "shape", "offset", "bytes"} into the binary
    section that follows the JSON manifest (see write_fixture)."""
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    dt = {np.dtype('float32'): 'float32', np.dtype('int32'): 'int32', np.dtype('int64'): 'int64'}[a.dtype]
    raw = np.ascontiguousarray(a.astype(a.dtype.newbyteorder('<'))).tobytes()
    pad = (-BLOB_SIZE[0]) % 8          # 8-byte aligned, so the reader can view in place
    BLOBS.append(b'\0' * pad)
    off = BLOB_SIZE[0] + pad
    BLOBS.append(raw)
    BLOB_SIZE[0] = off + len(raw)
    return {'dtype': dt, 'shape': list(a.shape), 'offset': off, 'bytes': len(raw)}


def write_fixture(path, manifest):
    """gzip( u32 LE manifest length | manifest JSON | pad to 8 | binary section )."""
    js = json.dumps(manifest, separators=(',', ':')).encode()
    head = len(js).to_bytes(4, 'little') + js
    head += b'\0' * ((-len(head)) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with gzip.open(path, 'wb', compresslevel=9) as fh:
        fh.write(head)
        for b in BLOBS:
            fh.write(b)


def table(a, limit=4096, samples=8, int64=False):
    """An int table (int32, or int64 when asked) in full when small, else its SHA-256 of the LE bytes plus sampled rows
    (fixtures stay small; an exact digest fails on any differing entry)."""
    a = (a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
    a = np.ascontiguousarray(a.astype('<i8' if int64 else '<i4'))
    if a.size <= limit:
        return arr(a)
    rows = a.reshape(a.shape[0], -1)
    idx = np.unique(np.linspace(0, rows.shape[0] - 1, samples).astype(np.int64)) if samples else np.zeros(0, np.int64)
    return {'dtype': 'int64' if int64 else 'int32', 'shape': list(a.shape), 'sha256': hashlib.sha256(a.tobytes()).hexdigest(),
            'sampleRows': idx.tolist(), 'sample': arr(rows[idx])}


KERNELS = ['333', '222', '311', '131', '113', '331', '313', '133']
MASK48 = (1 << 48) - 1


def make_cloud(g, n, depth, kind):
    """float32 points strictly inside (-1, 1)^3 with normals and features."""
    if kind == 'uniform':
        p = torch.rand(n, 3, generator=g) * 1.9 - 0.95
    elif kind == 'sphere':
        v = torch.randn(n, 3, generator=g)
        p = 0.7 * v / v.norm(dim=1, keepdim=True) + 0.05 * torch.randn(n, 3, generator=g)
    else:  # clusters: a sparse tree
        c = torch.rand(4, 3, generator=g) * 1.6 - 0.8
        p = c[torch.randint(0, 4, (n,), generator=g)] + 0.06 * torch.randn(n, 3, generator=g)
    p = p.clamp(-0.97, 0.97).float()
    # Points on cell boundaries of this depth, one float32 ulp either side.
    k = max(4, n // 8)
    cells = torch.randint(1, 2 ** depth, (k, 3), generator=g).float()
    b = (cells / 2 ** (depth - 1) - 1.0).float()
    side = torch.randint(0, 3, (k, 3), generator=g)
    b = torch.where(side == 0, torch.nextafter(b, torch.full_like(b, -2.0)),
                    torch.where(side == 1, torch.nextafter(b, torch.full_like(b, 2.0)), b))
    p[:k] = b
    # Points within 1e-6 of the faces (still inside the open box).
    f = max(2, n // 16)
    face = torch.randint(0, 3, (f,), generator=g)
    sign = torch.randint(0, 2, (f,), generator=g).float() * 2 - 1
    p[torch.arange(k, k + f), face] = (sign * (1.0 - 1e-6)).float()
    nrm = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1).float()
    feat = torch.rand(n, 3, generator=g).float() * 2 - 1
    return p, nrm, feat


def level_dump(ocnn, o, d):
    x, y, z, b = ocnn.octree.key2xyz(o.keys[d], d)
    return {
        'keys': table(o.keys[d] & MASK48, limit=1024, int64=True),          # without batch bits
        'batch': table(o.batch_id(d), limit=1024),
        'xyz': table(torch.stack([x, y, z], 1), limit=768, samples=0),                # key2xyz of every node
        'children': table(o.children[d], limit=1024),
        'nnum': int(o.nnum[d]), 'nnumNonEmpty': int(o.nnum_nempty[d]),
        'neighbors': table(o.neighs[d]),
    }


def neigh_all(o):
    o.construct_neigh(0)      # depth 0 is dense (depth <= full_depth); construct_all_neigh starts at 1
    o.construct_all_neigh()


def features_dump(o, specs, padded):
    # Every spec on the non-empty nodes; the padded (all-node) form of the first.
    out = {f'{specs[0]}|0': arr(o.get_input_feature(specs[0], nempty=False), np.float32)} if padded else {}
    for s in specs:
        out[f'{s}|1'] = arr(o.get_input_feature(s, nempty=True), np.float32)
    return out


def neigh_matrix(o, d):
    out = {}
    for k in KERNELS:
        for stride in (1, 2):
            if stride == 2 and d == 0:
                continue
            for nempty in (False, True):
                t = o.get_neigh(d, k, stride, nempty)
                out[f'{k}|{stride}|{int(nempty)}'] = table(t, limit=0, samples=0)
    return out


def dump_octree(ocnn, o, specs, matrix_depths, padded=True):
    r = {'depth': o.depth, 'fullDepth': o.full_depth, 'batchSize': o.batch_size,
         'levels': [level_dump(ocnn, o, d) for d in range(o.depth + 1)],
         'features': features_dump(o, specs, padded),
         'neighMatrix': {str(d): neigh_matrix(o, d) for d in matrix_depths}}
    return r


def same_or_dump(ocnn, ob, om, specs):
    """merge_octrees' result, or {"sameAsBatched": true} when every array
    equals the batched build's (ocnn issue #36 asks for exactly that)."""
    same = all(torch.equal(ob.keys[d], om.keys[d]) and torch.equal(ob.children[d], om.children[d]) and
               torch.equal(ob.neighs[d], om.neighs[d]) for d in range(ob.depth + 1))
    for sp in specs:
        same = same and torch.equal(ob.get_input_feature(sp, True), om.get_input_feature(sp, True))
    return {'sameAsBatched': True} if same else dump_octree(ocnn, om, specs, [], padded=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', required=True, help='extracted ocnn-pytorch (holds ocnn/)')
    ap.add_argument('--out', required=True, help='output .json.gz')
    ap.add_argument('--seed', type=int, default=2024)
    args = ap.parse_args()
    ocnn = load_ocnn(args.repo)
    Octree, Points = ocnn.octree.Octree, ocnn.octree.Points
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    cases = []

    def build(pts, nrm, feat, depth, full, batch_id=None, batch_size=1):
        pc = Points(pts.clone(), nrm.clone() if nrm is not None else None,
                    feat.clone() if feat is not None else None,
                    batch_id=batch_id.view(-1, 1).long() if batch_id is not None else None, batch_size=batch_size)
        o = Octree(depth, full, batch_size=batch_size)
        idx = o.build_octree(pc)
        neigh_all(o)
        return o, idx

    # 1. Single clouds: depth 1..8 (and 12, 16 for the two-byte key path), full depth 1..3.
    singles = [(1, 1, 30, 'uniform'), (2, 1, 60, 'uniform'), (3, 2, 80, 'sphere'), (3, 3, 50, 'clusters'),
               (4, 3, 120, 'sphere'), (5, 2, 150, 'clusters'), (6, 3, 200, 'sphere'), (7, 1, 120, 'clusters'),
               (8, 2, 160, 'sphere'), (8, 3, 90, 'uniform'), (12, 2, 40, 'clusters'), (16, 3, 24, 'sphere')]
    for i, (depth, full, n, kind) in enumerate(singles):
        p, nrm, feat = make_cloud(g, n, depth, kind)
        channels = 1 + i % 3
        feat = feat[:, :channels].contiguous()
        o, idx = build(p, nrm, feat, depth, full)
        # Other letter sets are column subsets of NDLPF (get_input_feature
        # concatenates N, D, L, P, F in that order whatever the string's order);
        # two cases store them as ocnn computes them, the test derives the rest.
        specs = ['NDLPF', 'ND', 'NDFP', 'LP', 'DF', 'FN', 'nd'] if i in (2, 5) else ['NDLPF']
        c = {'name': f'single-d{depth}-f{full}-{kind}', 'kind': 'single', 'depth': depth, 'fullDepth': full,
             'points': arr(p), 'normals': arr(nrm), 'features': arr(feat), 'featureChannels': channels,
             'pointNode': arr(idx, np.int32),
             'octree': dump_octree(ocnn, o, specs, [depth, min(depth, full + 1)] if depth <= 8 else [], padded=i in (2, 5))}
        # search_key: present keys, their neighbours' keys and random keys at depth D and F+1.
        sk = {}
        for d in sorted({depth, min(depth, full + 1)}):
            keys = o.keys[d]
            q = torch.cat([keys[torch.randint(0, keys.numel(), (16,), generator=g)],
                           torch.randint(0, 8 ** d, (16,), generator=g)])
            sk[str(d)] = {'query': arr(q, np.int64), 'index': arr(o.search_key(q, d), np.int32),
                          'indexNempty': arr(o.search_key(q, d, nempty=True), np.int32)}
        c['search'] = sk
        # xyz2key of random coordinates at this depth (the LUT path ocnn uses).
        xyz = torch.randint(0, 2 ** depth, (32, 3), generator=g)
        c['xyz2key'] = {'xyz': arr(xyz, np.int32),
                        'key': arr(ocnn.octree.xyz2key(xyz[:, 0], xyz[:, 1], xyz[:, 2], depth=depth), np.int64)}
        cases.append(c)

    # 2. Split + grow at one depth (octree_split then octree_grow), flags random
    #    and all-zero (ocnn forces node 0 to split).
    for depth, full, n, zero in [(5, 2, 80, False), (4, 1, 40, True), (6, 3, 120, False)]:
        p, nrm, feat = make_cloud(g, n, depth, 'sphere')
        o, _ = build(p, nrm, None, depth, full)
        d = full + 1
        flags = torch.zeros(int(o.nnum[d]), dtype=torch.long) if zero else \
            torch.randint(0, 2, (int(o.nnum[d]),), generator=g)
        o.octree_split(flags, d)
        o.octree_grow(d + 1, update_neigh=True)
        cases.append({'name': f'split-d{depth}-f{full}-at{d}{"-zero" if zero else ""}', 'kind': 'split',
                      'depth': depth, 'fullDepth': full, 'points': arr(p), 'normals': arr(nrm), 'at': d,
                      'flags': arr(flags, np.int32),
                      'split': {'children': arr(o.children[d], np.int32), 'nnumNonEmpty': int(o.nnum_nempty[d]),
                                'keys': arr(o.keys[d + 1] & MASK48, np.int64), 'batch': arr(o.batch_id(d + 1), np.int32),
                                'childrenNext': arr(o.children[d + 1], np.int32), 'nnumNext': int(o.nnum[d + 1]),
                                'neighborsNext': table(o.neighs[d + 1])}})

    # 3. Batches: one batched build and merge_octrees of the separately built trees.
    for depth, full, sizes, kinds in [(5, 2, [60, 90, 40], ['sphere', 'clusters', 'uniform']),
                                      (6, 3, [50, 70], ['clusters', 'sphere']),
                                      (4, 1, [30, 20, 25, 35], ['uniform', 'sphere', 'clusters', 'uniform']),
                                      (8, 2, [50, 40, 45], ['sphere', 'clusters', 'sphere'])]:
        clouds = [make_cloud(g, n, depth, k) for n, k in zip(sizes, kinds)]
        C = 2
        clouds = [(p, nrm, f[:, :C].contiguous()) for p, nrm, f in clouds]
        P = torch.cat([c[0] for c in clouds]); Nn = torch.cat([c[1] for c in clouds]); Fe = torch.cat([c[2] for c in clouds])
        B = torch.cat([torch.full((c[0].shape[0],), i, dtype=torch.int32) for i, c in enumerate(clouds)])
        ob, idx = build(P, Nn, Fe, depth, full, B, len(clouds))
        parts = [build(c[0], c[1], c[2], depth, full)[0] for c in clouds]
        om = ocnn.octree.merge_octrees(parts)
        neigh_all(om)
        specs = ['NDLPF']
        c = {'name': f'batch{len(clouds)}-d{depth}-f{full}', 'kind': 'batch', 'depth': depth, 'fullDepth': full,
             'batchSize': len(clouds), 'points': arr(P), 'normals': arr(Nn), 'features': arr(Fe),
             'featureChannels': C, 'batchIds': arr(B), 'sizes': sizes, 'pointNode': arr(idx, np.int32),
             'batched': dump_octree(ocnn, ob, specs, [depth]),
             'merged': same_or_dump(ocnn, ob, om, specs),
             'mergedBatchNnum': arr(om.batch_nnum, np.int64), 'mergedBatchNnumNonEmpty': arr(om.batch_nnum_nempty, np.int64)}
        cases.append(c)

    # Probe (reported, not a fixture): a point one ulp below +1 rounds to 2 in
    # float32 (p + 1), so ocnn puts it in cell 2^D, which the key masks to 0.
    p = torch.tensor([[0.99999994, 0.0, 0.0]], dtype=torch.float32)
    o, _ = build(p, None, None, 3, 1)
    x, y, z, _ = ocnn.octree.key2xyz(o.keys[3][o.children[3] >= 0], 3)
    print(f'face_wrap probe: x=0.99999994 at depth 3 -> ocnn cell ({int(x)}, {int(y)}, {int(z)}); '
          'the last cell along x is 7')

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_fixture(args.out, {'source': 'octree-nn/ocnn-pytorch ' + ocnn_version(args.repo) + ' (b12e899)',
                             'seed': args.seed, 'cases': cases})
    print(f'wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes')
    for c in cases:
        t = c.get('octree') or c.get('batched')
        if t:
            print(f"  {c['name']}: nnum {[l['nnum'] for l in t['levels']]} nempty {[l['nnumNonEmpty'] for l in t['levels']]}")
        else:
            print(f"  {c['name']}: split at {c['at']}: next nnum {c['split']['nnumNext']}")


def ocnn_version(repo):
    try:
        src = open(os.path.join(repo, 'ocnn', '__init__.py')).read()
        return re.search(r"__version__ = '([^']+)'", src).group(1)
    except Exception:
        return '?'


if __name__ == '__main__':
    main()
