// Gaussian splatting: pinhole cameras, 3DGS render and its backward.
export { lookAt, focalFromFov, type PinholeCamera, type LookAtOptions } from './camera.js';
export {
  render, renderBackward, type RenderOptions, type RenderResult, type RenderedView, type SplatMode, type SplatStats,
  type ViewGradients, type SceneGradients,
} from './render.js';
