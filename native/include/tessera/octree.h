// Octrees in ocnn's conventions (octree-nn/ocnn-pytorch, spec/octree.md §1-3):
// construction from point clouds, merge, split/grow, neighbour tables, key
// search, input features, serialization orders and the index plans that let
// the fused attention run OctFormer's windows.
//
// Key layout (ocnn's shuffled key): bit i of x is key bit 3i+2, of y 3i+1, of
// z 3i (x is the most significant bit of each triplet); depth <= 16 uses bits
// 0..47; the batch id sits in bits 48..62 (so batch_size <= 32768). Keys sort
// batch-major, then in z-order.
//
// Layout of an octree of depth D and full depth F (all as in ocnn):
//   depth d <= F: dense, 8^d nodes per sample, keys (b<<48)|0..8^d-1, and for
//     d < F children[i] = i (identity).
//   depth d > F: the 8 children of every non-empty node of depth d-1, in
//     order; nnum = 8·#parents, nnum_nempty = #occupied.
//   children[d][i] = rank of node i among the non-empty nodes of depth d
//     (ascending with i), or -1 if empty. At depth D "non-empty" = holds points.
//   Depth-D signals cover the non-empty nodes only: the mean point in cell
//   units [0, 2^D], the normalised sum of normals, the mean of the features.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "tessera/pool.h"
#include "tessera/tensor.h"

namespace tessera {

constexpr int kOctreeMaxDepth = 16;
constexpr int kOctreeBatchShift = 48;
constexpr int64_t kOctreeMaxBatch = 32768;
constexpr int64_t kOctreeKeyMask = (int64_t(1) << kOctreeBatchShift) - 1;

// Bit-interleaving of one cell (no batch bits); coordinates below 2^16.
uint64_t octree_xyz_to_key(uint32_t x, uint32_t y, uint32_t z);
void octree_key_to_xyz(uint64_t key, uint32_t* x, uint32_t* y, uint32_t* z);

// Allocator of an octree's arrays: blocks come from the host pool, so the
// pages one build touched are reused by the next instead of faulting in fresh
// ones (a 1M-point depth-10 tree holds ~90 MB; a fresh page costs ~12 us on
// our machines). resize(n) leaves new elements uninitialised (default-init):
// every writer fills what it sizes. An OctreeArray handed to JS returns its
// block to the pool when collected.
template <class T>
struct OctreeAllocator {
  using value_type = T;
  OctreeAllocator() noexcept = default;
  template <class U>
  OctreeAllocator(const OctreeAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(host_acquire(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { host_release(p); }
  template <class U>
  void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <class U, class... A>
  void construct(U* p, A&&... a) { ::new (static_cast<void*>(p)) U(std::forward<A>(a)...); }
  template <class U>
  bool operator==(const OctreeAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const OctreeAllocator<U>&) const noexcept { return false; }
};
template <class T>
using OctreeArray = std::vector<T, OctreeAllocator<T>>;

// One depth of an octree, owned.
struct OctreeLevel {
  OctreeArray<int64_t> keys;       // [nnum], sorted ascending
  OctreeArray<int32_t> children;   // [nnum]
  int64_t nnum_nempty = 0;
  std::vector<int64_t> batch_nnum;         // [batch_size] nodes per sample
  std::vector<int64_t> batch_nnum_nempty;  // [batch_size] non-empty nodes per sample
};

struct Octree {
  int32_t depth = 0, full_depth = 0, batch_size = 1;
  std::vector<OctreeLevel> levels;  // depth + 1 entries
  OctreeArray<float> points;        // [nnum_nempty(D), 3] cell units; may be empty (grown trees)
  OctreeArray<float> normals;       // [nnum_nempty(D), 3] or empty
  OctreeArray<float> features;      // [nnum_nempty(D), feature_channels] or empty
  int32_t feature_channels = 0;
  // Which signals the tree carries (a sample may have none of its nodes).
  bool has_points = false, has_normals = false, has_features = false;
};

// A read-only view of one depth (memory owned by the caller, e.g. TypedArrays).
struct OctreeLevelView {
  const int64_t* keys = nullptr;
  const int32_t* children = nullptr;
  int64_t nnum = 0;
  int64_t nnum_nempty = 0;
};

struct OctreeView {
  int32_t depth = 0, full_depth = 0, batch_size = 1;
  std::vector<OctreeLevelView> levels;  // depth + 1 entries
  const float* points = nullptr;        // depth-D signals as in Octree, or null when absent
  const float* normals = nullptr;
  const float* features = nullptr;
  int32_t feature_channels = 0;
};
OctreeView octree_view(const Octree& o);

// ---- construction -----------------------------------------------------------

// Points outside the closed box [-1,1]^3 cannot be keyed. ocnn leaves them to
// the caller (its key masks wrap them into wrong cells); here they are never
// silently lost: kDrop leaves them out and counts them in the report, kError
// refuses the cloud. A coordinate of exactly +1 goes to the last cell.
enum class OctreeOutside : int32_t { kDrop = 0, kError = 1 };

struct OctreeBuildArgs {
  TensorView points;     // [N, 3] float32, CPU
  TensorView normals;    // [N, 3] float32, or empty
  TensorView features;   // [N, C] float32, or empty
  TensorView batch_ids;  // [N] int32 in [0, batch_size), or empty (all 0)
  int32_t depth = 6;        // 1..16
  int32_t full_depth = 2;   // 0..depth
  int32_t batch_size = 1;   // 1..32768
  OctreeOutside outside = OctreeOutside::kDrop;
};

struct OctreeBuildReport {
  int64_t points_used = 0;
  int64_t points_outside = 0;
  std::vector<int64_t> outside_per_sample;  // [batch_size]
  OctreeArray<int32_t> point_node;          // [N] non-empty depth-D node of each point, -1 if dropped
};

// Throws kInvalidArgument for NaN/Inf coordinates, bad depths or batch ids,
// and (kError) points outside the box.
Octree octree_build(const OctreeBuildArgs& args, OctreeBuildReport* report);

// Batches octrees of equal depth and full depth: part i's samples get batch
// ids offset by the batch sizes of the parts before it, its children by the
// non-empty counts before it; depth-D signals are concatenated (all parts
// must carry the same signals). Equal to building from the batched cloud.
Octree octree_merge(const std::vector<OctreeView>& parts);

// ---- generators (ocnn octree_split / octree_grow) ---------------------------

// children of depth d from split flags (0 = empty/leaf, non-zero = split):
// the exclusive scan of the flags, -1 where the flag is 0; if no flag is set
// node 0 is split (ocnn's guard against an empty tree). Also batch counts.
OctreeLevel octree_split(const OctreeLevelView& level, const int32_t* flags, int32_t batch_size);
// Depth d+1 from depth d: the 8 children of each non-empty node, keys
// (key<<3)|0..7 with the batch bits kept, children = identity.
OctreeLevel octree_grow(const OctreeLevelView& level, int32_t batch_size);

// ---- queries ----------------------------------------------------------------

// Index of each query key (batch bits included) among the nodes of one depth,
// or -1 (binary search of the sorted keys).
void octree_search_keys(const OctreeLevelView& level, const int64_t* queries, int64_t n, int32_t* out);

// Kernels as ocnn names them; each is a subset of the 27 slots
// slot = 9(dx+1) + 3(dy+1) + (dz+1), slot 13 = the node itself.
enum class OctreeKernel : int32_t { k333 = 0, k222 = 1, k311 = 2, k131 = 3, k113 = 4, k331 = 5, k313 = 6, k133 = 7 };
int octree_kernel_size(OctreeKernel k);
const int* octree_kernel_slots(OctreeKernel k);

// Neighbour table of depth d (1 <= d <= D; d = 0 gives the node itself):
// rows = all nodes (stride 1) or every 8th node (stride 2: the first sibling,
// ocnn's strided conv), columns = the kernel's slots; entries are node
// indices of depth d, or, with nempty, ranks among the non-empty nodes (rows
// then only for non-empty nodes, as ocnn's nempty_neigh); -1 where missing.
struct OctreeNeighborArgs {
  int32_t depth = 1;
  OctreeKernel kernel = OctreeKernel::k333;
  int32_t stride = 1;  // 1 or 2
  bool nempty = false;
};
std::vector<int32_t> octree_neighbors(const OctreeView& o, const OctreeNeighborArgs& a, int64_t* rows);

// Input features of the depth-D nodes in ocnn's order whatever the order of
// the letters: N normals (3), D displacement dot(frac(p)-0.5, n) (1), L local
// position frac(p)-0.5 (3), P global position p·2^(1-D)-1 (3), F features.
// nempty: rows of the non-empty nodes; otherwise all nodes, zeros for empty.
std::vector<float> octree_input_features(const OctreeView& o, const std::string& spec, bool nempty,
                                         int64_t* rows, int32_t* channels);

// ---- serialization ----------------------------------------------------------

// Orders of PointTransformerV3: z-order (ocnn's key), Hilbert (Skilling's
// transform, x most significant), and their "transposed" variants that swap x
// and y. Sorting is batch-major, stable.
enum class SerialOrder : int32_t { kZ = 0, kZTrans = 1, kHilbert = 2, kHilbertTrans = 3 };
uint64_t hilbert_code(uint32_t x, uint32_t y, uint32_t z, int bits);
// For the n keys of one depth: perm[r] = node at rank r, inverse[node] = rank.
void octree_serialize(const int64_t* keys, int64_t n, int32_t depth, SerialOrder order, int32_t* perm,
                      int32_t* inverse);

// ---- OctFormer / OctGPT attention plans ---------------------------------------

// Windows of K tokens over a sequence [fillers | tokens | padding]: with
// shift, K/2 fillers come first (OctGPT's shifted windows); padding brings
// the length to a multiple of K·dilation. A dilated window takes every
// dilation-th position inside a block of K·dilation (OctFormer: reshape to
// (K, dilation) and transpose). perm[w·K + k] = token index, or -1 for a
// filler or pad; segments = the token's batch id, batch_size for filler and
// pad, so kMaskSegment masks cross-sample pairs and padding (OctFormer's
// -1000 on differing batch ids).
struct OctreeWindowArgs {
  const int32_t* batch_ids = nullptr;  // [n] per token, non-decreasing in [0, batch_size)
  int64_t n = 0;
  int32_t batch_size = 1;
  int32_t window = 32;
  int32_t dilation = 1;
  bool shift = false;
};
struct OctreeWindowPlan {
  int64_t num_windows = 0;
  std::vector<int32_t> perm;      // [num_windows·K]
  std::vector<int32_t> segments;  // [num_windows·K]
};
OctreeWindowPlan octree_window_plan(const OctreeWindowArgs& a);

// out[i] = index[i] >= 0 ? x[index[i]] : 0 (rows), float32.
struct RowGatherArgs {
  TensorView x;      // [N, C] float32, contiguous
  TensorView index;  // [M] int32, -1 or in [0, N)
  TensorView out;    // [M, C] float32, contiguous
  bool scatter = false;  // instead out[index[i]] = x[i] for index[i] >= 0 (x [M, C], out [N, C]); indices unique
};
void octree_rows(const RowGatherArgs& a);

// OctFormer's relative position bias (RPE) of windows w0 .. w0+n-1 of a plan:
//   out[w][h][i][j] = (table[x-row][h] + table[y-row][h]) + table[z-row][h]
// (float32, added in that order), row a·(2B+1) + clamp(xyz[ti][a] - xyz[tj][a],
// -B, B) + B for ti = perm[(w0+w)·K + i], tj likewise; 0 where either slot is
// -1 (filler or padding). B is read from the table's rows, 3·(2B+1).
struct OctreeRpeBiasArgs {
  TensorView table;  // [3·(2B+1), H] float32, contiguous
  TensorView xyz;    // [N, 3] int32 cell coordinates, contiguous
  TensorView perm;   // [W·K] int32, -1 or in [0, N)
  int32_t window = 0;  // K
  int64_t w0 = 0;      // first window
  int64_t n = 0;       // windows; w0 + n <= W
  TensorView out;    // [n, H, K, K] float32, contiguous; must not overlap the inputs
};
void octree_rpe_bias(const OctreeRpeBiasArgs& a);

// Depthwise octree convolution (OctFormer's CPE, octree-nn/dwconv):
//   out[i][c] = bias[c] + residual[i][c] + Σ_k weight[k][c] · x[neigh[i][k]][c] over neigh >= 0.
struct OctreeDwConvArgs {
  TensorView x;         // [N, C] float32, contiguous
  TensorView neighbors; // [M, K] int32, entries -1 or in [0, N)
  TensorView weight;    // [K, C] float32 (ocnn's (K, 1, C) squeezed)
  TensorView bias;      // [C] or empty
  TensorView residual;  // [M, C] or empty; may be x (M == N)
  TensorView out;       // [M, C] float32; must not overlap the inputs
};
void octree_dwconv(const OctreeDwConvArgs& a);

// ---- meshing (native/cpu/octree/meshing.cpp; lib/octree/mesh.ts is its twin) ----

// Sparse marching cubes on the weighted point-to-plane SDF of one sample's
// depth-D leaves (mean point p_i in cell units, normal n_i):
//   f(c) = Σ w_i dot(c - p_i, n_i) / Σ w_i,  w_i = (1 - |c - p_i|²/r²)²,
// evaluated only at the lattice corners within r cells of a leaf point;
// cells whose 8 corners exist are marched with a case table generated from
// one rule per face (ambiguous faces separate the negative corners), so the
// surface is watertight where it stays inside that region. Vertices are keyed
// by lattice edge (welded), triangles counter-clockwise seen from outside
// (normals point along the input normals), positions in [-1, 1]^3.
struct OctreeMeshArgs {
  int32_t sample = 0;   // batch id
  double radius = 2.0;  // SDF support in depth-D cells, 1..4
};
struct OctreeMeshResult {
  std::vector<float> positions;   // [V, 3]
  std::vector<float> normals;     // [V, 3] area-weighted, unit
  std::vector<uint32_t> indices;  // [T, 3]
  int64_t leaves = 0, corners = 0, cells = 0, surface_cells = 0;
  int64_t boundary_edges = 0;     // directed edges without their reverse (0 = closed)
};
// Throws kInvalidArgument without points/normals, for a bad sample or radius,
// or when the sample has no oriented leaf.
OctreeMeshResult octree_marching_cubes(const OctreeView& o, const OctreeMeshArgs& a);
// Directed edges a->b of a triangle list whose reverse b->a no triangle uses.
int64_t mesh_open_edges(const uint32_t* indices, int64_t n, int64_t vertices);

}  // namespace tessera
