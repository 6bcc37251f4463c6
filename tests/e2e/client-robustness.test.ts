/**
 * The client under the relay's failure modes: temporary refusals, a sender key that arrives after
 * its group message, a crash while a message waits for its key, forged receipts, a second device
 * replacing the first, and an outbox re-sent in order after a restart.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRelay } from '../../src-main/relay/index.js';
import { MemoryKeyStore, MemoryStateStore, type StateStore } from '../../src-main/core/index.js';
import { SqliteStore } from '../../src-main/storage/sqlite-store.js';
import { connectClient, until } from './helpers.js';
import { startProxy } from './proxy.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

interface Frame {
  t: string;
  rid?: number;
  kind?: string;
  from?: string;
  seq?: number;
  [k: string]: unknown;
}
const json = (f: string): Frame => JSON.parse(f) as Frame;

async function relayAndProxy() {
  const relay = await startRelay({ port: 0 });
  cleanup.push(() => relay.close());
  const proxy = await startProxy(relay.url);
  cleanup.push(() => proxy.close());
  return { relay, proxy };
}

describe('client robustness', () => {
  it('a temporary refusal (RATE_LIMITED) of a send is retried, not dropped', async () => {
    const { proxy } = await relayAndProxy();
    let refused = 0;
    proxy.hooks.fromClient = (f, conn) => {
      const j = json(f);
      if (j.t === 'send' && refused === 0 && conn.userId === 'alice') {
        refused++;
        conn.toClient(
          JSON.stringify({ t: 'error', rid: j.rid, code: 'RATE_LIMITED', message: 'Slow down.' }),
        );
        return null;
      }
      return f;
    };
    const alice = await connectClient(proxy.url, 'alice');
    const bob = await connectClient(proxy.url, 'bob');
    cleanup.push(
      () => alice.client.close(),
      () => bob.client.close(),
    );
    const id = await alice.client.sendDirectMessage('bob', 'eventually');
    expect(refused).toBe(1);
    expect((await bob.rec.wait('message', (m) => m.id === id)).text).toBe('eventually');
  });

  it('a group message that arrives before its sender key is held, then decrypted, even across a restart', async () => {
    const { proxy } = await relayAndProxy();
    const heldKeys: { f: string; deliver: (f: string) => void }[] = [];
    let holdKeys = false;
    proxy.hooks.fromRelay = (f, conn) => {
      const j = json(f);
      // Hold alice's direct messages to bob (they carry her sender key) while the group message passes.
      if (
        holdKeys &&
        conn.userId === 'bob' &&
        j.t === 'deliver' &&
        j.kind === 'direct' &&
        j.from === 'alice'
      ) {
        heldKeys.push({ f, deliver: (x) => conn.toClient(x) });
        return null;
      }
      return f;
    };
    const alice = await connectClient(proxy.url, 'alice');
    cleanup.push(() => alice.client.close());
    const bobKeys = new MemoryKeyStore();
    const bobState = new MemoryStateStore();
    const bob1 = await connectClient(proxy.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    await alice.client.createGroup('g', { policy: 'open' });
    await bob1.client.joinGroup('g');
    await alice.rec.wait('groupMemberJoin');
    holdKeys = true;
    const id = await alice.client.sendGroupMessage('g', 'key comes later');
    await until(() => heldKeys.length > 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(bob1.rec.all('groupMessage')).toEqual([]);
    // bob restarts before the key arrives: the held message was not acknowledged, so it comes again
    await bob1.client.close();
    holdKeys = false;
    heldKeys.length = 0;
    const bob2 = await connectClient(proxy.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    cleanup.push(() => bob2.client.close());
    expect((await bob2.rec.wait('groupMessage', (m) => m.id === id)).text).toBe('key comes later');
    expect(bob2.rec.all('e2eeError')).toEqual([]);
  });

  it('a forged delivered receipt for a message never sent to that user is ignored', async () => {
    const { proxy } = await relayAndProxy();
    const alice = await connectClient(proxy.url, 'alice');
    const bob = await connectClient(proxy.url, 'bob', { ack: { rcvDirectMessage: true } });
    cleanup.push(
      () => alice.client.close(),
      () => bob.client.close(),
    );
    await connectClient(proxy.url, 'carol').then((c) => cleanup.push(() => c.client.close()));
    const id = await alice.client.sendDirectMessage('bob', 'hi');
    await alice.rec.wait('ack', (a) => a.id === id && a.state === 'delivered');
    const conn = proxy.connections.find((c) => c.userId === 'alice')!;
    const receipt = (from: string, rid: string, seq: number) =>
      JSON.stringify({ t: 'deliver', seq, kind: 'receipt', from, id: rid, ts: Date.now() });
    conn.toClient(receipt('carol', id, 700001)); // carol never got this message
    conn.toClient(receipt('bob', 'never-sent-0000000001', 700002));
    await new Promise((r) => setTimeout(r, 300));
    const delivered = alice.rec.all('ack').filter((a) => a.state === 'delivered');
    expect(delivered).toEqual([{ id, from: 'alice', to: 'bob', group: undefined, state: 'delivered' }]);
  });

  it('a second connection of the same user replaces the first, which does not fight back', async () => {
    const { relay } = await relayAndProxy();
    const keys = new MemoryKeyStore();
    const state = new MemoryStateStore();
    const first = await connectClient(relay.url, 'dana', { keyStore: keys, stateStore: state });
    const second = await connectClient(relay.url, 'dana', { keyStore: keys, stateStore: state });
    cleanup.push(
      () => first.client.close(),
      () => second.client.close(),
    );
    await first.rec.wait('disconnect');
    await new Promise((r) => setTimeout(r, 500));
    expect(first.client.connected).toBe(false);
    expect(second.client.connected).toBe(true);
    expect(second.rec.all('disconnect')).toEqual([]);
  });

  it('messages queued while the relay is down are re-sent in order by a restarted client', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'relay-outbox-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let relay = await startRelay({ port: 0, dataDir });
    const port = relay.port;
    cleanup.push(() => relay.close());
    // SQLite lists keys sorted, and outbox keys are random ids: the order must come from the entries.
    const store = new SqliteStore(':memory:');
    cleanup.push(() => store.close());
    const bobKeys = new MemoryKeyStore();
    const bobState = new MemoryStateStore();
    const alice1 = await connectClient(relay.url, 'alice', {
      keyStore: store.asKeyStore(),
      stateStore: store,
    });
    const bob1 = await connectClient(relay.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    await alice1.client.sendDirectMessage('bob', 'before');
    await bob1.rec.wait('message');
    await bob1.client.close();

    await relay.close();
    await alice1.rec.wait('disconnect');
    for (let i = 0; i < 20; i++)
      void alice1.client.sendDirectMessage('bob', `queued ${i}`).catch(() => undefined);
    await until(() => store.keysSync('outbox/').length === 20, 5000, 'outbox filled');
    await alice1.client.close();

    relay = await startRelay({ port, dataDir });
    const alice2 = await connectClient(relay.url, 'alice', {
      keyStore: store.asKeyStore(),
      stateStore: store,
    });
    cleanup.push(() => alice2.client.close());
    const bob2 = await connectClient(relay.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    cleanup.push(() => bob2.client.close());
    const got = await bob2.rec.waitCount('message', 20);
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 20 }, (_, i) => `queued ${i}`));
    expect(bob2.rec.all('e2eeError')).toEqual([]);
  });

  it('a crash right after the client saves a received message never loses it', async () => {
    const relay = await startRelay({ port: 0 });
    cleanup.push(() => relay.close());
    const inner = new MemoryStateStore();
    let crashed = false;
    // A store that "dies" right after committing the write that marks a message as seen: the write is
    // durable, but nothing after it runs (the promise never settles), as if the process was killed.
    const dying: StateStore = {
      get: (k) => inner.get(k),
      keys: (p) => inner.keys(p),
      write: async (changes) => {
        if (crashed) return new Promise<void>(() => undefined);
        await inner.write(changes);
        if ([...changes.keys()].some((k) => k.startsWith('seen/'))) {
          crashed = true;
          return new Promise<void>(() => undefined);
        }
      },
    };
    const bobKeys = new MemoryKeyStore();
    const alice = await connectClient(relay.url, 'alice');
    cleanup.push(() => alice.client.close());
    const bob1 = await connectClient(relay.url, 'bob', { keyStore: bobKeys, stateStore: dying });
    const id = await alice.client.sendDirectMessage('bob', 'do not lose me');
    await until(() => crashed, 5000, 'the crash');
    await new Promise((r) => setTimeout(r, 100));
    void bob1.client.close();
    // What the app saw before the crash, plus what a restarted client delivers: the message is there.
    const bob2 = await connectClient(relay.url, 'bob', { keyStore: bobKeys, stateStore: inner });
    cleanup.push(() => bob2.client.close());
    await new Promise((r) => setTimeout(r, 300));
    const seen = [...bob1.rec.all('message'), ...bob2.rec.all('message')].map((m) => m.id);
    expect(seen).toContain(id);
  });
});
