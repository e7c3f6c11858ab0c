// Minimal flag parsing shared by the commands: `--name value`, `--flag`.
import { TesseraError } from '../errors.js';

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

/** `valued` names the flags that take a value; any other `--x` is a boolean. */
export function parseArgs(argv: readonly string[], valued: readonly string[] = []): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h') { flags.set('help', true); continue; }
    if (!a.startsWith('--')) { positional.push(a); continue; }
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (valued.includes(name)) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} needs a value`);
      flags.set(name, v);
    } else {
      flags.set(name, true);
    }
  }
  return { positional, flags };
}

/** A command of the `tessera` CLI; run() returns the exit code. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}
