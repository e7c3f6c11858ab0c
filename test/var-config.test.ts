// VAR's architecture read from the tiny fixtures' tensor shapes: the schedule
// rule, the Phi conv choice, and errors that name the key and the reason.
import { describe, expect, it } from 'vitest';

import type { StoredTensor } from '../lib/io/stored-tensor.js';
import {
  phiIndex, readSchedule, ShapeReader, solveSchedules, varConfig, vqvaeConfig,
} from '../lib/models/var/config.js';
import { fixtureMeta, openFixture, SCHEDULE } from './var-fixtures.js';

const meta = fixtureMeta();
const open = openFixture;

describe('VAR configuration from checkpoint shapes', () => {
  it('reads the tiny VQVAE: 2 levels of 32 channels, 1 res block, z = Cvae = 8, 64 codes, 4 Phi convs', () => {
    const c = vqvaeConfig(open('vae.pth').tensors, 'vae.pth');
    expect(c).toEqual({ channels: [32, 32], numResBlocks: 1, zChannels: 8, vocabulary: 64, latentChannels: 8, phiConvs: 4, downsample: 2 });
  });

  it('reads the tiny VAR: depth 2, width 64, 2 heads (from scale_mul_1H11), schedule from lvl_1L', () => {
    const c = varConfig(open('var.pth').tensors, 'var.pth');
    expect(c).toMatchObject({ depth: 2, width: 64, heads: 2, headDim: 32, classes: 10, vocabulary: 64, latentChannels: 8, sharedAdaLN: false });
    expect(c.schedule).toEqual(SCHEDULE);
    expect(c.scheduleSource).toBe('lvl_1L');
  });

  it('solves the shared-AdaLN file\'s schedule (no lvl_1L) from L = 66 and 5 scales', () => {
    const c = varConfig(open('var_shared.pth').tensors, 'var_shared.pth');
    expect(c.sharedAdaLN).toBe(true);
    expect(c.schedule).toEqual(SCHEDULE);
    expect(c.scheduleSource).toBe('solved');
  });

  it('takes the official schedules for L = 680 and 2240 and solves or refuses others', () => {
    const fake = (L: number, SN: number): ShapeReader => {
      const t = (shape: number[]): StoredTensor => ({ name: '', dtype: 'float32', shape, numel: 0, load: () => { throw new Error('unused'); } });
      return new ShapeReader(new Map([['pos_1LC', t([1, L, 64])], ['lvl_embed.weight', t([SN, 64])]]), 'f.pth');
    };
    expect(readSchedule(fake(680, 10), 64)).toEqual({ schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16], source: 'official' });
    expect(readSchedule(fake(2240, 10), 64)).toEqual({ schedule: [1, 2, 3, 4, 6, 9, 13, 18, 24, 32], source: 'official' });
    expect(readSchedule(fake(30, 4), 64)).toEqual({ schedule: [1, 2, 3, 4], source: 'solved' });
    expect(() => readSchedule(fake(31, 4), 64)).toThrow(/pos_1LC has 31 tokens: no increasing schedule/);
    // A first scale larger than 1×1: pos_start holds pn0² start positions, and the schedule starts there.
    const withStart = (L: number, SN: number, starts: number): ShapeReader => {
      const t = (shape: number[]): StoredTensor => ({ name: '', dtype: 'float32', shape, numel: 0, load: () => { throw new Error('unused'); } });
      return new ShapeReader(new Map([['pos_1LC', t([1, L, 64])], ['lvl_embed.weight', t([SN, 64])], ['pos_start', t([1, starts, 64])]]), 'f.pth');
    };
    expect(readSchedule(withStart(4 + 9 + 16, 3, 4), 64)).toEqual({ schedule: [2, 3, 4], source: 'solved' });
    expect(() => readSchedule(withStart(29, 3, 3), 64)).toThrow(/pos_start has 3 start positions, not the square/);
    expect(solveSchedules(680, 10).length).toBeGreaterThan(1);  // why the official table comes first
  });

  it('Phi conv choice: float64 argmin with first-index ties, [0,0,1,1,1,2,2,3,3,3] for 10 scales', () => {
    expect(Array.from({ length: 10 }, (_, si) => phiIndex(si, 10, 4)).join(',')).toBe(meta.phi_index_10);
    expect(Array.from({ length: 5 }, (_, si) => phiIndex(si, 5, 4)).join(',')).toBe(meta.phi_index);
    expect(meta.phi_index_10).toBe('0,0,1,1,1,2,2,3,3,3');
  });

  it('Phi conv choice for K != 4: the official ticks linspace(1/2K, 1 - 1/2K) (K = 4 keeps 1/3K)', () => {
    expect(Array.from({ length: 4 }, (_, si) => phiIndex(si, 4, 3)).join(',')).toBe('0,0,1,2');
    expect(Array.from({ length: 6 }, (_, si) => phiIndex(si, 6, 5)).join(',')).toBe('0,0,1,2,3,4');  // numpy argmin over float64 linspace
    expect(phiIndex(3, 7, 1)).toBe(0);
  });

  it('quant_conv kernels: any odd k read from the file; an even one is refused by name', () => {
    const t = open('vae.pth').tensors;
    const k = (n: number): Map<string, StoredTensor> => {
      const m = new Map(t);
      for (const name of ['quant_conv.weight', 'post_quant_conv.weight']) m.set(name, { ...t.get(name)!, shape: [8, 8, n, n] });
      return m;
    };
    expect(vqvaeConfig(k(1), 'k1.pth').latentChannels).toBe(8);
    expect(() => vqvaeConfig(k(2), 'k2.pth')).toThrow(/k2\.pth: quant_conv\.weight has an even kernel 2/);
  });

  it('names the key and the reason when a file does not fit', () => {
    const t = open('var.pth').tensors;
    const broken = new Map(t);
    broken.delete('blocks.1.ffn.fc2.weight');
    expect(() => varConfig(broken, 'x.pth')).toThrow(/x\.pth: blocks\.1\.ffn\.fc2\.weight is missing/);
    const wrong = new Map(t);
    wrong.set('head.weight', { ...t.get('head.weight')!, shape: [64, 65] });
    expect(() => varConfig(wrong, 'x.pth')).toThrow(/head\.weight has shape \[64, 65\], expected \[64, 64\]/);
    expect(() => vqvaeConfig(t, 'var.pth')).toThrow(/quantize\.embedding\.weight is missing/);
  });
});
