// A 3D Gaussian-splatting scene in the training code's raw parameterisation
// and frame (RDF, as the INRIA .ply stores it): structure of arrays.
import { TesseraError } from '../errors.js';

export interface GaussianScene {
  count: number;
  /** Spherical-harmonics degree 0..4; sh holds (degree+1)² coefficients per colour. */
  shDegree: number;
  means: Float32Array;      // [N, 3]
  logScales: Float32Array;  // [N, 3] natural log of the axis scales
  rotations: Float32Array;  // [N, 4] (w, x, y, z), not necessarily normalised
  opacityLogits: Float32Array; // [N] logit of the opacity
  sh: Float32Array;         // [N, K, 3], K = (degree+1)²; k = 0 is the DC term
  antialiased: boolean;
}

export const SH_C0 = 0.28209479177387814;

export function shCoefficients(degree: number): number {
  return (degree + 1) * (degree + 1);
}

export function emptyScene(count: number, shDegree: number, antialiased = false): GaussianScene {
  if (!Number.isSafeInteger(count) || count < 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `bad Gaussian count ${count}`);
  if (!Number.isInteger(shDegree) || shDegree < 0 || shDegree > 4) throw new TesseraError('ERR_INVALID_ARGUMENT', `SH degree must be 0..4, got ${shDegree}`);
  const K = shCoefficients(shDegree);
  return {
    count, shDegree, antialiased,
    means: new Float32Array(count * 3), logScales: new Float32Array(count * 3), rotations: new Float32Array(count * 4),
    opacityLogits: new Float32Array(count), sh: new Float32Array(count * K * 3),
  };
}

// Per SH coefficient (3DGS order, bands 0..4), which of x, y, z the basis
// function is odd in: [x, y, z] parity bits. An axis flip changes its sign by
// the product of the flipped axes it is odd in.
const SH_PARITY: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [0, 1, 0], [0, 0, 1], [1, 0, 0], // y, z, x
  [1, 1, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1], [0, 0, 0], // xy, yz, 3z²−1, xz, x²−y²
  // y(3x²−y²), xyz, y(5z²−1), z(5z²−3), x(5z²−1), z(x²−y²), x(x²−3y²)
  [0, 1, 0], [1, 1, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [1, 0, 0],
  // band 4: xy(x²−y²), yz(3x²−y²), xy(7z²−1), yz(7z²−3), 35z⁴−30z²+3, xz(7z²−3), (x²−y²)(7z²−1), xz(x²−3y²), x⁴−6x²y²+y⁴
  [1, 1, 0], [0, 1, 1], [1, 1, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1], [0, 0, 0], [1, 0, 1], [0, 0, 0],
];

function shSigns(f: readonly [number, number, number]): number[] {
  return SH_PARITY.map((p) => (p[0] ? f[0] : 1) * (p[1] ? f[1] : 1) * (p[2] ? f[2] : 1));
}

/** SH coefficient signs under (x, y, z) → (x, −y, −z) (180° about x): the RDF ↔ RUB change of frame. */
export const SH_FLIP_YZ: readonly number[] = shSigns([1, -1, -1]);

/**
 * Changes the frame by axis sign flips f = (±1, ±1, ±1) in place: means
 * x_a → f_a·x_a; quaternion (w, x, y, z) → (w, f_y f_z x, f_x f_z y, f_x f_y z)
 * (the rotation M R M with M = diag(f), also for a mirror); each SH
 * coefficient times the flips of the axes its basis function is odd in.
 */
export function flipAxes(s: GaussianScene, f: readonly [number, number, number]): void {
  if (f[0] === 1 && f[1] === 1 && f[2] === 1) return;
  const K = shCoefficients(s.shDegree);
  const q = [f[1] * f[2], f[0] * f[2], f[0] * f[1]];
  const sh = shSigns(f);
  for (let i = 0; i < s.count; ++i) {
    for (let a = 0; a < 3; ++a) {
      s.means[3 * i + a] = f[a]! * s.means[3 * i + a]!;
      s.rotations[4 * i + 1 + a] = q[a]! * s.rotations[4 * i + 1 + a]!;
    }
    for (let k = 1; k < K; ++k) {
      if (sh[k] === -1) for (let c = 0; c < 3; ++c) s.sh[(i * K + k) * 3 + c] = -s.sh[(i * K + k) * 3 + c]!;
    }
  }
}

/** Changes the frame (x, y, z) → (x, −y, −z) in place (its own inverse). */
export function flipYZ(s: GaussianScene): void {
  flipAxes(s, [1, -1, -1]);
}
