/** Direct delivery: live forwarding, the durable queue, redelivery until `received`, receipts. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient, body, msgId, unbody, type Deliver } from './raw-client.js';

let relay: Relay;
const alice = Identity.generate();
const bob = Identity.generate();

beforeEach(async () => {
  relay = await startRelay({
    port: 0,
    rateLimit: { framesPerSecond: 100_000, burst: 100_000 },
  });
});
afterEach(async () => {
  await relay.close();
});

const connect = (userId: string, identity: Identity, autoReceive = true): Promise<RawClient> =>
  RawClient.connect(relay.url, userId, identity, { autoReceive, keep: (f) => f.t !== 'event' });

describe('direct routing', () => {
  it('forwards to an online recipient and acks sent', async () => {
    const a = await connect('alice', alice);
    const b = await connect('bob', bob);
    const id = msgId();
    const ack = await a.request({ t: 'send', to: 'bob', id, body: body('hi') });
    expect(ack).toEqual({ t: 'ack', rid: 1, id, to: 'bob', state: 'sent' });
    const d = (await b.next((f) => f.t === 'deliver')) as Deliver;
    expect(d).toMatchObject({ kind: 'direct', from: 'alice', id, ts: expect.any(Number) });
    expect(unbody(d.body)).toBe('hi');
    expect(a.violations).toEqual([]);
    expect(b.violations).toEqual([]);
  });

  it('refuses an unknown recipient', async () => {
    const a = await connect('alice', alice);
    expect(await a.request({ t: 'send', to: 'nobody', id: msgId(), body: body('x') })).toMatchObject({
      t: 'error',
      rid: 1,
      code: 'UNKNOWN_USER',
    });
    a.send({ t: 'receipt', to: 'nobody', id: msgId() });
    expect(await a.next((f) => f.t === 'error')).toMatchObject({ code: 'UNKNOWN_USER' });
  });

  it('queues for an offline recipient and delivers in order; redelivers until received', async () => {
    await (await connect('bob', bob)).close();
    const a = await connect('alice', alice);
    const ids = Array.from({ length: 300 }, () => msgId());
    const acks = await Promise.all(
      ids.map((id, i) => a.request({ t: 'send', to: 'bob', id, body: body(`m${i}`) })),
    );
    expect(acks.every((r) => r.t === 'ack')).toBe(true);

    // First connection does not acknowledge: everything must come again.
    const b1 = await connect('bob', bob, false);
    const first = await b1.delivers(300);
    expect(first.map((d) => d.id)).toEqual(ids);
    expect(first.map((d) => unbody(d.body))).toEqual(ids.map((_, i) => `m${i}`));
    const seqs = first.map((d) => d.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    // Acknowledge only the first 100.
    for (const d of first.slice(0, 100)) b1.send({ t: 'received', seq: d.seq });
    await b1.request({ t: 'groupLog', group: 'sync-point', from: 0 }); // replies after the deletes commit
    await b1.close();

    const b2 = await connect('bob', bob);
    const second = await b2.delivers(200);
    expect(second.map((d) => d.id)).toEqual(ids.slice(100));
    await b2.request({ t: 'groupLog', group: 'sync-point', from: 0 });
    await b2.close();

    const b3 = await connect('bob', bob);
    await expect(b3.next((f) => f.t === 'deliver', 300)).rejects.toThrow(/no matching frame/);
  });

  it('keeps arrival order when messages arrive while the queue drains', async () => {
    await (await connect('bob', bob)).close();
    const a = await connect('alice', alice);
    const ids = Array.from({ length: 2000 }, () => msgId());
    await Promise.all(
      ids.slice(0, 1000).map((id) => a.request({ t: 'send', to: 'bob', id, body: body(id) })),
    );
    const b = await connect('bob', bob);
    await Promise.all(ids.slice(1000).map((id) => a.request({ t: 'send', to: 'bob', id, body: body(id) })));
    const got = await b.delivers(2000);
    expect(got.map((d) => d.id)).toEqual(ids);
  });

  it('sends live items the recipient did not acknowledge again on its next connection, once', async () => {
    const a = await connect('alice', alice);
    const b1 = await connect('bob', bob, false);
    const [id1, id2, id3] = [msgId(), msgId(), msgId()];
    for (const [id, text] of [
      [id1, 'one'],
      [id2, 'two'],
      [id3, 'three'],
    ] as const)
      await a.request({ t: 'send', to: 'bob', id, body: body(text) });
    const live = await b1.delivers(3);
    expect(live.map((d) => d.id)).toEqual([id1, id2, id3]);
    b1.send({ t: 'received', seq: live[1]!.seq }); // only the second one
    await b1.request({ t: 'groupLog', group: 'sync-point', from: 0 }); // replies after the delete commits
    // Nothing is forwarded twice on the same connection.
    await expect(b1.next((f) => f.t === 'deliver', 300)).rejects.toThrow(/no matching frame/);
    await b1.close();

    const b2 = await connect('bob', bob);
    const again = await b2.delivers(2);
    expect(again.map((d) => [d.id, d.seq])).toEqual([
      [id1, live[0]!.seq],
      [id3, live[2]!.seq],
    ]);
    await expect(b2.next((f) => f.t === 'deliver', 300)).rejects.toThrow(/no matching frame/);
  });

  it('closes a slow consumer (1008) and queues what it had not acknowledged', async () => {
    const a = await connect('alice', alice);
    const b1 = await connect('bob', bob, false);
    b1.ws.pause(); // stops reading: TCP buffers fill, then the relay's send buffer
    const big = 'A'.repeat(200 * 1024);
    const ids = Array.from({ length: 60 }, () => msgId());
    for (const id of ids)
      expect(await a.request({ t: 'send', to: 'bob', id, body: big })).toMatchObject({ t: 'ack' });
    b1.ws.resume();
    expect(await b1.closed).toEqual({ code: 1008, reason: 'slow consumer' });
    const b2 = await connect('bob', bob);
    const got = new Set<string>();
    while (got.size < ids.length) got.add(((await b2.next((f) => f.t === 'deliver')) as Deliver).id!);
    expect([...got].sort()).toEqual([...ids].sort());
  });

  it('routes receipts as durable deliveries from the sender', async () => {
    const a = await connect('alice', alice);
    await (await connect('bob', bob)).close();
    const id = msgId();
    a.send({ t: 'receipt', to: 'bob', id });
    a.send({ t: 'receipt', to: 'bob', id, group: 'g1' });
    await a.request({ t: 'groupLog', group: 'sync', from: 0 });
    const b = await connect('bob', bob);
    const [r1, r2] = await b.delivers(2);
    expect(r1).toMatchObject({ kind: 'receipt', from: 'alice', id });
    expect(r1!.group).toBeUndefined();
    expect(r2).toMatchObject({ kind: 'receipt', from: 'alice', id, group: 'g1' });
  });

  it('never lets a client acknowledge (delete) another user’s queued items', async () => {
    await (await connect('bob', bob)).close();
    const a = await connect('alice', alice);
    const id = msgId();
    await a.request({ t: 'send', to: 'bob', id, body: body('x') });
    for (let seq = 1; seq < 50; seq++) a.send({ t: 'received', seq });
    await a.request({ t: 'groupLog', group: 'sync', from: 0 });
    const b = await connect('bob', bob);
    expect(((await b.next((f) => f.t === 'deliver')) as Deliver).id).toBe(id);
  });

  it('deletes an account: queue gone, others told, socket closed, the id free again', async () => {
    const a = await connect('alice', alice);
    const b = await connect('bob', bob);
    const watcher = await RawClient.connect(relay.url, 'carol', Identity.generate());
    expect(await b.deleteAccount()).toEqual({ t: 'ok', rid: 2 }); // rid 1: its challenge
    expect((await b.closed).code).toBe(1000);
    expect(await watcher.next((f) => f.t === 'event' && f.event.type === 'userDeleted')).toMatchObject({
      event: { userId: 'bob' },
    });
    expect(await a.request({ t: 'send', to: 'bob', id: msgId(), body: body('x') })).toMatchObject({
      code: 'UNKNOWN_USER',
    });
    // The id is free again, for a new identity.
    const newBob = await RawClient.connect(relay.url, 'bob', Identity.generate());
    expect(newBob.ready).toMatchObject({ registered: true, groups: [] });
  });
});
