/**
 * `npm run bench` still runs every scenario (a smoke test, not a measurement: speed is judged by the
 * bench itself, never here). A scenario whose setup no longer matches the relay fails inside the bench
 * and prints a row without a figure: the fan-out setup once waited for a per-member event the relay had
 * stopped sending, and nothing noticed until the next bench run. `--quick` keeps this to ~20 s.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Row {
  name: string;
  ours: number | null;
  note?: string | null;
}

describe('npm run bench', () => {
  it('runs every scenario of every suite to a figure (--quick)', { timeout: 180_000 }, () => {
    const run = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', 'bench/run.ts', '--quick', '--json'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 170_000,
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const { results } = JSON.parse(run.stdout) as { results: Row[] };
    expect(results.map((r) => r.name)).toEqual([
      'group encrypt+decrypt 100 B',
      '1:1 encrypt+decrypt one-way 100 B',
      '1:1 ping-pong (DH ratchet every msg)',
      '1:1 session setup + first message',
      '1:1 routing 1 KiB, 64 in flight',
      '100-member fan-out 1 KiB, 16 in flight',
      'memory per idle connection',
      'durable queue, offline recipient, 256 in flight',
      'event-loop delay p99, 1,000 forged frames/s',
    ]);
    for (const r of results) {
      expect(r.note ?? '', r.name).not.toMatch(/failed/);
      expect(Number.isFinite(r.ours) && r.ours! > 0, `${r.name}: ${String(r.ours)}`).toBe(true);
    }
  });
});
