/**
 * Issue 9, abuse resistance on the relay, tried as an abusive user would (with lowered limits so the
 * tests stay small): a mass of throwaway accounts cannot lock a group or its creator out, a flood of
 * group messages cannot fill the disk, bundle requests cannot drain someone's one-time prekeys, and one
 * address cannot open connections or register accounts without bound. Every refusal is a typed error
 * with a sentence; nothing already accepted is lost.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { EntryType, JoinPolicy } from '../../src-main/core/crypto/membership.js';
import { MemoryKeyStore, MemoryStateStore } from '../../src-main/core/index.js';
import { decodePreKeyBundle } from '../../src-main/core/crypto/x3dh.js';
import { unb64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay, type RelayOptions } from '../../src-main/relay/index.js';
import { connectClient } from '../e2e/helpers.js';
import { scrape } from './http-get.js';
import { Budget } from '../../src-main/relay/limits.js';
import { RawClient, TestGroup, body, msgId, type Deliver } from './raw-client.js';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relay(options: RelayOptions): Promise<Relay> {
  const r = await startRelay({ port: 0, ...options });
  cleanup.push(() => r.close());
  return r;
}

const people = new Map<string, { id: string; identity: Identity }>();
const who = (id: string): { id: string; identity: Identity } => {
  if (!people.has(id)) people.set(id, { id, identity: Identity.generate() });
  return people.get(id)!;
};
async function raw(r: Relay, id: string): Promise<RawClient> {
  const c = await RawClient.connect(r.url, id, who(id).identity, { keep: (f) => f.t !== 'event' });
  cleanup.push(() => c.close());
  return c;
}

/** `by`'s next entry in `g`, inviting `userId`. */
const inviteEntry = (g: TestGroup, by: string, userId: string): Uint8Array =>
  g.next(who(by), { type: EntryType.INVITE, userId, identity: who(userId).identity.publicIdentity });

/** `times` rounds of `by` inviting `userId` into `g` and removing them again; every entry accepted. */
async function churn(g: TestGroup, c: RawClient, by: string, userId: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    expect(await g.append(c, inviteEntry(g, by, userId))).toMatchObject({ t: 'ok' });
    expect(await g.append(c, g.next(who(by), { type: EntryType.REMOVE, userId }))).toMatchObject({ t: 'ok' });
  }
}

/** Bytes of every file under `dir`. */
function diskUse(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) n += statSync(join(dir, f)).size;
  return n;
}

describe('abuse resistance on the relay', () => {
  it('throwaway accounts cannot lock a group: the roster is capped and ready stays small', async () => {
    const r = await relay({ limits: { groupMembers: 20, groupsPerUser: 3 } });
    const alice = await raw(r, 'alice');
    const { group, genesis } = TestGroup.create('lobby', who('alice'), JoinPolicy.OPEN);
    await group.append(alice, genesis);
    const results: string[] = [];
    for (let i = 0; i < 30; i++) {
      const bot = await raw(r, `bot${i}`);
      const reply = await group.append(bot, group.join(who(`bot${i}`)));
      results.push(reply.t === 'ok' ? 'ok' : String(reply.code));
      await bot.close();
    }
    expect(results.filter((x) => x === 'ok')).toHaveLength(19);
    expect(results.slice(19)).toEqual(Array(11).fill('GROUP_FULL'));
    // The creator still gets in (a ready frame of a few hundred bytes, whatever the roster), and can
    // remove people and delete the group.
    let readyBytes = 0;
    const again = await RawClient.connect(r.url, 'alice', who('alice').identity, {
      onFrame: (f) => {
        if (f.t === 'ready') readyBytes = JSON.stringify(f).length;
      },
    });
    cleanup.push(() => again.close());
    expect(readyBytes).toBeGreaterThan(0);
    expect(readyBytes).toBeLessThan(400);
    expect(
      await group.append(again, group.next(who('alice'), { type: EntryType.REMOVE, userId: 'bot0' })),
    ).toMatchObject({ t: 'ok' });
    expect(await group.append(again, group.next(who('alice'), { type: EntryType.DELETE }))).toMatchObject({
      t: 'ok',
    });
    // One person cannot be put on more than groupsPerUser groups.
    for (const name of ['g1', 'g2', 'g3']) {
      const { group: g, genesis: gen } = TestGroup.create(name, who('carol'));
      expect(await g.append(await raw(r, 'carol'), gen)).toMatchObject({ t: 'ok' });
    }
    const { group: g4, genesis: gen4 } = TestGroup.create('g4', who('carol'));
    expect(await g4.append(await raw(r, 'carol'), gen4)).toMatchObject({
      code: 'QUOTA',
      message: expect.stringMatching(/3 groups/),
    });
  });

  it('a flood of group messages to offline members stays within their mailbox quota, with a clear refusal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-quota-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const QUOTA = 2 * 1024 * 1024;
    const r = await relay({
      dataDir: dir,
      // The fan-out budget would slow this sender down (its own test below): off here.
      limits: { queuedBytesPerRecipient: QUOTA, groupFanoutBytesPerMinute: Infinity },
      rateLimit: { framesPerSecond: 1e6, burst: 1e6 },
    });
    const sender = await raw(r, 'sender');
    const { group, genesis } = TestGroup.create('flood', who('sender'), JoinPolicy.OPEN);
    await group.append(sender, genesis);
    for (let i = 0; i < 20; i++) {
      const m = await raw(r, `member${i}`);
      await group.append(m, group.join(who(`member${i}`)));
      await m.close(); // offline from now on
    }
    const bigBody = Buffer.alloc(175 * 1024, 0xab).toString('base64'); // ~234 KiB of base64
    const acks = [];
    for (let i = 0; i < 50; i++)
      acks.push(await sender.request({ t: 'groupSend', group: 'flood', id: msgId(), body: bigBody }));
    expect(acks.every((a) => a.t === 'ack')).toBe(true);
    // The first messages reached everyone; once a mailbox was full, the sender is told who misses them.
    expect(acks[0]!.skipped).toBeUndefined();
    expect(acks.at(-1)!.skipped).toHaveLength(20);
    const fitting = Math.floor(QUOTA / bigBody.length);
    expect(acks.filter((a) => a.skipped === undefined)).toHaveLength(fitting);
    // The disk holds the quota for each member, not 50 messages each (plus SQLite's own overhead).
    await sender.request({ t: 'groupLog', group: 'sync', from: 0 });
    expect(diskUse(dir)).toBeLessThan(20 * QUOTA * 1.6);
    // A direct message to a full mailbox is refused with a sentence; nothing is queued for it.
    expect(await sender.request({ t: 'send', to: 'member0', id: msgId(), body: bigBody })).toMatchObject({
      code: 'MAILBOX_FULL',
      message: expect.stringMatching(/member0's mailbox on this relay is full/),
    });
    // When member0 reads its mailbox, there is room again, and everything it was sent is there.
    const m0 = await RawClient.connect(r.url, 'member0', who('member0').identity);
    cleanup.push(() => m0.close());
    const got: Deliver[] = [];
    for (;;) {
      try {
        got.push((await m0.next((f) => f.t === 'deliver', 500)) as Deliver);
      } catch {
        break;
      }
    }
    expect(got.filter((d) => d.kind === 'group')).toHaveLength(fitting);
    await m0.request({ t: 'groupLog', group: 'sync', from: 0 });
    await new Promise((res) => setTimeout(res, 100));
    expect(
      await sender.request({ t: 'send', to: 'member0', id: msgId(), body: body('room again') }),
    ).toMatchObject({ t: 'ack' });
  });

  it('bundle requests cannot drain someone’s one-time prekeys; a drained user gets new ones at the next connection', async () => {
    const r = await relay({ limits: { oneTimePreKeysPerTargetPerMinute: 30 } });
    const keyStore = new MemoryKeyStore();
    const stateStore = new MemoryStateStore();
    await (await connectClient(r.url, 'victim', { keyStore, stateStore })).client.close();
    const thief = await raw(r, 'thief');
    let handedOut = 0;
    for (let i = 0; i < 120; i++) {
      const reply = await thief.request({ t: 'getBundle', userId: 'victim' });
      expect(reply.t).toBe('ok');
      if (decodePreKeyBundle(unb64(reply.bundle as string)).oneTimePreKey) handedOut++;
    }
    // Every request was answered (a session can still start), but only the budget's worth of keys went.
    expect(handedOut).toBe(30);

    // Without the budgets, someone can take every key, again and again: five rounds of 100 leave the
    // victim holding 500 private keys the relay gave away. The next connection still puts 100 new up.
    const open = await relay({
      limits: {
        oneTimePreKeysPerTargetPerMinute: Infinity,
        oneTimePreKeysPerRequesterPerMinute: Infinity,
        bundleRequestsPerMinute: Infinity,
      },
    });
    const thief2 = await raw(open, 'thief');
    const identity = Identity.deserialize((await keyStore.get('identity'))!);
    const stock = async (): Promise<number> => {
      const c = await RawClient.connect(open.url, 'victim', identity, { keep: () => false });
      const n = c.ready!.oneTimePreKeyCount;
      await c.close();
      return n;
    };
    for (let round = 0; round < 6; round++) {
      await (await connectClient(open.url, 'victim', { keyStore, stateStore })).client.close();
      expect(await stock()).toBe(100);
      for (let i = 0; i < 100; i++) await thief2.request({ t: 'getBundle', userId: 'victim' });
      expect(await stock()).toBe(0);
    }
  });

  it('one address cannot open connections or register accounts without bound', async () => {
    const r = await relay({
      limits: { limitLoopback: true, connectionsPerIpPerMinute: 8, registrationsPerIpPerMinute: 3 },
    });
    const registered: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await RawClient.open(r.url);
      cleanup.push(() => c.close());
      const answer = await c.handshake(`new${i}`, Identity.generate());
      registered.push(answer.t === 'ready' ? 'ready' : `${(answer as { code: string }).code}`);
    }
    expect(registered).toEqual(['ready', 'ready', 'ready', 'RATE_LIMITED']);
    // 4 connections so far; 4 more are let in, then the upgrade is refused with 429.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      statuses.push(
        await new Promise<number>((resolve) => {
          const ws = new WebSocket(r.url);
          ws.on('open', () => {
            resolve(101);
            ws.close();
          });
          ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.on('error', () => undefined);
        }),
      );
    }
    expect(statuses).toEqual([101, 101, 101, 101, 429, 429]);
    // The operator sees each refusal: the registration and the two upgrades.
    expect((await scrape(r.url)).get('sealed_relay_refusals_total{code="RATE_LIMITED"}')).toBe(3);
  });

  it('a user over the group fan-out budget is slowed down, never refused, and nothing is lost or reordered', async () => {
    let clock = 1_700_000_000_000;
    const r = await relay({ now: () => clock, limits: { groupFanoutBytesPerMinute: 300_000 } });
    const a = await raw(r, 'alice');
    const b = await raw(r, 'bob');
    const { group, genesis } = TestGroup.create('g', who('alice'), JoinPolicy.OPEN);
    await group.append(a, genesis);
    await group.append(b, group.join(who('bob')));
    const chunk = Buffer.alloc(75_000, 1).toString('base64'); // 100 KB of base64 each
    const ids = Array.from({ length: 6 }, () => msgId());
    const acked: string[] = [];
    const pending = ids.map((id) =>
      a.request({ t: 'groupSend', group: 'g', id, body: chunk }, 30_000).then((reply) => {
        acked.push(reply.t === 'ack' ? reply.id : String(reply.code));
      }),
    );
    await new Promise((res) => setTimeout(res, 1500));
    expect(acked).toEqual(ids.slice(0, 3)); // the budget's worth, then the sender waits
    clock += 60_000; // a minute later the budget has refilled
    await Promise.all(pending);
    expect(acked).toEqual(ids);
    const got = await b.delivers(7); // bob's own JOIN entry, then the six
    expect(got.filter((d) => d.kind === 'group').map((d) => d.id)).toEqual(ids);
  });
});

describe('abuse resistance on the relay: what review found', () => {
  /** Every delivery waiting for `c` (stops once none comes for 700 ms). */
  async function drainAll(c: RawClient): Promise<Deliver[]> {
    const got: Deliver[] = [];
    for (;;) {
      try {
        got.push((await c.next((f) => f.t === 'deliver', 700)) as Deliver);
      } catch {
        return got;
      }
    }
  }

  it('receipts count against the mailbox quota: a flood of them to an offline user stays within it', async () => {
    const r = await relay({ limits: { queuedItemsPerRecipient: 5 } });
    await (await raw(r, 'bob')).close();
    const alice = await raw(r, 'alice');
    for (let i = 0; i < 3; i++)
      expect(await alice.request({ t: 'send', to: 'bob', id: msgId(), body: body('x') })).toMatchObject({
        t: 'ack',
      });
    for (let i = 0; i < 200; i++) alice.send({ t: 'receipt', to: 'bob', id: msgId() });
    await alice.request({ t: 'deleteAccountChallenge' }); // answered after every receipt before it
    const got = await drainAll(await raw(r, 'bob'));
    expect(got).toHaveLength(5);
    expect(got.filter((d) => d.kind === 'direct')).toHaveLength(3); // the messages came first and stay
  });

  it('invitations nobody accepted cannot use up a stranger’s group quota and lock them out', async () => {
    const r = await relay({ limits: { groupsPerUser: 3 } });
    const victim = await raw(r, 'victim');
    const trap = async (owner: string, name: string): Promise<TestGroup> => {
      const { group, genesis } = TestGroup.create(name, who(owner));
      expect(await group.append(await raw(r, owner), genesis)).toMatchObject({ t: 'ok' });
      return group;
    };
    const traps = [
      await trap('mallory', 'trap1'),
      await trap('mallory', 'trap2'),
      await trap('mallory', 'trap3'),
    ];
    const mallory = await raw(r, 'mallory');
    for (const g of traps)
      expect(await g.append(mallory, inviteEntry(g, 'mallory', 'victim'))).toMatchObject({ t: 'ok' });
    // What others can put on her is bounded: a fourth invitation is refused.
    const fourth = await trap('trent', 'trap4');
    expect(await fourth.append(await raw(r, 'trent'), inviteEntry(fourth, 'trent', 'victim'))).toMatchObject({
      code: 'QUOTA',
    });
    // Her own choices still have her full quota: three groups of her own, not a fourth.
    for (const name of ['mine1', 'mine2', 'mine3']) {
      const { group, genesis } = TestGroup.create(name, who('victim'));
      expect(await group.append(victim, genesis)).toMatchObject({ t: 'ok' });
    }
    const { group: mine4, genesis } = TestGroup.create('mine4', who('victim'));
    expect(await mine4.append(victim, genesis)).toMatchObject({ code: 'QUOTA' });
    // Accepting an invitation is one of her choices: over her quota, it is refused too.
    const accept = traps[0]!.next(who('victim'), { type: EntryType.ACCEPT });
    expect(await traps[0]!.append(victim, accept)).toMatchObject({ code: 'QUOTA' });
  });

  it('group entries count against the mailbox quota: inviting and removing someone over and over cannot fill it', async () => {
    const r = await relay({ limits: { queuedItemsPerRecipient: 5 } });
    await (await raw(r, 'bob')).close();
    const alice = await raw(r, 'alice');
    const { group, genesis } = TestGroup.create('churn', who('alice'));
    await group.append(alice, genesis);
    await churn(group, alice, 'alice', 'bob', 30);
    expect((await drainAll(await raw(r, 'bob'))).length).toBeLessThanOrEqual(5);
  });

  it('a one-time prekey budget of 0 hands out none (0 is not "no limit")', async () => {
    const r = await relay({ limits: { oneTimePreKeysPerTargetPerMinute: 0 } });
    const victim = await connectClient(r.url, 'victim', {
      keyStore: new MemoryKeyStore(),
      stateStore: new MemoryStateStore(),
    });
    await victim.client.close();
    const thief = await raw(r, 'thief');
    for (let i = 0; i < 10; i++) {
      const reply = await thief.request({ t: 'getBundle', userId: 'victim' });
      expect(decodePreKeyBundle(unb64(reply.bundle as string)).oneTimePreKey).toBeUndefined();
    }
  });

  it('a client that asks without reading the answers is closed as a slow consumer, not buffered for', async () => {
    const r = await relay({ maxBufferedBytes: 1024 * 1024 });
    const alice = await raw(r, 'alice');
    await (await raw(r, 'bob')).close();
    const { group, genesis } = TestGroup.create('big', who('alice'));
    await group.append(alice, genesis);
    await churn(group, alice, 'alice', 'bob', 50);
    const pageChars = JSON.stringify(await alice.request({ t: 'groupLog', group: 'big', from: 0 })).length;
    expect(pageChars).toBeGreaterThan(20_000);
    // Alice stops reading (her socket is paused) and asks for the same page 400 times: ~10 MB of answers.
    (alice.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    for (let i = 0; i < 400; i++) alice.send({ t: 'groupLog', group: 'big', from: 0, rid: 10_000 + i });
    const slow = 'sealed_relay_connections_closed_by_relay_total{reason="slow consumer"}';
    const deadline = Date.now() + 10_000;
    while (((await scrape(r.url)).get(slow) ?? 0) < 1) {
      if (Date.now() > deadline) throw new Error('alice was not closed as a slow consumer');
      await new Promise((res) => setTimeout(res, 100));
    }
    alice.ws.terminate(); // her paused socket would hold the close handshake for its full timeout
  });
});

describe('token budgets (limits.ts)', () => {
  it('a request dearer than the whole limit passes once, and its cost is owed: the rate over time stays the limit', () => {
    let now = 0;
    const budget = new Budget(1000, 60_000, () => now);
    expect(budget.take('alice', 3000)).toBe(true); // a full bucket lets it through
    expect(budget.take('alice', 1)).toBe(false);
    // 3000 taken from 1000: 2000 owed, then 1 more needed: just over two windows.
    expect(budget.waitMs('alice', 1)).toBe(120_060);
    now = 120_000;
    expect(budget.take('alice', 1)).toBe(false);
    now = 120_060;
    expect(budget.take('alice', 1)).toBe(true);
    // Someone else's bucket is their own.
    expect(budget.take('bob', 1000)).toBe(true);
  });

  it('a budget of 0 allows nothing, and says so', () => {
    const budget = new Budget(0, 60_000, () => 0);
    expect(budget.take('alice', 0)).toBe(false);
    expect(budget.take('alice', 1)).toBe(false);
    expect(budget.waitMs('alice')).toBe(60_000);
  });
});
