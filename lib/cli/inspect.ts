// `tessera inspect <file>`: tensors, parameter count and the model family.
import { openCheckpoint } from '../io/checkpoint.js';
import { detectFamily } from '../io/detect.js';
import { parseArgs, type Command } from './args.js';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'list the tensors of a checkpoint (.pth/.pt/.safetensors) and detect its model family',
  usage: `Usage: tessera inspect <file> [--json] [--limit N]

Reads a safetensors file or a PyTorch checkpoint (zip or legacy format; a
restricted unpickler that never runs code from the file) and prints each
tensor's name, dtype and shape, the parameter count, and the detected model
family (VAR, VAR's VQVAE, LlamaGen GPT, LlamaGen VQ) with the architecture
read from the shapes.

Options:
  --json      print one JSON object
  --limit N   print at most N tensors (default: all)
  --help      show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['limit']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const file = args.positional[0];
    if (!file) { console.error(this.usage); return 2; }
    const ck = openCheckpoint(file);
    try {
      const det = detectFamily(ck.tensors);
      let params = 0;
      for (const t of ck.tensors.values()) params += t.numel;
      const limitFlag = args.flags.get('limit');
      const limit = typeof limitFlag === 'string' ? Number(limitFlag) : Infinity;
      const rows = [...ck.tensors.values()].slice(0, limit);
      if (args.flags.has('json')) {
        console.log(JSON.stringify({
          file, format: ck.format, family: det.family, description: det.description, architecture: det.facts,
          parameters: params, tensors: rows.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), metadata: ck.metadata,
        }, null, 2));
        return 0;
      }
      const w = Math.min(60, Math.max(4, ...rows.map((t) => t.name.length)));
      for (const t of rows) console.log(`${t.name.padEnd(w)}  ${t.dtype.padEnd(8)}  [${t.shape.join(', ')}]`);
      if (rows.length < ck.tensors.size) console.log(`... ${ck.tensors.size - rows.length} more`);
      console.log(`format:     ${ck.format}`);
      console.log(`tensors:    ${ck.tensors.size}`);
      console.log(`parameters: ${params} (${(params / 1e6).toFixed(2)}M)`);
      console.log(`family:     ${det.family} (${det.description})`);
      for (const [k, v] of Object.entries(det.facts)) console.log(`  ${k}: ${v}`);
      return 0;
    } finally {
      ck.close();
    }
  },
};
