#!/usr/bin/env bash
# In-process A/B of the CPU linear() at small M (weight streaming).
#
# The GEMM sources of an older commit (native/cpu/gemm/*, default e3b2eb4:
# before the small-M streaming kernels) are compiled under renamed namespaces
# and linked into one binary with the current core library, so the old and
# the current linear() run in the same process, alternating sweeps over the
# same packed weights: on a shared machine both see the same noise, which
# separate processes (old addon, new addon) do not.
# Each sweep cycles through packed copies of the weight totalling MB (beyond
# the last-level cache); printed: min and median µs per call, the ratio to the
# weight-read floor (packed bytes / measure_copy_bandwidth, 256 MiB, measured
# once at start), and new/old.
#
# Usage: scripts/bench/gemm_small_m_ab.sh <build-dir> [old-commit] [MB] [N K [M ...]]
#   build-dir: a CPU build with libtessera_core.a (cmake-js compile --out <dir>)
#   default shapes 768x3072, 3072x768, 1024x4096 at M = 1 2 8 18 32 48
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
old=${2:-e3b2eb4}
mb=${3:-384}
shift $(( $# < 3 ? $# : 3 ))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/native/cpu/gemm" "$work/obj"
for f in $(git -C "$root" ls-tree --name-only "$old" native/cpu/gemm/); do git -C "$root" show "$old:$f" > "$work/$f"; done
ren="-Dgemm=gemm_old -Dlinear=linear_old -Dmatmul=matmul_old -Dpack_weight=pack_weight_old"
ren+=" -Dfree_packed_weight=free_packed_weight_old -Dpacked_weight_bytes=packed_weight_bytes_old"
flags="-O3 -DNDEBUG -fno-math-errno -std=gnu++20 -I$work/native -I$root/native/include -I$root/native $ren"
avx512="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c -mavx2"
for src in "$work"/native/cpu/gemm/*.cpp; do
  case "$src" in
    *_avx512bf16.cpp) extra="$avx512 -mavx512bf16" ;;
    *_avx512.cpp) extra="$avx512" ;;
    *_avx2.cpp) extra="-mavx2 -mfma -mf16c" ;;
    *) extra="" ;;
  esac
  g++ $flags $extra -c "$src" -o "$work/obj/$(basename "$src").o"
done
cat > "$work/ab.cpp" <<'CPP'
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tessera/bench.h"
#include "tessera/gemm.h"
#include "tessera/threadpool.h"
namespace tessera::cpu {
void linear(const LinearArgs&);
void linear_old(const LinearArgs&);
}  // namespace tessera::cpu
using namespace tessera;
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main(int argc, char** argv) {
  const int T = ThreadPool::global().num_threads();
  const double bw = measure_copy_bandwidth_gbs(T, size_t(256) << 20);
  const size_t target = size_t(atol(argv[1])) << 20;
  std::vector<std::array<int64_t, 2>> shapes = {{768, 3072}, {3072, 768}, {1024, 4096}};
  std::vector<int> ms = {1, 2, 8, 18, 32, 48};
  if (argc > 3) shapes = {{atol(argv[2]), atol(argv[3])}};
  if (argc > 4) { ms.clear(); for (int i = 4; i < argc; ++i) ms.push_back(atoi(argv[i])); }
  printf("threads %d, copy bandwidth %.1f GB/s, %zu MB of weight copies per sweep\n", T, bw, target >> 20);
  for (const auto& sh : shapes) {
    const int64_t N = sh[0], K = sh[1];
    std::vector<float> w(N * K);
    srand(1);
    for (auto& v : w) v = rand() / float(RAND_MAX) - 0.5f;
    const TensorView wv = make_view(w.data(), DType::kF32, {N, K});
    for (DType cd : {DType::kF32, DType::kBF16}) {
      std::vector<PackedWeight*> pw{pack_weight(wv, cd)};
      const size_t bytes = packed_weight_bytes(pw[0]);
      while (pw.size() * bytes < target) pw.push_back(pack_weight(wv, cd));
      for (int M : ms) {
        std::vector<float> x(M * K), y(M * N);
        for (auto& v : x) v = rand() / float(RAND_MAX) - 0.5f;
        LinearArgs a;
        a.x = make_view(x.data(), DType::kF32, {M, K});
        a.out = make_view(y.data(), DType::kF32, {M, N});
        std::vector<double> t[2];
        for (int rep = 0; rep < 7; ++rep)
          for (int v = 0; v < 2; ++v) {
            const double t0 = now();
            for (PackedWeight* p : pw) {
              a.packed = p;
              v ? cpu::linear(a) : cpu::linear_old(a);
            }
            t[v].push_back((now() - t0) / pw.size() * 1e6);
          }
        for (auto& s : t) std::sort(s.begin(), s.end());
        const double floor_us = bytes / (bw * 1e3);
        printf("%s %5ldx%-5ld M=%2d  old min %7.1f med %7.1f us = %.2fx floor | new min %7.1f med %7.1f us = %.2fx floor"
               " | new/old med %.2f min %.2f\n",
               cd == DType::kF32 ? "fp32" : "bf16", long(N), long(K), M, t[0][0], t[0][3], t[0][3] / floor_us, t[1][0],
               t[1][3], t[1][3] / floor_us, t[1][3] / t[0][3], t[1][0] / t[0][0]);
        fflush(stdout);
      }
      for (PackedWeight* p : pw) free_packed_weight(p);
    }
  }
}
CPP
g++ -O2 -std=c++20 -I"$root/native/include" "$work/ab.cpp" "$work"/obj/*.o "$build/libtessera_core.a" -lpthread -ldl -o "$work/ab"
"$work/ab" "$mb" "$@"
