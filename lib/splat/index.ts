// Gaussian splatting: pinhole cameras, 3DGS render and its backward.
export { lookAt, focalFromFov, type PinholeCamera, type LookAtOptions } from './camera.js';
export {
  render, renderBackward, type RenderOptions, type RenderResult, type RenderedView, type RenderTargets, type SplatMode, type SplatStats,
  type ViewGradients, type SceneGradients,
} from './render.js';
export {
  fitScene, psnr, sceneExtent, DEFAULT_LR, type PosedImage, type FitOptions, type FitProgress, type FitResult,
  type LearningRates, type DensifyOptions,
} from './fit.js';
export { syntheticScene, orbitCameras, renderViews, type SyntheticSceneOptions } from './synthetic.js';
export { SeededRandom } from './random.js';
