// Per-device state: one non-blocking stream per device and the device's
// default stream-ordered memory pool with its release threshold raised, so
// freed blocks stay cached and are reused instead of going back to the driver.
#include <mutex>

#include "cuda/common.cuh"

namespace tessera::cuda {

void throw_on_error(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  // A failed runtime call also sets the thread's last error; a non-sticky one
  // (e.g. cudaMallocAsync out of memory) would otherwise be returned by the
  // next call's cudaGetLastError() in TS_LAUNCHED and fail a launch that
  // worked. Sticky errors are not cleared by this and keep failing.
  cudaGetLastError();
  std::string msg = std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" +
                    cudaGetErrorString(e) + ")";
  if (e == cudaErrorMemoryAllocation) throw Error(Code::kOutOfMemory, msg);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || e == cudaErrorInvalidDevice)
    throw Error(Code::kDevice, msg);
  throw Error(Code::kBackend, msg);
}

namespace {
constexpr int kMaxDevices = 64;
struct DeviceState {
  cudaStream_t stream = nullptr;
  int smem_optin = 0;
  int sms = 0;
};
std::mutex g_mu;
DeviceState g_dev[kMaxDevices];

DeviceState& state(int32_t device) {
  if (device < 0 || device >= kMaxDevices)
    throw Error(Code::kDevice, "CUDA device index " + std::to_string(device) + " is out of range");
  int count = 0;
  TS_CUDA(cudaGetDeviceCount(&count));
  if (device >= count)
    throw Error(Code::kDevice, "CUDA device " + std::to_string(device) + " does not exist (" +
                                   std::to_string(count) + " present)");
  TS_CUDA(cudaSetDevice(device));
  std::lock_guard<std::mutex> lk(g_mu);
  DeviceState& s = g_dev[device];
  if (!s.stream) {
    cudaMemPool_t pool;
    TS_CUDA(cudaDeviceGetDefaultMemPool(&pool, device));
    // Keep everything cached: the engine reuses the same shapes every step.
    uint64_t threshold = UINT64_MAX;
    TS_CUDA(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    TS_CUDA(cudaDeviceGetAttribute(&s.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    TS_CUDA(cudaDeviceGetAttribute(&s.sms, cudaDevAttrMultiProcessorCount, device));
    cudaStream_t st;
    TS_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    s.stream = st;
  }
  return s;
}
}  // namespace

cudaStream_t stream_for(int32_t device) { return state(device).stream; }
int max_smem_optin(int32_t device) { return state(device).smem_optin; }
int multiprocessors(int32_t device) { return state(device).sms; }

int32_t device_of(const TensorView& t, const char* name) {
  if (t.device.kind != DeviceKind::kCUDA)
    throw Error(Code::kDevice, std::string(name) + " is not a CUDA tensor");
  return t.device.index;
}

void require_same_device(const TensorView& t, int32_t dev, const char* name) {
  if (t.empty()) return;
  if (t.device.kind != DeviceKind::kCUDA || t.device.index != dev)
    throw Error(Code::kDevice, std::string(name) + " must be on CUDA device " + std::to_string(dev));
}

void* Scratch::alloc(size_t bytes) {
  if (n_ == 16) throw Error(Code::kInternal, "too many scratch buffers in one call");
  void* p = nullptr;
  TS_CUDA(cudaMallocAsync(&p, bytes ? bytes : 1, stream_));
  ptrs_[n_++] = p;
  return p;
}

Scratch::~Scratch() {
  // Errors here cannot be reported (destructor); the next call sees them.
  for (int i = 0; i < n_; ++i) cudaFreeAsync(ptrs_[i], stream_);
}

}  // namespace tessera::cuda
