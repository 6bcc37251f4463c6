/**
 * Issue 8, signed group membership, tried as an attacker would: real clients, a real relay on 127.0.0.1,
 * and where the relay itself is the attacker, a proxy in front of one member that drops, rewrites or
 * invents what the relay says to it. Before signed membership each of these worked: the relay (or anyone
 * who knew a group's name) decided who was in a group, and members sent their sender keys to whoever it
 * listed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { EntryAuthor, EntryType, decodeEntry } from '../../src-main/core/crypto/membership.js';
import { MemoryKeyStore } from '../../src-main/core/index.js';
import { b64, unb64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient, TestGroup } from '../relay/raw-client.js';
import { connectClient, until } from './helpers.js';
import { startProxy, type Proxy } from './proxy.js';

type Client = Awaited<ReturnType<typeof connectClient>> & { keyStore: MemoryKeyStore };

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relay(): Promise<Relay> {
  const r = await startRelay({ port: 0 });
  cleanup.push(() => r.close());
  return r;
}

async function client(url: string, userId: string): Promise<Client> {
  const keyStore = new MemoryKeyStore();
  const c = await connectClient(url, userId, { keyStore });
  cleanup.push(() => c.client.close());
  return { ...c, keyStore };
}

/** A proxy whose traffic to each user can be hooked, and which records the entries it passed on. */
async function proxy(url: string): Promise<Proxy & { entries: Uint8Array[] }> {
  const p = Object.assign(await startProxy(url), { entries: [] as Uint8Array[] });
  cleanup.push(() => p.close());
  return p;
}

const identityOf = async (c: Client): Promise<{ id: string; identity: Identity }> => ({
  id: c.client.userId,
  identity: Identity.deserialize((await c.keyStore.get('identity'))!),
});

/** A membership event as the relay delivers it: an entry, or a notice of a new head. */
interface MembershipEvent {
  type: 'groupEntry' | 'groupHead';
  group: string;
  epoch: number;
  entry?: string;
  head?: string;
}

/** The membership event a deliver frame carries, if any. */
function membershipEvent(frame: string): MembershipEvent | undefined {
  if (!frame.startsWith('{"t":"deliver"')) return undefined;
  const f = JSON.parse(frame) as { kind: string; event?: MembershipEvent };
  const type = f.event?.type;
  return f.kind === 'event' && (type === 'groupEntry' || type === 'groupHead') ? f.event : undefined;
}

/**
 * Hooks one user's connection: `deliver` decides for each membership event the relay sends them
 * (forward it: undefined, drop it: null, or rewrite it); `logPage` rewrites the relay's answers to their
 * groupLog; `ready` the heads their ready frame lists.
 */
function intercept(
  p: Proxy,
  user: string,
  hooks: {
    deliver?: (e: MembershipEvent) => MembershipEvent | null | undefined;
    logPage?: (page: { epoch: number; entries: string[] }) => { epoch: number; entries: string[] };
    ready?: (
      groups: { group: string; epoch: number; head: string }[],
    ) => { group: string; epoch: number; head: string }[];
  },
): void {
  const logRids = new Set<number>();
  p.hooks = {
    fromClient: (frame, conn) => {
      if (conn.userId === user && frame.includes('"t":"groupLog"'))
        logRids.add((JSON.parse(frame) as { rid: number }).rid);
      return frame;
    },
    fromRelay: (frame, conn) => {
      if (conn.userId !== user) return frame;
      const e = membershipEvent(frame);
      if (e && hooks.deliver) {
        const out = hooks.deliver(e);
        if (out === null) return null;
        if (out) return JSON.stringify({ ...(JSON.parse(frame) as object), event: out });
      }
      if (hooks.logPage && frame.startsWith('{"t":"ok"')) {
        const f = JSON.parse(frame) as { rid: number; epoch: number; entries: string[] };
        if (logRids.has(f.rid)) return JSON.stringify({ ...f, ...hooks.logPage(f) });
      }
      if (hooks.ready && frame.startsWith('{"t":"ready"')) {
        const f = JSON.parse(frame) as { groups: { group: string; epoch: number; head: string }[] };
        return JSON.stringify({ ...f, groups: hooks.ready(f.groups) });
      }
      return frame;
    },
  };
}

/** alice's invite-only group with `others` invited and accepted, everyone having seen everything. */
async function setUp(name: string, alice: Client, others: Client[]): Promise<void> {
  await alice.client.createGroup(name);
  for (const o of others) {
    await alice.client.inviteToGroup(name, o.client.userId);
    await o.rec.wait('groupInvitation', (e) => e.group === name);
    await o.client.acceptGroupInvitation(name);
    await alice.rec.wait('groupMemberJoin', (e) => e.group === name && e.userId === o.client.userId);
  }
  for (const o of others)
    await until(() => o.client.groupDetails(name)?.epoch === alice.client.groupDetails(name)?.epoch);
}

/**
 * The test's own copy of a group's log, read from the (honest) relay by a member on a raw socket (which
 * replaces that member's client connection: use one whose client has done its part).
 */
async function copyOf(name: string, url: string, member: Client): Promise<TestGroup> {
  const raw = await RawClient.connect(url, member.client.userId, (await identityOf(member)).identity, {
    keep: (f) => f.t === 'ok' || f.t === 'error',
  });
  const page = await raw.request({ t: 'groupLog', group: name, from: 0 });
  await raw.close();
  return TestGroup.fromEntries(
    name,
    (page.entries as string[]).map((e) => unb64(e)),
  );
}

describe('signed group membership against a hostile relay and strangers', () => {
  it('a stranger who knows the name can neither join an invite-only group nor read it', async () => {
    const r = await relay();
    const [alice, bob, mallory] = [
      await client(r.url, 'alice'),
      await client(r.url, 'bob'),
      await client(r.url, 'mallory'),
    ];
    await setUp('club', alice, [bob]);
    await expect(mallory.client.joinGroup('club')).rejects.toMatchObject({
      code: 'E2EE_NOT_ALLOWED',
      message: expect.stringMatching(/invite-only/),
    });
    const id = await alice.client.sendGroupMessage('club', 'members only');
    await bob.rec.wait('groupMessage', (m) => m.id === id);
    await new Promise((res) => setTimeout(res, 200));
    expect(mallory.rec.all('groupMessage')).toEqual([]);
    expect(await alice.client.groupMembers('club')).toEqual(['alice', 'bob']);
    expect(await bob.client.groupMembers('club')).toEqual(['alice', 'bob']);
  });

  it('a ghost the relay lists at ready is refused: it cannot sign anyone in', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    const alice = await client(r.url, 'alice');
    const bob = await client(p.url, 'bob');
    const mallory = await client(r.url, 'mallory');
    await setUp('club', alice, [bob]);
    await bob.client.close();
    const g = await copyOf('club', r.url, bob);
    // The relay says the group moved on, and serves an entry inviting mallory "by alice", which only
    // mallory's key signed (the relay has no admin's key).
    const forged = new EntryAuthor('alice', (await identityOf(mallory)).identity, Date.now).next(g.log, {
      type: EntryType.INVITE,
      userId: 'mallory',
      identity: (await identityOf(mallory)).identity.publicIdentity,
    });
    intercept(p, 'bob', {
      ready: (groups) =>
        groups.map((h) => ({ ...h, epoch: h.epoch + 1, head: b64(new Uint8Array(32).fill(7)) })),
      logPage: (page) => ({ epoch: page.epoch + 1, entries: [b64(forged)] }),
    });
    await bob.client.connect();
    const warning = await bob.rec.wait('groupOutOfSync', (e) => e.group === 'club');
    expect(warning).toMatchObject({ kind: 'withheld' });
    expect(await bob.client.groupMembers('club')).toEqual(['alice', 'bob']);
    // Sending stops (it could reach someone who is not a member) with the reason.
    await expect(bob.client.sendGroupMessage('club', 'to whom?')).rejects.toMatchObject({
      code: 'E2EE_GROUP_OUT_OF_SYNC',
    });
  });

  it('a join the relay hides is found and shown when a member’s message names a later head', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    const alice = await client(r.url, 'alice');
    const bob = await client(p.url, 'bob');
    const carol = await client(r.url, 'carol');
    await setUp('club', alice, [bob]);
    // The relay drops every later entry on its way to bob.
    intercept(p, 'bob', { deliver: () => null });
    await alice.client.inviteToGroup('club', 'carol');
    await carol.rec.wait('groupInvitation');
    await carol.client.acceptGroupInvitation('club');
    await alice.rec.wait('groupMemberJoin', (e) => e.userId === 'carol');
    // bob does not know carol yet: his sender key does not go to her.
    const fromBob = await bob.client.sendGroupMessage('club', 'before I knew');
    await alice.rec.wait('groupMessage', (m) => m.id === fromBob);
    await new Promise((res) => setTimeout(res, 200));
    expect(carol.rec.all('groupMessage').map((m) => m.id)).not.toContain(fromBob);
    expect(bob.rec.all('groupMemberJoin').filter((e) => e.userId === 'carol')).toEqual([]);
    // alice's next message carries her head: bob reads the log and the join becomes visible.
    const fromAlice = await alice.client.sendGroupMessage('club', 'hello all');
    await bob.rec.wait('groupMessage', (m) => m.id === fromAlice);
    expect(await bob.rec.wait('groupMemberJoin', (e) => e.userId === 'carol')).toMatchObject({
      group: 'club',
    });
    expect(await bob.client.groupMembers('club')).toEqual(['alice', 'bob', 'carol']);
    expect(bob.client.groupDetails('club')!.safetyNumber).toBe(
      alice.client.groupDetails('club')!.safetyNumber,
    );
  });

  it('a forked roster (the relay shows one member another history) is detected and stops sending', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    const alice = await client(r.url, 'alice');
    const bob = await client(p.url, 'bob');
    const dave = await client(r.url, 'dave');
    await client(r.url, 'carol');
    const erin = await client(r.url, 'erin');
    await setUp('club', alice, [bob, dave]);
    await alice.client.setGroupRole('club', 'dave', 'admin');
    await until(() => bob.client.groupDetails('club')?.epoch === alice.client.groupDetails('club')?.epoch);
    const g = await copyOf('club', r.url, dave);
    // Another valid entry for the same epoch, by the other admin: the relay could have accepted both
    // and shown each to different members.
    const other = g.next(await identityOf(dave), {
      type: EntryType.INVITE,
      userId: 'erin',
      identity: (await identityOf(erin)).identity.publicIdentity,
    });
    const forkAt = g.log.epoch + 1;
    // For bob, the relay swaps in the other entry wherever epoch forkAt appears: in an entry event, in
    // a head notice, and in the pages of the log he reads.
    const otherHead = b64(decodeEntry(other).hash);
    intercept(p, 'bob', {
      deliver: (e) =>
        e.epoch !== forkAt
          ? undefined
          : e.type === 'groupEntry'
            ? { ...e, entry: b64(other) }
            : { ...e, head: otherHead },
      logPage: (page) =>
        page.epoch < forkAt
          ? page
          : {
              ...page,
              entries: page.entries.map((x, i) => (i === page.entries.length - 1 ? b64(other) : x)),
            },
    });
    await alice.client.inviteToGroup('club', 'carol');
    await until(() => bob.client.groupDetails('club')?.epoch === forkAt);
    expect(bob.client.groupDetails('club')!.roster.map((m) => m.userId)).toContain('erin');
    const id = await alice.client.sendGroupMessage('club', 'which list?');
    await bob.rec.wait('groupMessage', (m) => m.id === id);
    expect(await bob.rec.wait('groupOutOfSync')).toMatchObject({
      group: 'club',
      kind: 'fork',
      userId: 'alice',
    });
    expect(bob.client.groupDetails('club')!.safetyNumber).not.toBe(
      alice.client.groupDetails('club')!.safetyNumber,
    );
    await expect(bob.client.sendGroupMessage('club', 'x')).rejects.toMatchObject({
      code: 'E2EE_GROUP_OUT_OF_SYNC',
    });
  });

  it('an entry the relay made up for an epoch we have accuses nobody: refused, the group stays usable', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    const alice = await client(r.url, 'alice');
    const bob = await client(p.url, 'bob');
    await setUp('den', alice, [bob]);
    const errors: { code: string }[] = [];
    bob.client.on('e2eeError', (e) => errors.push(e));
    // "alice's" genesis of den and "alice's" entry for epoch 1, signed with keys the relay made: the
    // bytes decode, differ from bob's log there, and name alice as their author.
    const impostor = { id: 'alice', identity: Identity.generate() };
    const fake = TestGroup.create('den', impostor);
    fake.group.apply(fake.genesis);
    const madeUp = [
      { epoch: 0, entry: fake.genesis },
      {
        epoch: 1,
        entry: fake.group.next(impostor, {
          type: EntryType.INVITE,
          userId: 'mallory',
          identity: Identity.generate().publicIdentity,
        }),
      },
    ];
    const conn = p.connections.find((c) => c.userId === 'bob')!;
    for (const [i, { epoch, entry }] of madeUp.entries())
      conn.toClient(
        JSON.stringify({
          t: 'deliver',
          seq: 900_000 + i,
          kind: 'event',
          ts: Date.now(),
          event: { type: 'groupEntry', group: 'den', epoch, entry: b64(entry) },
        }),
      );
    await until(() => errors.length === 2, 5000, 'both refused');
    expect(errors.map((e) => e.code)).toEqual(['E2EE_BAD_ENTRY', 'E2EE_BAD_ENTRY']);
    expect(bob.rec.all('groupOutOfSync')).toEqual([]);
    // After a reconnect too, bob's group is as it was: he sends, alice reads.
    await bob.client.close();
    await bob.client.connect();
    const id = await bob.client.sendGroupMessage('den', 'still here');
    await alice.rec.wait('groupMessage', (m) => m.id === id);
    expect(bob.rec.all('groupOutOfSync')).toEqual([]);
  });

  it('a made-up group the relay lists at ready is verified page by page: a bad page ends the reading', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    // The relay lists a group "ghost" at epoch 1,000 and answers its log itself: a genesis by a made-up
    // creator, then entries that do not verify, 100 a page.
    const creator = { id: 'phantom', identity: Identity.generate() };
    const fake = TestGroup.create('ghost', creator);
    fake.group.apply(fake.genesis);
    const garbage = fake.group.next(creator, { type: EntryType.LEAVE });
    const asked: number[] = [];
    p.hooks = {
      fromRelay: (frame) => {
        if (!frame.startsWith('{"t":"ready"')) return frame;
        const f = JSON.parse(frame) as { groups: unknown[] };
        const head = b64(new Uint8Array(32));
        return JSON.stringify({ ...f, groups: [...f.groups, { group: 'ghost', epoch: 1000, head }] });
      },
      fromClient: (frame, conn) => {
        if (!frame.includes('"t":"groupLog"') || !frame.includes('"ghost"')) return frame;
        const { rid, from } = JSON.parse(frame) as { rid: number; from: number };
        asked.push(from);
        const entries = Array.from({ length: 100 }, (_, i) => b64(from + i === 0 ? fake.genesis : garbage));
        conn.toClient(JSON.stringify({ t: 'ok', rid, epoch: 1000, entries }));
        return null;
      },
    };
    const b = await client(p.url, 'bob');
    const errors = (): { code: string; group?: string }[] =>
      b.rec.all('e2eeError') as { code: string; group?: string }[];
    await until(() => errors().some((e) => e.group === 'ghost'), 5000, 'the made-up log refused');
    expect(
      errors()
        .filter((e) => e.group === 'ghost')
        .map((e) => e.code),
    ).toEqual(['E2EE_BAD_ENTRY']);
    expect(asked).toEqual([0]); // verified before the next page was asked for
    expect(b.client.groupDetails('ghost')).toBeUndefined();
  });

  it('the made-up creator of a group we are not on does not become a contact', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    const creator = { id: 'phantom', identity: Identity.generate() };
    const fake = TestGroup.create('mirage', creator);
    p.hooks = {
      fromRelay: (frame) => {
        if (!frame.startsWith('{"t":"ready"')) return frame;
        const f = JSON.parse(frame) as { groups: unknown[] };
        const head = b64(decodeEntry(fake.genesis).hash);
        return JSON.stringify({ ...f, groups: [...f.groups, { group: 'mirage', epoch: 0, head }] });
      },
      fromClient: (frame, conn) => {
        if (!frame.includes('"t":"groupLog"') || !frame.includes('"mirage"')) return frame;
        const { rid } = JSON.parse(frame) as { rid: number };
        conn.toClient(JSON.stringify({ t: 'ok', rid, epoch: 0, entries: [b64(fake.genesis)] }));
        return null;
      },
    };
    const b = await client(p.url, 'bob');
    expect(b.client.groupDetails('mirage')).toBeUndefined();
    expect(b.client.contactIdentity('phantom')).toBeUndefined();
    expect(b.rec.all('groupInvitation')).toEqual([]);
  });

  it('a removal the relay withholds is detected: the member stops sending to the group', async () => {
    const r = await relay();
    const p = await proxy(r.url);
    const alice = await client(r.url, 'alice');
    const bob = await client(p.url, 'bob');
    const mallory = await client(r.url, 'mallory');
    await setUp('club', alice, [bob, mallory]);
    const epoch = alice.client.groupDetails('club')!.epoch;
    // The relay hides mallory's removal from bob: it drops the entry and stops his log at the old head.
    intercept(p, 'bob', {
      deliver: (e) => (e.epoch > epoch ? null : undefined),
      logPage: () => ({ epoch, entries: [] }),
    });
    await alice.client.removeFromGroup('club', 'mallory');
    await mallory.rec.wait('groupLeave', (e) => e.removedBy === 'alice');
    expect(await bob.client.groupMembers('club')).toContain('mallory'); // bob was fooled...
    const id = await alice.client.sendGroupMessage('club', 'mallory is out');
    await bob.rec.wait('groupMessage', (m) => m.id === id);
    // ...until alice's message named a head the relay would not give him.
    expect(await bob.rec.wait('groupOutOfSync')).toMatchObject({
      group: 'club',
      kind: 'withheld',
      userId: 'alice',
    });
    await expect(bob.client.sendGroupMessage('club', 'for mallory too?')).rejects.toMatchObject({
      code: 'E2EE_GROUP_OUT_OF_SYNC',
    });
    await new Promise((res) => setTimeout(res, 200));
    expect(mallory.rec.all('groupMessage').map((m) => m.text)).not.toContain('for mallory too?');
  });
});
