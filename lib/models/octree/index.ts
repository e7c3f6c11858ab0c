// OctFormer/OctGPT building blocks over the octree ops.
export { OctFormerBlock, octformerBlockWeights, type OctFormerBlockWeights } from './block.js';
export {
  windowPlan, windowAttention, gatherRows, scatterRows, octgptRopeFreqs, octgptFreqsFromParam, octgptPositions, octgptRope,
  scaleCausalWindowAttention, rpeBound, type RelativePositionBias, type WindowOptions, type WindowPlan, type Rope3d, type RopeDirection,
} from './attention.js';
export { OctGpt, OCTGPT_GRID, type OctGptSequence } from './octgpt.js';
export { octgptConfig, octgptTensors, type OctGptConfig, type OctGptOptions } from './octgpt_config.js';
export {
  generateOctGpt, maskSchedule, philoxPermutation, denseOctree, OCTGPT_STEPS, OCTGPT_TEMPERATURES,
  type GenerateOptions, type GenerateResult, type StepInfo,
} from './octgpt_generate.js';
export { randomOctGptTensors, OCTGPT_SHAPENET, type RandomOctGptShape } from './octgpt_random.js';
