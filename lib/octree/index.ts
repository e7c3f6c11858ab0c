// Octree structures (ocnn conventions) and serialization orders.
export { Octree, type OctreeLevel, type BuildOptions, type BuildReport, type NeighborKernel, type NeighborTable } from './octree.js';
export { serialize, serializeKeys, type SerialOrder } from './serialize.js';
// OctFormer/OctGPT layers over the octree ops (lib/models/octree).
export * from '../models/octree/index.js';
// Outputs: sparse marching cubes, voxel cubes, points, and mesh writers.
export * from './mesh.js';
export * from './voxels.js';
export * from './writers.js';
