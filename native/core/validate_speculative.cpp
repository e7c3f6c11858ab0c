// Argument checks of the speculative op family (verify_draft,
// codebook_neighbours), shared by every backend. The kernels rely on these:
// ranks, shapes, dtypes, contiguity where the header says so, token ids in
// range, one device, outputs apart from inputs.
#include <cmath>
#include <string>

#include "cpu/speculative/speculative_cpu.h"

namespace tessera {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

void tensor(const TensorView& t, const char* op, const char* name, int rank, DType dt) {
  const std::string who = std::string(op) + ": " + name;
  TESSERA_CHECK(!t.empty(), kInvalidArgument, who + " is missing (null data)");
  TESSERA_CHECK(t.rank == rank, kShape, who + " must have rank " + S(rank) + ", got " + shape_str(t));
  for (int i = 0; i < t.rank; ++i) TESSERA_CHECK(t.shape[i] >= 1, kShape, who + " must have non-zero dimensions, got " + shape_str(t));
  TESSERA_CHECK(t.dtype == dt, kDtype, who + " must be " + dtype_name(dt) + ", got " + dtype_name(t.dtype));
  TESSERA_CHECK(t.device.kind == DeviceKind::kCPU, kDevice, who + " is on CUDA; speculative ops run on the CPU only so far (toCpu() first)");
}

void contiguous(const TensorView& t, const char* op, const char* name) {
  TESSERA_CHECK(t.is_contiguous(), kShape, std::string(op) + ": " + name + " " + shape_str(t) + " must be contiguous");
}

void shape_is(const TensorView& t, std::initializer_list<int64_t> want, const char* op, const char* name) {
  int i = 0;
  bool ok = t.rank == static_cast<int>(want.size());
  for (int64_t w : want) ok = ok && t.shape[i++] == w;
  std::string ws = "[";
  for (int64_t w : want) ws += (ws.size() > 1 ? ", " : "") + S(w);
  TESSERA_CHECK(ok, kShape, std::string(op) + ": " + name + " must be " + ws + "], got " + shape_str(t));
}

void apart(const TensorView& out, const TensorView& in, const char* op, const char* name) {
  TESSERA_CHECK(!overlaps(out, in), kAlias, std::string(op) + ": an output overlaps " + name + "; use separate buffers");
}

}  // namespace

void validate_verify_draft(const VerifyDraftArgs& a) {
  const char* op = "verify_draft";
  tensor(a.p, op, "p [B, L, V]", 3, DType::kF32);
  const int64_t B = a.p.shape[0], L = a.p.shape[1], V = a.p.shape[2];
  TESSERA_CHECK(a.p.strides[2] == 1 || V == 1, kShape, "verify_draft: p must be contiguous along V (stride 1)");
  if (!a.q.empty()) {
    tensor(a.q, op, "q [B, L, V]", 3, DType::kF32);
    shape_is(a.q, {B, L, V}, op, "q (the shape of p)");
    TESSERA_CHECK(a.q.strides[2] == 1 || V == 1, kShape, "verify_draft: q must be contiguous along V (stride 1)");
  }
  tensor(a.drafts, op, "drafts [B, L]", 2, DType::kI32);
  shape_is(a.drafts, {B, L}, op, "drafts");
  contiguous(a.drafts, op, "drafts");
  const int32_t* d = a.drafts.ptr<int32_t>();
  for (int64_t i = 0; i < B * L; ++i)
    TESSERA_CHECK(d[i] >= 0 && d[i] < V, kInvalidArgument,
                  "verify_draft: draft token " + S(d[i]) + " (row " + S(i / L) + ", position " + S(i % L) + ") is outside 0.." + S(V - 1));
  TESSERA_CHECK(a.lantern_k >= 0, kInvalidArgument, "verify_draft: lantern_k must be >= 0");
  TESSERA_CHECK(std::isfinite(a.lantern_delta) && a.lantern_delta >= 0, kInvalidArgument,
                "verify_draft: lantern_delta must be finite and >= 0");
  if (a.lantern_k > 0 && a.lantern_delta > 0) {
    tensor(a.neighbours, op, "neighbours [V, K]", 2, DType::kI32);
    contiguous(a.neighbours, op, "neighbours");
    TESSERA_CHECK(a.neighbours.shape[0] == V, kShape,
                  "verify_draft: neighbours has " + S(a.neighbours.shape[0]) + " rows, the vocabulary is " + S(V));
    TESSERA_CHECK(a.lantern_k <= a.neighbours.shape[1], kInvalidArgument,
                  "verify_draft: lantern_k " + S(a.lantern_k) + " exceeds the table's " + S(a.neighbours.shape[1]) + " neighbours");
    const int32_t* nb = a.neighbours.ptr<int32_t>();
    for (int64_t i = 0; i < a.neighbours.numel(); ++i)
      TESSERA_CHECK(nb[i] >= -1 && nb[i] < V, kInvalidArgument, "verify_draft: neighbours holds " + S(nb[i]) + ", not a code id or -1");
  }
  tensor(a.accepted, op, "accepted [B]", 1, DType::kI32);
  shape_is(a.accepted, {B}, op, "accepted");
  contiguous(a.accepted, op, "accepted");
  tensor(a.next, op, "next [B]", 1, DType::kI32);
  shape_is(a.next, {B}, op, "next");
  contiguous(a.next, op, "next");
  apart(a.accepted, a.next, op, "next");
  if (!a.stats.empty()) {
    tensor(a.stats, op, "stats [B, L, 2]", 3, DType::kF32);
    shape_is(a.stats, {B, L, 2}, op, "stats");
    contiguous(a.stats, op, "stats");
  }
  for (const TensorView* out : {&a.accepted, &a.next, &a.stats})
    for (const TensorView* in : {&a.p, &a.q, &a.drafts, &a.neighbours}) apart(*out, *in, op, "an input");
  apart(a.stats, a.accepted, op, "accepted");
  apart(a.stats, a.next, op, "next");
}

void validate_codebook_neighbours(const CodebookNeighboursArgs& a) {
  const char* op = "codebook_neighbours";
  tensor(a.codebook, op, "codebook [V, D]", 2, DType::kF32);
  contiguous(a.codebook, op, "codebook");
  const int64_t V = a.codebook.shape[0];
  TESSERA_CHECK(V >= 2 && V <= INT32_MAX, kShape, "codebook_neighbours: the codebook needs 2..2^31-1 codes, got " + S(V));
  tensor(a.out, op, "out [V, K]", 2, DType::kI32);
  contiguous(a.out, op, "out");
  TESSERA_CHECK(a.out.shape[0] == V && a.out.shape[1] < V, kShape,
                "codebook_neighbours: out must be [" + S(V) + ", K] with 1 <= K < " + S(V) + ", got " + shape_str(a.out));
  if (!a.distances.empty()) {
    tensor(a.distances, op, "distances [V, K]", 2, DType::kF32);
    contiguous(a.distances, op, "distances");
    shape_is(a.distances, {V, a.out.shape[1]}, op, "distances (the shape of out)");
    apart(a.distances, a.out, op, "out");
    apart(a.distances, a.codebook, op, "the codebook");
  }
  TESSERA_CHECK(!std::isnan(a.max_distance) && a.max_distance >= 0, kInvalidArgument,
                "codebook_neighbours: max_distance must be >= 0 (+inf: no radius)");
  apart(a.out, a.codebook, op, "the codebook");
}

}  // namespace tessera
