// Argument checks of the octree family, shared by every backend. The CPU code
// relies on them: dtypes, shapes, contiguity, value ranges of indices (so no
// table lookup can leave its array), finite coordinates, and octree views
// whose levels fit together (dense depths 8^d·B nodes, 8 children per
// non-empty parent, children ranks below the non-empty count).
#include <cmath>
#include <string>

#include "cpu/octree/octree_cpu.h"

namespace tessera {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

void cpu_f32_2d(const TensorView& t, int64_t rows, int64_t cols, const char* op, const char* name) {
  TESSERA_CHECK(!t.empty(), kInvalidArgument, std::string(op) + ": " + name + " is missing");
  TESSERA_CHECK(t.device.kind == DeviceKind::kCPU, kDevice,
                std::string(op) + " runs on the CPU for now; copy " + name + " to the CPU (toCpu()) first");
  TESSERA_CHECK(t.dtype == DType::kF32, kDtype,
                std::string(op) + ": " + name + " must be float32, got " + dtype_name(t.dtype));
  TESSERA_CHECK(t.rank == 2 && (rows < 0 || t.shape[0] == rows) && (cols < 0 || t.shape[1] == cols), kShape,
                std::string(op) + ": " + name + " must be [" + (rows < 0 ? "N" : S(rows)) + ", " +
                    (cols < 0 ? "C" : S(cols)) + "], got " + shape_str(t));
}

void cpu_i32_vec(const TensorView& t, int64_t n, const char* op, const char* name) {
  TESSERA_CHECK(t.device.kind == DeviceKind::kCPU, kDevice,
                std::string(op) + " runs on the CPU for now; copy " + name + " to the CPU first");
  TESSERA_CHECK(t.dtype == DType::kI32, kDtype, std::string(op) + ": " + name + " must be int32, got " + dtype_name(t.dtype));
  TESSERA_CHECK(t.rank == 1 && (n < 0 || t.shape[0] == n), kShape,
                std::string(op) + ": " + name + " must be [" + (n < 0 ? "N" : S(n)) + "], got " + shape_str(t));
}

void contiguous(const TensorView& t, const char* op, const char* name) {
  TESSERA_CHECK(t.is_contiguous(), kShape, std::string(op) + ": " + name + " must be contiguous");
}

void all_finite(const TensorView& t, const char* op, const char* name) {
  const float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.shape[0]; ++i)
    for (int64_t c = 0; c < t.shape[1]; ++c)
      TESSERA_CHECK(std::isfinite(p[i * t.strides[0] + c * t.strides[1]]), kInvalidArgument,
                    std::string(op) + ": " + name + " row " + S(i) + " holds NaN or Inf; remove or repair that point");
}

}  // namespace

void validate_octree_build(const OctreeBuildArgs& a) {
  const char* op = "octree build";
  TESSERA_CHECK(a.depth >= 1 && a.depth <= kOctreeMaxDepth, kInvalidArgument,
                "octree build: depth must be 1..16 (48 key bits), got " + S(a.depth));
  TESSERA_CHECK(a.full_depth >= 0 && a.full_depth <= a.depth, kInvalidArgument,
                "octree build: fullDepth must be 0..depth (" + S(a.depth) + "), got " + S(a.full_depth));
  TESSERA_CHECK(a.batch_size >= 1 && a.batch_size <= kOctreeMaxBatch, kInvalidArgument,
                "octree build: batchSize must be 1..32768 (batch id in key bits 48-62), got " + S(a.batch_size));
  TESSERA_CHECK(3 * a.full_depth <= 30 && (int64_t(1) << (3 * a.full_depth)) * a.batch_size < (int64_t(1) << 31),
                kInvalidArgument,
                "octree build: 8^fullDepth · batchSize nodes do not fit int32 indices; lower fullDepth");
  TESSERA_CHECK(a.outside == OctreeOutside::kDrop || a.outside == OctreeOutside::kError, kInvalidArgument,
                "octree build: outside must be 'drop' or 'error'");
  cpu_f32_2d(a.points, -1, 3, op, "points");
  const int64_t N = a.points.shape[0];
  TESSERA_CHECK(N >= 1, kInvalidArgument, "octree build: the point cloud is empty");
  TESSERA_CHECK(N < (int64_t(1) << 31), kInvalidArgument, "octree build: at most 2^31-1 points");
  all_finite(a.points, op, "points");
  if (!a.normals.empty()) {
    cpu_f32_2d(a.normals, N, 3, op, "normals");
    all_finite(a.normals, op, "normals");
  }
  if (!a.features.empty()) {
    cpu_f32_2d(a.features, N, -1, op, "features");
    TESSERA_CHECK(a.features.shape[1] >= 1, kShape, "octree build: features need at least one channel");
    all_finite(a.features, op, "features");
  }
  if (!a.batch_ids.empty()) {
    cpu_i32_vec(a.batch_ids, N, op, "batchIds");
    const int32_t* b = a.batch_ids.ptr<int32_t>();
    for (int64_t i = 0; i < N; ++i)
      TESSERA_CHECK(b[i * a.batch_ids.strides[0]] >= 0 && b[i * a.batch_ids.strides[0]] < a.batch_size, kInvalidArgument,
                    "octree build: batch id of point " + S(i) + " is " + S(b[i * a.batch_ids.strides[0]]) +
                        ", outside [0, batchSize=" + S(a.batch_size) + ")");
  } else {
    TESSERA_CHECK(a.batch_size == 1, kInvalidArgument, "octree build: batchSize > 1 needs batchIds");
  }
}

void validate_octree_view(const OctreeView& o, const char* op) {
  TESSERA_CHECK(o.depth >= 0 && o.depth <= kOctreeMaxDepth && o.full_depth >= 0 && o.full_depth <= o.depth,
                kInvalidArgument, std::string(op) + ": depth " + S(o.depth) + " / full depth " + S(o.full_depth) + " out of range");
  TESSERA_CHECK(o.batch_size >= 1 && o.batch_size <= kOctreeMaxBatch, kInvalidArgument,
                std::string(op) + ": batch size must be 1..32768");
  TESSERA_CHECK(static_cast<int32_t>(o.levels.size()) == o.depth + 1, kShape,
                std::string(op) + ": the octree needs depth + 1 = " + S(o.depth + 1) + " levels, got " + S(o.levels.size()));
  for (int d = 0; d <= o.depth; ++d) {
    const OctreeLevelView& L = o.levels[d];
    const std::string at = std::string(op) + ": depth " + S(d);
    TESSERA_CHECK(L.nnum >= 0 && L.nnum < (int64_t(1) << 31) && (L.nnum == 0 || (L.keys && L.children)), kShape,
                  at + " has no keys/children");
    if (d <= o.full_depth)
      TESSERA_CHECK(L.nnum == (int64_t(1) << (3 * d)) * o.batch_size, kShape,
                    at + " is dense and needs 8^d · batch nodes, got " + S(L.nnum));
    else
      TESSERA_CHECK(L.nnum == 8 * o.levels[d - 1].nnum_nempty, kShape,
                    at + " must hold 8 nodes per non-empty parent (" + S(8 * o.levels[d - 1].nnum_nempty) + "), got " + S(L.nnum));
    TESSERA_CHECK(L.nnum_nempty >= 0 && L.nnum_nempty <= L.nnum, kShape, at + ": bad non-empty count");
    int64_t ranks = 0;
    for (int64_t i = 0; i < L.nnum; ++i) {
      const int32_t c = L.children[i];
      TESSERA_CHECK(c >= -1 && c < L.nnum_nempty, kInvalidArgument,
                    at + ": children[" + S(i) + "] = " + S(c) + " is not -1 or a rank below " + S(L.nnum_nempty));
      if (c >= 0) ++ranks;
      TESSERA_CHECK((L.keys[i] >> kOctreeBatchShift) < o.batch_size && L.keys[i] >= 0, kInvalidArgument,
                    at + ": key " + S(i) + " has a batch id outside the batch");
    }
    TESSERA_CHECK(ranks == L.nnum_nempty, kInvalidArgument,
                  at + ": " + S(ranks) + " non-negative children but nnumNonEmpty is " + S(L.nnum_nempty));
  }
}

void validate_octree_window(const OctreeWindowArgs& a) {
  TESSERA_CHECK(a.window >= 1 && a.dilation >= 1, kInvalidArgument,
                "octree windows: window (K) and dilation must be >= 1, got " + S(a.window) + ", " + S(a.dilation));
  TESSERA_CHECK(a.batch_size >= 1 && a.batch_size < INT32_MAX, kInvalidArgument, "octree windows: batchSize must be >= 1");
  TESSERA_CHECK(a.n >= 0 && a.n + int64_t(a.window) * a.dilation * 2 < (int64_t(1) << 31), kInvalidArgument,
                "octree windows: too many tokens for int32 indices");
  for (int64_t i = 0; i < a.n; ++i)
    TESSERA_CHECK(a.batch_ids[i] >= 0 && a.batch_ids[i] < a.batch_size, kInvalidArgument,
                  "octree windows: batch id " + S(a.batch_ids[i]) + " of token " + S(i) + " is outside [0, batchSize)");
}

void validate_octree_rows(const RowGatherArgs& a) {
  const char* op = a.scatter ? "octree scatterRows" : "octree gatherRows";
  cpu_f32_2d(a.x, -1, -1, op, "x");
  cpu_i32_vec(a.index, a.scatter ? a.x.shape[0] : -1, op, "index");
  cpu_f32_2d(a.out, a.scatter ? -1 : a.index.shape[0], a.x.shape[1], op, "out");
  contiguous(a.x, op, "x");
  contiguous(a.index, op, "index");
  contiguous(a.out, op, "out");
  TESSERA_CHECK(!overlaps(a.out, a.x) && !overlaps(a.out, a.index), kAlias,
                std::string(op) + ": out overlaps an input; write to a separate buffer");
  const int64_t limit = a.scatter ? a.out.shape[0] : a.x.shape[0];
  const int32_t* idx = a.index.ptr<int32_t>();
  for (int64_t i = 0; i < a.index.shape[0]; ++i)
    TESSERA_CHECK(idx[i] >= -1 && idx[i] < limit, kInvalidArgument,
                  std::string(op) + ": index[" + S(i) + "] = " + S(idx[i]) + " is not -1 or below " + S(limit));
}

void validate_octree_rpe_bias(const OctreeRpeBiasArgs& a) {
  const char* op = "octree rpeBias";
  TESSERA_CHECK(a.window >= 1, kInvalidArgument, "octree rpeBias: window (K) must be >= 1, got " + S(a.window));
  cpu_f32_2d(a.table, -1, -1, op, "table");
  contiguous(a.table, op, "table");
  const int64_t rows = a.table.shape[0], H = a.table.shape[1];
  TESSERA_CHECK(H >= 1 && rows >= 3 && rows % 3 == 0 && (rows / 3) % 2 == 1, kShape,
                "octree rpeBias: table must be [3·(2·bound+1), heads], got " + shape_str(a.table));
  TESSERA_CHECK(a.xyz.device.kind == DeviceKind::kCPU, kDevice,
                "octree rpeBias runs on the CPU for now; copy xyz to the CPU first");
  TESSERA_CHECK(a.xyz.dtype == DType::kI32, kDtype, std::string("octree rpeBias: xyz must be int32, got ") + dtype_name(a.xyz.dtype));
  TESSERA_CHECK(a.xyz.rank == 2 && a.xyz.shape[1] == 3, kShape, "octree rpeBias: xyz must be [N, 3], got " + shape_str(a.xyz));
  contiguous(a.xyz, op, "xyz");
  cpu_i32_vec(a.perm, -1, op, "perm");
  contiguous(a.perm, op, "perm");
  const int64_t K = a.window, N = a.xyz.shape[0];
  TESSERA_CHECK(a.perm.shape[0] % K == 0, kShape,
                "octree rpeBias: perm holds " + S(a.perm.shape[0]) + " slots, not whole windows of K = " + S(K));
  const int64_t W = a.perm.shape[0] / K;
  TESSERA_CHECK(a.w0 >= 0 && a.n >= 0 && a.w0 <= W && a.n <= W - a.w0, kInvalidArgument,
                "octree rpeBias: windows " + S(a.w0) + " .. " + S(a.w0) + "+" + S(a.n) + " are outside the plan's " + S(W));
  int64_t per = 0, total = 0;
  TESSERA_CHECK(!__builtin_mul_overflow(H, K * K, &per) && !__builtin_mul_overflow(per, a.n, &total) &&
                    total <= (int64_t(1) << 53), kInvalidArgument,
                "octree rpeBias: n·H·K·K = " + S(a.n) + "·" + S(H) + "·" + S(K) + "² values overflow; take fewer windows at a time");
  TESSERA_CHECK(a.out.device.kind == DeviceKind::kCPU, kDevice, "octree rpeBias runs on the CPU for now; out must be a CPU tensor");
  TESSERA_CHECK(a.out.dtype == DType::kF32, kDtype, std::string("octree rpeBias: out must be float32, got ") + dtype_name(a.out.dtype));
  TESSERA_CHECK(a.out.rank == 4 && a.out.shape[0] == a.n && a.out.shape[1] == H && a.out.shape[2] == K && a.out.shape[3] == K,
                kShape, "octree rpeBias: out must be [" + S(a.n) + ", " + S(H) + ", " + S(K) + ", " + S(K) + "], got " +
                    shape_str(a.out));
  contiguous(a.out, op, "out");
  for (const TensorView* t : {&a.table, &a.xyz, &a.perm})
    TESSERA_CHECK(!overlaps(a.out, *t), kAlias, "octree rpeBias: out overlaps an input; write to a separate buffer");
  const int32_t* p = a.perm.ptr<int32_t>();
  for (int64_t s = a.w0 * K, e = (a.w0 + a.n) * K; s < e; ++s)
    TESSERA_CHECK(p[s] >= -1 && p[s] < N, kInvalidArgument,
                  "octree rpeBias: perm[" + S(s) + "] = " + S(p[s]) + " is not -1 or a row of xyz (< " + S(N) + ")");
}

void validate_octree_dwconv(const OctreeDwConvArgs& a) {
  const char* op = "octree dwconv";
  cpu_f32_2d(a.x, -1, -1, op, "x");
  const int64_t N = a.x.shape[0], C = a.x.shape[1];
  TESSERA_CHECK(a.neighbors.device.kind == DeviceKind::kCPU && a.neighbors.dtype == DType::kI32 &&
                    a.neighbors.rank == 2, kShape,
                "octree dwconv: neighbors must be an int32 [M, K] CPU tensor, got " + shape_str(a.neighbors));
  const int64_t M = a.neighbors.shape[0], K = a.neighbors.shape[1];
  cpu_f32_2d(a.weight, K, C, op, "weight");
  if (!a.bias.empty()) {
    TESSERA_CHECK(a.bias.dtype == DType::kF32 && a.bias.rank == 1 && a.bias.shape[0] == C, kShape,
                  "octree dwconv: bias must be float32 [" + S(C) + "]");
    contiguous(a.bias, op, "bias");
  }
  if (!a.residual.empty()) {
    cpu_f32_2d(a.residual, M, C, op, "residual");
    contiguous(a.residual, op, "residual");
  }
  cpu_f32_2d(a.out, M, C, op, "out");
  for (const TensorView* t : {&a.x, &a.neighbors, &a.weight, &a.out}) contiguous(*t, op, "every tensor");
  for (const TensorView* t : {&a.x, &a.neighbors, &a.weight, &a.bias, &a.residual})
    TESSERA_CHECK(!overlaps(a.out, *t), kAlias, "octree dwconv: out overlaps an input; write to a separate buffer");
  const int32_t* nb = a.neighbors.ptr<int32_t>();
  for (int64_t i = 0; i < M * K; ++i)
    TESSERA_CHECK(nb[i] >= -1 && nb[i] < N, kInvalidArgument,
                  "octree dwconv: neighbor entry " + S(i) + " = " + S(nb[i]) + " is not -1 or a row of x (< " + S(N) + ")");
}

}  // namespace tessera
