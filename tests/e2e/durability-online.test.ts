/**
 * Issue 13: nothing the relay acknowledged is lost when the recipient is ONLINE. Real clients, a relay
 * process on a data directory, many sends in flight, and the relay SIGKILLed at three points:
 *
 * - before the forward: stopped dead in the router with an item handed to the queue, not yet forwarded
 *   (failpoint `route.before-forward`);
 * - after the forward, before `received`: a proxy in front of the recipient first holds its `received`
 *   frames (it processed those messages, the relay never hears), then holds the `deliver` frames (they
 *   are "on the wire" when the relay dies, and are lost with it); the senders were told 'sent' for them;
 * - during the commit: the queue's worker stopped inside a write transaction (failpoint `queue.mid-commit`).
 *
 * The relay restarts on the same data and port, the clients reconnect by themselves, the sender goes on
 * sending, and at the end every recipient has shown every message exactly once, in send order. The same
 * for a group of 10 online members.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryKeyStore, MemoryStateStore } from '../../src-main/core/index.js';
import type { FailpointName } from '../../src-main/relay/failpoints.js';
import { spawnRelay, type ChildRelay } from '../relay/spawn.js';
import { connectClient, until, type Recorder } from './helpers.js';
import { startProxy, type Proxy } from './proxy.js';

const FAST = { framesPerSecond: 1e9, burst: 1e9 };
type KillPoint = 'before the forward' | 'after the forward, before received' | 'during the commit';
type Client = Awaited<ReturnType<typeof connectClient>>;

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A relay process on a fresh data directory that can be killed and started again on the same port. */
class CrashableRelay {
  private relay!: ChildRelay;
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'relay-online-crash-'));
  private readonly dataDir = path.join(this.dir, 'data');
  private readonly armFile = path.join(this.dir, 'armed');

  async start(failpoint?: FailpointName, port = 0): Promise<void> {
    this.relay = await spawnRelay(
      { port, dataDir: this.dataDir, rateLimit: FAST },
      { failpoint: failpoint && { name: failpoint, armFile: this.armFile } },
    );
  }

  /** From now on, the next time the relay reaches its failpoint it stops dead. */
  arm(): void {
    writeFileSync(this.armFile, '');
  }

  get url(): string {
    return this.relay.url;
  }

  /** Waits for the failpoint, then kills; or kills at once. */
  async kill(atFailpoint: boolean): Promise<void> {
    if (atFailpoint) await this.relay.stopped;
    this.relay.child.kill('SIGKILL');
    expect(await this.relay.exited).toBe('SIGKILL');
  }

  async restart(): Promise<void> {
    rmSync(this.armFile, { force: true });
    await this.start(undefined, this.relay.port);
  }

  async dispose(): Promise<void> {
    this.relay.child.kill('SIGKILL');
    await this.relay.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The proxy in front of one recipient: can hold (and so lose) its `received` and `deliver` frames. */
function holdingProxy(proxy: Proxy): { held: { received: number; deliverIds: string[] }; stage: number } {
  const state = { held: { received: 0, deliverIds: [] as string[] }, stage: 0 };
  proxy.hooks = {
    fromClient: (frame) => {
      if (state.stage >= 1 && frame.startsWith('{"t":"received"')) {
        state.held.received++;
        return null;
      }
      return frame;
    },
    fromRelay: (frame) => {
      if (state.stage >= 2 && frame.startsWith('{"t":"deliver"')) {
        const f = JSON.parse(frame) as { kind: string; id?: string };
        if (f.kind === 'direct' || f.kind === 'group') state.held.deliverIds.push(f.id!);
        return null;
      }
      return frame;
    },
  };
  return state;
}

const text = (i: number): string => `message ${i}`;

/** What every recipient must have shown at the end: each text once, in send order, and nothing else. */
function expectExactlyOnceInOrder(rec: Recorder, texts: string[], group?: string): void {
  const shown = group
    ? rec
        .all('groupMessage')
        .filter((m) => m.group === group)
        .map((m) => m.text)
    : rec.all('message').map((m) => m.text);
  expect(shown).toEqual(texts);
  expect(rec.all('e2eeError')).toEqual([]);
}

/**
 * Runs one crash: `send(i)` sends message i; `delivered()` counts what the watched recipient showed.
 * Returns what the sender had been told was sent when the relay died.
 */
async function crashMidStream(opts: {
  relay: CrashableRelay;
  point: KillPoint;
  proxy: Proxy;
  sender: Client;
  send: (i: number) => Promise<string>;
  watched: Client;
  before: number;
  after: number;
}): Promise<{
  ackedAtKill: Set<string>;
  sends: Promise<string>[];
  held: { received: number; deliverIds: string[] };
}> {
  const { relay, point, sender, send, watched, before, after } = opts;
  const acked = new Set<string>();
  sender.client.on('ack', (a) => {
    if (a.state === 'sent') acked.add(a.id);
  });
  const holder = holdingProxy(opts.proxy);
  const sends: Promise<string>[] = [];
  // The sender never waits for a send to finish, and keeps sending while the relay dies: a few
  // messages every few milliseconds, so the stream lasts long enough to be cut in the middle.
  // The last few are sent once the relay is dead, so the kill always falls inside the stream,
  // however slowly a loaded machine runs the stages before it.
  let killed!: () => void;
  const dead = new Promise<void>((r) => (killed = r));
  const streaming = (async () => {
    for (let i = 0; i < before; i++) {
      if (i === before - 5) await dead;
      const p = send(i);
      p.catch(() => undefined); // judged at the end
      sends.push(p);
      if (i % 3 === 2) await new Promise((r) => setTimeout(r, 4));
    }
  })();
  const shownBefore = (): number =>
    watched.rec.all('message').length + watched.rec.all('groupMessage').length;

  if (point === 'after the forward, before received') {
    await until(() => shownBefore() >= 20, 20_000, 'the first messages shown');
    holder.stage = 1; // the recipient shows messages, the relay never hears it received them
    await until(() => holder.held.received >= 15, 20_000, 'received frames held');
    holder.stage = 2; // then deliveries stop reaching it: they die with the relay
    await until(
      () => holder.held.deliverIds.length >= 15 && holder.held.deliverIds.every((id) => acked.has(id)),
      20_000,
      'deliveries held and reported sent to the sender',
    );
    await relay.kill(false);
  } else {
    await until(() => acked.size >= 20, 20_000, 'the stream under way');
    relay.arm();
    await relay.kill(true);
  }
  const ackedAtKill = new Set(acked);
  killed();
  await streaming;
  const held = { received: holder.held.received, deliverIds: [...holder.held.deliverIds] };
  opts.proxy.hooks = {};

  await relay.restart();
  for (let i = before; i < before + after; i++) sends.push(send(i));
  return { ackedAtKill, sends, held };
}

const POINTS: [KillPoint, FailpointName | undefined][] = [
  ['before the forward', 'route.before-forward'],
  ['after the forward, before received', undefined],
  ['during the commit', 'queue.mid-commit'],
];

describe('durability with the recipient online (relay SIGKILLed mid-stream)', () => {
  it.each(POINTS)(
    '1:1, killed %s: every message reaches bob exactly once, in order',
    async (point, fp) => {
      const BEFORE = 150;
      const AFTER = 50;
      const relay = new CrashableRelay();
      cleanup.push(() => relay.dispose());
      await relay.start(fp);
      const proxy = await startProxy(relay.url);
      cleanup.push(() => proxy.close());

      const bob = await connectClient(proxy.url, 'bob', {
        keyStore: new MemoryKeyStore(),
        stateStore: new MemoryStateStore(),
      });
      cleanup.push(() => bob.client.close());
      const alice = await connectClient(relay.url, 'alice');
      cleanup.push(() => alice.client.close());

      const { ackedAtKill, sends, held } = await crashMidStream({
        relay,
        point,
        proxy,
        sender: alice,
        send: (i) => alice.client.sendDirectMessage('bob', text(i)),
        watched: bob,
        before: BEFORE,
        after: AFTER,
      });
      // The crash hit the middle of the stream: some sends were acknowledged, others still in flight.
      expect(ackedAtKill.size).toBeGreaterThan(0);
      expect(ackedAtKill.size).toBeLessThan(BEFORE);
      if (point === 'after the forward, before received') {
        expect(held.received).toBeGreaterThanOrEqual(15);
        expect(held.deliverIds.length).toBeGreaterThanOrEqual(15);
      }

      const ids = await Promise.all(sends); // every send is acknowledged in the end (outbox re-sends)
      await bob.rec.waitCount('message', BEFORE + AFTER, () => true, 60_000);
      await new Promise((r) => setTimeout(r, 500)); // nothing more (no duplicate) arrives
      expectExactlyOnceInOrder(
        bob.rec,
        Array.from({ length: BEFORE + AFTER }, (_, i) => text(i)),
      );
      expect(bob.rec.all('message').map((m) => m.id)).toEqual(ids);
      for (const id of ackedAtKill) expect(ids).toContain(id);
    },
    120_000,
  );

  it.each(POINTS)(
    'group of 10 online members, killed %s: every member shows every message exactly once, in order',
    async (point, fp) => {
      const BEFORE = 120;
      const AFTER = 30;
      const MEMBERS = 9; // besides the sender
      const relay = new CrashableRelay();
      cleanup.push(() => relay.dispose());
      await relay.start(fp);
      const proxy = await startProxy(relay.url);
      cleanup.push(() => proxy.close());

      const alice = await connectClient(relay.url, 'alice');
      cleanup.push(() => alice.client.close());
      const members: Client[] = [];
      for (let m = 1; m <= MEMBERS; m++) {
        // The first member reaches the relay through the proxy: the one whose frames can be held.
        const c = await connectClient(m === 1 ? proxy.url : relay.url, `member${m}`);
        cleanup.push(() => c.client.close());
        members.push(c);
      }
      await alice.client.createGroup('g', { policy: 'open' });
      for (const c of members) await c.client.joinGroup('g');
      await until(
        () => alice.client.listGroups().find((g) => g.group === 'g')?.members.length === MEMBERS + 1,
        20_000,
        'every join seen by the creator',
      );

      const { ackedAtKill, sends } = await crashMidStream({
        relay,
        point,
        proxy,
        sender: alice,
        send: (i) => alice.client.sendGroupMessage('g', text(i)),
        watched: members[0]!,
        before: BEFORE,
        after: AFTER,
      });
      expect(ackedAtKill.size).toBeGreaterThan(0);
      expect(ackedAtKill.size).toBeLessThan(BEFORE);

      const ids = await Promise.all(sends);
      const all = Array.from({ length: BEFORE + AFTER }, (_, i) => text(i));
      for (const c of members) await c.rec.waitCount('groupMessage', all.length, () => true, 60_000);
      await new Promise((r) => setTimeout(r, 500));
      for (const c of members) {
        expectExactlyOnceInOrder(c.rec, all, 'g');
        expect(c.rec.all('groupMessage').map((m) => m.id)).toEqual(ids);
      }
    },
    180_000,
  );
});
