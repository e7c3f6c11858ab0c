// Octree construction on a CUDA device: the same tree as the CPU's
// octree_build (native/cpu/octree/build.cpp, neighbors.cpp; spec/octree.md
// §1), node for node and bit for bit.
//  1. check (device): NaN/Inf rows and batch ids, reported with the CPU's messages;
//  2. key every point: compact key (b << 3D) | xyz_key(cell); points outside
//     [-1,1]^3 get a key above every valid one and are counted per sample;
//  3. stable CUB radix sort of (key, point index) — the same order as the
//     CPU's stable LSD sort — then run-length encode the valid prefix;
//  4. depth-D signals per node, summed in double in sorted point order as the
//     CPU does (identical results);
//  5. depths D..F+1: parents = unique(key >> 3) by flag + scan, 8 children
//     per parent, children[8·parent + (key & 7)] = rank;
//  6. dense depths 0..F; at F the children mark the occupied cells;
//  7. per-sample node counts (binary search + a scan of the non-empty flags);
//  8. optionally the 27-slot neighbour table of every depth (dense decode
//     for d <= F, the parent-row rule for d > F).
// Everything stays on the device; only counts come back to the host.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>

#include <memory>
#include <string>
#include <vector>

#include "cuda/entry.cuh"

namespace tessera::cuda {
namespace {

constexpr int kThreads = 256;
unsigned blocks_for(int64_t n) { return static_cast<unsigned>(n > 0 ? (n + kThreads - 1) / kThreads : 1); }
std::string S(int64_t v) { return std::to_string(v); }

class DevArena {
 public:
  explicit DevArena(cudaStream_t s) : s_(s) {}
  ~DevArena() {
    for (void* p : ptrs_) cudaFreeAsync(p, s_);
  }
  DevArena(const DevArena&) = delete;
  DevArena& operator=(const DevArena&) = delete;
  template <class T> T* alloc(int64_t n) {
    void* p = nullptr;
    TS_CUDA(cudaMallocAsync(&p, sizeof(T) * static_cast<size_t>(n > 0 ? n : 1), s_));
    ptrs_.push_back(p);
    return static_cast<T*>(p);
  }
 private:
  cudaStream_t s_;
  std::vector<void*> ptrs_;
};

template <class T> T* out_alloc(cudaStream_t s, int64_t n) {
  void* p = nullptr;
  TS_CUDA(cudaMallocAsync(&p, sizeof(T) * static_cast<size_t>(n > 0 ? n : 1), s));
  return static_cast<T*>(p);
}

template <class T> T download_one(const T* d, cudaStream_t s) {
  T v{};
  TS_CUDA(cudaMemcpyAsync(&v, d, sizeof(T), cudaMemcpyDeviceToHost, s));
  TS_CUDA(cudaStreamSynchronize(s));
  return v;
}

__host__ __device__ __forceinline__ uint64_t spread3(uint64_t v) {
  v &= 0xffff;
  v = (v | (v << 16)) & 0xff0000ffull;
  v = (v | (v << 8)) & 0x00f00f00f00full;
  v = (v | (v << 4)) & 0x0c30c30c30c3ull;
  v = (v | (v << 2)) & 0x249249249249ull;
  return v;
}
__host__ __device__ __forceinline__ uint32_t compact3(uint64_t v) {
  v &= 0x249249249249ull;
  v = (v ^ (v >> 2)) & 0x0c30c30c30c3ull;
  v = (v ^ (v >> 4)) & 0x00f00f00f00full;
  v = (v ^ (v >> 8)) & 0xff0000ffull;
  v = (v ^ (v >> 16)) & 0xffffull;
  return static_cast<uint32_t>(v);
}
__host__ __device__ __forceinline__ uint64_t xyz_key(uint32_t x, uint32_t y, uint32_t z) {
  return (spread3(x) << 2) | (spread3(y) << 1) | spread3(z);
}
// Compact key (b << 3d) | key → ocnn key (b << 48) | key.
__device__ __forceinline__ int64_t to_ocnn_key(uint64_t ck, int d) {
  const uint64_t cell_mask = d == 0 ? 0 : ((uint64_t(1) << (3 * d)) - 1);
  return static_cast<int64_t>(((ck >> (3 * d)) << kOctreeBatchShift) | (ck & cell_mask));
}

// first[0..3]: lowest bad row of points, normals, features, batch ids.
__global__ void check_kernel(const float* pts, const float* nrm, const float* feat, int C, const int32_t* bids,
                             int64_t n, int32_t B, unsigned long long* first) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  bool ok = true;
  for (int c = 0; c < 3; ++c) ok = ok && isfinite(pts[3 * i + c]);
  if (!ok) atomicMin(&first[0], static_cast<unsigned long long>(i));
  if (nrm) {
    ok = true;
    for (int c = 0; c < 3; ++c) ok = ok && isfinite(nrm[3 * i + c]);
    if (!ok) atomicMin(&first[1], static_cast<unsigned long long>(i));
  }
  if (feat) {
    ok = true;
    for (int c = 0; c < C; ++c) ok = ok && isfinite(feat[int64_t(C) * i + c]);
    if (!ok) atomicMin(&first[2], static_cast<unsigned long long>(i));
  }
  if (bids && (bids[i] < 0 || bids[i] >= B)) atomicMin(&first[3], static_cast<unsigned long long>(i));
}

__global__ void key_kernel(const float* pts, const int32_t* bids, int64_t n, int D, float scale, uint32_t last,
                           uint64_t outside_key, uint64_t* keys, int32_t* vals, unsigned long long* outside_per_sample,
                           unsigned long long* outside_total) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  uint32_t cell[3];
  bool ok = true;
  for (int c = 0; c < 3; ++c) {
    const float p = pts[3 * i + c];
    if (!(p >= -1.f && p <= 1.f)) { ok = false; break; }
    const float q = (p + 1.f) * scale;
    const uint32_t u = static_cast<uint32_t>(q);
    cell[c] = u < last ? u : last;  // p = +1 → last cell
  }
  const uint64_t b = bids ? static_cast<uint64_t>(bids[i]) : 0;
  keys[i] = ok ? ((b << (3 * D)) | xyz_key(cell[0], cell[1], cell[2])) : outside_key;
  vals[i] = static_cast<int32_t>(i);
  if (!ok) {
    atomicAdd(&outside_per_sample[b], 1ull);
    atomicAdd(outside_total, 1ull);
  }
}

// Depth-D signals of unique node u from its sorted points [start, start + count).
__global__ void signals_kernel(const float* pts, const float* nrm, const float* feat, int C, const int32_t* idx,
                               const int64_t* start, const int32_t* count, int64_t U, double scale, float* o_pts,
                               float* o_nrm, float* o_feat, int32_t* point_node) {
  const int64_t u = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (u >= U) return;
  const int64_t s0 = start[u], s1 = s0 + count[u];
  const double inv = 1.0 / static_cast<double>(s1 - s0);
  double p[3] = {0, 0, 0}, nn[3] = {0, 0, 0};
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t i = idx[s];
    point_node[i] = static_cast<int32_t>(u);
    for (int c = 0; c < 3; ++c) p[c] = __dadd_rn(p[c], __dmul_rn(static_cast<double>(pts[3 * i + c]) + 1.0, scale));
    if (nrm)
      for (int c = 0; c < 3; ++c) nn[c] += nrm[3 * i + c];
  }
  for (int c = 0; c < 3; ++c) o_pts[u * 3 + c] = static_cast<float>(p[c] * inv);
  if (nrm) {  // F.normalize: x / max(|x|, 1e-12)
    // Explicit roundings: no FMA contraction, as the CPU (baseline x86-64) computes it.
    double len = sqrt(__dadd_rn(__dadd_rn(__dmul_rn(nn[0], nn[0]), __dmul_rn(nn[1], nn[1])), __dmul_rn(nn[2], nn[2])));
    len = len > 1e-12 ? len : 1e-12;
    for (int c = 0; c < 3; ++c) o_nrm[u * 3 + c] = static_cast<float>(nn[c] / len);
  }
  if (feat)
    for (int c = 0; c < C; ++c) {
      double acc = 0;
      for (int64_t s = s0; s < s1; ++s) acc += feat[int64_t(C) * idx[s] + c];
      o_feat[u * C + c] = static_cast<float>(acc * inv);
    }
}

__global__ void parent_flag_kernel(const uint64_t* nk, int64_t U, int32_t* flag) {
  const int64_t u = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (u >= U) return;
  flag[u] = (u == 0 || (nk[u] >> 3) != (nk[u - 1] >> 3)) ? 1 : 0;
}

__global__ void parent_scatter_kernel(const uint64_t* nk, const int32_t* flag, const int32_t* incl, int64_t U,
                                      uint64_t* parent, int32_t* children) {
  const int64_t u = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (u >= U) return;
  const int64_t j = incl[u] - 1;
  if (flag[u]) parent[j] = nk[u] >> 3;
  children[j * 8 + (nk[u] & 7)] = static_cast<int32_t>(u);
}

__global__ void child_keys_kernel(const uint64_t* parent, int64_t P, int d, int64_t* keys) {
  const int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= 8 * P) return;
  keys[t] = to_ocnn_key((parent[t >> 3] << 3) | uint64_t(t & 7), d);
}

__global__ void dense_kernel(int64_t n, int d, int identity, int64_t* keys, int32_t* children) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  keys[i] = to_ocnn_key(static_cast<uint64_t>(i), d);
  children[i] = identity ? static_cast<int32_t>(i) : -1;
}

__global__ void mark_occupied_kernel(const uint64_t* nk, int64_t U, int32_t* children) {
  const int64_t u = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (u >= U) return;
  children[nk[u]] = static_cast<int32_t>(u);
}

// flags[i] = children[i] >= 0 for i < n, flags[n] = 0 (then an exclusive scan).
__global__ void nonempty_flag_kernel(const int32_t* children, int64_t n, int64_t* flags) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i > n) return;
  flags[i] = i < n && children[i] >= 0 ? 1 : 0;
}

__device__ int64_t lower_bound_key(const int64_t* keys, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (keys[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

__global__ void batch_count_kernel(const int64_t* keys, const int64_t* nonempty_before, int64_t n, int32_t B,
                                   int64_t* nnum, int64_t* nnum_nempty) {
  const int b = blockIdx.x * kThreads + threadIdx.x;
  if (b >= B) return;
  const int64_t lo = lower_bound_key(keys, n, int64_t(b) << kOctreeBatchShift);
  const int64_t hi = b + 1 == B ? n : lower_bound_key(keys, n, int64_t(b + 1) << kOctreeBatchShift);
  nnum[b] = hi - lo;
  nnum_nempty[b] = nonempty_before[hi] - nonempty_before[lo];
}

// 27-slot table of a dense depth d: node i = b·8^d + key.
__global__ void dense_neigh_kernel(int64_t n, int d, int32_t* out) {
  const int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= n * 27) return;
  const int64_t i = t / 27;
  const int s = static_cast<int>(t % 27);
  const int64_t per = int64_t(1) << (3 * d), side = int64_t(1) << d;
  const int64_t b = i / per, k = i % per;
  const int64_t x = int64_t(compact3(uint64_t(k) >> 2)) + s / 9 - 1;
  const int64_t y = int64_t(compact3(uint64_t(k) >> 1)) + (s / 3) % 3 - 1;
  const int64_t z = int64_t(compact3(uint64_t(k))) + s % 3 - 1;
  const bool in = x >= 0 && y >= 0 && z >= 0 && x < side && y < side && z < side;
  out[t] = in ? static_cast<int32_t>(b * per + static_cast<int64_t>(xyz_key(uint32_t(x), uint32_t(y), uint32_t(z)))) : -1;
}

__global__ void nempty_index_kernel(const int32_t* children, int64_t n, int32_t* nempty) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  if (children[i] >= 0) nempty[children[i]] = static_cast<int32_t>(i);
}

// Row of child c of the j-th non-empty parent, from the parent's row: per
// axis n = childbit + 2 + offset, the neighbour's parent is parent slot n/2
// and its child bit n%2.
__global__ void child_neigh_kernel(const int32_t* prev, const int32_t* parent_children, const int32_t* nempty,
                                   int64_t P, int32_t* out) {
  const int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= P * 8 * 27) return;
  const int s = static_cast<int>(t % 27);
  const int64_t r = t / 27;
  const int c = static_cast<int>(r & 7);
  const int64_t j = r >> 3;
  const int cb[3] = {(c >> 2) & 1, (c >> 1) & 1, c & 1};
  const int off[3] = {s / 9 - 1, (s / 3) % 3 - 1, s % 3 - 1};
  int ps = 0, cs = 0;
  for (int a = 0; a < 3; ++a) {
    const int nv = cb[a] + 2 + off[a];
    ps = ps * 3 + nv / 2;
    cs = cs * 2 + nv % 2;
  }
  const int32_t pn = prev[int64_t(nempty[j]) * 27 + ps];
  const int32_t ch = pn >= 0 ? parent_children[pn] : -1;
  out[t] = ch >= 0 ? ch * 8 + cs : -1;
}

int bit_length(uint64_t v) {
  int b = 0;
  while (v) { ++b; v >>= 1; }
  return b;
}

// The pointer must be device (or managed) memory of `device`: a host pointer
// would fault inside a kernel and poison the context.
void require_device_ptr(const void* p, int32_t device, const char* name) {
  cudaPointerAttributes at{};
  const cudaError_t e = cudaPointerGetAttributes(&at, p);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw Error(Code::kDevice, std::string("octree build: ") + name + " is not CUDA memory");
  }
  TESSERA_CHECK((at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged) && at.device == device, kDevice,
                std::string("octree build: ") + name + " must be memory of CUDA device " + S(device));
}

struct TreeDeleter {
  void operator()(CudaOctree* t) const;
};

void free_tree(CudaOctree* t) {
  if (!t) return;
  cudaStream_t s = stream_for(t->device);
  auto f = [&](void* p) {
    if (p) cudaFreeAsync(p, s);
  };
  for (auto& L : t->levels) {
    f(L.keys); f(L.children); f(L.neighbors); f(L.batch_nnum); f(L.batch_nnum_nempty);
  }
  f(t->points); f(t->normals); f(t->features); f(t->point_node); f(t->outside_per_sample);
  delete t;
}
void TreeDeleter::operator()(CudaOctree* t) const {
  try {
    free_tree(t);
  } catch (...) {
  }
}

}  // namespace

void run_octree_free(CudaOctree* t) { free_tree(t); }

CudaOctree* run_octree_build(const CudaOctreeBuildArgs& a) {
  // ---- the CPU's argument rules (core/validate_octree.cpp), same messages ----
  TESSERA_CHECK(a.depth >= 1 && a.depth <= kOctreeMaxDepth, kInvalidArgument,
                "octree build: depth must be 1..16 (48 key bits), got " + S(a.depth));
  TESSERA_CHECK(a.full_depth >= 0 && a.full_depth <= a.depth, kInvalidArgument,
                "octree build: fullDepth must be 0..depth (" + S(a.depth) + "), got " + S(a.full_depth));
  TESSERA_CHECK(a.batch_size >= 1 && a.batch_size <= kOctreeMaxBatch, kInvalidArgument,
                "octree build: batchSize must be 1..32768 (batch id in key bits 48-62), got " + S(a.batch_size));
  // 3F <= 30 first: 8^16 · 32768 = 2^63 would overflow the product.
  TESSERA_CHECK(3 * a.full_depth <= 30 && (int64_t(1) << (3 * a.full_depth)) * a.batch_size < (int64_t(1) << 31),
                kInvalidArgument,
                "octree build: 8^fullDepth · batchSize nodes do not fit int32 indices; lower fullDepth");
  TESSERA_CHECK(a.outside == 0 || a.outside == 1, kInvalidArgument, "octree build: outside must be 'drop' or 'error'");
  TESSERA_CHECK(a.points != nullptr, kInvalidArgument, "octree build: points is missing");
  TESSERA_CHECK(a.n >= 1, kInvalidArgument, "octree build: the point cloud is empty");
  TESSERA_CHECK(a.n < (int64_t(1) << 31), kInvalidArgument, "octree build: at most 2^31-1 points");
  TESSERA_CHECK(!a.features || a.feature_channels >= 1, kShape, "octree build: features need at least one channel");
  TESSERA_CHECK(a.batch_ids || a.batch_size == 1, kInvalidArgument, "octree build: batchSize > 1 needs batchIds");
  const int32_t dev = a.device;
  cudaStream_t st = stream_for(dev);  // validates the device index
  require_device_ptr(a.points, dev, "points");
  if (a.normals) require_device_ptr(a.normals, dev, "normals");
  if (a.features) require_device_ptr(a.features, dev, "features");
  if (a.batch_ids) require_device_ptr(a.batch_ids, dev, "batchIds");
  const int D = a.depth, F = a.full_depth, B = a.batch_size, C = a.features ? a.feature_channels : 0;
  const int64_t N = a.n;

  DevArena tmp(st);
  {
    unsigned long long* first = tmp.alloc<unsigned long long>(4);
    TS_CUDA(cudaMemsetAsync(first, 0xFF, sizeof(unsigned long long) * 4, st));
    check_kernel<<<blocks_for(N), kThreads, 0, st>>>(a.points, a.normals, a.features, C, a.batch_ids, N, B, first);
    TS_LAUNCHED("octree check");
    unsigned long long f[4];
    TS_CUDA(cudaMemcpyAsync(f, first, sizeof(f), cudaMemcpyDeviceToHost, st));
    TS_CUDA(cudaStreamSynchronize(st));
    const unsigned long long none = ~0ull;
    const char* what[3] = {"points", "normals", "features"};
    for (int k = 0; k < 3; ++k)
      TESSERA_CHECK(f[k] == none, kInvalidArgument,
                    std::string("octree build: ") + what[k] + " row " + S(int64_t(f[k])) +
                        " holds NaN or Inf; remove or repair that point");
    if (f[3] != none) {
      const int32_t b = download_one(a.batch_ids + f[3], st);
      throw Error(Code::kInvalidArgument, "octree build: batch id of point " + S(int64_t(f[3])) + " is " + S(b) +
                                              ", outside [0, batchSize=" + S(B) + ")");
    }
  }

  std::unique_ptr<CudaOctree, TreeDeleter> tree(new CudaOctree());
  CudaOctree& o = *tree;
  o.device = dev;
  o.depth = D;
  o.full_depth = F;
  o.batch_size = B;
  o.feature_channels = C;

  // ---- 1. keys ----
  const int bits = 3 * D + bit_length(static_cast<uint64_t>(B - 1));  // <= 63
  const uint64_t outside_key = uint64_t(1) << bits;
  uint64_t* k0 = tmp.alloc<uint64_t>(N);
  uint64_t* k1 = tmp.alloc<uint64_t>(N);
  int32_t* v0 = tmp.alloc<int32_t>(N);
  int32_t* v1 = tmp.alloc<int32_t>(N);
  o.outside_per_sample = out_alloc<int64_t>(st, B);
  unsigned long long* outside_total = tmp.alloc<unsigned long long>(1);
  TS_CUDA(cudaMemsetAsync(o.outside_per_sample, 0, sizeof(int64_t) * B, st));
  TS_CUDA(cudaMemsetAsync(outside_total, 0, sizeof(unsigned long long), st));
  key_kernel<<<blocks_for(N), kThreads, 0, st>>>(a.points, a.batch_ids, N, D, std::ldexp(1.f, D - 1), (1u << D) - 1,
                                                 outside_key, k0, v0,
                                                 reinterpret_cast<unsigned long long*>(o.outside_per_sample),
                                                 outside_total);
  TS_LAUNCHED("octree keys");
  o.points_outside = static_cast<int64_t>(download_one(outside_total, st));
  o.points_used = N - o.points_outside;
  if (a.outside == 1 && o.points_outside > 0)
    throw Error(Code::kInvalidArgument,
                "octree build: " + S(o.points_outside) + " of " + S(N) +
                    " points lie outside [-1, 1]^3; normalise the cloud (ocnn convention) or pass outside: 'drop'");

  // ---- 2. sort, unique ----
  cub::DoubleBuffer<uint64_t> keys(k0, k1);
  cub::DoubleBuffer<int32_t> vals(v0, v1);
  {
    size_t bytes = 0;
    TS_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, vals, N, 0, bits + 1, st));
    void* t = tmp.alloc<unsigned char>(static_cast<int64_t>(bytes));
    TS_CUDA(cub::DeviceRadixSort::SortPairs(t, bytes, keys, vals, N, 0, bits + 1, st));
  }
  const int64_t M = o.points_used;
  const int32_t* idx = vals.Current();
  uint64_t* node_key = tmp.alloc<uint64_t>(M);
  int32_t* counts = tmp.alloc<int32_t>(M);
  int64_t* starts = tmp.alloc<int64_t>(M);
  int64_t U = 0;
  if (M > 0) {
    int64_t* runs = tmp.alloc<int64_t>(1);
    size_t bytes = 0;
    TS_CUDA(cub::DeviceRunLengthEncode::Encode(nullptr, bytes, keys.Current(), node_key, counts, runs, static_cast<int>(M), st));
    void* t = tmp.alloc<unsigned char>(static_cast<int64_t>(bytes));
    TS_CUDA(cub::DeviceRunLengthEncode::Encode(t, bytes, keys.Current(), node_key, counts, runs, static_cast<int>(M), st));
    U = download_one(runs, st);
    bytes = 0;
    TS_CUDA(cub::DeviceScan::ExclusiveSum(nullptr, bytes, counts, starts, U, st));
    void* t2 = tmp.alloc<unsigned char>(static_cast<int64_t>(bytes));
    TS_CUDA(cub::DeviceScan::ExclusiveSum(t2, bytes, counts, starts, U, st));
  }

  // ---- 3. depth-D signals ----
  o.point_node = out_alloc<int32_t>(st, N);
  TS_CUDA(cudaMemsetAsync(o.point_node, 0xFF, sizeof(int32_t) * N, st));
  o.points = out_alloc<float>(st, U * 3);
  if (a.normals) o.normals = out_alloc<float>(st, U * 3);
  if (a.features) o.features = out_alloc<float>(st, U * C);
  if (U > 0) {
    signals_kernel<<<blocks_for(U), kThreads, 0, st>>>(a.points, a.normals, a.features, C, idx, starts, counts, U,
                                                       std::ldexp(1.0, D - 1), o.points, o.normals, o.features,
                                                       o.point_node);
    TS_LAUNCHED("octree signals");
  }

  // ---- 4. depths D .. F+1 ----
  uint64_t* nk = node_key;
  for (int d = D; d > F; --d) {
    CudaOctreeLevel& L = o.levels[d];
    int64_t P = 0;
    uint64_t* parent = nullptr;
    int32_t* flag = tmp.alloc<int32_t>(U);
    int32_t* incl = tmp.alloc<int32_t>(U);
    if (U > 0) {
      parent_flag_kernel<<<blocks_for(U), kThreads, 0, st>>>(nk, U, flag);
      TS_LAUNCHED("octree parent flags");
      size_t bytes = 0;
      TS_CUDA(cub::DeviceScan::InclusiveSum(nullptr, bytes, flag, incl, U, st));
      void* t = tmp.alloc<unsigned char>(static_cast<int64_t>(bytes));
      TS_CUDA(cub::DeviceScan::InclusiveSum(t, bytes, flag, incl, U, st));
      P = download_one(incl + (U - 1), st);
    }
    parent = tmp.alloc<uint64_t>(P);
    L.nnum = 8 * P;
    L.nnum_nempty = U;
    L.keys = out_alloc<int64_t>(st, L.nnum);
    L.children = out_alloc<int32_t>(st, L.nnum);
    TS_CUDA(cudaMemsetAsync(L.children, 0xFF, sizeof(int32_t) * L.nnum, st));
    if (U > 0) {
      parent_scatter_kernel<<<blocks_for(U), kThreads, 0, st>>>(nk, flag, incl, U, parent, L.children);
      TS_LAUNCHED("octree parents");
      child_keys_kernel<<<blocks_for(8 * P), kThreads, 0, st>>>(parent, P, d, L.keys);
      TS_LAUNCHED("octree child keys");
    }
    nk = parent;
    U = P;
  }

  // ---- 5. dense depths 0 .. F ----
  for (int d = 0; d <= F; ++d) {
    CudaOctreeLevel& L = o.levels[d];
    const int64_t n = (int64_t(1) << (3 * d)) * B;
    L.nnum = n;
    L.keys = out_alloc<int64_t>(st, n);
    L.children = out_alloc<int32_t>(st, n);
    dense_kernel<<<blocks_for(n), kThreads, 0, st>>>(n, d, d < F ? 1 : 0, L.keys, L.children);
    TS_LAUNCHED("octree dense");
    L.nnum_nempty = n;
    if (d == F) {
      if (U > 0) {
        mark_occupied_kernel<<<blocks_for(U), kThreads, 0, st>>>(nk, U, L.children);
        TS_LAUNCHED("octree occupied");
      }
      L.nnum_nempty = U;
    }
  }

  // ---- 6. per-sample counts ----
  for (int d = 0; d <= D; ++d) {
    CudaOctreeLevel& L = o.levels[d];
    DevArena lt(st);
    int64_t* flags = lt.alloc<int64_t>(L.nnum + 1);
    int64_t* before = lt.alloc<int64_t>(L.nnum + 1);
    nonempty_flag_kernel<<<blocks_for(L.nnum + 1), kThreads, 0, st>>>(L.children, L.nnum, flags);
    TS_LAUNCHED("octree nonempty flags");
    size_t bytes = 0;
    TS_CUDA(cub::DeviceScan::ExclusiveSum(nullptr, bytes, flags, before, L.nnum + 1, st));
    void* t = lt.alloc<unsigned char>(static_cast<int64_t>(bytes));
    TS_CUDA(cub::DeviceScan::ExclusiveSum(t, bytes, flags, before, L.nnum + 1, st));
    L.batch_nnum = out_alloc<int64_t>(st, B);
    L.batch_nnum_nempty = out_alloc<int64_t>(st, B);
    batch_count_kernel<<<blocks_for(B), kThreads, 0, st>>>(L.keys, before, L.nnum, B, L.batch_nnum,
                                                           L.batch_nnum_nempty);
    TS_LAUNCHED("octree batch counts");
  }

  // ---- 7. neighbour tables ----
  if (a.neighbors) {
    for (int d = 0; d <= D; ++d) {
      CudaOctreeLevel& L = o.levels[d];
      L.neighbors = out_alloc<int32_t>(st, L.nnum * 27);
      if (d <= F) {
        dense_neigh_kernel<<<blocks_for(L.nnum * 27), kThreads, 0, st>>>(L.nnum, d, L.neighbors);
        TS_LAUNCHED("octree dense neighbours");
      } else {
        const CudaOctreeLevel& Pl = o.levels[d - 1];
        DevArena lt(st);
        int32_t* nempty = lt.alloc<int32_t>(Pl.nnum_nempty);
        nempty_index_kernel<<<blocks_for(Pl.nnum), kThreads, 0, st>>>(Pl.children, Pl.nnum, nempty);
        TS_LAUNCHED("octree non-empty index");
        child_neigh_kernel<<<blocks_for(Pl.nnum_nempty * 8 * 27), kThreads, 0, st>>>(
            Pl.neighbors, Pl.children, nempty, Pl.nnum_nempty, L.neighbors);
        TS_LAUNCHED("octree child neighbours");
      }
    }
  }
  TS_CUDA(cudaStreamSynchronize(st));  // the tree is complete when the call returns
  return tree.release();
}

}  // namespace tessera::cuda
