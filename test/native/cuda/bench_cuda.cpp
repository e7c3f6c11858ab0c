// `tessera_cuda_tests --bench`: times the CUDA ops on random data (never
// zeros) and prints TFLOP/s counting only useful work (masked keys excluded).
// Timing: warm-up, synchronize, then batches of back-to-back launches on the
// library's stream bracketed by synchronize; the median batch is reported.
// (The library's stream is internal, so device events cannot be recorded on
// it from here; with batches of many launches the host bracket adds < 1%
// for kernels above ~100 µs. The decode row includes launch overhead.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <random>

#include "cuda_util.h"
#include "tessera/attention.h"
#include "tessera/gemm.h"
#include "tessera/splat.h"

namespace ct {
using namespace tessera;
namespace {

double median_ms(const std::function<void()>& op, int reps) {
  op();
  op();
  sync();
  std::vector<double> batches;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) op();
    sync();
    const auto t1 = std::chrono::steady_clock::now();
    batches.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / reps);
  }
  std::sort(batches.begin(), batches.end());
  return batches[2];
}

// Random bits in a dtype, quickly (xorshift), in a modest range.
DevBuf random_device(DType dt, size_t n, uint64_t seed) {
  std::vector<unsigned char> raw(n * dtype_size(dt));
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const float f = static_cast<float>((x >> 40) & 0xffff) / 32768.f - 1.f;
    if (dt == DType::kF32) std::memcpy(&raw[i * 4], &f, 4);
    else {
      const uint16_t u = dt == DType::kBF16 ? f32_to_bf16(f) : f32_to_f16(f);
      std::memcpy(&raw[i * 2], &u, 2);
    }
  }
  DevBuf d(raw.size());
  d.upload(raw.data(), raw.size());
  return d;
}

void row(const char* name, double ms, double flops, const char* note = "") {
  std::printf("BENCH | %-44s | %9.3f ms | %8.1f TFLOP/s | %s\n", name, ms, flops / (ms * 1e-3) / 1e12, note);
  std::fflush(stdout);
}

struct AttnBench {
  const char* name;
  int B, Hq, Hkv, Lq, Lk, D;
  DType dt;
  uint32_t mask;
  std::vector<int64_t> blocks;
  std::vector<int32_t> kv_len;
};

void bench_attention(const AttnBench& c) {
  DevBuf q = random_device(c.dt, size_t(c.B) * c.Hq * c.Lq * c.D, 1);
  DevBuf k = random_device(c.dt, size_t(c.B) * c.Hkv * c.Lk * c.D, 2);
  DevBuf v = random_device(c.dt, size_t(c.B) * c.Hkv * c.Lk * c.D, 3);
  DevBuf o(size_t(c.B) * c.Hq * c.Lq * c.D * dtype_size(c.dt));
  AttentionArgs a;
  a.q = view(q, c.dt, {c.B, c.Lq, c.Hq, c.D});  // BLHD, as models produce it
  a.k = view(k, c.dt, {c.B, c.Lk, c.Hkv, c.D});
  a.v = view(v, c.dt, {c.B, c.Lk, c.Hkv, c.D});
  a.out = view(o, c.dt, {c.B, c.Lq, c.Hq, c.D});
  a.layout = QkvLayout::kBLHD;
  a.scale = 1.f / std::sqrt(float(c.D));
  a.mask = c.mask;
  a.block_lengths = c.blocks.empty() ? nullptr : c.blocks.data();
  a.num_blocks = static_cast<int32_t>(c.blocks.size());
  std::vector<int32_t> kvl = c.kv_len;
  if (!kvl.empty()) a.kv_lengths = make_view(kvl.data(), DType::kI32, {c.B});
  // Useful work: 4·D flops per visible (query, key) pair (QKᵀ and PV).
  std::vector<int64_t> end_of;
  for (int64_t b : c.blocks)
    for (int64_t t = 0, e = (end_of.empty() ? 0 : end_of.back()) + b; t < b; ++t) end_of.push_back(e);
  double pairs = 0;
  for (int b = 0; b < c.B; ++b) {
    const int64_t kvl_b = kvl.empty() ? c.Lk : kvl[b];
    for (int64_t i = 0; i < c.Lq; ++i) {
      const int64_t p = kvl_b - c.Lq + i;
      int64_t lim = kvl_b;
      if (c.mask & kMaskCausal) lim = std::min(lim, p + 1);
      if (c.mask & kMaskBlockCausal) lim = p < 0 ? 0 : std::min(lim, end_of[p]);
      pairs += double(std::max<int64_t>(lim, 0));
    }
  }
  const double flops = pairs * c.Hq * 4.0 * c.D;
  const double once = median_ms([&] { call(api().attention, &a); }, 1);
  const int reps = std::max(1, std::min(50, int(300.0 / std::max(once, 1e-3))));
  const double ms = median_ms([&] { call(api().attention, &a); }, reps);
  const double bytes = double(q.bytes + k.bytes + v.bytes + o.bytes);
  char note[96];
  std::snprintf(note, sizeof(note), "%.0f GB/s of q,k,v,out", bytes / (ms * 1e-3) / 1e9);
  row(c.name, ms, flops, note);
}

void bench_linear(const char* name, DType dt, DType out_dt, int64_t M, int64_t N, int64_t K) {
  DevBuf x = random_device(dt, M * K, 4), w = random_device(dt, N * K, 5), o(M * N * dtype_size(out_dt));
  LinearArgs a;
  a.x = view(x, dt, {M, K});
  a.weight = view(w, dt, {N, K});
  a.out = view(o, out_dt, {M, N});
  const double once = median_ms([&] { call(api().linear, &a); }, 1);
  const int reps = std::max(1, std::min(50, int(300.0 / std::max(once, 1e-3))));
  row(name, median_ms([&] { call(api().linear, &a); }, reps), 2.0 * M * N * K);
}


// ---- splat and octree (native/cuda/splat_raster.cu, octree_build.cu) ----------

void row_fps(const char* name, double ms, const char* note) {
  std::printf("BENCH | %-44s | %9.3f ms | %8.1f fps     | %s\n", name, ms, 1e3 / ms, note);
  std::fflush(stdout);
}

double free_mib() {
  CudaDeviceProps p{};
  call(api().device_props, int32_t(0), &p);
  return p.free_memory / 1048576.0;
}

// A scene shaped like a fitted one, as `tessera bench splat` makes it
// (lib/cli/bench_splat.ts benchScene): 50% on a sphere of radius 1.2 and 30%
// on a ground plane as flat discs, 20% floaters; log-normal scales around
// 1.2·N^(-1/3)·2; opacity logits N(1, 2); SH degree 3 with small
// view-dependent terms. (Same distributions; a C++ generator, so not the
// same draws as the TypeScript one.)
struct BenchScene {
  DevBuf m, ls, q, o, sh;
  SplatScene view;
};
BenchScene bench_scene(int64_t n) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> N01(0.f, 1.f);
  std::uniform_real_distribution<float> U01(0.f, 1.f);
  std::vector<float> m(3 * n), ls(3 * n), q(4 * n), o(n), sh(48 * n);
  const float base = std::log(2 * 1.2f * std::pow(float(n), -1.f / 3));
  for (int64_t i = 0; i < n; ++i) {
    const float kind = U01(rng);
    int flat = -1;
    if (kind < 0.5f) {
      float v[3] = {N01(rng), N01(rng), N01(rng)};
      const float l = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) + 1e-12f;
      for (int k = 0; k < 3; ++k) m[3 * i + k] = 1.2f * v[k] / l;
      flat = 2;
    } else if (kind < 0.8f) {
      m[3 * i] = -2.5f + 5 * U01(rng);
      m[3 * i + 1] = 1.3f;
      m[3 * i + 2] = -2.5f + 5 * U01(rng);
      flat = 1;
    } else {
      for (int k = 0; k < 3; ++k) m[3 * i + k] = -2 + 4 * U01(rng);
    }
    for (int k = 0; k < 3; ++k) ls[3 * i + k] = base + 0.6f * N01(rng) + (k == flat ? -1.5f : 0.f);
    for (int k = 0; k < 4; ++k) q[4 * i + k] = N01(rng) * (flat >= 0 && k > 0 ? 0.1f : 1.f);
    o[i] = 1 + 2 * N01(rng);
    for (int c = 0; c < 3; ++c) sh[48 * i + c] = -1.2f + 2.4f * U01(rng);
    for (int k = 3; k < 48; ++k) sh[48 * i + k] = 0.05f * N01(rng);
  }
  BenchScene s;
  s.m = DevBuf(m.size() * 4); s.m.upload(m.data(), m.size() * 4);
  s.ls = DevBuf(ls.size() * 4); s.ls.upload(ls.data(), ls.size() * 4);
  s.q = DevBuf(q.size() * 4); s.q.upload(q.data(), q.size() * 4);
  s.o = DevBuf(o.size() * 4); s.o.upload(o.data(), o.size() * 4);
  s.sh = DevBuf(sh.size() * 4); s.sh.upload(sh.data(), sh.size() * 4);
  s.view.means = view(s.m, DType::kF32, {n, 3});
  s.view.log_scales = view(s.ls, DType::kF32, {n, 3});
  s.view.rotations = view(s.q, DType::kF32, {n, 4});
  s.view.opacity_logits = view(s.o, DType::kF32, {n});
  s.view.sh = view(s.sh, DType::kF32, {n, 16, 3});
  s.view.sh_degree = 3;
  return s;
}

// lookAt([1.5, -1.6, -4.5] → [0, 0.2, 0]), vertical field of view 60°, OpenCV axes.
SplatCamera bench_camera(int W, int H) {
  const double eye[3] = {1.5, -1.6, -4.5}, at[3] = {0, 0.2, 0};
  double z[3] = {at[0] - eye[0], at[1] - eye[1], at[2] - eye[2]};
  double l = std::sqrt(z[0] * z[0] + z[1] * z[1] + z[2] * z[2]);
  for (double& v : z) v /= l;
  const double up[3] = {0, -1, 0};
  double x[3] = {z[1] * up[2] - z[2] * up[1], z[2] * up[0] - z[0] * up[2], z[0] * up[1] - z[1] * up[0]};
  l = std::sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
  for (double& v : x) v /= l;
  const double y[3] = {z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]};
  SplatCamera c;
  c.width = W;
  c.height = H;
  c.fy = static_cast<float>(H / (2 * std::tan(M_PI / 6)));
  c.fx = c.fy;
  c.cx = W / 2.f;
  c.cy = H / 2.f;
  const double* rows[3] = {x, y, z};
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) c.view[4 * r + k] = static_cast<float>(rows[r][k]);
    c.view[4 * r + 3] = static_cast<float>(-(rows[r][0] * eye[0] + rows[r][1] * eye[1] + rows[r][2] * eye[2]));
  }
  c.view[12] = c.view[13] = c.view[14] = 0;
  c.view[15] = 1;
  return c;
}

void bench_splat(int64_t n, int W, int H) {
  BenchScene s = bench_scene(n);
  const SplatCamera cam = bench_camera(W, H);
  const int64_t P = int64_t(W) * H;
  DevBuf rgb(P * 12), al(P * 4), de(P * 4), co(P * 4), grgb(P * 12);
  DevBuf gm(n * 12), gl(n * 12), gq(n * 16), go(n * 4), gs(n * 48 * 4);
  {
    std::vector<float> g(3 * P);
    for (int64_t i = 0; i < 3 * P; ++i) g[i] = ((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    grgb.upload(g.data(), g.size() * 4);
  }
  SplatRenderArgs r;
  r.scene = s.view;
  r.cameras = &cam;
  r.num_cameras = 1;
  r.rgb = view(rgb, DType::kF32, {1, H, W, 3});
  r.alpha = view(al, DType::kF32, {1, H, W});
  r.depth = view(de, DType::kF32, {1, H, W});
  r.contributors = view(co, DType::kI32, {1, H, W});
  SplatStats st;
  r.stats = &st;
  SplatBackwardArgs b;
  b.scene = s.view;
  b.cameras = &cam;
  b.num_cameras = 1;
  b.grad_rgb = view(grgb, DType::kF32, {1, H, W, 3});
  b.grad_means = view(gm, DType::kF32, {n, 3});
  b.grad_log_scales = view(gl, DType::kF32, {n, 3});
  b.grad_rotations = view(gq, DType::kF32, {n, 4});
  b.grad_opacity_logits = view(go, DType::kF32, {n});
  b.grad_sh = view(gs, DType::kF32, {n, 16, 3});
  const double free0 = free_mib();
  auto fwd = [&] { call(api().splat_render, static_cast<const SplatRenderArgs*>(&r)); };
  auto bwd = [&] { call(api().splat_backward, static_cast<const SplatBackwardArgs*>(&b)); };
  const double f1 = median_ms(fwd, 1);
  const double fms = median_ms(fwd, std::max(1, std::min(20, int(200.0 / std::max(f1, 1e-3)))));
  const double b1 = median_ms(bwd, 1);
  const double bms = median_ms(bwd, std::max(1, std::min(20, int(200.0 / std::max(b1, 1e-3)))));
  const double scratch = free0 - free_mib();  // the pool keeps its high-water mark
  char name[64], note[160];
  std::snprintf(name, sizeof(name), "splat fwd %s %dx%d", n >= 1000000 ? "1M" : "100k", W, H);
  std::snprintf(note, sizeof(note), "%lld visible, %lld intersections", (long long)st.visible,
                (long long)st.intersections);
  row_fps(name, fms, note);
  std::snprintf(name, sizeof(name), "splat bwd %s %dx%d", n >= 1000000 ? "1M" : "100k", W, H);
  std::snprintf(note, sizeof(note), "incl. forward recompute; %.2fx fwd; pool scratch ~%.0f MiB", bms / fms, scratch);
  row_fps(name, bms, note);
}

void bench_octree(bool neighbors) {
  const int64_t n = 1000000;
  std::mt19937_64 rng(2);
  std::normal_distribution<float> N01(0.f, 1.f);
  std::vector<float> pts(3 * n), nrm(3 * n);
  for (int64_t i = 0; i < n; ++i) {  // a sphere of radius 0.8 with a little noise, outward normals
    float v[3] = {N01(rng), N01(rng), N01(rng)};
    const float l = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) + 1e-12f;
    for (int k = 0; k < 3; ++k) {
      nrm[3 * i + k] = v[k] / l;
      pts[3 * i + k] = (0.8f + 0.002f * N01(rng)) * v[k] / l;
    }
  }
  DevBuf dp(pts.size() * 4), dn(nrm.size() * 4);
  dp.upload(pts.data(), pts.size() * 4);
  dn.upload(nrm.data(), nrm.size() * 4);
  CudaOctreeBuildArgs a;
  a.points = static_cast<const float*>(dp.p);
  a.normals = static_cast<const float*>(dn.p);
  a.n = n;
  a.depth = 10;
  a.full_depth = 2;
  a.neighbors = neighbors ? 1 : 0;
  int64_t nodes = 0, leaves = 0;
  auto op = [&] {
    CudaOctree* t = nullptr;
    call(api().octree_build, static_cast<const CudaOctreeBuildArgs*>(&a), &t);
    nodes = 0;
    for (int d = 0; d <= t->depth; ++d) nodes += t->levels[d].nnum;
    leaves = t->levels[t->depth].nnum_nempty;
    call(api().octree_free, t);
  };
  const double ms = median_ms(op, 5);
  char note[128];
  std::snprintf(note, sizeof(note), "%lld nodes, %lld leaves, with normals", (long long)nodes, (long long)leaves);
  row_fps(neighbors ? "octree 1M d10 build+neighbours" : "octree 1M d10 build", ms, note);
}
}  // namespace

int run_bench() {
  std::vector<int64_t> var10 = {1, 4, 9, 16, 25, 36, 64, 100, 169, 256};
  const AttnBench cases[] = {
      {"attn bf16 causal L4096 D128 B16 H32", 16, 32, 32, 4096, 4096, 128, DType::kBF16, kMaskCausal, {}, {}},
      {"attn bf16 full   L4096 D128 B16 H32", 16, 32, 32, 4096, 4096, 128, DType::kBF16, kMaskNone, {}, {}},
      {"attn f16  causal L4096 D128 B16 H32", 16, 32, 32, 4096, 4096, 128, DType::kF16, kMaskCausal, {}, {}},
      {"attn bf16 causal L4096 D64  B16 H32", 16, 32, 32, 4096, 4096, 64, DType::kBF16, kMaskCausal, {}, {}},
      {"attn bf16 VAR block-causal L680 D64 B32 H16", 32, 16, 16, 680, 680, 64, DType::kBF16, kMaskBlockCausal, var10, {}},
      {"attn bf16 decode Lq1 Lk1024 D128 B16 Hq32 Hkv8", 16, 32, 8, 1, 1024, 128, DType::kBF16, kMaskCausal, {}, {}},
      {"attn f32 (SIMT) causal L1024 D64 B4 H16", 4, 16, 16, 1024, 1024, 64, DType::kF32, kMaskCausal, {}, {}},
  };
  std::printf("BENCH | %-44s | %12s | %16s | %s\n", "case", "time", "rate", "note");
  for (const auto& c : cases) bench_attention(c);
  bench_linear("linear bf16 4096^3 (mma.sync) out bf16", DType::kBF16, DType::kBF16, 4096, 4096, 4096);
  bench_linear("linear f16 4096^3 (mma.sync) out f32", DType::kF16, DType::kF32, 4096, 4096, 4096);
  bench_linear("linear f32 4096^3 (SIMT)", DType::kF32, DType::kF32, 4096, 4096, 4096);
  for (int64_t n : {int64_t(100000), int64_t(1000000)}) {
    bench_splat(n, 1280, 720);
    bench_splat(n, 1920, 1080);
  }
  bench_octree(false);
  bench_octree(true);
  return 0;
}

}  // namespace ct
