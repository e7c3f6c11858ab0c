"""Runs the OFFICIAL Niantic spz library (nianticlabs/spz, src/cc/load-spz.cc,
C++) on seeded random Gaussian clouds and records what it writes and what it
reads back, for test/official-spz.test.ts to compare Tessera's .spz reader
with (no compiler or Python at test time).

    git --git-dir=/work/.mirror/nianticlabs+spz/repo archive HEAD src | tar -x -C /tmp/spz
    apt-get install -y libzstd-dev zlib1g-dev   # the official library links zlib and zstd
    /usr/bin/python3 scripts/reference/official/check_spz.py --repo /tmp/spz \
        --out test/fixtures/official/spz-cases.bin.gz

The script compiles the official sources (load-spz.cc, splat-types.cc; none of
them is copied into the project) with a small driver of its own (DRIVER below)
that only calls the public API:
  * pack: a GaussianCloud (RDF, the PLY frame: raw log-scales, opacity logits,
    DC colours, xyzw quaternions, SH [N, dim, 3]) -> saveSpz(PackOptions{version,
    from = RDF}) for versions 2, 3 and 4 (4 = ZSTD streams, the library's default);
  * unpack: any .spz -> loadSpz(UnpackOptions{to = RDF}) -> the floats Tessera's
    reader must reproduce.
A version-1 file (float16 positions, which the official writer no longer
makes) is derived from the version-2 payload by replacing the position stream
with float16 values; the official reader decodes it like any other.

Cases: SH degrees 0..4, antialiased flag on and off, positions up to +-3,
log-scales -9..1, unnormalised quaternions, SH beyond [-1, 1] (clamped by the
8-bit code), opacity logits -6..6.

Output (gzip): the container of check_ocnn.py; each case holds the official
files (base64) and the decoded arrays.
"""
import argparse
import base64
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_ocnn  # noqa: E402  (arr, write_fixture)

arr, write_fixture = check_ocnn.arr, check_ocnn.write_fixture

# The driver: calls the official public API only (spz::saveSpz / spz::loadSpz).
DRIVER = r'''
#include "load-spz.h"
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
using namespace spz;
static std::vector<float> rd(std::ifstream &in, size_t n) { std::vector<float> v(n); in.read((char *)v.data(), n * 4); return v; }
static void wr(std::ofstream &o, const std::vector<float> &v) { o.write((const char *)v.data(), v.size() * 4); }
static void dump(const GaussianCloud &g, const std::string &path) {
  std::ofstream o(path, std::ios::binary);
  int32_t h[3] = {g.numPoints, g.shDegree, g.antialiased ? 1 : 0};
  o.write((const char *)h, 12);
  wr(o, g.positions); wr(o, g.scales); wr(o, g.rotations); wr(o, g.alphas); wr(o, g.colors); wr(o, g.sh);
}
int main(int argc, char **argv) {
  if (argc == 4 && std::string(argv[1]) == "pack") {
    std::ifstream in(argv[2], std::ios::binary);
    int32_t h[3]; in.read((char *)h, 12);
    GaussianCloud g; g.numPoints = h[0]; g.shDegree = h[1]; g.antialiased = h[2] != 0;
    int dim = h[1] == 0 ? 0 : (h[1] + 1) * (h[1] + 1) - 1;
    g.positions = rd(in, 3 * h[0]); g.scales = rd(in, 3 * h[0]); g.rotations = rd(in, 4 * h[0]);
    g.alphas = rd(in, h[0]); g.colors = rd(in, 3 * h[0]); g.sh = rd(in, (size_t)h[0] * dim * 3);
    for (uint32_t v = 2; v <= 4; v++) {
      PackOptions o; o.version = v; o.from = CoordinateSystem::RDF;
      if (!saveSpz(g, o, std::string(argv[3]) + "/v" + std::to_string(v) + ".spz")) return 2;
    }
    return 0;
  }
  if (argc == 4 && std::string(argv[1]) == "unpack") {
    UnpackOptions o; o.to = CoordinateSystem::RDF;
    GaussianCloud g = loadSpz(std::string(argv[2]), o);
    if (g.numPoints == 0) return 3;
    dump(g, argv[3]);
    return 0;
  }
  std::fprintf(stderr, "usage: driver pack <in.bin> <dir> | unpack <file.spz> <out.bin>\n");
  return 1;
}
'''


def build_driver(repo, work):
    src = os.path.join(repo, 'src', 'cc')
    if not os.path.isfile(os.path.join(src, 'load-spz.cc')):
        sys.exit(f'--repo {repo}: no src/cc/load-spz.cc there (extract the official repository first)')
    drv = os.path.join(work, 'driver.cc')
    with open(drv, 'w') as fh:
        fh.write(DRIVER)
    exe = os.path.join(work, 'spz-driver')
    cmd = ['g++', '-std=c++17', '-O1', '-pthread', '-I', src, drv, os.path.join(src, 'load-spz.cc'),
           os.path.join(src, 'splat-types.cc'), '-lz', '-lzstd', '-o', exe]
    subprocess.run(cmd, check=True)
    return exe


def read_dump(path):
    raw = open(path, 'rb').read()
    n, deg, aa = np.frombuffer(raw[:12], '<i4')
    dim = 0 if deg == 0 else (deg + 1) ** 2 - 1
    f = np.frombuffer(raw[12:], '<f4')
    out, at = {}, 0
    for k, w in (('positions', 3), ('scales', 3), ('rotations', 4), ('alphas', 1), ('colors', 3), ('sh', 3 * dim)):
        out[k] = f[at:at + n * w].copy()
        at += n * w
    assert at == f.size, (at, f.size)
    return int(n), int(deg), bool(aa), out


def make_cloud(rng, n, deg):
    dim = 0 if deg == 0 else (deg + 1) ** 2 - 1
    q = rng.normal(size=(n, 4)).astype(np.float32)
    q[0] = [0.0, 0.0, 0.0, 1.0]           # identity (xyzw)
    q[1] = [0.0, 0.0, 0.0, -2.0]          # w < 0, unnormalised
    if n > 2:
        q[2] = [0.5, -0.5, 0.5, -0.5]     # ties for the largest component
    return {
        'positions': (rng.uniform(-3, 3, size=(n, 3))).astype(np.float32),
        'scales': rng.uniform(-9, 1, size=(n, 3)).astype(np.float32),
        'rotations': q.reshape(-1),
        'alphas': rng.uniform(-6, 6, size=n).astype(np.float32),
        'colors': rng.normal(scale=1.2, size=(n, 3)).astype(np.float32),
        'sh': rng.normal(scale=0.5, size=(n, dim, 3)).clip(-1.3, 1.3).astype(np.float32),
    }


def write_input(path, cloud, n, deg, aa):
    with open(path, 'wb') as fh:
        fh.write(np.array([n, deg, 1 if aa else 0], '<i4').tobytes())
        for k in ('positions', 'scales', 'rotations', 'alphas', 'colors', 'sh'):
            fh.write(np.ascontiguousarray(cloud[k], '<f4').tobytes())


def v1_from_v2(v2_bytes, n):
    """Version 1 = version 2 with float16 positions (the official reader's usesFloat16 path)."""
    raw = bytearray(gzip.decompress(v2_bytes))
    frac = raw[13]
    pos = np.frombuffer(bytes(raw[16:16 + 9 * n]), np.uint8).reshape(-1, 3).astype(np.int32)
    fixed = pos[:, 0] | (pos[:, 1] << 8) | (pos[:, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    half = (fixed.astype(np.float64) / (1 << frac)).astype('<f2')
    raw[4:8] = (1).to_bytes(4, 'little')
    return gzip.compress(bytes(raw[:16]) + half.tobytes() + bytes(raw[16 + 9 * n:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', required=True, help='extracted nianticlabs/spz (holds src/cc/load-spz.cc)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=11)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = []
    with tempfile.TemporaryDirectory(prefix='check-spz-') as work:
        exe = build_driver(os.path.abspath(args.repo), work)
        for ci, (n, deg, aa) in enumerate([(7, 0, False), (13, 1, True), (9, 2, False), (21, 3, True), (5, 4, False)]):
            cloud = make_cloud(rng, n, deg)
            d = os.path.join(work, f'c{ci}')
            os.makedirs(d)
            write_input(os.path.join(d, 'in.bin'), cloud, n, deg, aa)
            subprocess.run([exe, 'pack', os.path.join(d, 'in.bin'), d], check=True)
            files = {v: open(os.path.join(d, f'v{v}.spz'), 'rb').read() for v in (2, 3, 4)}
            files[1] = v1_from_v2(files[2], n)
            with open(os.path.join(d, 'v1.spz'), 'wb') as fh:
                fh.write(files[1])
            for v in (1, 2, 3, 4):
                subprocess.run([exe, 'unpack', os.path.join(d, f'v{v}.spz'), os.path.join(d, f'v{v}.dec')], check=True)
                nn, dd, a2, dec = read_dump(os.path.join(d, f'v{v}.dec'))
                assert (nn, dd, a2) == (n, deg, aa)
                cases.append({'name': f'n{n}-sh{deg}-{"aa" if aa else "classic"}-v{v}', 'version': v, 'count': n,
                              'shDegree': deg, 'antialiased': aa,
                              'file': base64.b64encode(files[v]).decode('ascii'),
                              'decoded': {k: arr(val.astype(np.float32)) for k, val in dec.items()}})
                print(f'{cases[-1]["name"]}: {len(files[v])} bytes', flush=True)
    write_fixture(args.out, {'source': 'nianticlabs/spz (src/cc/load-spz.cc), saveSpz from RDF, loadSpz to RDF',
                             'seed': args.seed, 'cases': cases})
    print(f'wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes')


if __name__ == '__main__':
    main()
