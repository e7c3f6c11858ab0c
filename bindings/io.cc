// File mapping for the loaders: a whole file as an external ArrayBuffer over
// a private (copy-on-write) mapping, so checkpoint tensors can be read in
// place. Writes through a view change only this process's pages, never the
// file; the mapping is released when the ArrayBuffer is collected.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"

namespace tessera::bindings {
namespace {

struct Mapping {
  void* base;
  size_t size;
};

void unmap(Napi::Env env, void* /*data*/, Mapping* m) {
  if (m->size) munmap(m->base, m->size);
  Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(m->size));
  delete m;
}

Napi::Value map_file(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw_error(env, Code::kInvalidArgument, "mapFile(path): path must be a string");
  const std::string path = info[0].As<Napi::String>();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_error(env, Code::kInvalidArgument, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw_error(env, Code::kInvalidArgument, path + " is not a regular file");
  }
  auto* m = new Mapping{nullptr, static_cast<size_t>(st.st_size)};
  if (m->size) {
    m->base = mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m->base == MAP_FAILED) {
      const int err = errno;
      close(fd);
      delete m;
      throw_error(env, Code::kOutOfMemory, "cannot map " + path + ": " + std::strerror(err));
    }
  }
  close(fd);
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(m->size));
  // An empty file still gets a (zero-length) buffer.
  static char empty_byte;
  void* data = m->size ? m->base : &empty_byte;
  return Napi::ArrayBuffer::New(env, data, m->size, unmap, m);
}

}  // namespace

void init_io(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New(env, map_file));
}

}  // namespace tessera::bindings
