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
export { conv2d, conv2dOutputShape, type Conv2dOptions, type Padding } from './ops/conv.js';
export { groupNorm, layerNorm, rmsNorm, columns, Columns, type GroupNormOptions, type LayerNormOptions, type RmsNormOptions } from './ops/norm.js';
export { resize, type ResizeMode, type ResizeOptions } from './ops/resize.js';
export { vqNearest, embedding, type VqNearestOptions, type EmbeddingOptions } from './ops/vq.js';
export { sample, cfgCombine, philoxUniform, type SampleOptions, type CfgOptions } from './ops/sampling.js';
export * as splat from './splat/index.js';
export * as octree from './octree/index.js';
export * as gauss2d from './gauss2d/index.js';
export { loadVar, type VarPipeline } from './models/var/load.js';
export { generate as generateVar, type GenerateOptions as VarGenerateOptions, type Generated as VarGenerated } from './models/var/generate.js';
export { VarTransformer, type TransformerOptions as VarTransformerOptions } from './models/var/transformer.js';
export { Vqvae } from './models/var/vqvae.js';
export { loadLlamaGen, type LlamaGenPipeline, type LlamaGenLoadOptions } from './models/llamagen/load.js';
export { LlamaGenGpt, GptState, type GptOptions as LlamaGenGptOptions } from './models/llamagen/gpt.js';
export { LlamaGenVq } from './models/llamagen/vq.js';
export {
  generateAr as generateLlamaGen, type GenerateOptions as LlamaGenGenerateOptions, type Generated as LlamaGenGenerated,
  type DecodeStats, type SamplingOptions as LlamaGenSamplingOptions,
} from './models/llamagen/generate.js';
export { generateSjd, type SjdOptions } from './decoding/sjd.js';
export { generateLantern, LANTERN_K, LANTERN_DELTA, type LanternOptions } from './decoding/lantern.js';
export { generateWithDraft, type DraftModelOptions } from './decoding/draft.js';
export { generateNar } from './decoding/nar.js';
export { type NeighbourTable } from './decoding/verify.js';
export { resolveWatermark, watermarkBias, greenList, poolIndex, WATERMARK_DEFAULTS, type WatermarkOptions, type ResolvedWatermark } from './watermark/greenlist.js';
export { detectTokens, type Detection } from './watermark/ztest.js';
export { detectImage, type DetectImageOptions } from './watermark/detect.js';
export { openCheckpoint, type Checkpoint, type OpenOptions } from './io/checkpoint.js';
export { writeSafetensors, type TensorToWrite } from './io/safetensors.js';
export { readScene, writeScene, decodeScene, encodeScene, type SceneData } from './io/scene-file.js';
export { type GaussianScene } from './io/gaussian-scene.js';
export { type PointCloud } from './io/point-cloud.js';
export { edit as editVar, editMask, scaleMasks, type EditOptions as VarEditOptions, type EditMode, type Box } from './models/var/edit.js';
export { tessera as tesseraPlugin, type TesseraPluginOptions } from './server/plugin.js';
export { readImageTensor, writeImageTensor, type ImageLayout, type ImageRange, type ReadImageOptions, type WriteImageOptions, type ImageTensor } from './io/image-tensor.js';
