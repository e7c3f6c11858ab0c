// Errors of the native core. Every failure that user input can cause is an
// Error with a stable code; nothing in the core calls exit() or abort().
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

// Stable codes, mirrored one-to-one by TesseraError.code in TypeScript
// ("ERR_" + the enum name in upper case, see code_name()).
enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,  // a value out of range, a bad option
  kShape = 2,            // shapes or strides that do not fit together
  kDtype = 3,            // a dtype the op does not take
  kDevice = 4,           // wrong device, or the device/backend is absent
  kAlias = 5,            // an output overlaps an input it may not overlap
  kOutOfMemory = 6,      // an allocation failed
  kInternal = 7,         // a bug in Tessera (please report)
  kBackend = 8,          // a CUDA runtime/driver error
};

inline const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "ERR_INVALID_ARGUMENT";
    case Code::kShape: return "ERR_SHAPE";
    case Code::kDtype: return "ERR_DTYPE";
    case Code::kDevice: return "ERR_DEVICE";
    case Code::kAlias: return "ERR_ALIAS";
    case Code::kOutOfMemory: return "ERR_OUT_OF_MEMORY";
    case Code::kInternal: return "ERR_INTERNAL";
    case Code::kBackend: return "ERR_BACKEND";
  }
  return "ERR_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  Error(Code code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  Code code() const { return code_; }
 private:
  Code code_;
};

#define TESSERA_CHECK(cond, code, msg)                                  \
  do {                                                                  \
    if (!(cond)) throw ::tessera::Error(::tessera::Code::code, (msg));  \
  } while (0)

}  // namespace tessera
