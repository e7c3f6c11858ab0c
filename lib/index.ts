// Public API of the tessera package.
export { TesseraError, type TesseraErrorCode } from './errors.js';
export {
  type DType, type TensorData, dtypeSize, encodeHalf, decodeHalf, floatToBFloat16, bfloat16ToFloat,
  floatToFloat16, float16ToFloat,
} from './dtype.js';
export { Tensor, type Device } from './tensor.js';
export {
  attention, ropeApply, ropeTable1d, ropeTable2d, ropeTable3d,
  type AttentionOptions, type AttentionMask, type MaskTerm, type Layout, type RopeOptions, type RopeTable,
} from './ops/attention.js';
export { linear, matmul, packWeight, PackedWeight, type LinearOptions, type MatmulOptions, type Activation } from './ops/gemm.js';
export { KVCache, type KVCacheOptions } from './kvcache.js';
export { runtimeInfo, setThreads, getThreads, hostPoolStats, type RuntimeInfo } from './runtime.js';
