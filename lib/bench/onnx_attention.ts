// Builds the peer's model bytes: a one-node ONNX graph with the standard
// opset-23 `Attention` op over (B,H,L,D) inputs, as
// /work/shared/baselines/make_models.py did with python-onnx, so the bench
// needs no Python. Only the protobuf wire format pieces ModelProto uses here:
// varints, length-delimited fields and fixed32 floats (onnx/onnx.proto3).

class ProtoWriter {
  readonly #bytes: number[] = [];

  #varint(value: number | bigint): void {
    let v = BigInt(value);
    if (v < 0n) v += 1n << 64n;  // int64 two's complement
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      this.#bytes.push(byte);
    } while (v > 0n);
  }

  #key(field: number, wire: number): void { this.#varint((field << 3) | wire); }

  int(field: number, value: number): this { this.#key(field, 0); this.#varint(value); return this; }

  float(field: number, value: number): this {
    this.#key(field, 5);
    const b = new Uint8Array(new Float32Array([value]).buffer);
    this.#bytes.push(...b);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.#key(field, 2);
    this.#varint(data.length);
    for (const b of data) this.#bytes.push(b);
    return this;
  }

  string(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }
  message(field: number, m: ProtoWriter): this { return this.bytes(field, m.finish()); }
  finish(): Uint8Array { return Uint8Array.from(this.#bytes); }
}

// onnx.TensorProto.DataType
const FLOAT = 1, BOOL = 9;

function tensorValueInfo(name: string, elemType: number, dims: readonly number[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) shape.message(1, new ProtoWriter().int(1, d));  // TensorShapeProto.dim.dim_value
  const tensorType = new ProtoWriter().int(1, elemType).message(2, shape);  // TypeProto.Tensor
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));  // ValueInfoProto
}

export interface OnnxAttentionSpec {
  B: number; H: number; Lq: number; Lk: number; D: number;
  scale: number;
  /** 'causal' uses is_causal=1; a boolean matrix [Lq*Lk] (true = visible) becomes a bool attn_mask initializer. */
  mask: 'none' | 'causal' | Uint8Array;
}

/** Serialized ModelProto: inputs Q [B,H,Lq,D], K/V [B,H,Lk,D], output O [B,H,Lq,D], float32. */
export function onnxAttentionModel(spec: OnnxAttentionSpec): Uint8Array {
  const { B, H, Lq, Lk, D } = spec;
  const node = new ProtoWriter().string(1, 'Q').string(1, 'K').string(1, 'V');
  const graph = new ProtoWriter();
  if (spec.mask instanceof Uint8Array) {
    if (spec.mask.length !== Lq * Lk) throw new Error(`attention mask must hold ${Lq * Lk} entries`);
    node.string(1, 'attn_mask');
    const init = new ProtoWriter().int(1, Lq).int(1, Lk).int(2, BOOL).string(8, 'attn_mask').bytes(9, spec.mask);
    graph.message(5, init);  // GraphProto.initializer
  }
  node.string(2, 'O').string(3, 'attention').string(4, 'Attention');
  // AttributeProto: name=1, f=2, i=3, type=20 (FLOAT=1, INT=2)
  node.message(5, new ProtoWriter().string(1, 'scale').float(2, spec.scale).int(20, 1));
  if (spec.mask === 'causal') node.message(5, new ProtoWriter().string(1, 'is_causal').int(3, 1).int(20, 2));
  graph.message(1, node).string(2, 'tessera_bench_attention');
  graph.message(11, tensorValueInfo('Q', FLOAT, [B, H, Lq, D]));
  graph.message(11, tensorValueInfo('K', FLOAT, [B, H, Lk, D]));
  graph.message(11, tensorValueInfo('V', FLOAT, [B, H, Lk, D]));
  graph.message(12, tensorValueInfo('O', FLOAT, [B, H, Lq, D]));
  // ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8 (domain '' version 23)
  return new ProtoWriter().int(1, 10).string(2, 'tessera-bench').message(7, graph)
    .message(8, new ProtoWriter().string(1, '').int(2, 23)).finish();
}
