/** Starts tests/relay/relay-process.ts as a child process and waits until it listens. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RelayOptions } from '../../src-main/relay/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./relay-process.ts', import.meta.url));

export interface ChildRelay {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Resolves with the exit signal or code. */
  readonly exited: Promise<string>;
}

/** Spawns a relay process with JSON-serialisable options. */
export function spawnRelay(options: Omit<RelayOptions, 'log' | 'now'>): Promise<ChildRelay> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? String(code))),
  );
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      const { url, port } = JSON.parse(line) as { url: string; port: number };
      resolve({ url, port, child, exited });
    });
    child.once('error', reject);
    void exited.then((how) => reject(new Error(`relay process exited early (${how})`)));
  });
}
