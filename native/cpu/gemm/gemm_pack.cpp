#include "cpu/gemm/gemm_pack.h"

#include "cpu/gemm/gemm_kernels.h"
#include "tessera/dtype_convert.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::gemm {
namespace {

constexpr int64_t kKBlock = 64;  // k rows transposed at a time: keeps the written lines in L1

template <DType D>
struct Elem {
  static float f32(const void* p, int64_t i) {
    if constexpr (D == DType::kF32) return static_cast<const float*>(p)[i];
    else if constexpr (D == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    else return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
  static uint32_t bf16(const void* p, int64_t i) {
    if constexpr (D == DType::kBF16) return static_cast<const uint16_t*>(p)[i];
    else return f32_to_bf16(f32(p, i));
  }
};

// Writes `rows` source rows (r0 ..) as the columns of a panel `width` wide:
// f32:  dst[k·width + c]  = src(r0 + c, k)
// bf16: dst[p·width + c]  = pair of src(r0 + c, 2p), src(r0 + c, 2p + 1)
template <DType D>
void panel(const Src& s, int64_t r0, int rows, int width, int64_t K, DType compute, DType round, void* dst) {
  if (compute == DType::kF32) {
    float* d = static_cast<float*>(dst);
    for (int64_t kb = 0; kb < K; kb += kKBlock) {
      const int64_t ke = kb + kKBlock < K ? kb + kKBlock : K;
      for (int c = 0; c < width; ++c) {
        if (c >= rows) {
          for (int64_t k = kb; k < ke; ++k) d[k * width + c] = 0.f;
          continue;
        }
        const int64_t base = (r0 + c) * s.s0;
        if (round == DType::kBF16)
          for (int64_t k = kb; k < ke; ++k) d[k * width + c] = bf16_to_f32(Elem<D>::bf16(s.p, base + k * s.s1));
        else
          for (int64_t k = kb; k < ke; ++k) d[k * width + c] = Elem<D>::f32(s.p, base + k * s.s1);
      }
    }
    return;
  }
  uint32_t* d = static_cast<uint32_t*>(dst);
  const int64_t KP = (K + 1) / 2;
  for (int64_t pb = 0; pb < KP; pb += kKBlock / 2) {
    const int64_t pe = pb + kKBlock / 2 < KP ? pb + kKBlock / 2 : KP;
    for (int c = 0; c < width; ++c) {
      const int64_t base = (r0 + c) * s.s0;
      for (int64_t p = pb; p < pe; ++p) {
        uint32_t v = 0;
        if (c < rows) {
          v = Elem<D>::bf16(s.p, base + 2 * p * s.s1);
          if (2 * p + 1 < K) v |= Elem<D>::bf16(s.p, base + (2 * p + 1) * s.s1) << 16;
        }
        d[p * width + c] = v;
      }
    }
  }
}

void panel_any(const Src& s, int64_t r0, int rows, int width, int64_t K, DType compute, DType round, void* dst) {
  switch (s.dt) {
    case DType::kF32: return panel<DType::kF32>(s, r0, rows, width, K, compute, round, dst);
    case DType::kBF16: return panel<DType::kBF16>(s, r0, rows, width, K, compute, round, dst);
    default: return panel<DType::kF16>(s, r0, rows, width, K, compute, round, dst);
  }
}

// Bytes of one panel `width` wide over K.
size_t panel_bytes(int64_t K, int width, DType compute) {
  const int64_t rows = compute == DType::kF32 ? K : (K + 1) / 2;
  return static_cast<size_t>(rows) * width * 4;
}

}  // namespace

size_t packed_b_bytes(int64_t N, int64_t K, DType compute) {
  return static_cast<size_t>((N + kNR - 1) / kNR) * panel_bytes(K, kNR, compute);
}

void pack_b(const Src& w, int64_t N, int64_t K, DType compute, DType round, void* dst, int64_t p0, int64_t p1) {
  const size_t pb = panel_bytes(K, kNR, compute);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t rows = N - p * kNR < kNR ? N - p * kNR : kNR;
    panel_any(w, p * kNR, static_cast<int>(rows), kNR, K, compute, round, static_cast<char*>(dst) + p * pb);
  }
}

void pack_b_all(const Src& w, int64_t N, int64_t K, DType compute, DType round, void* dst) {
  const int64_t panels = (N + kNR - 1) / kNR;
  ThreadPool::global().parallel_for(panels, 4, [&](int64_t b, int64_t e, int) {
    pack_b(w, N, K, compute, round, dst, b, e);
  });
}

size_t packed_a_bytes(int64_t M, int64_t K, int mr, DType compute) {
  return static_cast<size_t>((M + mr - 1) / mr) * panel_bytes(K, mr, compute);
}

void pack_a_all(const Src& x, int64_t M, int64_t K, int mr, DType compute, DType round, void* dst) {
  const int64_t panels = (M + mr - 1) / mr;
  const size_t pb = panel_bytes(K, mr, compute);
  ThreadPool::global().parallel_for(panels, 8, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t rows = M - p * mr < mr ? M - p * mr : mr;
      panel_any(x, p * mr, static_cast<int>(rows), mr, K, compute, round, static_cast<char*>(dst) + p * pb);
    }
  });
}

void repack_b_as_a(const float* b, int64_t N, int64_t K, int mr, float* dst) {
  const int64_t panels = (N + mr - 1) / mr;
  ThreadPool::global().parallel_for(panels, 1, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      float* d = dst + p * K * mr;
      for (int r = 0; r < mr; ++r) {
        const int64_t n = p * mr + r;
        if (n >= N) {
          for (int64_t k = 0; k < K; ++k) d[k * mr + r] = 0.f;
          continue;
        }
        const float* src = b + (n / kNR) * K * kNR + n % kNR;  // column n % 32 of panel n / 32
        for (int64_t k = 0; k < K; ++k) d[k * mr + r] = src[k * kNR];
      }
    }
  });
}

void pack_a_f32_for(const IsaKernels& ker, const Src& x, int64_t M, int64_t K, void* dst) {
  if (!ker.pack_a_f32 || x.dt != DType::kF32 || x.s1 != 1)
    return pack_a_all(x, M, K, ker.mr, DType::kF32, DType::kF32, dst);
  const int64_t panels = (M + ker.mr - 1) / ker.mr;
  const float* src = static_cast<const float*>(x.p);
  ThreadPool::global().parallel_for(panels, 8, [&](int64_t b, int64_t e, int) {
    ker.pack_a_f32(src, x.s0, M, K, b, e, static_cast<float*>(dst));
  });
}

void unpack_bf16_panel(const uint32_t* panel, int64_t k0, int64_t kc, float* dst) {
  const uint32_t* src = panel + (k0 / 2) * kNR;
  for (int64_t k = 0; k < kc; ++k) {
    const uint32_t* row = src + (k / 2) * kNR;
    for (int c = 0; c < kNR; ++c) {
      const uint16_t h = static_cast<uint16_t>((k & 1) ? row[c] >> 16 : row[c] & 0xffffu);  // even k: low half
      dst[k * kNR + c] = bf16_to_f32(h);
    }
  }
}

}  // namespace tessera::cpu::gemm
