#include "attention_case.h"

#include <algorithm>
#include <limits>
#include <sstream>

namespace ct {
using namespace tessera;

std::string AttnCase::describe() const {
  std::ostringstream os;
  os << "B" << B << " Hq" << Hq << " Hkv" << Hkv << " Lq" << Lq << " Lk" << Lk << " D" << D << " q:" << dt_name(qdt)
     << " kv:" << dt_name(kvdt) << " out:" << dt_name(odt) << (layout == QkvLayout::kBHLD ? " BHLD" : " BLHD")
     << " mask:" << mask << (kv_len.empty() ? "" : " kv_len") << (l2norm ? " l2norm" : "") << (head_mult ? " hm" : "")
     << (row_pad ? " padded" : "");
  return os.str();
}

namespace {
// Element offset of (b, h, l, d) in a [B,H,L,D] / [B,L,H,D] buffer whose
// position rows are D + pad long.
struct Lay {
  int64_t H, L, D, pad;
  bool bhld;
  int64_t row() const { return D + pad; }
  int64_t at(int64_t b, int64_t h, int64_t l, int64_t d) const {
    return bhld ? ((b * H + h) * L + l) * row() + d : ((b * L + l) * H + h) * row() + d;
  }
  TensorView view(void* p, DType dt, int64_t B) const {
    TensorView v;
    v.data = p;
    v.dtype = dt;
    v.rank = 4;
    v.device = kDev;
    if (bhld) {
      const int64_t s[4] = {H * L * row(), L * row(), row(), 1}, sh[4] = {B, H, L, D};
      for (int i = 0; i < 4; ++i) { v.shape[i] = sh[i]; v.strides[i] = s[i]; }
    } else {
      const int64_t s[4] = {L * H * row(), H * row(), row(), 1}, sh[4] = {B, L, H, D};
      for (int i = 0; i < 4; ++i) { v.shape[i] = sh[i]; v.strides[i] = s[i]; }
    }
    return v;
  }
};

std::vector<int64_t> random_blocks(int64_t Lk, th::Rng& rng) {
  std::vector<int64_t> b;
  int64_t left = Lk;
  while (left > 0) {
    const int64_t n = std::min<int64_t>(left, rng.randint(1, std::max<int64_t>(1, Lk / 3)));
    b.push_back(n);
    left -= n;
  }
  return b;
}
}  // namespace

double run_attention_case(const AttnCase& c, uint64_t salt) {
  th::Rng rng(salt);
  const bool bhld = c.layout == QkvLayout::kBHLD;
  const Lay lq{c.Hq, c.Lq, c.D, c.row_pad, bhld}, lk{c.Hkv, c.Lk, c.D, c.row_pad, bhld};
  const size_t nq = size_t(c.B) * c.Hq * c.Lq * lq.row(), nk = size_t(c.B) * c.Hkv * c.Lk * lk.row();
  HostData q = random_host(c.qdt, nq, rng), k = random_host(c.kvdt, nk, rng), v = random_host(c.kvdt, nk, rng);
  // Keys past a row's kv length stand for an unwritten cache: NaN there must never be read.
  if (!c.kv_len.empty())
    for (int b = 0; b < c.B; ++b)
      for (int h = 0; h < c.Hkv; ++h)
        for (int l = c.kv_len[b]; l < c.Lk; ++l)
          for (int d = 0; d < c.D; ++d) {
            set_elem(k, lk.at(b, h, l, d), std::nan(""));
            set_elem(v, lk.at(b, h, l, d), std::nan(""));
          }

  ref::Mask m;
  m.flags = c.mask;
  if (c.mask & kMaskBlockCausal) m.blocks = c.blocks.empty() ? random_blocks(c.Lk, rng) : c.blocks;
  if (c.mask & kMaskSegment) {
    m.q_seg.resize(size_t(c.B) * c.Lq);
    m.k_seg.resize(size_t(c.B) * c.Lk);
    for (auto& s : m.q_seg) s = static_cast<int32_t>(rng.randint(0, 2));
    for (auto& s : m.k_seg) s = static_cast<int32_t>(rng.randint(0, 2));
  }
  if (c.mask & kMaskAdditive) {
    m.add_b = c.add_b;
    m.add_h = c.add_h;
    m.additive.resize(size_t(c.add_b) * c.add_h * c.Lq * c.Lk);
    for (auto& a : m.additive)
      a = rng.uniform() < 0.1f ? -std::numeric_limits<double>::infinity() : static_cast<float>(rng.uniform(-2.f, 2.f));
  }
  m.kv_len = c.kv_len;
  std::vector<float> hm;
  if (c.head_mult)
    for (int h = 0; h < c.Hq; ++h) hm.push_back(rng.uniform(0.5f, 2.f));
  const float scale = 1.f / std::sqrt(static_cast<float>(c.D));

  // Reference on dense BHLD copies of the rounded values.
  auto dense = [&](const HostData& x, const Lay& lay, int64_t H, int64_t L) {
    std::vector<double> o(size_t(c.B) * H * L * c.D);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t l = 0; l < L; ++l)
          for (int64_t d = 0; d < c.D; ++d) o[((b * H + h) * L + l) * c.D + d] = x.val[lay.at(b, h, l, d)];
    return o;
  };
  const auto qd = dense(q, lq, c.Hq, c.Lq), kd = dense(k, lk, c.Hkv, c.Lk), vd = dense(v, lk, c.Hkv, c.Lk);
  std::vector<double> hmd(hm.begin(), hm.end());
  std::vector<double> ref_out(size_t(c.B) * c.Hq * c.Lq * c.D), ref_lse(size_t(c.B) * c.Hq * c.Lq);
  ref::attention(c.B, c.Hq, c.Hkv, c.Lq, c.Lk, c.D, qd.data(), kd.data(), vd.data(), scale, m, c.l2norm,
                 c.head_mult ? hmd.data() : nullptr, ref_out.data(), ref_lse.data());

  DevBuf dq = to_device(q), dk = to_device(k), dv = to_device(v);
  const Lay lo{c.Hq, c.Lq, c.D, 0, bhld};
  DevBuf dout(size_t(c.B) * c.Hq * c.Lq * c.D * dtype_size(c.odt)), dlse(size_t(c.B) * c.Hq * c.Lq * 4);
  dout.poison();
  dlse.poison();
  AttentionArgs a;
  a.q = lq.view(dq.p, c.qdt, c.B);
  a.k = lk.view(dk.p, c.kvdt, c.B);
  a.v = lk.view(dv.p, c.kvdt, c.B);
  a.out = lo.view(dout.p, c.odt, c.B);
  a.layout = c.layout;
  a.scale = scale;
  a.mask = c.mask;
  a.block_lengths = m.blocks.empty() ? nullptr : m.blocks.data();
  a.num_blocks = static_cast<int32_t>(m.blocks.size());
  DevBuf dqs, dks, dadd;
  if (c.mask & kMaskSegment) {
    dqs = to_device(m.q_seg);
    dks = to_device(m.k_seg);
    a.q_segments = view(dqs, DType::kI32, {c.B, c.Lq});
    a.k_segments = view(dks, DType::kI32, {c.B, c.Lk});
  }
  if (c.mask & kMaskAdditive) {
    std::vector<float> af(m.additive.begin(), m.additive.end());
    dadd = to_device(af);
    a.additive = (c.add_b == 1 && c.add_h == 1 && (salt & 1))
                     ? view(dadd, DType::kF32, {c.Lq, c.Lk})
                     : view(dadd, DType::kF32, {c.add_b, c.add_h, c.Lq, c.Lk});
  }
  // Host memory; every other case reads the lengths through a strided view
  // (stride 2, a column of a [B, 2] array), as the CPU allows.
  std::vector<int32_t> kvl(2 * c.kv_len.size(), -1);
  for (size_t b = 0; b < c.kv_len.size(); ++b) kvl[2 * b] = c.kv_len[b];
  if (!c.kv_len.empty()) {
    a.kv_lengths = make_view(kvl.data(), DType::kI32, {c.B});
    if (salt & 1) a.kv_lengths.strides[0] = 2;
    else std::copy(c.kv_len.begin(), c.kv_len.end(), kvl.begin());
  }
  a.l2norm_qk = c.l2norm;
  a.head_multiplier = c.head_mult ? hm.data() : nullptr;
  if (c.lse) a.lse = view(dlse, DType::kF32, {c.B, c.Hq, c.Lq});
  call(api().attention, &a);
  sync();

  // Device out → dense BHLD doubles.
  const auto got_raw = fetch(dout, c.odt);
  std::vector<double> got(got_raw.size());
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t l = 0; l < c.Lq; ++l)
        for (int64_t d = 0; d < c.D; ++d) got[((b * c.Hq + h) * c.Lq + l) * c.D + d] = got_raw[lo.at(b, h, l, d)];
  const double tol = tol_for({c.qdt, c.kvdt, c.odt});
  const double err = th::rel_error(got.data(), ref_out.data(), got.size());
  CHECK(err <= tol) << c.describe() << ": rel error " << err << " > " << tol;

  int empty_rows_bad = 0;
  std::vector<double> lse_got, lse_ref;
  const auto lse_dev = c.lse ? fetch(dlse, DType::kF32) : std::vector<double>();
  for (size_t r = 0; r < ref_lse.size(); ++r) {
    const bool empty = std::isinf(ref_lse[r]);
    if (empty) {
      for (int d = 0; d < c.D; ++d) empty_rows_bad += got[r * c.D + d] != 0.0;
      if (c.lse) empty_rows_bad += !(std::isinf(lse_dev[r]) && lse_dev[r] < 0);
    } else if (c.lse) {
      lse_got.push_back(lse_dev[r]);
      lse_ref.push_back(ref_lse[r]);
    }
  }
  CHECK(empty_rows_bad == 0) << c.describe() << ": rows with no visible key must be exact zeros with lse -inf ("
                             << empty_rows_bad << " bad values)";
  if (!lse_ref.empty()) {
    const double le = th::rel_error(lse_got.data(), lse_ref.data(), lse_ref.size());
    CHECK(le <= tol) << c.describe() << ": lse rel error " << le;
  }
  return err;
}

void attention_on_device(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                         uint32_t mask, float scale, const int32_t* kv_len, int B) {
  AttentionArgs a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.out = out;
  a.scale = scale;
  a.mask = mask;
  std::vector<int32_t> kvl;
  if (kv_len) {
    kvl.assign(kv_len, kv_len + B);
    a.kv_lengths = make_view(kvl.data(), DType::kI32, {B});
  }
  call(api().attention, &a);
}

}  // namespace ct
