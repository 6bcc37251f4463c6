/**
 * The client acknowledges a delivered message only once its state is stored (issue 11): bob's state
 * store refuses writes (as a full disk does) while alice's messages arrive. Nothing is acknowledged that
 * was not stored, nothing later on that connection is handled, and after a reconnect with a working
 * store every message decrypts (the state in memory was read back from the store) exactly once more.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStateStore } from '../../src-main/core/index.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { connectClient, until } from './helpers.js';

/** A state store whose writes fail like SQLite's on a full disk while `failing` is set. */
class FlakyStateStore extends MemoryStateStore {
  failing = false;
  failures = 0;
  override async write(changes: ReadonlyMap<string, Uint8Array | null>): Promise<void> {
    if (this.failing) {
      this.failures++;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    return super.write(changes);
  }
}

let relay: Relay;
beforeAll(async () => {
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await relay.close();
});

describe('acknowledging only what was stored', () => {
  it('a failed write stalls delivery until the next connection, which brings everything again', async () => {
    const store = new FlakyStateStore();
    const bob = await connectClient(relay.url, 'bob', { stateStore: store });
    const alice = await connectClient(relay.url, 'alice');
    const got: string[] = [];
    const errors: unknown[] = [];
    bob.client.on('message', (m) => got.push(m.text));
    bob.client.on('error', (e) => errors.push(e));
    bob.client.on('e2eeError', (e) => errors.push(e));

    await alice.client.sendDirectMessage('bob', 'm0');
    await until(() => got.length === 1, 10_000, 'm0');

    store.failing = true;
    for (let i = 1; i <= 5; i++) await alice.client.sendDirectMessage('bob', `m${i}`);
    await until(() => errors.length > 0, 10_000, 'the failed write');
    // m1 was shown before its write failed ("shown first, then remembered"); nothing after it was handled.
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual(['m0', 'm1']);
    expect(store.failures).toBe(1);

    store.failing = false;
    await bob.client.close();
    await bob.client.connect();
    await until(() => got.length === 7, 10_000, 'm1..m5 again');
    // m1 comes again (not acknowledged) and decrypts again: its ratchet step was never stored.
    expect(got).toEqual(['m0', 'm1', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(errors.filter((e) => (e as { code?: string }).code !== 'SQLITE_FULL')).toEqual([]);

    // Nothing is delivered a third time: everything was acknowledged once stored.
    await bob.client.close();
    await bob.client.connect();
    await alice.client.sendDirectMessage('bob', 'm6');
    await until(() => got.length === 8, 10_000, 'm6');
    expect(got.at(-1)).toBe('m6');
    await alice.client.close();
    await bob.client.close();
  });
});
