// AVX512-BF16 kernel: the 14×32 tile of the fp32 kernel, but each step
// consumes a pair of k values with vdpbf16ps (c += a₀b₀ + a₁b₁ per lane,
// fp32 accumulation), so it does twice the flops per instruction.
#include <array>
#include <utility>

#include "cpu/gemm/epilogue_avx512.h"
#ifdef TESSERA_BF16_EMULATION  // the test build only: see cpu/bf16_emulation.h
#include "cpu/bf16_emulation.h"
#endif

namespace tessera::cpu::gemm {
namespace {

constexpr int kMR = 14;

template <int R>
void tile_bf16(const Tile& t, int64_t kc, const uint32_t* a, const uint32_t* b, float* acc, bool load_acc,
               const Epilogue* epi) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    c0[i] = load_acc ? _mm512_loadu_ps(acc + i * kNR) : _mm512_setzero_ps();
    c1[i] = load_acc ? _mm512_loadu_ps(acc + i * kNR + 16) : _mm512_setzero_ps();
  }
  const int64_t kp = (kc + 1) / 2;
#pragma GCC unroll 2
  for (int64_t p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * kNR + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + (p + 8) * kNR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + (p + 8) * kNR + 16), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[p * kMR + i]));
      c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
    }
  }
  finish_tile_avx512<R>(t, c0, c1, acc, epi);
}

template <size_t... I>
constexpr std::array<GemmBf16Fn, sizeof...(I)> make_table(std::index_sequence<I...>) {
  return {tile_bf16<static_cast<int>(I) + 1>...};
}
constexpr auto kTiles = make_table(std::make_index_sequence<kMR>{});

void gemm_bf16_avx512bf16(const Tile& t, int64_t kc, const uint32_t* a, const uint32_t* b, float* acc,
                          bool load_acc, const Epilogue* epi) {
  kTiles[t.rows - 1](t, kc, a, b, acc, load_acc, epi);
}

}  // namespace

// The fp32 tile, the GEMV and the small-M streaming GEMM are the AVX-512
// ones (small M is bound by reading B, not by the dot product); MR = 14.
const IsaKernels& kernels_avx512bf16() {
  static const IsaKernels k{kMR,           gemm_f32_avx512, gemm_bf16_avx512bf16, gemv_avx512,
                            pack_a_f32_avx512, small_m_avx512, round_bf16_avx512,   widen_bf16_avx512};
  return k;
}

}  // namespace tessera::cpu::gemm
