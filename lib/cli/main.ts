#!/usr/bin/env node
// The `tessera` command line: one file per command under lib/cli/.
import { TesseraError } from '../errors.js';
import { packageVersion } from '../runtime.js';
import type { Command } from './args.js';
import { benchCommand } from './bench.js';
import { buildCommand } from './build.js';
import { convertCommand } from './convert.js';
import { editCommand } from './edit.js';
import { generateCommand } from './generate.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';
import { serveCommand } from './serve.js';
import { fitImageCommand } from './fit_image.js';
import { renderImageCommand } from './render_image.js';
import { fitCommand } from './fit.js';
import { renderCommand } from './render.js';
import { watermarkCommand } from './watermark.js';
import { octreeCommand } from './octree.js';
import { batchCommand } from './batch.js';

const COMMANDS: Command[] = [infoCommand, inspectCommand, convertCommand, benchCommand, buildCommand, generateCommand, editCommand,
  fitImageCommand, renderImageCommand, fitCommand, renderCommand, serveCommand];
COMMANDS.push(watermarkCommand);
COMMANDS.push(octreeCommand);
COMMANDS.push(batchCommand);

function usage(): string {
  return `Usage: tessera <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join('\n')}

Run \`tessera <command> --help\` for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(packageVersion());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`tessera: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (e instanceof TesseraError) console.error(`tessera: ${e.code}: ${e.message}`);
    else console.error(e);
    process.exitCode = 1;
  },
);
