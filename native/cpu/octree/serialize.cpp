// Serialization orders of PointTransformerV3 (Pointcept serialization/) for
// the nodes of one octree depth: z-order (ocnn's key) and Hilbert, each also
// "transposed" (x and y swapped before encoding). The sort key is
// (batch << 3d) | code, sorted stably with the parallel radix sort.
#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera {

// Skilling, "Programming the Hilbert curve" (2004): AxesToTranspose, then
// interleave level-major with axis 0 (x) most significant. Skilling's final
// "Gray encode" step is the prefix-XOR (Gray decode) of the interleaved bits,
// the same as PTv3's gray2binary.
uint64_t hilbert_code(uint32_t x, uint32_t y, uint32_t z, int bits) {
  if (bits <= 0) return 0;
  uint32_t X[3] = {x, y, z};
  const uint32_t M = 1u << (bits - 1);
  for (uint32_t Q = M; Q > 1; Q >>= 1) {
    const uint32_t P = Q - 1;
    for (int i = 0; i < 3; ++i) {
      if (X[i] & Q) {
        X[0] ^= P;  // invert the lower bits of axis 0
      } else {
        const uint32_t t = (X[0] ^ X[i]) & P;  // exchange the lower bits of axes 0 and i
        X[0] ^= t;
        X[i] ^= t;
      }
    }
  }
  for (int i = 1; i < 3; ++i) X[i] ^= X[i - 1];
  uint32_t t = 0;
  for (uint32_t Q = M; Q > 1; Q >>= 1)
    if (X[2] & Q) t ^= Q - 1;
  for (int i = 0; i < 3; ++i) X[i] ^= t;
  uint64_t code = 0;
  for (int b = bits - 1; b >= 0; --b)
    for (int i = 0; i < 3; ++i) code = (code << 1) | ((X[i] >> b) & 1u);
  return code;
}

}  // namespace tessera

namespace tessera::cpu::octree {

void serialize(const int64_t* keys, int64_t n, int32_t depth, SerialOrder order, int32_t* perm, int32_t* inverse) {
  std::vector<uint64_t> sk(n);
  std::vector<int32_t> idx(n);
  int64_t max_b = 0;
  for (int64_t i = 0; i < n; ++i) max_b = std::max<int64_t>(max_b, batch_of(keys[i]));
  ThreadPool::global().parallel_for(n, 8192, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      uint32_t x, y, z;
      octree_key_to_xyz(static_cast<uint64_t>(keys[i] & kOctreeKeyMask), &x, &y, &z);
      if (order == SerialOrder::kZTrans || order == SerialOrder::kHilbertTrans) std::swap(x, y);
      const uint64_t code = (order == SerialOrder::kZ || order == SerialOrder::kZTrans)
                                ? xyz_key(x, y, z)
                                : hilbert_code(x, y, z, depth);
      sk[i] = (static_cast<uint64_t>(batch_of(keys[i])) << (3 * depth)) | code;
      idx[i] = static_cast<int32_t>(i);
    }
  });
  radix_sort_pairs(sk, idx, 3 * depth + bit_length(static_cast<uint64_t>(max_b)));
  for (int64_t r = 0; r < n; ++r) {
    perm[r] = idx[r];
    inverse[idx[r]] = static_cast<int32_t>(r);
  }
}

}  // namespace tessera::cpu::octree
