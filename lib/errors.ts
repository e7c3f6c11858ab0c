// One error type for every failure a caller can cause or meet. `code` is
// stable (programs branch on it); the message says what to fix.
export type TesseraErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_ALIAS'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_INTERNAL'
  | 'ERR_BACKEND'
  | 'ERR_DISPOSED'
  | 'ERR_NO_BINARY'
  | 'ERR_FORMAT'  // a file that is not what it claims to be (checkpoints, scenes)
  | 'ERR_IO'      // reading or writing a file failed
  | 'ERR_UNSAFE'; // a checkpoint asks for code execution (restricted unpickler)

export class TesseraError extends Error {
  readonly code: TesseraErrorCode;

  // (code, message) order matches how the native addon constructs it.
  constructor(code: TesseraErrorCode, message: string) {
    super(message);
    this.name = 'TesseraError';
    this.code = code;
  }
}

export function fail(code: TesseraErrorCode, message: string): never {
  throw new TesseraError(code, message);
}
