// Scale-out (issue 9 part 7): the server keeps no state between requests, so
// replicas behind a load balancer are interchangeable. Two `tessera serve`
// processes on loopback behind a small round-robin proxy (what nginx's
// upstream does; docs/serving.md): the same request gives the same bytes on
// either replica, equal to a solo generation with its seed, and when one
// replica shuts down (SIGTERM drains it) the other answers everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeImage } from '../lib/io/image.js';
import { embeddedModel } from '../lib/models/embedded.js';
import { generate } from '../lib/models/var/generate.js';
import { loadVar } from '../lib/models/var/load.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'lib', 'cli', 'main.js');
const model = embeddedModel();

interface Replica { child: ChildProcess; port: number; log: string[]; exit: Promise<number | null> }

/** `tessera serve` on an ephemeral loopback port; resolves once it listens (port read from its log). */
function startReplica(): Promise<Replica> {
  const child = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', '0', '--var-tokenizer', model.tokenizer, '--var-weights', model.weights],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`replica did not listen within 60 s:\n${log.join('')}`)), 60_000);
    const onData = (d: Buffer): void => {
      log.push(d.toString());
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(log.join(''));
      if (m) { clearTimeout(t); resolve({ child, port: Number(m[1]), log, exit }); }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exit.then((code) => reject(new Error(`replica exited (${code}) before listening:\n${log.join('')}`)));
  });
}

/**
 * A round-robin reverse proxy over `ports`: request k goes to replica k mod n;
 * a replica that refuses the connection is skipped for the next one (nginx's
 * proxy_next_upstream error). `served` counts answers per port.
 */
function roundRobin(ports: number[]): { server: Server; served: Map<number, number> } {
  let next = 0;
  const served = new Map<number, number>(ports.map((p) => [p, 0]));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks), first = next++ % ports.length;
      const attempt = (k: number): void => {
        if (k === ports.length) { res.writeHead(502).end('no replica answered'); return; }
        const port = ports[(first + k) % ports.length]!;
        const up = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (r) => {
          served.set(port, served.get(port)! + 1);
          res.writeHead(r.statusCode!, r.headers);
          r.pipe(res);
        });
        up.on('error', () => attempt(k + 1));
        up.end(body);
      };
      attempt(0);
    });
  });
  return { server, served };
}

describe('replicas behind a load balancer', () => {
  let a: Replica, b: Replica, proxy: { server: Server; served: Map<number, number> }, proxyPort: number, dir: string;
  const sampling = { cfg: 2, top_k: 0, top_p: 0.6 };

  beforeAll(async () => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
    dir = mkdtempSync(join(tmpdir(), 'tessera-replicas-'));
    [a, b] = await Promise.all([startReplica(), startReplica()]);
    proxy = roundRobin([a.port, b.port]);
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', r));
    proxyPort = (proxy.server.address() as AddressInfo).port;
  }, 90_000);

  afterAll(async () => {
    proxy?.server.close();
    for (const r of [a, b]) if (r && r.child.exitCode === null) { r.child.kill('SIGTERM'); await r.exit; }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = async (port: number, body: object): Promise<{ status: number; png: Buffer }> => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/generate`, {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'image/png' }, body: JSON.stringify(body),
    });
    return { status: r.status, png: Buffer.from(await r.arrayBuffer()) };
  };

  it('both replicas are ready and the same request gives byte-identical PNGs on each, equal to a solo generation', async () => {
    for (const r of [a, b]) expect((await fetch(`http://127.0.0.1:${r.port}/ready`)).status).toBe(200);
    const pipe = await loadVar(model.tokenizer, model.weights);
    try {
      for (const [cls, seed] of [[3, 7], [8, 123456]] as const) {
        const body = { class: cls, seed, ...sampling };
        const [onA, onB] = await Promise.all([post(a.port, body), post(b.port, body)]);
        expect(onA.status).toBe(200);
        expect(onB.status).toBe(200);
        expect(onA.png.equals(onB.png)).toBe(true);
        // What `tessera generate --class cls --seed seed --batch 1` writes with these settings.
        const g = await generate(pipe.vae, pipe.model, { classes: [cls], seed, cfg: 2, topK: 0, topP: 0.6 });
        const path = join(dir, `${cls}-${seed}.png`);
        await writeImage(path, g.images, 0);
        g.images.dispose();
        expect(onA.png.equals(readFileSync(path))).toBe(true);
      }
    } finally {
      pipe.close();
    }
  }, 60_000);

  it('through a round-robin proxy, requests alternate between replicas and repeated requests give the same bytes', async () => {
    const before = new Map(proxy.served);
    const answers: Buffer[] = [];
    // Each body twice in a row: the two copies go to different replicas.
    for (const seed of [1, 2, 3]) for (let k = 0; k < 2; k++) {
      const r = await post(proxyPort, { class: seed, seed, ...sampling });
      expect(r.status).toBe(200);
      answers.push(r.png);
    }
    for (const p of [a.port, b.port]) expect(proxy.served.get(p)! - before.get(p)!).toBe(3);
    for (let i = 0; i < answers.length; i += 2) expect(answers[i]!.equals(answers[i + 1]!)).toBe(true);
    expect(answers[0]!.equals(answers[2]!)).toBe(false);
  }, 60_000);

  it('a replica stopped with SIGTERM drains and exits 0; the other then answers every request', async () => {
    // A streamed request that has started (first progress event) when the signal comes.
    const streamed = new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: b.port, method: 'POST', path: '/v1/generate', headers: { 'content-type': 'application/json', accept: 'text/event-stream' } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          if (!text.includes('event: progress') && d.toString().includes('event: progress')) b.child.kill('SIGTERM');
          text += d.toString();
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ class: 5, seed: 42, count: 4, ...sampling }));
    });
    // The request it had taken still completes (graceful drain), and the process exits cleanly.
    expect(await streamed).toMatch(/event: result\ndata: \{"model":"var","images":\[/);
    expect(await b.exit).toBe(0);
    const before = proxy.served.get(a.port)!;
    const rs = await Promise.all([0, 1, 2, 3].map((s) => post(proxyPort, { class: s, seed: s, ...sampling })));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(proxy.served.get(a.port)! - before).toBe(4);
    expect(rs[1]!.png.equals((await post(a.port, { class: 1, seed: 1, ...sampling })).png)).toBe(true);
  }, 60_000);
});
