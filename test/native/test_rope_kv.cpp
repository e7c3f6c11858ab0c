// Rotary embeddings (1D/2D/3D tables, both pair styles, positions, in place,
// partial rotary dims) against ref::rope, and the KV cache: appending tokens
// one by one or in uneven chunks and attending with kv_lengths must equal the
// full causal computation.
#include <cmath>
#include <cstring>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "tessera/attention.h"
#include "tessera/dtype_convert.h"

using namespace tessera;

namespace {

// Runs rope on a random [B,H,L,D] f32 tensor (BHLD) and compares with ref::rope.
// f32 arithmetic on |x| <= 1 and |cos|,|sin| <= 1: error ~1e-7 relative.
void check_rope(int64_t B, int64_t H, int64_t L, int64_t D, int64_t R, const std::vector<float>& cosv,
                const std::vector<float>& sinv, int64_t P, int64_t TH, const std::vector<int32_t>& pos, RopeStyle style,
                bool in_place, uint64_t salt) {
  th::Rng rng(salt);
  std::vector<float> x(B * H * L * D), y(B * H * L * D, NAN);
  rng.fill(x.data(), x.size());
  std::vector<double> xd(x.begin(), x.end()), cd(cosv.begin(), cosv.end()), sd(sinv.begin(), sinv.end()),
      ref(x.size());
  ref::rope(B, H, L, D, R, xd.data(), cd.data(), sd.data(), TH, pos.empty() ? nullptr : pos.data(),
            static_cast<int>(style), ref.data());
  RopeArgs a;
  a.x = make_view(x.data(), DType::kF32, {B, H, L, D});
  a.out = in_place ? a.x : make_view(y.data(), DType::kF32, {B, H, L, D});
  a.cos = TH == 1 ? make_view(const_cast<float*>(cosv.data()), DType::kF32, {P, R / 2})
                  : make_view(const_cast<float*>(cosv.data()), DType::kF32, {P, TH, R / 2});
  a.sin = TH == 1 ? make_view(const_cast<float*>(sinv.data()), DType::kF32, {P, R / 2})
                  : make_view(const_cast<float*>(sinv.data()), DType::kF32, {P, TH, R / 2});
  std::vector<int32_t> p = pos;
  if (!p.empty())
    a.positions = static_cast<int64_t>(p.size()) == L ? make_view(p.data(), DType::kI32, {L})
                                                      : make_view(p.data(), DType::kI32, {B, L});
  a.style = style;
  a.rotary_dim = static_cast<int32_t>(R == D ? 0 : R);
  rope_apply(a);
  const float* got = in_place ? x.data() : y.data();
  CHECK_REL(got, ref.data(), ref.size(), 1e-6);
  // Dims beyond R pass through unchanged (bit-exact).
  for (int64_t i = 0; i < B * H * L; ++i)
    for (int64_t d = R; d < D; ++d) CHECK(got[i * D + d] == static_cast<float>(xd[i * D + d]));
}

}  // namespace

TEST(rope_1d_both_styles_positions_in_place_partial_dims) {
  const int64_t P = 300;
  uint64_t salt = 10;
  for (int64_t D : {64, 100})
    for (int64_t R : {D, int64_t{32}}) {
      std::vector<float> c(P * R / 2), s(P * R / 2);
      rope_table_1d(P, static_cast<int32_t>(R), 10000.0, c.data(), s.data());
      CHECK(std::fabs(c[5 * R / 2 + 1] - std::cos(5 * std::pow(10000.0, -2.0 / R))) < 1e-7);
      for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kHalf})
        for (bool in_place : {false, true}) {
          check_rope(2, 3, 17, D, R, c, s, P, 1, {}, style, in_place, ++salt);
          std::vector<int32_t> pos(2 * 17);
          th::Rng rng(salt);
          for (auto& q : pos) q = static_cast<int32_t>(rng.randint(0, P - 1));
          check_rope(2, 3, 17, D, R, c, s, P, 1, pos, style, in_place, ++salt);
        }
    }
}

TEST(rope_2d_llamagen_table_and_class_token_rows) {
  const int32_t grid = 16, prefix = 1, R = 64;
  const int64_t P = prefix + grid * grid, half = R / 2, F = R / 4;
  std::vector<float> c(P * half), s(P * half);
  rope_table_2d(grid, prefix, R, 10000.0, c.data(), s.data());
  // LlamaGen: class-token rows are cos = sin = 0 (q and k zeroed there).
  for (int64_t j = 0; j < half; ++j) CHECK(c[j] == 0.f && s[j] == 0.f);
  // Token t = r·grid + c sits at row prefix + t; pair j < F uses r·ω_j, j >= F uses c·ω_(j−F).
  const int64_t r = 5, col = 11, row = prefix + r * grid + col;
  for (int64_t j = 0; j < half; ++j) {
    const double w = std::pow(10000.0, -2.0 * (j % F) / half);
    const double angle = (j < F ? r : col) * w;
    CHECK(std::fabs(c[row * half + j] - std::cos(angle)) < 1e-6) << "pair " << j;
    CHECK(std::fabs(s[row * half + j] - std::sin(angle)) < 1e-6) << "pair " << j;
  }
  std::vector<int32_t> pos(P);
  for (int64_t i = 0; i < P; ++i) pos[i] = static_cast<int32_t>(i);
  check_rope(1, 2, P, 64, R, c, s, P, 1, pos, RopeStyle::kInterleaved, true, 40);
}

TEST(rope_3d_per_head_tables) {
  const int64_t P = 40, H = 3, R = 48, D = 64;
  th::Rng rng(50);
  std::vector<float> xyz(P * 3), freqs(H * (R / 2) * 3), c(P * H * R / 2), s(P * H * R / 2);
  rng.fill(xyz.data(), xyz.size(), 0.f, 128.f);
  rng.fill(freqs.data(), freqs.size(), -0.5f, 0.5f);
  rope_table_3d(P, H, R, xyz.data(), freqs.data(), c.data(), s.data());
  const int64_t p = 7, h = 2, j = 5;
  const float* f = freqs.data() + (h * R / 2 + j) * 3;
  const float angle = xyz[p * 3] * f[0] + xyz[p * 3 + 1] * f[1] + xyz[p * 3 + 2] * f[2];
  CHECK(std::fabs(c[(p * H + h) * R / 2 + j] - std::cos(angle)) < 1e-5);
  std::vector<int32_t> pos(2 * 11);
  for (auto& q : pos) q = static_cast<int32_t>(rng.randint(0, P - 1));
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kHalf})
    check_rope(2, H, 11, D, R, c, s, P, H, pos, style, false, 51);
}

TEST(rope_bf16_and_validation) {
  const int64_t L = 9, D = 32;
  std::vector<float> c(L * D / 2), s(L * D / 2);
  rope_table_1d(L, D, 10000.0, c.data(), s.data());
  th::Rng rng(60);
  std::vector<uint16_t> x(L * D);
  std::vector<double> xd(L * D), ref(L * D);
  for (int64_t i = 0; i < L * D; ++i) {
    x[i] = f32_to_bf16(rng.uniform());
    xd[i] = bf16_to_f32(x[i]);
  }
  std::vector<double> cd(c.begin(), c.end()), sd(s.begin(), s.end());
  ref::rope(1, 1, L, D, D, xd.data(), cd.data(), sd.data(), 1, nullptr, 0, ref.data());
  RopeArgs a;
  a.x = a.out = make_view(x.data(), DType::kBF16, {1, 1, L, D});
  a.cos = make_view(c.data(), DType::kF32, {L, D / 2});
  a.sin = make_view(s.data(), DType::kF32, {L, D / 2});
  rope_apply(a);
  std::vector<float> got(L * D);
  for (int64_t i = 0; i < L * D; ++i) got[i] = bf16_to_f32(x[i]);
  CHECK_REL(got.data(), ref.data(), ref.size(), 1e-2);  // one bf16 rounding of the output: 2^-9 relative
  { RopeArgs b = a; b.rotary_dim = 7; CHECK_THROWS_CODE(rope_apply(b), kInvalidArgument); }
  { RopeArgs b = a; b.rotary_dim = 64; CHECK_THROWS_CODE(rope_apply(b), kInvalidArgument); }
  { RopeArgs b = a; b.cos = make_view(c.data(), DType::kF32, {L, 8}); CHECK_THROWS_CODE(rope_apply(b), kShape); }
  { RopeArgs b = a; b.x.dtype = DType::kI32; CHECK_THROWS_CODE(rope_apply(b), kDtype); }
  {
    RopeArgs b = a;
    b.out = make_view(x.data() + 1, DType::kBF16, {1, 1, L, D});
    CHECK_THROWS_CODE(rope_apply(b), kAlias);
  }
  {
    std::vector<int32_t> pos(L, 0);
    pos[3] = static_cast<int32_t>(L);
    RopeArgs b = a;
    b.positions = make_view(pos.data(), DType::kI32, {L});
    CHECK_THROWS_CODE(rope_apply(b), kInvalidArgument);  // beyond the table
  }
}

// Decode with a KV cache equals full causal attention: rows of the batch
// advance by different chunk sizes (1 token, then uneven chunks), each step
// attends the new queries over the cache with kv_lengths.
TEST(kv_cache_decode_matches_full_causal_attention) {
  const int64_t B = 2, H = 2, L = 37, D = 64, Lmax = 48;
  for (DType cache_dt : {DType::kF32, DType::kBF16}) {
    th::Rng rng(70 + static_cast<int>(cache_dt));
    std::vector<float> q(B * H * L * D), k(B * H * L * D), v(B * H * L * D);
    rng.fill(q.data(), q.size()), rng.fill(k.data(), k.size()), rng.fill(v.data(), v.size());
    if (cache_dt == DType::kBF16)  // the full computation sees what the cache holds
      for (auto* t : {&k, &v})
        for (float& x : *t) x = bf16_to_f32(f32_to_bf16(x));
    // Full causal attention (BLHD input, as a model produces it).
    std::vector<float> full(B * L * H * D), qb(B * L * H * D), kb(B * L * H * D), vb(B * L * H * D);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t l = 0; l < L; ++l)
          for (int64_t d = 0; d < D; ++d) {
            const int64_t src = ((b * H + h) * L + l) * D + d, dst = ((b * L + l) * H + h) * D + d;
            qb[dst] = q[src], kb[dst] = k[src], vb[dst] = v[src];
          }
    AttentionArgs fa;
    fa.q = make_view(qb.data(), DType::kF32, {B, L, H, D});
    fa.k = make_view(kb.data(), DType::kF32, {B, L, H, D});
    fa.v = make_view(vb.data(), DType::kF32, {B, L, H, D});
    fa.out = make_view(full.data(), DType::kF32, {B, L, H, D});
    fa.layout = QkvLayout::kBLHD, fa.scale = 0.125f, fa.mask = kMaskCausal;
    attention(fa);

    const size_t es = dtype_size(cache_dt);
    std::vector<uint8_t> ck(B * H * Lmax * D * es), cv(ck.size());
    std::vector<int32_t> lengths(B, 0);
    std::vector<float> step_out(B * L * H * D, 0.f);
    // Per-row chunk schedules: row 0 one token at a time, row 1 uneven chunks.
    const std::vector<std::vector<int32_t>> sched = {std::vector<int32_t>(L, 1), {5, 1, 11, 2, 7, 3, 8}};
    size_t step = 0;
    while (lengths[0] < L || lengths[1] < L) {
      int32_t counts[B];
      int64_t Lnew = 1;
      for (int64_t b = 0; b < B; ++b) {
        counts[b] = step < sched[b].size() ? sched[b][step] : 0;
        Lnew = std::max<int64_t>(Lnew, counts[b]);
      }
      // New tokens of this step in BLHD, padded to Lnew per row.
      std::vector<float> nk(B * Lnew * H * D, 0.f), nv(nk.size(), 0.f), nq(nk.size(), 0.f), no(nk.size(), 0.f);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < counts[b]; ++t)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t d = 0; d < D; ++d) {
              const int64_t src = ((b * L + lengths[b] + t) * H + h) * D + d, dst = ((b * Lnew + t) * H + h) * D + d;
              nk[dst] = kb[src], nv[dst] = vb[src], nq[dst] = qb[src];
            }
      std::vector<int32_t> before = lengths;
      KvAppendArgs ka;
      ka.cache_k = make_view(ck.data(), cache_dt, {B, H, Lmax, D});
      ka.cache_v = make_view(cv.data(), cache_dt, {B, H, Lmax, D});
      ka.k_new = make_view(nk.data(), DType::kF32, {B, Lnew, H, D});
      ka.v_new = make_view(nv.data(), DType::kF32, {B, Lnew, H, D});
      ka.layout = QkvLayout::kBLHD, ka.lengths = lengths.data(), ka.counts = counts;
      kv_append(ka);
      for (int64_t b = 0; b < B; ++b) CHECK(lengths[b] == before[b] + counts[b]);
      // Queries of a row that appended fewer than Lnew tokens are aligned to the
      // row's end, so each row attends with its own padded query block: run per row.
      for (int64_t b = 0; b < B; ++b) {
        if (counts[b] == 0) continue;
        AttentionArgs da;
        da.k = make_view(ck.data() + b * H * Lmax * D * es, cache_dt, {1, H, Lmax, D});
        da.v = make_view(cv.data() + b * H * Lmax * D * es, cache_dt, {1, H, Lmax, D});
        std::vector<float> o(counts[b] * H * D);
        // Cache is BHLD; queries are BLHD: express q/out as BHLD views by strides.
        da.q = make_view(nq.data() + b * Lnew * H * D, DType::kF32, {1, H, counts[b], D});
        da.q.strides[1] = D, da.q.strides[2] = H * D;
        da.out = make_view(o.data(), DType::kF32, {1, H, counts[b], D});
        da.out.strides[1] = D, da.out.strides[2] = H * D;
        int32_t kvl = lengths[b];
        da.kv_lengths = make_view(&kvl, DType::kI32, {1});
        da.scale = 0.125f, da.mask = kMaskCausal;
        attention(da);
        for (int64_t t = 0; t < counts[b]; ++t)
          std::memcpy(&step_out[((b * L + before[b] + t) * H) * D], &o[t * H * D], sizeof(float) * H * D);
      }
      ++step;
    }
    std::vector<double> fd(full.begin(), full.end());
    // Same fp32 kernels on the same (cache-rounded) values; only the tiling of
    // the key range differs, so the results agree to fp32 rounding.
    const double e = th::rel_error(step_out.data(), fd.data(), fd.size());
    CHECK(e <= 1e-5) << "cache " << dtype_name(cache_dt) << ": rel error " << e;
  }
}

TEST(kv_append_refuses_overflow_without_writing) {
  const int64_t B = 2, H = 1, D = 8, Lmax = 4;
  std::vector<float> ck(B * H * Lmax * D, 0.f), cv(ck), nk(B * 3 * H * D, 1.f), nv(nk);
  std::vector<int32_t> lengths = {1, 2};
  KvAppendArgs a;
  a.cache_k = make_view(ck.data(), DType::kF32, {B, H, Lmax, D});
  a.cache_v = make_view(cv.data(), DType::kF32, {B, H, Lmax, D});
  a.k_new = make_view(nk.data(), DType::kF32, {B, H, 3, D});
  a.v_new = make_view(nv.data(), DType::kF32, {B, H, 3, D});
  a.lengths = lengths.data();
  CHECK_THROWS_CODE(kv_append(a), kShape);  // row 1: 2 + 3 > 4
  CHECK(lengths[0] == 1 && lengths[1] == 2);
  for (float x : ck) CHECK(x == 0.f);
  int32_t counts[] = {3, 2};
  a.counts = counts;
  kv_append(a);
  CHECK(lengths[0] == 4 && lengths[1] == 4);
  CHECK(ck[(0 * Lmax + 1) * D] == 1.f && ck[(1 * Lmax + 2) * D] == 1.f && ck[(1 * Lmax + 1) * D] == 0.f);
  counts[0] = -1;
  CHECK_THROWS_CODE(kv_append(a), kInvalidArgument);
  a.counts = nullptr;
  a.lengths = nullptr;
  CHECK_THROWS_CODE(kv_append(a), kInvalidArgument);
  a.lengths = lengths.data();
  a.k_new = make_view(nk.data(), DType::kF32, {B, 2, 3, D});
  CHECK_THROWS_CODE(kv_append(a), kShape);
  a.k_new = make_view(ck.data(), DType::kF32, {B, H, 3, D});
  a.v_new = a.k_new;
  CHECK_THROWS_CODE(kv_append(a), kAlias);
}
