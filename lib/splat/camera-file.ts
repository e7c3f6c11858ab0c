// Camera files for the splat CLI (issue 5's contract):
//  * {"width","height","fx","fy","cx","cy","viewMatrix":[16 numbers, row-major,
//    world-to-camera, OpenCV axes],"background"?:[r,g,b],"image"?:name}, or an
//    array of those;
//  * the cameras.json the 3DGS training code writes: [{id, img_name, width,
//    height, position: camera centre, rotation: 3×3 camera-to-world rotation
//    (rows), fx, fy}], centred principal point.
import { readFileSync } from 'node:fs';

import { fail } from '../errors.js';
import { checkCamera, type PinholeCamera } from './camera.js';

export interface FileCamera {
  camera: PinholeCamera;
  /** Image name the entry names (3DGS img_name, or "image"), if any. */
  image?: string;
  background?: [number, number, number];
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function fromEntry(e: Record<string, unknown>, i: number, path: string): FileCamera {
  const where = `${path}: camera ${i}`;
  if (Array.isArray(e.viewMatrix)) {
    const v = e.viewMatrix as unknown[];
    if (v.length !== 16 || !v.every(isNum)) fail('ERR_FORMAT', `${where}: viewMatrix must hold 16 numbers`);
    const camera = { width: e.width, height: e.height, fx: e.fx, fy: e.fy, cx: e.cx, cy: e.cy, worldToCamera: v } as PinholeCamera;
    checkCamera(camera, i);
    const bg = e.background as number[] | undefined;
    if (bg !== undefined && (!Array.isArray(bg) || bg.length !== 3 || !bg.every(isNum))) fail('ERR_FORMAT', `${where}: background must be [r, g, b]`);
    return { camera, image: typeof e.image === 'string' ? e.image : undefined, background: bg as [number, number, number] | undefined };
  }
  const pos = e.position as number[], rot = e.rotation as number[][];
  if (!Array.isArray(pos) || pos.length !== 3 || !pos.every(isNum) || !Array.isArray(rot) || rot.length !== 3 ||
      !rot.every((r) => Array.isArray(r) && r.length === 3 && r.every(isNum)))
    fail('ERR_FORMAT', `${where}: needs viewMatrix, or 3DGS position [3] and rotation [3][3]`);
  // rotation is camera→world (its columns are the camera axes in the world):
  // world→camera is Rᵀ with t = −Rᵀ·position.
  const view = new Array<number>(16).fill(0);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) view[4 * r + c] = rot[c]![r]!;
    view[4 * r + 3] = -(rot[0]![r]! * pos[0]! + rot[1]![r]! * pos[1]! + rot[2]![r]! * pos[2]!);
  }
  view[15] = 1;
  const w = e.width as number, h = e.height as number;
  const camera = { width: w, height: h, fx: e.fx, fy: e.fy, cx: w / 2, cy: h / 2, worldToCamera: view } as PinholeCamera;
  checkCamera(camera, i);
  return { camera, image: typeof e.img_name === 'string' ? e.img_name : undefined };
}

export function readCameraFile(path: string): FileCamera[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ? 'ERR_IO' : 'ERR_FORMAT';
    fail(code, `cannot read camera file ${path}: ${(e as Error).message}`);
  }
  const list = Array.isArray(json) ? json : [json];
  if (list.length === 0) fail('ERR_FORMAT', `${path}: no cameras`);
  return list.map((e, i) => {
    if (!e || typeof e !== 'object') fail('ERR_FORMAT', `${path}: camera ${i} is not an object`);
    return fromEntry(e as Record<string, unknown>, i, path);
  });
}
