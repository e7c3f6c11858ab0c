// 2D image Gaussians (GaussianImage parameterisation, accumulated-sum
// rendering, GSASR scale-aware footprint): fit, render at any scale, save/load.
export { type Gauss2dModel, checkModel } from './model.js';
export {
  renderGauss2d, renderGauss2dBackward, outputSize, type Gauss2dRenderOptions, type Gauss2dRendered, type Gauss2dGradients,
  type Gauss2dStats,
} from './render.js';
export { fitImage, type FitImageOptions, type FitImageResult } from './fit.js';
export { saveGauss2d, loadGauss2d, GAUSS2D_FORMAT } from './io.js';
