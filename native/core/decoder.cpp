// llama_blocks(): a stack of LlamaGen (Llama) blocks in one native call; see
// tessera/decoder.h. Every step is a public kernel, so this is the op-by-op
// path (lib/models/llamagen/gpt.ts) without the per-op thread hops.
#include "tessera/decoder.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <thread>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/packed_weight.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm/gemm_driver.h"
#include "cpu/gemm/gemm_stream.h"
#include "tessera/attention.h"
#include "tessera/norm.h"
#include "tessera/sampling.h"
#include "tessera/status.h"
#include "tessera/threadpool.h"

namespace tessera {
namespace {

using cpu::gemm::PooledBuffer;

std::string layer_name(int i) { return "layer " + std::to_string(i); }

void check_packed(const PackedWeight* w, const std::string& name, int64_t N, int64_t K) {
  TESSERA_CHECK(w != nullptr, kInvalidArgument, name + " is missing");
  TESSERA_CHECK(w->device.kind == DeviceKind::kCPU, kDevice, name + " must be packed for the CPU");
  TESSERA_CHECK(w->N == N && w->K == K, kShape,
                name + " is [" + std::to_string(w->N) + ", " + std::to_string(w->K) + "], expected [" +
                    std::to_string(N) + ", " + std::to_string(K) + "]");
}

// An MLP's up [F, d] and down [d, F] projections; returns its width F.
int64_t check_mlp(const PackedWeight* up, const PackedWeight* down, const std::string& up_name,
                  const std::string& down_name, int64_t d) {
  TESSERA_CHECK(up != nullptr, kInvalidArgument, up_name + " is missing");
  check_packed(up, up_name, up->N, d);
  check_packed(down, down_name, d, up->N);
  return up->N;
}

void check_vector(const TensorView& t, const std::string& name, int64_t n) {
  TESSERA_CHECK(!t.empty() && t.device.kind == DeviceKind::kCPU, kInvalidArgument, name + " must be a CPU tensor");
  TESSERA_CHECK(t.dtype == DType::kF32, kDtype, name + " must be float32");
  TESSERA_CHECK(t.rank == 1 && t.shape[0] == n && t.strides[0] == 1, kShape,
                name + " must be contiguous [" + std::to_string(n) + "], got " + shape_str(t));
}

int64_t validate(const LlamaBlocksArgs& a) {
  TESSERA_CHECK(a.rows > 0 && a.n > 0, kInvalidArgument, "rows and n must be positive");
  TESSERA_CHECK(a.heads > 0 && a.head_dim > 0 && a.head_dim % 2 == 0, kInvalidArgument,
                "heads must be positive and head_dim positive and even");
  TESSERA_CHECK(a.num_layers >= 0 && (a.num_layers == 0 || a.layers != nullptr), kInvalidArgument,
                "layers is missing");
  TESSERA_CHECK(a.mask == kMaskNone || a.mask == kMaskCausal, kInvalidArgument, "mask must be none or causal");
  const int64_t Hkv = a.kv_heads == 0 ? a.heads : a.kv_heads;
  TESSERA_CHECK(Hkv > 0 && a.heads % Hkv == 0, kInvalidArgument,
                "kv_heads (" + std::to_string(Hkv) + ") must divide heads (" + std::to_string(a.heads) + ")");
  const int64_t d = int64_t{a.heads} * a.head_dim, kvd = Hkv * a.head_dim, M = int64_t{a.rows} * a.n;
  const TensorView& x = a.x;
  TESSERA_CHECK(!x.empty() && x.device.kind == DeviceKind::kCPU, kDevice, "x must be a CPU tensor");
  TESSERA_CHECK(x.dtype == DType::kF32, kDtype, "x must be float32");
  TESSERA_CHECK(x.rank == 2 && x.shape[0] == M && x.shape[1] == d && x.is_contiguous(), kShape,
                "x must be contiguous [rows·n = " + std::to_string(M) + ", dim = " + std::to_string(d) + "], got " +
                    shape_str(x));
  TESSERA_CHECK(a.positions.dtype == DType::kI32 && a.positions.rank == 1 && a.positions.shape[0] == a.n &&
                    a.positions.strides[0] == 1 && a.positions.device.kind == DeviceKind::kCPU,
                kShape, "positions must be contiguous int32 [n = " + std::to_string(a.n) + "] on the CPU");
  TESSERA_CHECK(a.cos.rank == 2 && a.cos.dtype == DType::kF32 && a.cos.shape[1] == a.head_dim / 2, kShape,
                "cos must be float32 [P, head_dim/2 = " + std::to_string(a.head_dim / 2) + "], got " + shape_str(a.cos));
  const int32_t* pos = a.positions.ptr<const int32_t>();
  for (int32_t j = 0; j < a.n; ++j)
    TESSERA_CHECK(pos[j] >= 0 && pos[j] < a.cos.shape[0], kInvalidArgument,
                  "positions[" + std::to_string(j) + "] = " + std::to_string(pos[j]) + " is outside the RoPE table [0, " +
                      std::to_string(a.cos.shape[0]) + ")");
  int64_t ffn_max = 0;
  for (int i = 0; i < a.num_layers; ++i) {
    const LlamaLayer& l = a.layers[i];
    const std::string p = layer_name(i);
    check_packed(l.qkv, p + " qkv", d + 2 * kvd, d);
    check_packed(l.wo, p + " wo", d, d);
    const int64_t ffn = check_mlp(l.w1, l.w2, p + " w1", p + " w2", d);
    check_packed(l.w3, p + " w3", ffn, d);
    ffn_max = std::max(ffn_max, ffn);
    check_vector(l.attention_norm, p + " attention_norm", d);
    check_vector(l.ffn_norm, p + " ffn_norm", d);
    for (const TensorView* c : {&l.cache_k, &l.cache_v}) {
      const std::string name = p + (c == &l.cache_k ? " cache_k" : " cache_v");
      TESSERA_CHECK(!c->empty() && c->device.kind == DeviceKind::kCPU, kDevice, name + " must be a CPU tensor");
      TESSERA_CHECK(c->rank == 4 && c->shape[0] == a.rows && c->shape[1] == Hkv && c->shape[3] == a.head_dim,
                    kShape, name + " must be [rows, kv_heads, Lmax, head_dim] = [" + std::to_string(a.rows) + ", " +
                                std::to_string(Hkv) + ", Lmax, " + std::to_string(a.head_dim) + "], got " +
                                shape_str(*c));
      TESSERA_CHECK(c->dtype == DType::kF32 || c->dtype == DType::kBF16 || c->dtype == DType::kF16, kDtype,
                    name + " must be float32, bfloat16 or float16");
      TESSERA_CHECK(!overlaps(*c, x), kInvalidArgument, name + " must not overlap x");
    }
    TESSERA_CHECK(l.cache_v.dtype == l.cache_k.dtype && l.cache_v.shape[2] == l.cache_k.shape[2], kShape,
                  p + " cache_v must have cache_k's dtype and shape");
    TESSERA_CHECK(l.lengths != nullptr, kInvalidArgument, p + " lengths is missing");
    for (int32_t r = 0; r < a.rows; ++r)
      TESSERA_CHECK(l.lengths[r] >= 0 && int64_t{l.lengths[r]} + a.n <= l.cache_k.shape[2], kShape,
                    p + " row " + std::to_string(r) + " holds " + std::to_string(l.lengths[r]) + " slots; " +
                        std::to_string(a.n) + " more exceed the cache capacity " + std::to_string(l.cache_k.shape[2]));
  }
  const bool any_head = !a.final_norm.empty() || a.head != nullptr || !a.logits.empty();
  if (any_head) {
    TESSERA_CHECK(!a.final_norm.empty() && a.head != nullptr && !a.logits.empty(), kInvalidArgument,
                  "the head needs final_norm, head and logits together");
    check_vector(a.final_norm, "final_norm", d);
    TESSERA_CHECK(a.head->device.kind == DeviceKind::kCPU && a.head->K == d, kShape,
                  "head must be packed for the CPU as [V, dim = " + std::to_string(d) + "], got [" +
                      std::to_string(a.head->N) + ", " + std::to_string(a.head->K) + "]");
    const TensorView& l = a.logits;
    TESSERA_CHECK(l.device.kind == DeviceKind::kCPU && l.dtype == DType::kF32 && l.rank == 2 && l.shape[0] == M &&
                      l.shape[1] == a.head->N && l.is_contiguous(),
                  kShape, "logits must be contiguous float32 [rows·n = " + std::to_string(M) + ", V = " +
                              std::to_string(a.head->N) + "] on the CPU, got " + shape_str(l));
    TESSERA_CHECK(!overlaps(l, x), kInvalidArgument, "logits must not overlap x");
  }
  return ffn_max;
}

// [rows, C] f32 on the CPU, last dim contiguous (rows may be strided).
void check_rows(const TensorView& t, const std::string& name, int64_t rows, int64_t C) {
  TESSERA_CHECK(!t.empty() && t.device.kind == DeviceKind::kCPU, kInvalidArgument, name + " must be a CPU tensor");
  TESSERA_CHECK(t.dtype == DType::kF32, kDtype, name + " must be float32");
  TESSERA_CHECK(t.rank == 2 && t.shape[0] == rows && t.shape[1] == C && t.strides[1] == 1 && t.strides[0] >= C,
                kShape, name + " must be [rows = " + std::to_string(rows) + ", C = " + std::to_string(C) +
                            "] with contiguous rows, got " + shape_str(t));
}

struct VarSizes {
  int64_t R, n, C, F;
};

VarSizes validate_var(const VarBlocksArgs& a) {
  TESSERA_CHECK(a.heads > 0 && a.head_dim > 0, kInvalidArgument, "heads and head_dim must be positive");
  TESSERA_CHECK(a.num_layers >= 0 && (a.num_layers == 0 || a.layers != nullptr), kInvalidArgument, "layers is missing");
  const int64_t C = int64_t{a.heads} * a.head_dim;
  const TensorView& x = a.x;
  TESSERA_CHECK(!x.empty() && x.device.kind == DeviceKind::kCPU, kDevice, "x must be a CPU tensor");
  TESSERA_CHECK(x.dtype == DType::kF32, kDtype, "x must be float32");
  TESSERA_CHECK(x.rank == 3 && x.shape[2] == C && x.shape[0] > 0 && x.shape[1] > 0 && x.is_contiguous(), kShape,
                "x must be contiguous [rows, n, C = " + std::to_string(C) + "], got " + shape_str(x));
  VarSizes z{x.shape[0], x.shape[1], C, 0};
  TESSERA_CHECK(a.cache_length >= 0, kInvalidArgument, "cache_length must be non-negative");
  for (int i = 0; i < a.num_layers; ++i) {
    const VarLayer& l = a.layers[i];
    const std::string p = layer_name(i);
    check_packed(l.qkv, p + " qkv", 3 * C, C);
    check_packed(l.proj, p + " proj", C, C);
    const int64_t F = check_mlp(l.fc1, l.fc2, p + " fc1", p + " fc2", C);
    z.F = std::max(z.F, F);
    check_vector(l.qkv_bias, p + " qkv_bias", 3 * C);
    check_vector(l.proj_bias, p + " proj_bias", C);
    check_vector(l.fc1_bias, p + " fc1_bias", F);
    check_vector(l.fc2_bias, p + " fc2_bias", C);
    const std::pair<const TensorView*, const char*> terms[] = {{&l.s1, " s1"}, {&l.b1, " b1"}, {&l.s2, " s2"},
                                                              {&l.b2, " b2"}, {&l.g1, " g1"}, {&l.g2, " g2"}};
    for (const auto& [t, name] : terms) check_rows(*t, p + name, z.R, C);
    for (const TensorView* c : {&l.cache_k, &l.cache_v}) {
      const std::string name = p + (c == &l.cache_k ? " cache_k" : " cache_v");
      TESSERA_CHECK(!c->empty() && c->device.kind == DeviceKind::kCPU && c->dtype == DType::kF32, kInvalidArgument,
                    name + " must be a float32 CPU tensor");
      TESSERA_CHECK(c->rank == 4 && c->shape[0] == z.R && c->shape[2] == a.heads && c->shape[3] == a.head_dim &&
                        c->is_contiguous(),
                    kShape, name + " must be contiguous [rows, Lmax, heads, head_dim] = [" + std::to_string(z.R) +
                                ", Lmax, " + std::to_string(a.heads) + ", " + std::to_string(a.head_dim) + "], got " +
                                shape_str(*c));
      TESSERA_CHECK(a.cache_length + z.n <= c->shape[1], kShape,
                    name + " holds " + std::to_string(c->shape[1]) + " tokens; " + std::to_string(a.cache_length) +
                        " cached + " + std::to_string(z.n) + " new do not fit");
      TESSERA_CHECK(!overlaps(*c, x), kInvalidArgument, name + " must not overlap x");
    }
  }
  const bool any_head = !a.head_scale.empty() || !a.head_shift.empty() || a.head != nullptr || !a.head_bias.empty() ||
                        !a.logits.empty();
  if (any_head) {
    TESSERA_CHECK(!a.head_scale.empty() && !a.head_shift.empty() && a.head != nullptr && !a.head_bias.empty() &&
                      !a.logits.empty(),
                  kInvalidArgument, "the head needs head_scale, head_shift, head, head_bias and logits together");
    check_rows(a.head_scale, "head_scale", z.R, C);
    check_rows(a.head_shift, "head_shift", z.R, C);
    TESSERA_CHECK(a.head->device.kind == DeviceKind::kCPU && a.head->K == C, kShape,
                  "head must be packed for the CPU as [V, C = " + std::to_string(C) + "]");
    check_vector(a.head_bias, "head_bias", a.head->N);
    const TensorView& l = a.logits;
    TESSERA_CHECK(l.device.kind == DeviceKind::kCPU && l.dtype == DType::kF32 && l.rank == 2 &&
                      l.shape[0] == z.R * z.n && l.shape[1] == a.head->N && l.is_contiguous(),
                  kShape, "logits must be contiguous float32 [rows·n = " + std::to_string(z.R * z.n) + ", V = " +
                              std::to_string(a.head->N) + "] on the CPU, got " + shape_str(l));
    TESSERA_CHECK(!overlaps(l, x), kInvalidArgument, "logits must not overlap x");
  }
  return z;
}


// ---------------------------------------------------------------------------
constexpr int kMaxTeamRows = cpu::gemm::kSmallMaxM;          // rows the small-M path streams
constexpr int64_t kTeamPrefetchBytes = int64_t{512} << 10;  // per wait, into L2 (2 MiB here)

int64_t round_up_floats(int64_t n) { return (n + 15) / 16 * 16; }

// A 4-d f32 view with explicit strides (elements).
TensorView make_view_strided(float* data, DType dt, std::array<int64_t, 4> shape, std::array<int64_t, 4> strides) {
  TensorView v;
  v.data = data;
  v.dtype = dt;
  v.rank = 4;
  for (int i = 0; i < 4; ++i) v.shape[i] = shape[i], v.strides[i] = strides[i];
  return v;
}

// Kv head hk of a [rows, Hkv, Lmax, hd] cache as a [rows, 1, Lmax, hd] view.
TensorView head_slice(const TensorView& c, int64_t hk) {
  TensorView v = c;
  v.data = static_cast<char*>(c.data) + hk * c.strides[1] * static_cast<int64_t>(dtype_size(c.dtype));
  v.shape[1] = 1;
  return v;
}
// ---------------------------------------------------------------------------
// The decode team (n = 1, few rows: one token per sequence per call).
//
// A decode step streams every weight once for a handful of rows, so it is
// bound by how long the memory system is kept busy. Op by op, each of the
// ~5 GEMMs per layer is a pool job: both threads join at its end, the faster
// one idles, and the next matrix's first reads start cold. Here the pool's
// threads ("members") run the whole stack as one job, in phases per layer:
//   A  per kv head: its q/k/v columns of the qkv GEMM, RoPE, the cache
//      append and attention (no join between the GEMM and attention);
//   B  wo + residual;  C  w1 (SiLU) and w3 (gate) column by column;
//   D  w2 + residual;  and the head after the last layer.
// Each member owns a contiguous share of every phase's units (it knows them
// in advance), takes its own from the front and steals others' from the
// back, and while it waits for a phase to finish it prefetches the weights
// of its first units in the next one, so the memory system never idles at a
// join. A member that never arrives (a busy machine) is covered by stealing;
// one that arrives late finds finished phases and skips them, so the team
// cannot deadlock whatever the pool does. Every unit calls the same kernels
// as the op-by-op path on a slice of the same data (the small-M GEMM on a
// panel range, RoPE, kv_append and attention on one kv head without key
// splitting), so the results are bit-identical to it.

// Claims of one phase: owner o's units are [o·U/T, (o+1)·U/T); its live
// range [front, back) is packed into one word so owner and thieves agree.
class TeamClaims {
 public:
  TeamClaims(int phases, int members) : T_(members), units_(phases, 0), done_(phases), ranges_(size_t(phases) * members) {}
  void set_units(int p, int64_t units) {
    units_[p] = units;
    done_[p].store(0, std::memory_order_relaxed);
    for (int o = 0; o < T_; ++o) ranges_[size_t(p) * T_ + o].store(pack(first(p, o), first(p, o + 1)));
  }
  int64_t units(int p) const { return units_[p]; }
  int64_t first(int p, int owner) const { return units_[p] * owner / T_; }
  // The next unit for member m (its own front, then others' backs), or −1.
  int64_t claim(int p, int m) {
    for (int k = 0; k < T_; ++k) {
      const int o = (m + k) % T_;
      std::atomic<uint64_t>& r = ranges_[size_t(p) * T_ + o];
      uint64_t cur = r.load(std::memory_order_relaxed);
      for (;;) {
        const int64_t f = static_cast<int64_t>(cur & 0xffffffffu), b = static_cast<int64_t>(cur >> 32);
        if (f >= b) break;
        const uint64_t next = k == 0 ? pack(f + 1, b) : pack(f, b - 1);
        if (r.compare_exchange_weak(cur, next, std::memory_order_acq_rel, std::memory_order_relaxed))
          return k == 0 ? f : b - 1;
      }
    }
    return -1;
  }
  void finish(int p) { done_[p].fetch_add(1, std::memory_order_release); }
  bool complete(int p) const { return done_[p].load(std::memory_order_acquire) == units_[p]; }

 private:
  static uint64_t pack(int64_t f, int64_t b) { return static_cast<uint64_t>(f) | (static_cast<uint64_t>(b) << 32); }
  int T_;
  std::vector<int64_t> units_;
  std::vector<std::atomic<int64_t>> done_;
  std::vector<std::atomic<uint64_t>> ranges_;
};

bool team_disabled() {
  static const bool off = [] {
    const char* e = std::getenv("TESSERA_DECODE_TEAM");
    return e != nullptr && std::string(e) == "0";
  }();
  return off;
}

int64_t panel_bytes(const PackedWeight* w) {
  return static_cast<int64_t>(sizeof(uint32_t)) * (w->compute == DType::kBF16 ? (w->K + 1) / 2 : w->K) * 32;
}

}  // namespace

bool llama_blocks_uses_team(const LlamaBlocksArgs& a) {
  if (team_disabled() || a.n != 1 || a.num_layers < 1) return false;
  const int T = ThreadPool::global().num_threads();
  if (T < 2 || a.head_dim % 32 != 0) return false;
  const int64_t R = a.rows, Hkv = a.kv_heads == 0 ? a.heads : a.kv_heads;
  if (R > kMaxTeamRows) return false;  // the per-member length arrays
  auto streams = [&](const PackedWeight* w) { return w != nullptr && cpu::stream_linear_supported(w, R); };
  for (int i = 0; i < a.num_layers; ++i) {
    const LlamaLayer& l = a.layers[i];
    if (!streams(l.qkv) || !streams(l.wo) || !streams(l.w1) || !streams(l.w3) || !streams(l.w2)) return false;
    // Op by op, attention would split the keys of too few (row, kv head)
    // pairs; the team runs one pair per task, so it only takes calls where
    // that split does not happen (the same summation order).
    if (cpu::attention_splits_keys(R * Hkv, 1, l.cache_k.shape[2])) return false;
  }
  return a.head == nullptr || streams(a.head);
}

namespace {

void llama_blocks_team(const LlamaBlocksArgs& a, int64_t ffn_max) {
  const int64_t R = a.rows, M = R, H = a.heads, hd = a.head_dim, d = H * hd;
  const int64_t Hkv = a.kv_heads == 0 ? H : a.kv_heads, group = H / Hkv, kvd = Hkv * hd, qkvw = d + 2 * kvd;
  const DType f32 = DType::kF32;
  const int nl = a.num_layers, phases = 4 * nl + (a.head ? 1 : 0);
  const int T = ThreadPool::global().num_threads();
  float* x = a.x.ptr<float>();
  PooledBuffer qkvb(sizeof(float) * M * qkvw), ob(sizeof(float) * M * d), gb(sizeof(float) * M * ffn_max),
      ub(sizeof(float) * M * ffn_max);
  float *qkv = static_cast<float*>(qkvb.p), *o = static_cast<float*>(ob.p), *g = static_cast<float*>(gb.p),
        *u = static_cast<float*>(ub.p);
  // Per member: the normalised rows and the converted GEMM input.
  const int64_t kmax = std::max(d, ffn_max);
  const int64_t per_member = round_up_floats(M * d) + round_up_floats(M * kmax);
  PooledBuffer mb(sizeof(float) * per_member * T);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));

  TeamClaims claims(phases, T);
  for (int i = 0; i < nl; ++i) {
    const LlamaLayer& l = a.layers[i];
    claims.set_units(4 * i + 0, Hkv);
    claims.set_units(4 * i + 1, (d + 31) / 32);
    claims.set_units(4 * i + 2, (l.w1->N + 31) / 32);
    claims.set_units(4 * i + 3, (d + 31) / 32);
  }
  if (a.head) claims.set_units(4 * nl, (a.head->N + 31) / 32);
  std::atomic<bool> failed{false};

  // The contiguous weight bytes of owner m's share of phase p (for prefetch).
  auto share_bytes = [&](int p, int m) -> std::pair<const char*, int64_t> {
    const int64_t u0 = claims.first(p, m), u1 = claims.first(p, m + 1);
    if (u0 >= u1) return {nullptr, 0};
    const PackedWeight* w;
    int64_t j0, j1;
    if (p == 4 * nl) {
      w = a.head, j0 = u0, j1 = u1;
    } else {
      const LlamaLayer& l = a.layers[p / 4];
      switch (p % 4) {
        case 0: w = l.qkv, j0 = u0 * group * hd / 32, j1 = u1 * group * hd / 32; break;  // the q columns
        case 1: w = l.wo, j0 = u0, j1 = u1; break;
        case 2: w = l.w1, j0 = u0, j1 = u1; break;
        default: w = l.w2, j0 = u0, j1 = u1; break;
      }
    }
    const int64_t pb = panel_bytes(w);
    return {static_cast<const char*>(w->data) + j0 * pb, (j1 - j0) * pb};
  };

  auto member = [&](int m, int tid) {
    float* hm = static_cast<float*>(mb.p) + per_member * m;
    float* xm = hm + round_up_floats(M * d);
    const TensorView xv = make_view(x, f32, {M, d}), hv = make_view(hm, f32, {M, d});
    cpu::StreamLinear plan, plan3;
    int32_t len[kMaxTeamRows], len1[kMaxTeamRows];
    for (int p = 0; p < phases && !failed.load(std::memory_order_relaxed); ++p) {
      if (claims.complete(p)) continue;
      const int i = p / 4, kind = p == 4 * nl ? 4 : p % 4;
      const LlamaLayer* l = i < nl ? &a.layers[i] : nullptr;
      // Private set-up, after this member holds a unit of the phase: the
      // phase cannot finish before that unit, so its inputs stay unchanged.
      auto setup = [&] {
      LinearArgs la;
      switch (kind) {
        case 0:
          rms_norm({.x = xv, .weight = l->attention_norm, .out = hv, .eps = a.eps});
          la.x = hv, la.packed = l->qkv, la.out = make_view(qkv, f32, {M, qkvw});
          cpu::stream_linear_plan(la, plan, xm);
          for (int64_t r = 0; r < R; ++r) len[r] = l->lengths[r], len1[r] = l->lengths[r] + 1;
          break;
        case 1:
          la.x = make_view(o, f32, {M, d}), la.packed = l->wo, la.residual = xv, la.out = xv;
          cpu::stream_linear_plan(la, plan, xm);
          break;
        case 2: {
          rms_norm({.x = xv, .weight = l->ffn_norm, .out = hv, .eps = a.eps});
          const int64_t ffn = l->w1->N;
          const TensorView gv = make_view(g, f32, {M, ffn});
          la.x = hv, la.packed = l->w1, la.out = gv, la.act = Activation::kSilu;
          cpu::stream_linear_plan(la, plan, xm);
          LinearArgs l3;
          l3.x = hv, l3.packed = l->w3, l3.gate = gv, l3.out = make_view(u, f32, {M, ffn});
          cpu::stream_linear_plan(l3, plan3, xm);  // the same rounded rows as w1's
          break;
        }
        case 3:
          la.x = make_view(u, f32, {M, l->w2->K}), la.packed = l->w2, la.residual = xv, la.out = xv;
          cpu::stream_linear_plan(la, plan, xm);
          break;
        default:
          rms_norm({.x = xv, .weight = a.final_norm, .out = hv, .eps = a.eps});
          la.x = hv, la.packed = a.head, la.out = a.logits;
          cpu::stream_linear_plan(la, plan, xm);
          break;
      }
      };
      bool ready = false;
      for (int64_t unit; (unit = claims.claim(p, m)) >= 0;) {
        if (!ready) setup(), ready = true;
        if (kind == 0) {
          const int64_t hk = unit, qp = group * hd / 32, kp = hd / 32;
          cpu::stream_linear_run(plan, hk * qp, (hk + 1) * qp);
          cpu::stream_linear_run(plan, (d + hk * hd) / 32, (d + hk * hd) / 32 + kp);
          cpu::stream_linear_run(plan, (d + kvd + hk * hd) / 32, (d + kvd + hk * hd) / 32 + kp);
          float* qh = qkv + hk * group * hd;
          float* kh = qkv + d + hk * hd;
          float* vh = qkv + d + kvd + hk * hd;
          // [R, 1, heads, hd] slices of the qkv rows (BLHD).
          const TensorView q_blhd = make_view_strided(qh, f32, {R, 1, group, hd}, {qkvw, qkvw, hd, 1});
          const TensorView k_blhd = make_view_strided(kh, f32, {R, 1, 1, hd}, {qkvw, qkvw, hd, 1});
          const TensorView v_blhd = make_view_strided(vh, f32, {R, 1, 1, hd}, {qkvw, qkvw, hd, 1});
          for (const TensorView* t : {&q_blhd, &k_blhd}) {
            RopeArgs ra;
            ra.x = *t; ra.out = *t; ra.layout = QkvLayout::kBLHD; ra.cos = a.cos; ra.sin = a.sin;
            ra.positions = a.positions; ra.style = RopeStyle::kInterleaved;
            cpu::rope_apply(ra);
          }
          const TensorView ck = head_slice(l->cache_k, hk), cv = head_slice(l->cache_v, hk);
          int32_t lens[kMaxTeamRows];
          std::copy(len, len + R, lens);
          KvAppendArgs ka;
          ka.cache_k = ck; ka.cache_v = cv; ka.k_new = k_blhd; ka.v_new = v_blhd;
          ka.layout = QkvLayout::kBLHD; ka.lengths = lens;
          cpu::kv_append(ka);
          AttentionArgs aa;
          aa.q = make_view_strided(qh, f32, {R, group, 1, hd}, {qkvw, hd, hd, 1});
          aa.k = ck; aa.v = cv;
          aa.out = make_view_strided(o + hk * group * hd, f32, {R, group, 1, hd}, {d, hd, hd, 1});
          aa.layout = QkvLayout::kBHLD; aa.scale = scale; aa.mask = a.mask;
          aa.kv_lengths = make_view(len1, DType::kI32, {R});
          cpu::attention(aa, /*split_keys=*/false);
        } else if (kind == 2) {
          cpu::stream_linear_run(plan, unit, unit + 1);
          cpu::stream_linear_run(plan3, unit, unit + 1);
        } else {
          cpu::stream_linear_run(plan, unit, unit + 1);
        }
        claims.finish(p);
      }
      // Wait for the phase; meanwhile pull this member's next weights into L2.
      const auto [pf, pf_bytes] = p + 1 < phases ? share_bytes(p + 1, m) : std::pair<const char*, int64_t>{nullptr, 0};
      const int64_t pf_end = std::min<int64_t>(pf_bytes, kTeamPrefetchBytes);
      int64_t at = 0;
      for (uint32_t spins = 0; !claims.complete(p) && !failed.load(std::memory_order_relaxed);) {
        if (at < pf_end) {
          for (int64_t e = std::min<int64_t>(at + 1024, pf_end); at < e; at += 64) __builtin_prefetch(pf + at, 0, 2);  // prefetcht1 on x86
        } else if (spins++ < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
    }
  };
  ThreadPool::global().parallel_for(T, 1, [&](int64_t m0, int64_t m1, int tid) {
    for (int64_t m = m0; m < m1; ++m) {
      try {
        member(static_cast<int>(m), tid);
      } catch (...) {
        failed.store(true);
        throw;
      }
    }
  });
  for (int i = 0; i < nl; ++i)
    for (int64_t r = 0; r < R; ++r) a.layers[i].lengths[r] += 1;
}

}  // namespace

void var_blocks(const VarBlocksArgs& a) {
  const VarSizes z = validate_var(a);
  if (a.num_layers == 0 && a.head == nullptr) return;
  const int64_t R = z.R, n = z.n, C = z.C, M = R * n, H = a.heads, D = a.head_dim;
  const DType f32 = DType::kF32;
  PooledBuffer hb(sizeof(float) * M * C), qkvb(sizeof(float) * M * 3 * C), qb(sizeof(float) * M * C),
      ob(sizeof(float) * M * C), fb(sizeof(float) * M * std::max<int64_t>(z.F, 1));
  float *h = static_cast<float*>(hb.p), *qkv = static_cast<float*>(qkvb.p), *q = static_cast<float*>(qb.p);
  const TensorView x3 = a.x, x2 = make_view(a.x.data, f32, {M, C}), h3 = make_view(h, f32, {R, n, C}),
                   h2 = make_view(h, f32, {M, C});
  std::vector<int32_t> kv_len(static_cast<size_t>(R), static_cast<int32_t>(a.cache_length + n));
  auto adaln = [&](const TensorView& scale, const TensorView& shift) {
    LayerNormArgs ln;
    ln.x = x3; ln.scale = scale; ln.shift = shift; ln.out = h3; ln.eps = a.eps;
    layer_norm(ln);
  };
  for (int i = 0; i < a.num_layers; ++i) {
    const VarLayer& l = a.layers[i];
    const int64_t F = l.fc1->N, L = l.cache_k.shape[1];
    adaln(l.s1, l.b1);
    {
      LinearArgs la;
      la.x = h2; la.packed = l.qkv; la.bias = l.qkv_bias; la.out = make_view(qkv, f32, {M, 3 * C});
      linear(la);
    }
    float *ck = l.cache_k.ptr<float>(), *cv = l.cache_v.ptr<float>();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < n; ++j) {
        const float* src = qkv + (r * n + j) * 3 * C;
        const int64_t slot = (r * L + a.cache_length + j) * C;
        std::memcpy(q + (r * n + j) * C, src, sizeof(float) * C);
        std::memcpy(ck + slot, src + C, sizeof(float) * C);
        std::memcpy(cv + slot, src + 2 * C, sizeof(float) * C);
      }
    {
      AttentionArgs aa;
      aa.q = make_view(q, f32, {R, n, H, D});
      aa.k = l.cache_k; aa.v = l.cache_v;
      aa.out = make_view(ob.p, f32, {R, n, H, D});
      aa.layout = QkvLayout::kBLHD; aa.scale = 1.f; aa.mask = kMaskNone;
      aa.kv_lengths = make_view(kv_len.data(), DType::kI32, {R});
      aa.l2norm_qk = true; aa.head_multiplier = l.head_multiplier;
      attention(aa);
    }
    {
      LinearArgs la;  // x += g1 ⊙ (o·Wᵀ + b)
      la.x = make_view(ob.p, f32, {M, C}); la.packed = l.proj; la.bias = l.proj_bias; la.gate = l.g1;
      la.residual = x2; la.out = x2;
      linear(la);
    }
    adaln(l.s2, l.b2);
    const TensorView fv = make_view(fb.p, f32, {M, F});
    {
      LinearArgs la;
      la.x = h2; la.packed = l.fc1; la.bias = l.fc1_bias; la.out = fv; la.act = Activation::kGeluTanh;
      linear(la);
    }
    {
      LinearArgs la;  // x += g2 ⊙ (f·Wᵀ + b)
      la.x = fv; la.packed = l.fc2; la.bias = l.fc2_bias; la.gate = l.g2; la.residual = x2; la.out = x2;
      linear(la);
    }
  }
  if (a.head != nullptr) {
    adaln(a.head_scale, a.head_shift);
    LinearArgs la;
    la.x = h2; la.packed = a.head; la.bias = a.head_bias; la.out = a.logits;
    linear(la);
  }
}

void llama_blocks(const LlamaBlocksArgs& a) {
  const int64_t ffn_max = std::max<int64_t>(validate(a), 1);
  if (a.num_layers == 0 && a.head == nullptr) return;
  if (llama_blocks_uses_team(a)) return llama_blocks_team(a, ffn_max);
  const int64_t R = a.rows, n = a.n, M = R * n, H = a.heads, hd = a.head_dim, d = H * hd;
  const int64_t Hkv = a.kv_heads == 0 ? H : a.kv_heads, kvd = Hkv * hd, qkvw = d + 2 * kvd;
  const DType f32 = DType::kF32;
  float* x = a.x.ptr<float>();
  // Scratch from the host pool (reused across calls and layers).
  PooledBuffer hb(sizeof(float) * M * d), qkvb(sizeof(float) * M * qkvw), qb(sizeof(float) * M * d),
      kb(sizeof(float) * M * kvd), vb(sizeof(float) * M * kvd), tb(sizeof(float) * M * d), ob(sizeof(float) * M * d),
      gb(sizeof(float) * M * ffn_max), ub(sizeof(float) * M * ffn_max);
  float *h = static_cast<float*>(hb.p), *qkv = static_cast<float*>(qkvb.p), *q = static_cast<float*>(qb.p),
        *k = static_cast<float*>(kb.p), *v = static_cast<float*>(vb.p), *t = static_cast<float*>(tb.p),
        *o = static_cast<float*>(ob.p);
  const TensorView xv = make_view(x, f32, {M, d}), hv = make_view(h, f32, {M, d});
  // [R, n, H, hd] <-> [R, H, n, hd] (a copy; the identity for n = 1).
  auto swap_middle = [](const float* src, float* dst, int64_t A, int64_t B, int64_t C, int64_t D) {
    for (int64_t i = 0; i < A; ++i)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c)
          std::memcpy(dst + ((i * C + c) * B + b) * D, src + ((i * B + b) * C + c) * D, sizeof(float) * D);
  };
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));

  for (int i = 0; i < a.num_layers; ++i) {
    const LlamaLayer& l = a.layers[i];
    const int64_t ffn = l.w1->N;
    rms_norm({.x = xv, .weight = l.attention_norm, .out = hv, .eps = a.eps});
    {
      LinearArgs la;
      la.x = hv; la.packed = l.qkv; la.out = make_view(qkv, f32, {M, qkvw});
      linear(la);
    }
    for (int64_t m = 0; m < M; ++m) {
      std::memcpy(q + m * d, qkv + m * qkvw, sizeof(float) * d);
      std::memcpy(k + m * kvd, qkv + m * qkvw + d, sizeof(float) * kvd);
      std::memcpy(v + m * kvd, qkv + m * qkvw + d + kvd, sizeof(float) * kvd);
    }
    const TensorView qv = make_view(q, f32, {R, n, H, hd}), kv = make_view(k, f32, {R, n, Hkv, hd}),
                     vv = make_view(v, f32, {R, n, Hkv, hd});
    for (const TensorView* r : {&qv, &kv}) {
      RopeArgs ra;
      ra.x = *r; ra.out = *r; ra.layout = QkvLayout::kBLHD; ra.cos = a.cos; ra.sin = a.sin;
      ra.positions = a.positions; ra.style = RopeStyle::kInterleaved;
      rope_apply(ra);
    }
    {
      KvAppendArgs ka;
      ka.cache_k = l.cache_k; ka.cache_v = l.cache_v; ka.k_new = kv; ka.v_new = vv;
      ka.layout = QkvLayout::kBLHD; ka.lengths = l.lengths;
      kv_append(ka);
    }
    // The cache attends in [R, H, n, hd].
    const float* qa = q;
    if (n > 1) { swap_middle(q, t, R, n, H, hd); qa = t; }
    {
      AttentionArgs aa;
      aa.q = make_view(const_cast<float*>(qa), f32, {R, H, n, hd});
      aa.k = l.cache_k; aa.v = l.cache_v;
      aa.out = make_view(o, f32, {R, H, n, hd});
      aa.layout = QkvLayout::kBHLD; aa.scale = scale; aa.mask = a.mask;
      aa.kv_lengths = make_view(l.lengths, DType::kI32, {R});
      attention(aa);
    }
    const float* oa = o;
    if (n > 1) { swap_middle(o, t, R, H, n, hd); oa = t; }
    {
      LinearArgs la;
      la.x = make_view(const_cast<float*>(oa), f32, {M, d}); la.packed = l.wo;
      la.residual = xv; la.out = xv;
      linear(la);
    }
    rms_norm({.x = xv, .weight = l.ffn_norm, .out = hv, .eps = a.eps});
    const TensorView gv = make_view(gb.p, f32, {M, ffn}), uv = make_view(ub.p, f32, {M, ffn});
    {
      LinearArgs la;
      la.x = hv; la.packed = l.w1; la.out = gv; la.act = Activation::kSilu;
      linear(la);
    }
    {
      LinearArgs la;  // u = silu(h·w1ᵀ) ⊙ (h·w3ᵀ): the gate epilogue
      la.x = hv; la.packed = l.w3; la.gate = gv; la.out = uv;
      linear(la);
    }
    {
      LinearArgs la;
      la.x = uv; la.packed = l.w2; la.residual = xv; la.out = xv;
      linear(la);
    }
  }
  if (a.head != nullptr) {
    rms_norm({.x = xv, .weight = a.final_norm, .out = hv, .eps = a.eps});
    LinearArgs la;
    la.x = hv; la.packed = a.head; la.out = a.logits;
    linear(la);
  }
}

void llama_decode(const LlamaDecodeArgs& a) {
  const LlamaBlocksArgs& b = a.blocks;
  TESSERA_CHECK(b.x.empty() && b.positions.empty() && b.logits.empty(), kInvalidArgument,
                "llama_decode owns x, positions and logits: leave them out of the blocks");
  TESSERA_CHECK(b.head != nullptr && !b.final_norm.empty(), kInvalidArgument, "llama_decode needs the head and final_norm");
  TESSERA_CHECK(b.head->device.kind == DeviceKind::kCPU, kDevice, "head must be packed for the CPU");
  TESSERA_CHECK(a.images > 0, kInvalidArgument, "images must be positive");
  TESSERA_CHECK(b.rows == a.images || b.rows == 2 * int64_t{a.images}, kInvalidArgument,
                "rows must be images (no CFG) or 2·images (CFG), got rows " + std::to_string(b.rows) + " for " +
                    std::to_string(a.images) + " images");
  TESSERA_CHECK(b.heads > 0 && b.head_dim > 0, kInvalidArgument, "heads and head_dim must be positive");
  const bool guided = b.rows == 2 * int64_t{a.images};
  const int64_t B = a.images, R = b.rows, d = int64_t{b.heads} * b.head_dim, V = b.head->N;
  const TensorView& emb = a.tok_embeddings;
  TESSERA_CHECK(!emb.empty() && emb.device.kind == DeviceKind::kCPU && emb.dtype == DType::kF32, kInvalidArgument,
                "tok_embeddings must be a float32 CPU tensor");
  TESSERA_CHECK(emb.rank == 2 && emb.shape[0] == V && emb.shape[1] == d && emb.is_contiguous(), kShape,
                "tok_embeddings must be contiguous [V = " + std::to_string(V) + ", dim = " + std::to_string(d) +
                    "], got " + shape_str(emb));
  const TensorView& lg = a.logits;
  TESSERA_CHECK(!lg.empty() && lg.device.kind == DeviceKind::kCPU && lg.dtype == DType::kF32 && lg.rank == 2 &&
                    lg.shape[0] == R && lg.shape[1] == V && lg.is_contiguous(),
                kShape, "logits must be contiguous float32 [rows = " + std::to_string(R) + ", V = " + std::to_string(V) +
                            "] on the CPU, got " + shape_str(lg));
  const TensorView& tk = a.tokens;
  TESSERA_CHECK(!tk.empty() && tk.device.kind == DeviceKind::kCPU && tk.dtype == DType::kI32 && tk.rank == 2 &&
                    tk.shape[0] == B && tk.shape[1] >= 1 && tk.is_contiguous(),
                kShape, "tokens must be contiguous int32 [images = " + std::to_string(B) + ", steps >= 1] on the CPU, got " +
                            shape_str(tk));
  const int64_t steps = tk.shape[1];
  if (!a.bias.empty())
    TESSERA_CHECK(a.bias.device.kind == DeviceKind::kCPU && a.bias.dtype == DType::kF32 && a.bias.rank == 2 &&
                      a.bias.shape[0] == B && a.bias.shape[1] == V && a.bias.is_contiguous(),
                  kShape, "bias must be contiguous float32 [images = " + std::to_string(B) + ", V = " +
                              std::to_string(V) + "] on the CPU, got " + shape_str(a.bias));
  for (const TensorView* t : {&emb, &a.bias, &tk})
    TESSERA_CHECK(t->empty() || !overlaps(*t, lg), kInvalidArgument, "logits must not overlap the other tensors");
  TESSERA_CHECK(!overlaps(tk, emb) && (a.bias.empty() || !overlaps(tk, a.bias)), kInvalidArgument,
                "tokens must not overlap the other tensors");
  // The slots the loop appends: steps − 1, at the current length of every
  // row (all rows equal: they share the positions).
  TESSERA_CHECK(b.num_layers >= 1 && b.layers != nullptr, kInvalidArgument, "layers is missing");
  const int32_t* len0 = b.layers[0].lengths;
  TESSERA_CHECK(len0 != nullptr, kInvalidArgument, "layer 0 lengths is missing");
  const int64_t start = len0[0];
  for (int i = 0; i < b.num_layers; ++i) {
    const LlamaLayer& l = b.layers[i];
    TESSERA_CHECK(l.lengths != nullptr && !l.cache_k.empty() && l.cache_k.rank == 4, kInvalidArgument,
                  layer_name(i) + " needs lengths and a [rows, heads, Lmax, head_dim] cache");
    for (int64_t r = 0; r < R; ++r)
      TESSERA_CHECK(l.lengths[r] == start, kInvalidArgument,
                    layer_name(i) + " row " + std::to_string(r) + " holds " + std::to_string(l.lengths[r]) +
                        " slots; every row and layer must hold " + std::to_string(start));
    TESSERA_CHECK(start + steps - 1 <= l.cache_k.shape[2], kShape,
                  layer_name(i) + ": " + std::to_string(steps - 1) + " more slots after " + std::to_string(start) +
                      " exceed the cache capacity " + std::to_string(l.cache_k.shape[2]));
  }
  TESSERA_CHECK(b.cos.rank == 2 && start + steps - 1 <= b.cos.shape[0], kShape,
                "the RoPE table has " + std::to_string(b.cos.rank == 2 ? b.cos.shape[0] : 0) + " rows; slots up to " +
                    std::to_string(start + steps - 2) + " are needed");

  const DType f32 = DType::kF32;
  PooledBuffer xb(sizeof(float) * R * d);
  float* x = static_cast<float*>(xb.p);
  float* L = lg.ptr<float>();
  int32_t* out = tk.ptr<int32_t>();
  int32_t pos = 0, tok = 0;
  LlamaBlocksArgs step = b;
  step.x = make_view(x, f32, {R, d});
  step.positions = make_view(&pos, DType::kI32, {1});
  step.logits = lg;
  step.n = 1;
  for (int64_t t = 0; t < steps; ++t) {
    if (a.stop != nullptr && __atomic_load_n(a.stop, __ATOMIC_RELAXED) != 0) return;
    if (!a.bias.empty()) {
      const float* bias = a.bias.ptr<const float>();
      for (int64_t i = 0; i < B; ++i)
        for (int64_t r : {i, i + B}) {
          if (r >= R) continue;
          float* row = L + r * V;
          for (int64_t v = 0; v < V; ++v) row[v] += bias[i * V + v];
        }
    }
    for (int64_t i = 0; i < B; ++i) {
      SampleArgs sa;
      sa.logits = make_view(L + i * V, f32, {1, V});
      if (guided) sa.uncond = make_view(L + (B + i) * V, f32, {1, V}), sa.cfg_scale = a.cfg_scale;
      sa.temperature = a.temperature;
      sa.top_k = a.top_k;
      sa.top_p = a.top_p;
      sa.seed = a.seed + static_cast<uint64_t>(i);
      sa.step = a.first_step + static_cast<uint64_t>(t);
      sa.tokens = make_view(&tok, DType::kI32, {1});
      sample(sa);
      out[i * steps + t] = tok;
    }
    if (a.on_step) a.on_step(a.on_step_ctx, static_cast<int32_t>(t + 1));
    if (t == steps - 1) break;
    const float* e = emb.ptr<const float>();
    for (int64_t r = 0; r < R; ++r) std::memcpy(x + r * d, e + out[(r % B) * steps + t] * d, sizeof(float) * d);
    pos = static_cast<int32_t>(start + t);
    llama_blocks(step);
  }
}

}  // namespace tessera
