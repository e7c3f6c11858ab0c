// The speculative op family behind tessera/speculative.h: the shared
// validators (core/validate_speculative.cpp) and the CPU implementations
// (cpu/speculative/*.cpp), which may assume validated arguments.
#pragma once
#include "tessera/speculative.h"

namespace tessera {

void validate_verify_draft(const VerifyDraftArgs& a);
void validate_codebook_neighbours(const CodebookNeighboursArgs& a);

namespace cpu {
void verify_draft(const VerifyDraftArgs& a);
void codebook_neighbours(const CodebookNeighboursArgs& a);
}  // namespace cpu

}  // namespace tessera
