/** Starts tests/relay/relay-process.ts as a child process and waits until it listens. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FailpointName } from '../../src-main/relay/failpoints.js';
import type { RelayOptions } from '../../src-main/relay/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./relay-process.ts', import.meta.url));

export interface ChildRelay {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Resolves with the exit signal or code. */
  readonly exited: Promise<string>;
  /** Resolves when the relay stops at its failpoint (see src-main/relay/failpoints.ts). */
  readonly stopped: Promise<FailpointName>;
}

/** How to start the child besides the relay's options. */
export interface SpawnOptions {
  /**
   * Stops the relay dead the first time it reaches `name` once the file `armFile` exists (it then waits
   * for SIGKILL): see src-main/relay/failpoints.ts.
   */
  failpoint?: { name: FailpointName; armFile: string } | undefined;
}

/** Spawns a relay process with JSON-serialisable options. */
export function spawnRelay(
  options: Omit<RelayOptions, 'log' | 'now'>,
  spawnOptions: SpawnOptions = {},
): Promise<ChildRelay> {
  const { failpoint } = spawnOptions;
  const env = { ...process.env };
  if (failpoint) env['SEALED_RELAY_FAILPOINTS'] = `${failpoint.name}@${failpoint.armFile}`;
  else delete env['SEALED_RELAY_FAILPOINTS'];
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(options)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? String(code))),
  );
  const stopped = new Promise<FailpointName>((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const hit = /^failpoint (\S+)$/.exec(line);
      if (hit) resolve(hit[1] as FailpointName);
      else process.stderr.write(`${line}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      const { url, port } = JSON.parse(line) as { url: string; port: number };
      resolve({ url, port, child, exited, stopped });
    });
    child.once('error', reject);
    void exited.then((how) => reject(new Error(`relay process exited early (${how})`)));
  });
}
