/**
 * The relay as the container image runs it (deploy/Dockerfile, docs/OPERATIONS.md): the bundle made by
 * scripts/build-relay.mjs, with better-sqlite3 copied beside it, started by plain `node relay.js` in a
 * folder outside the checkout (so nothing resolves from the checkout's node_modules). It must log JSON,
 * answer /healthz, carry messages between two clients through its queue worker, and stop cleanly on
 * SIGTERM (`docker stop`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import type { E2EEClient } from '../../src-main/core/index.js';
import { connectClient } from '../e2e/helpers.js';
import { get, relayHttpUrl } from '../relay/http-get.js';
import { ROOT } from './tty.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sealed-relay-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the relay bundle (container image)', () => {
  it('builds, runs outside the checkout, serves two clients through its queue, and stops on SIGTERM', async () => {
    const out = path.join(dir, 'relay');
    const built = spawnSync(process.execPath, ['scripts/build-relay.mjs', out], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(built.status, built.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['relay-queue-worker.js', 'relay.js']);
    // What the Dockerfile copies beside the bundle.
    mkdirSync(path.join(out, 'node_modules'));
    for (const m of ['better-sqlite3', 'bindings', 'file-uri-to-path'])
      cpSync(path.join(ROOT, 'node_modules', m), path.join(out, 'node_modules', m), { recursive: true });

    const data = path.join(dir, 'data');
    const child = spawn(process.execPath, ['relay.js', '--port', '0', '--data', data], {
      cwd: out,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines: Record<string, unknown>[] = [];
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const record = JSON.parse(line) as Record<string, unknown>;
        lines.push(record);
        if (record['event'] === 'listening') resolve(record);
      });
      void exited.then((code) => reject(new Error(`the bundle exited (${code}): ${stderr}`)));
    });
    const clients: E2EEClient[] = [];
    try {
      const url = listening['url'] as string;
      expect(JSON.parse((await get(relayHttpUrl(url, '/healthz'))).body)).toEqual({
        status: 'ok',
        checks: { storage: { status: 'ok' } },
      });
      const alice = await connectClient(url, 'alice');
      const bob = await connectClient(url, 'bob');
      clients.push(alice.client, bob.client);
      await alice.client.sendDirectMessage('bob', 'from the bundle');
      expect((await bob.rec.wait('message')).text).toBe('from the bundle');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(lines.at(-1)).toMatchObject({ event: 'closed', msg: 'relay closed' });
    expect(existsSync(path.join(data, 'queue.sqlite'))).toBe(true);
    expect(stderr).toBe('');
  });
});
