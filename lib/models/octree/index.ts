// OctFormer/OctGPT building blocks over the octree ops.
export { OctFormerBlock, type OctFormerBlockWeights } from './block.js';
export {
  windowPlan, windowAttention, gatherRows, scatterRows, octgptRopeFreqs, octgptFreqsFromParam, octgptPositions, octgptRope,
  type WindowOptions, type WindowPlan, type Rope3d, type RopeDirection,
} from './attention.js';
