// Public entry points of the speculative family: validate once, then run on
// the CPU (validation refuses CUDA tensors until a CUDA path exists; the
// verification reads V floats per draft, a small cost next to the forward).
#include "cpu/speculative/speculative_cpu.h"

namespace tessera {

void verify_draft(const VerifyDraftArgs& a) {
  validate_verify_draft(a);
  cpu::verify_draft(a);
}

void codebook_neighbours(const CodebookNeighboursArgs& a) {
  validate_codebook_neighbours(a);
  cpu::codebook_neighbours(a);
}

}  // namespace tessera
