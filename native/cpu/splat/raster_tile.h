// Per-tile blending kernels (spec §1 "Blend" and §1b step 1), written once
// with GCC/Clang vector extensions over one 16-pixel tile row and compiled
// per instruction set by raster_{avx512,avx2,scalar}.cpp (one zmm, two ymm or
// four xmm per row). The AVX-512 build also gets hand-scheduled forms of the
// hot loops (#if __AVX512F__: blend_rows_avx512, backward_rows_avx512,
// write_tile's vector rows) with the same operations per pixel and the same
// bits. Included inside an anonymous namespace of tessera::cpu::splat after
// <cstdint>, <immintrin.h> and splat_cpu.h; the includer defines
// any_lane(vi) for its ISA after this header.
//
// Forward, per pixel and Gaussian in depth order:
//   power = −½(A·dx² + C·dy²) − B·dx·dy, d = μ − pixel; skip if power > 0
//   α = min(0.99, o·e^power); skip if α < 1/255
//   stop (without blending) if T·(1−α) < 1e−4; else C += c·α·T, T ← T·(1−α)
// Backward, front to back with the forward's final values (no division
// chain through T): for channel values f (r, g, b and z) with background bg,
//   ∂F/∂α_i = T_i·f_i − (F_out − F_≤i)/(1−α_i),   F_out including T_final·bg,
//   ∂(1−T_final)/∂α_i = T_final/(1−α_i),  ∂F/∂f_i = α_i·T_i.
// Depth D = N/A (N = Σwz, A = 1 − T_final) is handled through N and A.

// Vector values never cross a non-inlined call here, so the ABI note GCC
// gives for 64-byte vectors without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#define SPLAT_INLINE inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
constexpr int kLanes = 16;
static_assert(kLanes == kSplatTile, "one vector per tile row");

static bool any_lane(vi m);
static uint32_t lane_bits(vi m);  // bit l set when lane l is non-zero

constexpr float kMaxAlpha = 0.99f;
constexpr float kMinAlpha = 1.0f / 255.0f;
constexpr float kMinTransmittance = 1e-4f;
// Below this power even o = 1 gives α < 1/255, so exp's argument can be
// clamped there (keeps the polynomial exp in range).
constexpr float kMinPower = -12.f;

SPLAT_INLINE vf splat1(float s) { return vf{} + s; }

// e^x for x in [kMinPower, 0]: x = n·ln2 + r, |r| <= ln2/2, degree-7 Taylor
// polynomial (relative error < 1e-8, below fp32 rounding), scaled by 2^n.
SPLAT_INLINE vf vexp(vf x) {
  const vf t = x * 1.44269504088896341f + 12582912.f;  // round(x/ln2) via the 1.5·2^23 trick
  const vf n = t - 12582912.f;
  const vf r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  vf p = splat1(1.f / 5040);
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)e;
}

inline float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// The tile's Gaussians as structure of arrays, front to back, gathered
// lazily: a tile whose pixels all saturate after its first few hundred
// entries never reads the rest of its list (each entry is a random 64-byte
// read of a Projected record, the blend's main memory cost).
// ky, thr, bda: the row-skip constants (Projected::ky, row_thr and bda,
// computed once per Gaussian in project_simd.h).
struct TileSoA {
  float *mx, *my, *A, *B, *C, *op, *r, *g, *b, *z, *ky, *thr, *bda;
  int64_t n, filled;
  const int32_t* list;
  const Projected* proj;
};
constexpr int kSoAFields = 13;
// Entries gathered and blended per step; a multiple of 8 (the saturation check interval).
constexpr int64_t kBatch = 64;
constexpr int64_t kPrefetch = 16;  // list entries ahead

TileSoA tile_soa(const Projected* proj, const TileBins& bins, int64_t tile, int tid) {
  const int64_t b = bins.offsets[tile], n = bins.offsets[tile + 1] - b;
  float* p = static_cast<float*>(thread_scratch(tid, 0, sizeof(float) * kSoAFields * static_cast<size_t>(n > 0 ? n : 1)));
  float* f[kSoAFields];
  for (int j = 0; j < kSoAFields; ++j) f[j] = p + j * n;
  return TileSoA{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], n, 0, bins.list + b, proj};
}

#if defined(__AVX512F__)
// The masked forms of the intrinsics with every lane set: GCC 12 warns that
// the plain ones' undefined source may be used.
constexpr __mmask16 kAll = 0xffff;

// r[j] becomes column j: r'[j][l] = r[l][j] (4 × 16 shuffles).
SPLAT_INLINE void transpose16(vf r[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 16; ++i) a[i] = reinterpret_cast<__m512>(r[i]);
  for (int i = 0; i < 8; ++i) {  // pairs of rows interleaved per 128-bit lane
    b[2 * i] = _mm512_maskz_unpacklo_ps(kAll, a[2 * i], a[2 * i + 1]);
    b[2 * i + 1] = _mm512_maskz_unpackhi_ps(kAll, a[2 * i], a[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // a[4g + c]: rows 4g..4g+3 at column 4L + c of 128-bit lane L
    a[4 * g + 0] = _mm512_maskz_shuffle_ps(kAll, b[4 * g], b[4 * g + 2], 0x44);
    a[4 * g + 1] = _mm512_maskz_shuffle_ps(kAll, b[4 * g], b[4 * g + 2], 0xEE);
    a[4 * g + 2] = _mm512_maskz_shuffle_ps(kAll, b[4 * g + 1], b[4 * g + 3], 0x44);
    a[4 * g + 3] = _mm512_maskz_shuffle_ps(kAll, b[4 * g + 1], b[4 * g + 3], 0xEE);
  }
  for (int h = 0; h < 2; ++h)  // b[8h + c]: columns c, c + 8; b[8h + 4 + c]: c + 4, c + 12 (rows 8h..8h+7)
    for (int c = 0; c < 4; ++c) {
      b[8 * h + c] = _mm512_maskz_shuffle_f32x4(kAll, a[8 * h + c], a[8 * h + 4 + c], 0x88);
      b[8 * h + 4 + c] = _mm512_maskz_shuffle_f32x4(kAll, a[8 * h + c], a[8 * h + 4 + c], 0xDD);
    }
  for (int c = 0; c < 8; ++c) {
    r[c] = reinterpret_cast<vf>(_mm512_maskz_shuffle_f32x4(kAll, b[c], b[8 + c], 0x88));
    r[c + 8] = reinterpret_cast<vf>(_mm512_maskz_shuffle_f32x4(kAll, b[c], b[8 + c], 0xDD));
  }
}
#endif

// Gathers entries [s.filled, upto) (upto clamped to the list length).
void fill_to(TileSoA& s, int64_t upto) {
  upto = std::min(upto, s.n);
  int64_t k = s.filled;
#if defined(__AVX512F__)
  // 16 entries at a time: their records loaded whole and transposed into
  // the 13 field vectors (the fields lead the record in TileSoA's order).
  static_assert(offsetof(Projected, bda) == 12 * sizeof(float), "Projected field order");
  float* const dst[kSoAFields] = {s.mx, s.my, s.A, s.B, s.C, s.op, s.r, s.g, s.b, s.z, s.ky, s.thr, s.bda};
  for (; k < upto; k += kLanes) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, upto - k));
    for (int64_t p = k + kPrefetch, e = std::min(k + kPrefetch + kLanes, s.n); p < e; ++p)
      __builtin_prefetch(&s.proj[s.list[p]]);
    vf v[16];
    for (int l = 0; l < kLanes; ++l)
      v[l] = reinterpret_cast<vf>(_mm512_load_ps(reinterpret_cast<const float*>(&s.proj[s.list[k + (l < m ? l : 0)]])));
    transpose16(v);
    const __mmask16 mk = m == kLanes ? kAll : __mmask16((1u << m) - 1);
    for (int f = 0; f < kSoAFields; ++f) _mm512_mask_storeu_ps(dst[f] + k, mk, reinterpret_cast<__m512>(v[f]));
  }
  k = upto;
#endif
  for (; k < upto; ++k) {
    if (k + kPrefetch < s.n) __builtin_prefetch(&s.proj[s.list[k + kPrefetch]]);
    const Projected& q = s.proj[s.list[k]];
    s.mx[k] = q.mx; s.my[k] = q.my;
    s.A[k] = q.conic[0]; s.B[k] = q.conic[1]; s.C[k] = q.conic[2];
    s.op[k] = q.opacity;
    s.r[k] = q.rgb[0]; s.g[k] = q.rgb[1]; s.b[k] = q.rgb[2];
    s.z[k] = q.depth;
    s.ky[k] = q.ky;
    s.thr[k] = q.row_thr;
    s.bda[k] = q.bda;
  }
  if (upto > s.filled) s.filled = upto;
}

// Geometry of one tile: lanes outside the image are inactive from the start.
struct TileGeom {
  int x0, y0, rows;
  vf px;
  vi lane_ok;
};
TileGeom geom(const CameraFrame& cam, int64_t tile) {
  TileGeom t;
  t.x0 = static_cast<int>(tile % cam.tiles_x) * kSplatTile;
  t.y0 = static_cast<int>(tile / cam.tiles_x) * kSplatTile;
  t.rows = std::min(kSplatTile, cam.height - t.y0);
  const int cols = std::min(kSplatTile, cam.width - t.x0);
  for (int i = 0; i < kLanes; ++i) {
    t.px[i] = t.x0 + i + 0.5f;
    t.lane_ok[i] = i < cols ? -1 : 0;
  }
  return t;
}

// α of Gaussian k at the row's pixels, and which lanes blend it.
struct AlphaStep {
  vf dx, dy, G, raw, alpha;
  vi ok;
};
SPLAT_INLINE AlphaStep alpha_at(const TileSoA& s, int64_t k, vf px, float py, vi active) {
  AlphaStep a;
  a.dx = s.mx[k] - px;
  const float dy = s.my[k] - py;
  a.dy = splat1(dy);
  // power = −½(A·dx² + C·dy²) − B·dx·dy = (−½A·dx − B·dy)·dx − ½C·dy², with
  // the row's terms in scalars: two vector multiply-adds per row step.
  const vf power = (-0.5f * s.A[k] * a.dx - s.B[k] * dy) * a.dx + (-0.5f * s.C[k] * dy * dy);
  a.G = vexp(power < kMinPower ? splat1(kMinPower) : power);
  a.raw = s.op[k] * a.G;
  a.alpha = a.raw < kMaxAlpha ? a.raw : splat1(kMaxAlpha);
  a.ok = active & (power <= 0.f) & (a.alpha >= kMinAlpha);
  return a;
}

// Front-to-back state of one tile row.
struct RowAcc {
  vf T, C[3], N;
  vi count, active;
};

// Rows of the tile Gaussian k can reach (the row-skip test, for the 16 rows
// at once). Along row r (dy = my − y_r) the power is
//   −½·A·(x − x*)² − ky·dy²,  x* = mx + (B/A)·dy,  ky = ½(C − B²/A),
// so some lane of the row has α >= 1/255 only if ½·A·dist² + ky·dy² <= thr,
// with dist the distance from x* to the tile's lane centres [xlo, xhi] (0
// inside) and thr = ln(255·o) plus a margin (project_simd.h). dist is taken
// 0.01 px short, so fp32 rounding never skips a row the blend would take.
// Skipping a row where no lane passes changes nothing: such a step blends
// nothing and stops nothing.
SPLAT_INLINE uint32_t row_mask(const TileSoA& s, int64_t k, vf rowy, float xlo, float xhi) {
  const vf dy = s.my[k] - rowy;
  const vf xs = s.mx[k] + s.bda[k] * dy;
  const vf lo = (xlo - 0.01f) - xs, hi = xs - (xhi + 0.01f);
  vf dist = lo > hi ? lo : hi;
  dist = dist > 0.f ? dist : vf{};
  return lane_bits(~(0.5f * s.A[k] * dist * dist + dy * dy * s.ky[k] > s.thr[k]));
}

// Forward blend of the whole tile, front to back, batch by batch. Each
// Gaussian updates the rows it reaches (the rows are independent, so their
// updates overlap in the pipeline); a row leaves once every lane has stopped
// (checked every 8 entries), the tile when every row has. Returns the length
// of the list prefix any row may have blended (the later entries get no
// gradient). Per pixel, the operations are those of a front-to-back loop over
// the list.
uint32_t init_rows(const TileGeom& t, RowAcc* st) {
  uint32_t live = 0;
  for (int r = 0; r < t.rows; ++r) {
    st[r] = RowAcc{splat1(1.f), {vf{}, vf{}, vf{}}, vf{}, vi{}, t.lane_ok};
    live |= 1u << r;
  }
  return live;
}

#if defined(__AVX512F__)
// vexp (same bits) in intrinsics.
SPLAT_INLINE __m512 exp_avx512(__m512 x) {
  // vexp's formulas; 2^n scales p (in [0.7, 1.5)) exactly by adding n to its
  // exponent bits (n in [-18, 0]: the result stays normal).
  const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.f));
  const __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(12582912.f));
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  // The low mantissa bits of t hold n (the 1.5·2^23 trick): shifted by 23
  // they are n's exponent field.
  const __m512i e = _mm512_maskz_slli_epi32(0xffff, _mm512_castps_si512(t), 23);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e));
}

// One batch's row terms, for entries [b0, b1) (b1 − b0 <= kBatch, gathered)
// and the rows in `live`: bit j of rows[r] is set when entry b0 + j may reach
// row r (row_mask's test, 16 entries per vector, row by row);
// bdy[r][j] = B·dy, cdy[r][j] = −½C·dy², dyt[r][j] = dy (dy = my − row
// centre; kDy only) and ha[j] = −½A: the scalars of alpha_at's power.
struct BatchRows {
  uint64_t rows[kLanes];
  alignas(64) float bdy[kLanes][kBatch], cdy[kLanes][kBatch], dyt[kLanes][kBatch], ha[kBatch];
  alignas(64) float dx[kBatch][kLanes];  // mx − lane centres, per entry
};
// The row test spans the row's active lanes only (act[r]: bit l set when
// lane l still blends; a live row has one): an entry that reaches only
// lanes that have stopped blends nothing there, so skipping it changes
// nothing.
template <bool kDy>
SPLAT_INLINE void batch_rows(const TileSoA& s, const TileGeom& t, const vf& rowy, int64_t b0, int64_t b1, uint32_t live,
                             const uint16_t* act, BatchRows& br) {
  alignas(64) float span_lo[kLanes], span_hi[kLanes];
  for (uint32_t lm = live; lm; lm &= lm - 1) {
    const int r = __builtin_ctz(lm);
    const uint32_t a = act[r] ? act[r] : 1u;
    span_lo[r] = t.x0 + __builtin_ctz(a) + 0.5f - 0.01f;
    span_hi[r] = t.x0 + (31 - __builtin_clz(a)) + 0.5f + 0.01f;
  }
  for (int r = 0; r < kLanes; ++r) br.rows[r] = 0;
  const __m512 px = reinterpret_cast<__m512>(t.px);
  for (int64_t k = b0; k < b1; ++k) _mm512_store_ps(br.dx[k - b0], _mm512_sub_ps(_mm512_set1_ps(s.mx[k]), px));
  for (int64_t g0 = b0; g0 < b1; g0 += kLanes) {
    const __mmask16 in = b1 - g0 >= kLanes ? __mmask16(0xffff) : __mmask16((1u << (b1 - g0)) - 1);
    const int j0 = static_cast<int>(g0 - b0);
    const __m512 mx = _mm512_maskz_loadu_ps(in, s.mx + g0), my = _mm512_maskz_loadu_ps(in, s.my + g0);
    const __m512 A = _mm512_maskz_loadu_ps(in, s.A + g0), B = _mm512_maskz_loadu_ps(in, s.B + g0);
    const __m512 nC = _mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_maskz_loadu_ps(in, s.C + g0));
    const __m512 bda = _mm512_maskz_loadu_ps(in, s.bda + g0), ky = _mm512_maskz_loadu_ps(in, s.ky + g0);
    const __m512 thr = _mm512_maskz_loadu_ps(in, s.thr + g0);
    const __m512 hA = _mm512_mul_ps(_mm512_set1_ps(0.5f), A);
    _mm512_store_ps(br.ha + j0, _mm512_mul_ps(_mm512_set1_ps(-0.5f), A));
    for (uint32_t lm = live; lm; lm &= lm - 1) {
      const int r = __builtin_ctz(lm);
      const __m512 dy = _mm512_sub_ps(my, _mm512_set1_ps(rowy[r]));
      const __m512 xs = _mm512_fmadd_ps(bda, dy, mx);
      const __m512 xlo = _mm512_set1_ps(span_lo[r]), xhi = _mm512_set1_ps(span_hi[r]);
      const __m512 dist = _mm512_maskz_max_ps(0xffff, _mm512_maskz_max_ps(0xffff, _mm512_sub_ps(xlo, xs), _mm512_sub_ps(xs, xhi)),
                                              _mm512_setzero_ps());
      const __m512 e = _mm512_fmadd_ps(_mm512_mul_ps(hA, dist), dist, _mm512_mul_ps(_mm512_mul_ps(dy, dy), ky));
      br.rows[r] |= uint64_t(_mm512_mask_cmp_ps_mask(in, e, thr, _CMP_NGT_UQ)) << j0;
      _mm512_store_ps(br.bdy[r] + j0, _mm512_mul_ps(B, dy));
      _mm512_store_ps(br.cdy[r] + j0, _mm512_mul_ps(_mm512_mul_ps(nC, dy), dy));
      if constexpr (kDy) _mm512_store_ps(br.dyt[r] + j0, dy);
    }
  }
}

// α of entry k = b0 + j at row r (alpha_at's operations, same bits).
struct AlphaRow {
  __m512 dx, power, G, raw, alpha;
  __mmask16 ok;  // active lanes with power <= 0 and α >= 1/255
};
SPLAT_INLINE AlphaRow alpha_row(const TileSoA& s, const BatchRows& br, int64_t k, int j, int r, __mmask16 active) {
  AlphaRow a;
  a.dx = _mm512_load_ps(br.dx[j]);
  const __m512 q = _mm512_fmsub_ps(_mm512_set1_ps(br.ha[j]), a.dx, _mm512_set1_ps(br.bdy[r][j]));
  a.power = _mm512_fmadd_ps(q, a.dx, _mm512_set1_ps(br.cdy[r][j]));
  a.G = exp_avx512(_mm512_maskz_max_ps(0xffff, _mm512_set1_ps(kMinPower), a.power));
  a.raw = _mm512_mul_ps(_mm512_set1_ps(s.op[k]), a.G);
  a.alpha = _mm512_maskz_min_ps(0xffff, a.raw, _mm512_set1_ps(kMaxAlpha));
  a.ok = _mm512_mask_cmp_ps_mask(active, a.power, _mm512_setzero_ps(), _CMP_LE_OQ);
  a.ok = _mm512_mask_cmp_ps_mask(a.ok, a.alpha, _mm512_set1_ps(kMinAlpha), _CMP_GE_OQ);
  return a;
}

// The AVX-512 form of blend_rows below (same operations per pixel, same
// order, same bits): per batch of kBatch entries, the row masks and row terms
// of batch_rows, then row by row over the batch, so a row's state stays in
// registers (no load and store of its 7 vectors per Gaussian) and lane masks
// stay in mask registers. A row leaves at the Gaussian that stops its last
// lane. Returns the length of the list prefix any row may have blended.
int64_t blend_rows_avx512(TileSoA& s, const TileGeom& t, RowAcc* st, uint32_t& live) {
  vf rowy;
  for (int r = 0; r < kLanes; ++r) rowy[r] = t.y0 + r + 0.5f;
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512i ione = _mm512_set1_epi32(1);
  BatchRows br;
  int64_t used = 0;  // 1 + the last entry a row that has left may have blended
  for (int64_t b0 = 0; b0 < s.n && live; b0 += kBatch) {
    const int64_t b1 = std::min(b0 + kBatch, s.n);
    fill_to(s, b1);
    uint16_t act[kLanes];
    for (uint32_t lm = live; lm; lm &= lm - 1) {
      const int r = __builtin_ctz(lm);
      act[r] = static_cast<uint16_t>(_mm512_test_epi32_mask(reinterpret_cast<__m512i>(st[r].active), reinterpret_cast<__m512i>(st[r].active)));
    }
    batch_rows<false>(s, t, rowy, b0, b1, live, act, br);
    const uint64_t* rows = br.rows;
    for (uint32_t lm = live; lm; lm &= lm - 1) {
      const int r = __builtin_ctz(lm);
      uint64_t bits = rows[r];
      if (!bits) continue;
      RowAcc& o = st[r];
      __m512 T = reinterpret_cast<__m512>(o.T), C0 = reinterpret_cast<__m512>(o.C[0]);
      __m512 C1 = reinterpret_cast<__m512>(o.C[1]), C2 = reinterpret_cast<__m512>(o.C[2]);
      __m512 N = reinterpret_cast<__m512>(o.N);
      __m512i count = reinterpret_cast<__m512i>(o.count);
      __mmask16 active = _mm512_test_epi32_mask(reinterpret_cast<__m512i>(o.active), reinterpret_cast<__m512i>(o.active));
      for (; bits; bits &= bits - 1) {
        const int j = __builtin_ctzll(bits);
        const int64_t k = b0 + j;
        const AlphaRow a = alpha_row(s, br, k, j, r, active);
        const __m512 alpha = a.alpha;
        __mmask16 ok = a.ok;
        const __m512 Tn = _mm512_mul_ps(T, _mm512_sub_ps(one, alpha));
        const __mmask16 stop = _mm512_mask_cmp_ps_mask(ok, Tn, _mm512_set1_ps(kMinTransmittance), _CMP_LT_OQ);
        active = _kandn_mask16(stop, active);
        ok = _kandn_mask16(stop, ok);
        const __m512 w = _mm512_maskz_mul_ps(ok, alpha, T);
        C0 = _mm512_fmadd_ps(w, _mm512_set1_ps(s.r[k]), C0);
        C1 = _mm512_fmadd_ps(w, _mm512_set1_ps(s.g[k]), C1);
        C2 = _mm512_fmadd_ps(w, _mm512_set1_ps(s.b[k]), C2);
        N = _mm512_fmadd_ps(w, _mm512_set1_ps(s.z[k]), N);
        T = _mm512_mask_mov_ps(T, ok, Tn);
        count = _mm512_mask_add_epi32(count, ok, count, ione);
        if (!active) {
          used = std::max(used, k + 1);
          live &= ~(1u << r);
          break;
        }
      }
      o.T = reinterpret_cast<vf>(T);
      o.C[0] = reinterpret_cast<vf>(C0);
      o.C[1] = reinterpret_cast<vf>(C1);
      o.C[2] = reinterpret_cast<vf>(C2);
      o.N = reinterpret_cast<vf>(N);
      o.count = reinterpret_cast<vi>(count);
      o.active = reinterpret_cast<vi>(_mm512_movm_epi32(active));
    }
  }
  return live ? s.n : used;
}
#endif

// Blends the list in s into the tile's state (rows in `live`), front to back
// (see above); returns the length of the list prefix any row may have blended.
int64_t blend_rows(TileSoA& s, const TileGeom& t, RowAcc* st, uint32_t& live) {
#if defined(__AVX512F__)
  return blend_rows_avx512(s, t, st, live);
#endif
  vf rowy;
  for (int r = 0; r < kLanes; ++r) rowy[r] = t.y0 + r + 0.5f;
  int64_t k = 0;
  for (int64_t b0 = 0; b0 < s.n && live; b0 += kBatch) {
    const int64_t b1 = std::min(b0 + kBatch, s.n);
    fill_to(s, b1);
    for (k = b0; k < b1; ++k) {
      if ((k & 7) == 0) {
        for (uint32_t m = live; m; m &= m - 1)
          if (!any_lane(st[__builtin_ctz(m)].active)) live &= ~(1u << __builtin_ctz(m));
        if (!live) break;
      }
      for (uint32_t m = row_mask(s, k, rowy, t.x0 + 0.5f, t.x0 + kLanes - 0.5f) & live; m; m &= m - 1) {
        const int r = __builtin_ctz(m);
        RowAcc& o = st[r];
        AlphaStep a = alpha_at(s, k, t.px, t.y0 + r + 0.5f, o.active);
        const vf Tn = o.T * (1.f - a.alpha);
        const vi stop = a.ok & (Tn < kMinTransmittance);
        o.active &= ~stop;
        a.ok &= ~stop;
        const vf w = a.ok ? a.alpha * o.T : vf{};
        o.C[0] += w * s.r[k];
        o.C[1] += w * s.g[k];
        o.C[2] += w * s.b[k];
        o.N += w * s.z[k];
        o.T = a.ok ? Tn : o.T;
        o.count -= a.ok;  // ok lanes are −1
      }
    }
  }
  return live ? s.n : k;
}

static_assert(sizeof(RowAcc) * kSplatTile == kTileStateBytes, "tile state layout");

int64_t blend_chunk(const Projected* proj, const TileBins& bins, const CameraFrame& cam, int64_t tile, int tid,
                    void* state, uint32_t* live) {
  const TileGeom t = geom(cam, tile);
  RowAcc* st = static_cast<RowAcc*>(state);
  if (*live == kTileUnstarted) *live = init_rows(t, st);
  if (*live == 0 || bins.offsets[tile + 1] == bins.offsets[tile]) return 0;
  TileSoA s = tile_soa(proj, bins, tile, tid);
  return blend_rows(s, t, st, *live);
}

void write_tile(const CameraFrame& cam, const float* bg, const TileGeom& t, const RowAcc* st, const TileOutputs& out) {
  const int W = cam.width;
#if defined(__AVX512F__)
  // Whole rows in vectors (the scalar loop's values, same bits): colour
  // interleaved by two-source permutes, the other images stored 16 at a time
  // (masked at the image's right edge).
  {
    const __mmask16 cols = _mm512_test_epi32_mask(reinterpret_cast<__m512i>(t.lane_ok), reinterpret_cast<__m512i>(t.lane_ok));
    const __m512 bg0 = _mm512_set1_ps(bg[0]), bg1 = _mm512_set1_ps(bg[1]), bg2 = _mm512_set1_ps(bg[2]);
    // rgb[3i + c]: output vector v holds entries 16v .. 16v + 15 of the 48.
    alignas(64) static constexpr int32_t kIdx01[3][16] = {
        {0, 16, 0, 1, 17, 0, 2, 18, 0, 3, 19, 0, 4, 20, 0, 5},
        {21, 0, 6, 22, 0, 7, 23, 0, 8, 24, 0, 9, 25, 0, 10, 26},
        {0, 11, 27, 0, 12, 28, 0, 13, 29, 0, 14, 30, 0, 15, 31, 0}};
    alignas(64) static constexpr int32_t kIdx2[3][16] = {
        {0, 1, 16, 3, 4, 17, 6, 7, 18, 9, 10, 19, 12, 13, 20, 15},
        {0, 21, 2, 3, 22, 5, 6, 23, 8, 9, 24, 11, 12, 25, 14, 15},
        {26, 1, 2, 27, 4, 5, 28, 7, 8, 29, 10, 11, 30, 13, 14, 31}};
    for (int r = 0; r < t.rows; ++r) {
      const RowAcc& o = st[r];
      const int64_t pix = int64_t(t.y0 + r) * W + t.x0;
      const __m512 T = reinterpret_cast<__m512>(o.T);
      const __m512 c0 = _mm512_fmadd_ps(T, bg0, reinterpret_cast<__m512>(o.C[0]));
      const __m512 c1 = _mm512_fmadd_ps(T, bg1, reinterpret_cast<__m512>(o.C[1]));
      const __m512 c2 = _mm512_fmadd_ps(T, bg2, reinterpret_cast<__m512>(o.C[2]));
      float* rgb = out.rgb + 3 * pix;
      for (int v = 0; v < 3; ++v) {
        const __m512 x = _mm512_permutex2var_ps(c0, _mm512_load_si512(kIdx01[v]), c1);
        const __m512 y = _mm512_permutex2var_ps(x, _mm512_load_si512(kIdx2[v]), c2);
        if (cols == 0xffff) {
          _mm512_storeu_ps(rgb + 16 * v, y);
        } else {
          const int n = 3 * __builtin_popcount(cols) - 16 * v;  // valid entries of this vector
          if (n > 0) _mm512_mask_storeu_ps(rgb + 16 * v, n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1), y);
        }
      }
      const __m512 a = _mm512_sub_ps(_mm512_set1_ps(1.f), T);
      if (out.alpha) _mm512_mask_storeu_ps(out.alpha + pix, cols, a);
      if (out.depth) {
        const __mmask16 pos = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ);
        _mm512_mask_storeu_ps(out.depth + pix, cols, _mm512_maskz_div_ps(pos, reinterpret_cast<__m512>(o.N), a));
      }
      if (out.contributors) _mm512_mask_storeu_epi32(out.contributors + pix, cols, reinterpret_cast<__m512i>(o.count));
    }
    return;
  }
#endif
  for (int r = 0; r < t.rows; ++r) {
    const RowAcc& o = st[r];
    const int y = t.y0 + r;
    for (int i = 0; i < kLanes && t.lane_ok[i]; ++i) {
      const int64_t pix = int64_t(y) * W + t.x0 + i;
      for (int c = 0; c < 3; ++c) out.rgb[3 * pix + c] = o.C[c][i] + o.T[i] * bg[c];
      const float a = 1.f - o.T[i];
      if (out.alpha) out.alpha[pix] = a;
      if (out.depth) out.depth[pix] = a > 0 ? o.N[i] / a : 0.f;
      if (out.contributors) out.contributors[pix] = o.count[i];
    }
  }
}

void finish_tile(const CameraFrame& cam, const float* bg, int64_t tile, void* state, uint32_t live,
                 const TileOutputs& out) {
  const TileGeom t = geom(cam, tile);
  RowAcc* st = static_cast<RowAcc*>(state);
  if (live == kTileUnstarted) init_rows(t, st);  // no Gaussian reached the tile
  write_tile(cam, bg, t, st, out);
}

// Per-row state of the backward's second pass.
struct RowState {
  vf T, C[3], N;            // running front-to-back values (C without background)
  vf Tf, Cout[3], Nout;     // forward results (Cout with background)
  vf g[3], gN, gA;          // upstream gradients on rgb, N and A = 1 − T_final
  vi active;
  vf rem;  // AVX-512 pass: Σ_c (Cout_c − C_c)·g_c + (Nout − N)·gN, kept up to date
};

#if defined(__AVX512F__)
// The AVX-512 form of backward_tile's gradient pass (the same operations per
// pixel and entry, in the same order; the compiler contracts a few of them
// into FMAs differently, so gradients agree with the generic loop to fp32
// rounding, ~1e-6 relative, not bit for bit; deterministic like it): per
// batch the row terms of batch_rows, then row by row, the row's state in
// registers, each entry's ten gradient vectors summed over rows in acc (rows
// ascending, as the entry-major loop adds them), reduced to the entry's row of
// `grad` after the batch.
void backward_rows_avx512(const TileSoA& s, const TileGeom& t, RowState* st, int64_t used, float* grad) {
  vf rowy;
  for (int r = 0; r < kLanes; ++r) rowy[r] = t.y0 + r + 0.5f;
  uint32_t live = (1u << t.rows) - 1;
  BatchRows br;
  alignas(64) vf acc[kBatch][10];  // ProjectedGrad layout
  int64_t b0 = 0;
  for (; b0 < used && live; b0 += kBatch) {
    const int64_t b1 = std::min(b0 + kBatch, used);
    const int nb = static_cast<int>(b1 - b0);
    uint16_t act[kLanes];
    for (uint32_t lm = live; lm; lm &= lm - 1) {
      const int r = __builtin_ctz(lm);
      act[r] = static_cast<uint16_t>(_mm512_test_epi32_mask(reinterpret_cast<__m512i>(st[r].active), reinterpret_cast<__m512i>(st[r].active)));
    }
    batch_rows<true>(s, t, rowy, b0, b1, live, act, br);
    for (int j = 0; j < nb; ++j)
      for (int f = 0; f < 10; ++f) acc[j][f] = vf{};
    for (uint32_t lm = live; lm; lm &= lm - 1) {
      const int r = __builtin_ctz(lm);
      uint64_t bits = br.rows[r];
      if (!bits) continue;
      RowState& q = st[r];
      vf T = q.T, rem = q.rem;
      const vf Tf = q.Tf;
      const vf g0 = q.g[0], g1 = q.g[1], g2 = q.g[2], gN = q.gN, gAv = q.gA;
      __mmask16 active = _mm512_test_epi32_mask(reinterpret_cast<__m512i>(q.active), reinterpret_cast<__m512i>(q.active));
      for (; bits; bits &= bits - 1) {
        const int j = __builtin_ctzll(bits);
        const int64_t k = b0 + j;
        const AlphaRow a = alpha_row(s, br, k, j, r, active);
        const vf alpha = reinterpret_cast<vf>(a.alpha), dx = reinterpret_cast<vf>(a.dx);
        const vf G = reinterpret_cast<vf>(a.G), raw = reinterpret_cast<vf>(a.raw);
        const vf dyv = splat1(br.dyt[r][j]);
        const vf one_m = 1.f - alpha;
        const vf Tn = T * one_m;
        const __mmask16 stop = _mm512_mask_cmp_ps_mask(a.ok, reinterpret_cast<__m512>(Tn), _mm512_set1_ps(kMinTransmittance), _CMP_LT_OQ);
        active = _kandn_mask16(stop, active);
        const __mmask16 ok = _kandn_mask16(stop, a.ok);
        const vf w = reinterpret_cast<vf>(_mm512_maskz_mov_ps(ok, reinterpret_cast<__m512>(alpha * T)));
        vf* g = acc[j];
        g[6] += w * g0;
        g[7] += w * g1;
        g[8] += w * g2;
        g[9] += w * gN;
        const vf own = s.r[k] * g0 + s.g[k] * g1 + s.b[k] * g2 + s.z[k] * gN;
        // What the entries behind this one add to the outputs' gradient
        // sum: C and N grow by w·(r, g, b, z), so the sum drops by w·own.
        rem -= w * own;
        const vf behind = rem;
        vf dalpha = T * own + (gAv * Tf - behind) / one_m;
        // clamped α: constant, no gradient
        const __mmask16 grad_ok = _mm512_mask_cmp_ps_mask(ok, reinterpret_cast<__m512>(raw), _mm512_set1_ps(kMaxAlpha), _CMP_LT_OQ);
        dalpha = reinterpret_cast<vf>(_mm512_maskz_mov_ps(grad_ok, reinterpret_cast<__m512>(dalpha)));
        g[5] += dalpha * G;
        const vf dpow = dalpha * raw;  // ∂α/∂power = o·G
        g[0] -= dpow * (s.A[k] * dx + s.B[k] * dyv);
        g[1] -= dpow * (s.C[k] * dyv + s.B[k] * dx);
        g[2] -= 0.5f * dpow * dx * dx;
        g[3] -= dpow * dx * dyv;
        g[4] -= 0.5f * dpow * dyv * dyv;
        T = reinterpret_cast<vf>(_mm512_mask_mov_ps(reinterpret_cast<__m512>(T), ok, reinterpret_cast<__m512>(Tn)));
        if (!active) {
          live &= ~(1u << r);
          break;
        }
      }
      q.T = T;
      q.rem = rem;
      q.active = reinterpret_cast<vi>(_mm512_movm_epi32(active));
    }
    for (int j = 0; j < nb; ++j) {
      float* o = grad + 10 * (b0 + j);
      for (int f = 0; f < 10; ++f) o[f] = hsum(acc[j][f]);
    }
  }
  for (int64_t k = b0; k < used; ++k)
    for (int f = 0; f < 10; ++f) grad[10 * k + f] = 0.f;
}
#endif

// Backward of one tile: the forward blend first (final T, colour and depth
// sums per pixel, and the list prefix that was blended), then the gradients
// of that prefix front to back into rows from sink->take(); entries past it
// have zero gradient and are not stored.
void backward_tile(const Projected* proj, const TileBins& bins, const CameraFrame& cam, const float* bg,
                   int64_t tile, int tid, const TileGrads& up, const void* fw_state, uint32_t fw_live, int64_t used,
                   GradRows* sink) {
  TileSoA s = tile_soa(proj, bins, tile, tid);
  const TileGeom t = geom(cam, tile);
  alignas(64) RowState st[kSplatTile];
  {
    // The forward's final state (blend_chunk's), or the initial one for a
    // tile no Gaussian reached.
    alignas(64) RowAcc init[kSplatTile];
    const RowAcc* fw = static_cast<const RowAcc*>(fw_state);
    if (fw_live == kTileUnstarted) {
      init_rows(t, init);
      fw = init;
    }
    fill_to(s, used);
    for (int r = 0; r < t.rows; ++r) {
      RowState& q = st[r];
      const RowAcc& o = fw[r];
      const int y = t.y0 + r;
      q.Tf = o.T;
      q.Nout = o.N;
      for (int c = 0; c < 3; ++c) { q.Cout[c] = o.C[c] + o.T * bg[c]; q.g[c] = vf{}; }
      q.gN = vf{};
      q.gA = vf{};
      for (int i = 0; i < kLanes && t.lane_ok[i]; ++i) {
        const int64_t pix = int64_t(y) * cam.width + t.x0 + i;
        for (int c = 0; c < 3; ++c) q.g[c][i] = up.rgb[3 * pix + c];
        const float A = 1.f - o.T[i];
        const float gd = up.depth ? up.depth[pix] : 0.f;
        // depth = N/A: ∂/∂N = 1/A, ∂/∂A = −N/A² (no gradient where nothing was blended)
        q.gN[i] = A > 0 ? gd / A : 0.f;
        q.gA[i] = (up.alpha ? up.alpha[pix] : 0.f) - (A > 0 ? gd * o.N[i] / (A * A) : 0.f);
      }
      q.T = splat1(1.f);
      q.C[0] = q.C[1] = q.C[2] = q.N = vf{};
      q.active = t.lane_ok;
      q.rem = q.Cout[0] * q.g[0] + q.Cout[1] * q.g[1] + q.Cout[2] * q.g[2] + q.Nout * q.gN;
    }
  }
  float* grad = sink->take(tid, tile, used);
#if defined(__AVX512F__)
  backward_rows_avx512(s, t, st, used, grad);
  return;
#endif
  vf rowy;
  for (int r = 0; r < kLanes; ++r) rowy[r] = t.y0 + r + 0.5f;
  uint32_t live = (1u << t.rows) - 1;
  int64_t k = 0;
  for (; k < used && live; ++k) {
    vf gmx{}, gmy{}, gA{}, gB{}, gC{}, gop{}, gr{}, gg{}, gb{}, gz{};
    for (uint32_t m = row_mask(s, k, rowy, t.x0 + 0.5f, t.x0 + kLanes - 0.5f) & live; m; m &= m - 1) {
      const int r = __builtin_ctz(m);
      RowState& q = st[r];
      AlphaStep a = alpha_at(s, k, t.px, t.y0 + r + 0.5f, q.active);
      const vf one_m = 1.f - a.alpha;
      const vf Tn = q.T * one_m;
      const vi stop = a.ok & (Tn < kMinTransmittance);
      q.active &= ~stop;
      a.ok &= ~stop;
      const vf w = a.ok ? a.alpha * q.T : vf{};
      q.C[0] += w * s.r[k];
      q.C[1] += w * s.g[k];
      q.C[2] += w * s.b[k];
      q.N += w * s.z[k];
      gr += w * q.g[0];
      gg += w * q.g[1];
      gb += w * q.g[2];
      gz += w * q.gN;
      const vf own = s.r[k] * q.g[0] + s.g[k] * q.g[1] + s.b[k] * q.g[2] + s.z[k] * q.gN;
      const vf behind = (q.Cout[0] - q.C[0]) * q.g[0] + (q.Cout[1] - q.C[1]) * q.g[1] +
                        (q.Cout[2] - q.C[2]) * q.g[2] + (q.Nout - q.N) * q.gN;
      vf dalpha = q.T * own + (q.gA * q.Tf - behind) / one_m;
      dalpha = (a.ok & (a.raw < kMaxAlpha)) ? dalpha : vf{};  // clamped α: constant, no gradient
      gop += dalpha * a.G;
      const vf dpow = dalpha * a.raw;  // ∂α/∂power = o·G
      gmx -= dpow * (s.A[k] * a.dx + s.B[k] * a.dy);
      gmy -= dpow * (s.C[k] * a.dy + s.B[k] * a.dx);
      gA -= 0.5f * dpow * a.dx * a.dx;
      gB -= dpow * a.dx * a.dy;
      gC -= 0.5f * dpow * a.dy * a.dy;
      q.T = a.ok ? Tn : q.T;
      if (!any_lane(q.active)) live &= ~(1u << r);
    }
    float* o = grad + 10 * k;  // ProjectedGrad layout
    o[0] = hsum(gmx); o[1] = hsum(gmy);
    o[2] = hsum(gA); o[3] = hsum(gB); o[4] = hsum(gC);
    o[5] = hsum(gop);
    o[6] = hsum(gr); o[7] = hsum(gg); o[8] = hsum(gb);
    o[9] = hsum(gz);
  }
  for (; k < used; ++k)
    for (int j = 0; j < 10; ++j) grad[10 * k + j] = 0.f;
}
