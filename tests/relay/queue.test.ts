/**
 * The delivery queue's contract (src-main/relay/queue/index.ts), run against every backend: the
 * SQLite one (a worker thread writing <dir>/queue.sqlite) and the in-memory one. Then what only the
 * SQLite backend promises: items survive a reopen, one relay per file, and the move of a queue kept
 * by earlier relays inside relay.sqlite.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryQueue, OnAcknowledged, QueueItem } from '../../src-main/relay/queue/index.js';
import { MemoryDeliveryQueue } from '../../src-main/relay/queue/memory.js';
import { SqliteDeliveryQueue } from '../../src-main/relay/queue/sqlite.js';
import { QUEUE_FILE, Store } from '../../src-main/relay/store.js';

let dir: string;
const opened: DeliveryQueue[] = [];
const errors: unknown[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'relay-queue-'));
  errors.length = 0;
});
afterEach(async () => {
  for (const q of opened.splice(0)) await q.close();
  rmSync(dir, { recursive: true, force: true });
});

const item = (seq: number, recipient = 'bob', body: string | undefined = `Ym9keS0${seq}`): QueueItem => ({
  seq,
  recipient,
  kind: 'direct',
  from: 'alice',
  id: `message-${seq}`,
  body,
  ts: 1_700_000_000_000 + seq,
});

const backends: [string, (onAcknowledged?: OnAcknowledged) => Promise<DeliveryQueue>][] = [
  ['sqlite', (onAck) => SqliteDeliveryQueue.open(join(dir, QUEUE_FILE), (e) => errors.push(e), onAck)],
  ['memory', async (onAck) => new MemoryDeliveryQueue(onAck)],
];

describe.each(backends)('DeliveryQueue contract: %s', (_name, open) => {
  const make = async (onAcknowledged?: OnAcknowledged): Promise<DeliveryQueue> => {
    const q = await open(onAcknowledged);
    opened.push(q);
    return q;
  };
  const durable = (q: DeliveryQueue): Promise<unknown> =>
    new Promise((resolve) => q.afterDurable((err) => resolve(err)));

  it('pages see every write called before them, in seq order, per recipient', async () => {
    const q = await make();
    for (let seq = 1; seq <= 10; seq++) q.enqueue(item(seq, seq % 2 ? 'bob' : 'carol'));
    q.dequeue('bob', 3);
    q.dequeue('carol', 5); // bob's seq: carol cannot delete it
    q.dequeue('bob', 99); // unknown: nothing
    const bob = q.page('bob', 0, 100);
    q.enqueue(item(11, 'bob')); // after the read was asked for: not in it
    expect((await bob).map((i) => i.seq)).toEqual([1, 5, 7, 9]);
    expect((await q.page('bob', 5, 2)).map((i) => i.seq)).toEqual([7, 9]);
    expect((await q.page('bob', 9, 10)).map((i) => i.seq)).toEqual([11]);
    expect((await q.page('carol', 0, 100)).map((i) => i.seq)).toEqual([2, 4, 6, 8, 10]);
    expect(await q.page('nobody', 0, 100)).toEqual([]);
  });

  it('returns items exactly as stored, events and bodies shared by a fan-out included', async () => {
    const q = await make();
    const body = 'QUJD'.repeat(1000);
    const members = ['m1', 'm2', 'm3'];
    members.forEach((m, i) => q.enqueue({ ...item(i + 1, m, body), kind: 'group', group: 'g' }));
    const event: QueueItem = {
      seq: 4,
      recipient: 'm1',
      kind: 'event',
      event: JSON.stringify({ type: 'groupMemberJoin', group: 'g', userId: 'm4' }),
      ts: 5,
    };
    q.enqueue(event);
    const m1 = await q.page('m1', 0, 10);
    expect(m1).toEqual([{ ...item(1, 'm1', body), kind: 'group', group: 'g' }, event]);
    expect((await q.page('m3', 0, 10))[0]!.body).toBe(body);
  });

  it('deletes every item of a recipient', async () => {
    const q = await make();
    for (let seq = 1; seq <= 5; seq++) q.enqueue(item(seq));
    q.enqueue(item(6, 'carol'));
    q.deleteRecipient('bob');
    expect(await q.page('bob', 0, 10)).toEqual([]);
    expect((await q.page('carol', 0, 10)).map((i) => i.seq)).toEqual([6]);
  });

  it('counts the items and payload bytes it holds, and reports each acknowledged item once', async () => {
    const acknowledged: number[] = [];
    const q = await make((ts) => acknowledged.push(ts));
    expect(q.stats()).toEqual({ items: 0, bytes: 0 });
    const event = JSON.stringify({ type: 'groupMemberJoin', group: 'g', userId: 'm4' });
    for (let seq = 1; seq <= 4; seq++) q.enqueue(item(seq, seq === 4 ? 'carol' : 'bob', 'QUJD'.repeat(seq)));
    q.enqueue({ seq: 5, recipient: 'bob', kind: 'event', event, ts: 5 });
    await durable(q);
    expect(q.stats()).toEqual({ items: 5, bytes: 4 * (1 + 2 + 3 + 4) + event.length });
    q.dequeue('bob', 2);
    q.dequeue('bob', 2); // already gone: nothing
    q.dequeue('carol', 1); // bob's: nothing
    q.dequeue('bob', 5);
    await durable(q);
    expect(acknowledged).toEqual([item(2).ts, 5]);
    expect(q.stats()).toEqual({ items: 3, bytes: 4 * (1 + 3 + 4) });
    q.deleteRecipient('bob'); // an account deleted: gone, but nobody acknowledged them
    await durable(q);
    expect(q.stats()).toEqual({ items: 1, bytes: 16 });
    expect(acknowledged).toHaveLength(2);
  });

  it('moves a user to its canonical id: the items it receives and the items it sent', async () => {
    const q = await make();
    q.enqueue(item(1, 'Bob'));
    q.enqueue(item(2, 'bob'));
    q.enqueue(item(3, 'Bob'));
    q.enqueue({ ...item(4, 'carol'), from: 'Bob' });
    q.renameUser('Bob', 'bob');
    expect(await q.page('Bob', 0, 10)).toEqual([]);
    expect((await q.page('bob', 0, 10)).map((i) => [i.seq, i.recipient])).toEqual([
      [1, 'bob'],
      [2, 'bob'],
      [3, 'bob'],
    ]);
    expect((await q.page('carol', 0, 10)).map((i) => i.from)).toEqual(['bob']);
    expect(q.usage('bob')).toMatchObject({ items: 3 });
    expect(q.usage('Bob')).toEqual({ items: 0, bytes: 0 });
  });

  it('runs afterDurable callbacks once their writes are durable, in registration order', async () => {
    const q = await make();
    const order: string[] = [];
    q.enqueue(item(1));
    q.afterDurable((err) => order.push(`a:${String(err)}`));
    q.afterDurable((err) => order.push(`b:${String(err)}`));
    await new Promise((r) => setImmediate(r)); // the first batch goes out
    q.enqueue(item(2));
    q.afterDurable((err) => order.push(`c:${String(err)}`));
    expect(await durable(q)).toBeUndefined();
    expect(order).toEqual(['a:undefined', 'b:undefined', 'c:undefined']);
  });
});

describe('SqliteDeliveryQueue', () => {
  const file = (): string => join(dir, QUEUE_FILE);

  it('keeps what was durable across a reopen, and reports the highest seq and what it holds', async () => {
    let all300Bytes = 0;
    for (let seq = 1; seq <= 300; seq++) all300Bytes += item(seq).body!.length;
    const q1 = await SqliteDeliveryQueue.open(file(), (e) => errors.push(e));
    for (let seq = 1; seq <= 300; seq++) q1.enqueue(item(seq));
    q1.dequeue('bob', 2);
    await new Promise<void>((resolve) => q1.afterDurable(() => resolve()));
    await q1.close();
    const q2 = await SqliteDeliveryQueue.open(file(), (e) => errors.push(e));
    opened.push(q2);
    expect(q2.maxSeq).toBe(300);
    expect(q2.stats()).toEqual({ items: 299, bytes: all300Bytes - item(2).body!.length });
    const all = await q2.page('bob', 0, 1000);
    expect(all).toHaveLength(299);
    expect(all[0]).toEqual(item(1));
    expect(all[1]!.seq).toBe(3);
    expect(errors).toEqual([]);
  });

  it('refuses a second queue on the same file while the first is open', async () => {
    const q1 = await SqliteDeliveryQueue.open(file(), (e) => errors.push(e));
    opened.push(q1);
    await expect(SqliteDeliveryQueue.open(file(), (e) => errors.push(e))).rejects.toThrow(
      /in use by another relay/,
    );
  });

  it('moves the deliveries an earlier relay kept in relay.sqlite into the queue, once', async () => {
    // relay.sqlite as relays before the split wrote it: the queue table with AUTOINCREMENT.
    const legacy = new Database(join(dir, 'relay.sqlite'));
    legacy.exec(`CREATE TABLE queue (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      recipient TEXT NOT NULL, kind TEXT NOT NULL, sender TEXT, grp TEXT, msg_id TEXT,
      body TEXT, event TEXT, ts INTEGER NOT NULL)`);
    const insert = legacy.prepare(
      'INSERT INTO queue (seq, recipient, kind, sender, grp, msg_id, body, event, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (const seq of [4, 9, 12])
      insert.run(
        seq,
        'bob',
        'direct',
        'alice',
        null,
        `message-${seq}`,
        `Ym9keS0${seq}`,
        null,
        1_700_000_000_000 + seq,
      );
    legacy.close();

    const store = Store.open(dir, (e) => errors.push(e));
    store.close();
    const q = await SqliteDeliveryQueue.open(file(), (e) => errors.push(e));
    opened.push(q);
    expect(q.maxSeq).toBe(12);
    expect(await q.page('bob', 0, 10)).toEqual([item(4), item(9), item(12)]);
    const after = new Database(join(dir, 'relay.sqlite'));
    expect(after.prepare("SELECT name FROM sqlite_master WHERE name = 'queue'").all()).toEqual([]);
    after.close();
    expect(errors).toEqual([]);
  });
});
