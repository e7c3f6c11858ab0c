// Opens a VAR tokenizer file and a transformer file (.pth or .safetensors)
// and builds both models. The files stay open (float32 weights are views of
// the mapping) until close().
import { openCheckpoint, type Checkpoint } from '../../io/checkpoint.js';
import { checkPair } from './config.js';
import { VarTransformer, type TransformerOptions } from './transformer.js';
import { Vqvae } from './vqvae.js';

export interface VarPipeline {
  vae: Vqvae;
  model: VarTransformer;
  close(): void;
}

export async function loadVar(tokenizerPath: string, weightsPath: string, opts: TransformerOptions = {}): Promise<VarPipeline> {
  const files: Checkpoint[] = [];
  const closeAll = (): void => { for (const f of files.splice(0)) f.close(); };
  try {
    files.push(openCheckpoint(tokenizerPath));
    files.push(openCheckpoint(weightsPath));
    const vae = Vqvae.load(files[0]!.tensors, tokenizerPath);
    const model = await VarTransformer.load(files[1]!.tensors, weightsPath, opts);
    try {
      checkPair(vae.config, model.config, { vae: tokenizerPath, var: weightsPath });
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { vae, model, close: () => { model.dispose(); vae.dispose(); closeAll(); } };
  } catch (e) {
    closeAll();
    throw e;
  }
}
