/**
 * Durability: a relay process killed with SIGKILL mid-stream loses nothing it acknowledged as 'sent';
 * and the queue's group-commit throughput for an offline recipient.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { RawClient, body, msgId, type Deliver } from './raw-client.js';
import { spawnRelay, type ChildRelay } from './spawn.js';

const FAST = { framesPerSecond: 1e9, burst: 1e9 };
let dir: string;
let children: ChildRelay[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'relay-durable-'));
});
afterEach(async () => {
  for (const c of children)
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  children = [];
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<ChildRelay> {
  const r = await spawnRelay({ port: 0, dataDir: dir, rateLimit: FAST });
  children.push(r);
  return r;
}

/** Collects delivers until none arrived for `quietMs`. */
async function drainAll(c: RawClient, quietMs: number): Promise<Deliver[]> {
  const out: Deliver[] = [];
  for (;;) {
    try {
      out.push((await c.next((f) => f.t === 'deliver', quietMs)) as Deliver);
    } catch {
      return out;
    }
  }
}

describe('durability', () => {
  it('delivers every acknowledged message exactly once, in order, after SIGKILL', async () => {
    const bobId = Identity.generate();
    const relay1 = await start();
    await (await RawClient.connect(relay1.url, 'bob', bobId)).close();
    const acked = new Set<string>();
    const alice = await RawClient.connect(relay1.url, 'alice', Identity.generate(), {
      keep: () => false,
      onFrame: (f) => {
        if (f.t === 'ack') acked.add(f.id);
      },
    });
    const ids = Array.from({ length: 1000 }, () => msgId());
    let killed = false;
    for (let i = 0; i < ids.length && !killed; i += 10) {
      for (const id of ids.slice(i, i + 10)) alice.fire({ t: 'send', to: 'bob', id, body: body(id) });
      await new Promise((r) => setTimeout(r, 1));
      if (acked.size >= 400) {
        relay1.child.kill('SIGKILL');
        killed = true;
      }
    }
    if (!killed) relay1.child.kill('SIGKILL');
    expect(await relay1.exited).toBe('SIGKILL');
    await alice.closed;
    const ackedAtKill = new Set(acked);
    expect(ackedAtKill.size).toBeGreaterThan(0);
    expect(ackedAtKill.size).toBeLessThan(ids.length); // killed midway

    const relay2 = await start();
    const bob = await RawClient.connect(relay2.url, 'bob', bobId);
    const got = await drainAll(bob, 1500);
    const counts = new Map<string, number>();
    for (const d of got) counts.set(d.id!, (counts.get(d.id!) ?? 0) + 1);
    const missing = [...ackedAtKill].filter((id) => !counts.has(id));
    expect(missing).toEqual([]);
    for (const id of ackedAtKill) expect(counts.get(id)).toBe(1);
    // In send order (by first appearance).
    const order = [...counts.keys()].map((id) => ids.indexOf(id));
    expect(order.every((x, i) => x >= 0 && (i === 0 || x > order[i - 1]!))).toBe(true);
    expect(bob.violations).toEqual([]);
    await bob.close();
  });

  it('queues 20,000 pipelined messages for an offline recipient and delivers them all (speed: npm run bench)', async () => {
    const N = 20_000;
    const bobId = Identity.generate();
    const relay = await start();
    await (await RawClient.connect(relay.url, 'bob', bobId)).close();
    let acks = 0;
    let allAcked!: () => void;
    const done = new Promise<void>((r) => (allAcked = r));
    const alice = await RawClient.connect(relay.url, 'alice', Identity.generate(), {
      keep: () => false,
      onFrame: (f) => {
        if (f.t === 'ack' && ++acks === N) allAcked();
      },
    });
    const payload = body('x'.repeat(100));
    // Pipelined with a window, as a client with many outgoing messages would.
    let sent = 0;
    while (sent < N) {
      while (sent < N && sent - acks < 2000) {
        alice.fire({ t: 'send', to: 'bob', id: `m${String(sent).padStart(8, '0')}`, body: payload });
        sent++;
      }
      await new Promise((r) => setImmediate(r));
    }
    await done;
    expect(acks).toBe(N);

    let delivered = 0;
    const bob = await RawClient.connect(relay.url, 'bob', bobId, {
      keep: () => false,
      onFrame: (f) => {
        if (f.t === 'deliver') delivered++;
      },
    });
    while (delivered < N) await new Promise((r) => setTimeout(r, 20));
    await bob.close();
    await alice.close();
  });
});
