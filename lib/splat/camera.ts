// Pinhole cameras for the splat rasterizer, in OpenCV/COLMAP axes (x right,
// y down, z forward) and pixel units. Pixel (i, j) covers [i, i+1)×[j, j+1)
// and is sampled at its centre, so a centred camera has cx = width/2.
import { fail } from '../errors.js';

export interface PinholeCamera {
  fx: number;
  fy: number;
  cx: number;
  cy: number;
  width: number;
  height: number;
  /** World→camera rigid transform, 4×4 row-major (16 numbers, last row 0 0 0 1). */
  worldToCamera: ArrayLike<number>;
}

type Vec3 = readonly [number, number, number];

function normalize(v: Vec3): [number, number, number] {
  const n = Math.hypot(v[0], v[1], v[2]);
  if (!(n > 0)) fail('ERR_INVALID_ARGUMENT', 'lookAt: eye and target coincide, or up is parallel to the view direction');
  return [v[0] / n, v[1] / n, v[2] / n];
}

function cross(a: Vec3, b: Vec3): [number, number, number] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

/** Focal length in pixels for a field of view (radians) across `pixels`. */
export function focalFromFov(fov: number, pixels: number): number {
  return pixels / (2 * Math.tan(fov / 2));
}

export interface LookAtOptions {
  width: number;
  height: number;
  /** Vertical field of view in radians (default 60°); fx = fy unless `fx` is given. */
  fovY?: number;
  fx?: number;
  /** World direction that appears up in the image (default −y: the INRIA/COLMAP RDF frame). */
  up?: Vec3;
}

/** A camera at `eye` looking at `target`. */
export function lookAt(eye: Vec3, target: Vec3, opts: LookAtOptions): PinholeCamera {
  const z = normalize([target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]]);
  const up = opts.up ?? [0, -1, 0];
  // Right-handed camera axes: x = down × z with down = −up, then y = z × x.
  const x = normalize(cross(z, up));
  const y = cross(z, x);
  const rows = [x, y, z];
  const view = new Array<number>(16).fill(0);
  rows.forEach((r, i) => {
    view[4 * i] = r[0]; view[4 * i + 1] = r[1]; view[4 * i + 2] = r[2];
    view[4 * i + 3] = -(r[0] * eye[0] + r[1] * eye[1] + r[2] * eye[2]);
  });
  view[15] = 1;
  const fy = focalFromFov(opts.fovY ?? Math.PI / 3, opts.height);
  return { fx: opts.fx ?? fy, fy, cx: opts.width / 2, cy: opts.height / 2, width: opts.width, height: opts.height, worldToCamera: view };
}

export function checkCamera(c: PinholeCamera, i: number): void {
  const ok = (v: number) => typeof v === 'number' && Number.isFinite(v);
  if (!ok(c.fx) || !ok(c.fy) || !(c.fx > 0) || !(c.fy > 0) || !ok(c.cx) || !ok(c.cy))
    fail('ERR_INVALID_ARGUMENT', `camera ${i}: fx, fy must be positive and fx, fy, cx, cy finite`);
  if (!Number.isInteger(c.width) || !Number.isInteger(c.height) || c.width < 1 || c.height < 1)
    fail('ERR_INVALID_ARGUMENT', `camera ${i}: width and height must be positive integers`);
  if (!c.worldToCamera || c.worldToCamera.length !== 16)
    fail('ERR_INVALID_ARGUMENT', `camera ${i}: worldToCamera must hold 16 numbers (4×4 row-major)`);
}
