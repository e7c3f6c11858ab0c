// Serialization orders of PointTransformerV3 for the nodes of one depth:
// 'z' (ocnn's key; the stored order), 'z-trans', 'hilbert', 'hilbert-trans'
// ("trans" swaps x and y). perm[r] = node at rank r; inverse[node] = rank.
import { fail } from '../errors.js';
import { native } from '../native.js';
import type { Octree } from './octree.js';

export type SerialOrder = 'z' | 'z-trans' | 'hilbert' | 'hilbert-trans';
const ORDERS: readonly SerialOrder[] = ['z', 'z-trans', 'hilbert', 'hilbert-trans'];

interface SerializeNative {
  octreeSerialize(a: Record<string, unknown>): Promise<{ perm: Int32Array; inverse: Int32Array }>;
}

/** Order of the nodes of `depth` (all of them, or the non-empty ones when given their keys). */
export function serializeKeys(keys: BigInt64Array, depth: number, order: SerialOrder = 'z'): Promise<{ perm: Int32Array; inverse: Int32Array }> {
  const o = ORDERS.indexOf(order);
  if (o < 0) fail('ERR_INVALID_ARGUMENT', `order must be one of ${ORDERS.join(', ')}`);
  return (native() as unknown as SerializeNative).octreeSerialize({ keys, depth, order: o });
}

export function serialize(octree: Octree, depth: number, order: SerialOrder = 'z', nempty = false) {
  const l = octree.level(depth);
  let keys = l.keys;
  if (nempty) {
    keys = new BigInt64Array(l.nnumNonEmpty);
    let j = 0;
    for (let i = 0; i < l.nnum; i++) if (l.children[i]! >= 0) keys[j++] = l.keys[i]!;
  }
  return serializeKeys(keys, depth, order);
}
