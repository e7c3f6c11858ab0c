// The TesseraError code a call (or a promise) ends with, or 'no error'; any
// other exception fails the test. Shared by the test files that check codes.
import { expect } from 'vitest';

import { TesseraError } from '../lib/errors.js';

export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return (e as TesseraError).code;
  }
  return 'no error';
}
