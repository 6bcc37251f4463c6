/**
 * Offline durability with real clients: 1,000 encrypted messages to an offline user while the relay
 * process is SIGKILLed midway and restarted on the same data. Every message the sender saw acked as
 * 'sent' reaches the user exactly once and in order; the rest are re-sent from the client's outbox.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryKeyStore, MemoryStateStore } from '../../src-main/core/index.js';
import { startRelay } from '../../src-main/relay/index.js';
import { spawnRelay, type ChildRelay } from '../relay/spawn.js';
import { startProxy } from './proxy.js';
import { connectClient, until } from './helpers.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('offline durability through a relay crash', () => {
  it('1,000 messages to an offline user, relay SIGKILLed midway: acked ones arrive exactly once, in order', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'relay-crash-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let relay: ChildRelay = await spawnRelay({ port: 0, dataDir });
    const port = relay.port;
    cleanup.push(() => {
      relay.child.kill('SIGKILL');
    });

    const bobKeys = new MemoryKeyStore();
    const bobState = new MemoryStateStore();
    const bob0 = await connectClient(relay.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    await bob0.client.close(); // bob is registered, with prekeys published, and offline

    const alice = await connectClient(relay.url, 'alice');
    cleanup.push(() => alice.client.close());
    const sentAcks: string[] = [];
    alice.client.on('ack', (a) => {
      if (a.state === 'sent') sentAcks.push(a.id);
    });

    const N = 1000;
    const ids: string[] = [];
    let ackedAtKill = 0;
    const sends: Promise<string>[] = [];
    for (let i = 0; i < N; i++) {
      const p = alice.client.sendDirectMessage('bob', `message ${i}`);
      sends.push(p);
      void p.then((id) => (ids[i] = id));
      if (i === N / 2) {
        // Kill the relay while messages are in flight, then bring it back on the same data and port.
        await until(() => sentAcks.length > 100, 20_000, 'some acks before the crash');
        relay.child.kill('SIGKILL');
        ackedAtKill = sentAcks.length;
        await relay.exited;
        relay = await spawnRelay({ port, dataDir });
      }
    }
    await Promise.all(sends); // every send resolves once the restarted relay accepted it
    expect(ids.filter(Boolean)).toHaveLength(N);
    expect(new Set(sentAcks).size).toBe(N);
    expect(ackedAtKill).toBeGreaterThan(100);
    expect(ackedAtKill).toBeLessThan(N); // killed midway

    const bob = await connectClient(relay.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    cleanup.push(() => bob.client.close());
    const got = await bob.rec.waitCount('message', N, () => true, 60_000);
    await new Promise((r) => setTimeout(r, 300)); // nothing more (no duplicate) arrives
    const all = bob.rec.all('message');
    expect(all).toHaveLength(N);
    expect(all.map((m) => m.text)).toEqual(Array.from({ length: N }, (_, i) => `message ${i}`));
    expect(got.map((m) => m.id)).toEqual(ids);
    expect(bob.rec.all('e2eeError')).toEqual([]);
  });
});

describe('group events through a client crash', () => {
  it('an entry applied but not acknowledged before a crash is redelivered and shown once', async () => {
    const relay = await startRelay({ port: 0 });
    cleanup.push(() => relay.close());
    const proxy = await startProxy(relay.url);
    cleanup.push(() => proxy.close());
    const aliceOpts = { keyStore: new MemoryKeyStore(), stateStore: new MemoryStateStore() };
    const alice = await connectClient(proxy.url, 'alice', aliceOpts);
    await alice.client.createGroup('team', { policy: 'open' });
    // alice applies what arrives but the relay never hears she received it: as if she crashed
    // between storing the change and sending `received`.
    proxy.hooks = { fromClient: (f) => (f.includes('"t":"received"') ? null : f) };
    const bob = await connectClient(relay.url, 'bob');
    cleanup.push(() => bob.client.close());
    await bob.client.joinGroup('team');
    await alice.rec.wait('groupMemberJoin', (e) => e.userId === 'bob');
    await alice.client.close();

    let redelivered = 0;
    proxy.hooks = {
      fromRelay: (f) => {
        if (f.includes('"t":"deliver"') && f.includes('"type":"groupEntry"')) redelivered++;
        return f;
      },
    };
    const again = await connectClient(proxy.url, 'alice', aliceOpts);
    cleanup.push(() => again.client.close());
    // The relay delivers the entry again; alice has it (same epoch, same entry) and says nothing.
    const id = await bob.client.sendGroupMessage('team', 'after the crash');
    await again.rec.wait('groupMessage', (m) => m.id === id);
    expect(redelivered).toBeGreaterThanOrEqual(1);
    expect(again.rec.all('groupMemberJoin')).toEqual([]);
    expect(
      again.client
        .listGroups()
        .find((g) => g.group === 'team')
        ?.members.slice()
        .sort(),
    ).toEqual(['alice', 'bob']);
    expect(again.rec.all('e2eeError')).toEqual([]);
  });
});
