/**
 * Groups on the relay: each is a signed, hash-chained membership log. The relay accepts an entry only if
 * it verifies (format, chain, signature, the author's right, identities as registered), tells everyone it
 * concerns with a durable `groupEntry` event, serves the log in pages to those who may read it, lists
 * only heads in `ready`, and routes group messages to the full members of the verified roster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { EntryAuthor, EntryType, JoinPolicy, entryHash } from '../../src-main/core/crypto/membership.js';
import { b64, unb64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient, TestGroup, body, msgId, type Deliver, type Frame } from './raw-client.js';

let relay: Relay;
const people = new Map<string, { id: string; identity: Identity }>();
const who = (id: string): { id: string; identity: Identity } => {
  if (!people.has(id)) people.set(id, { id, identity: Identity.generate() });
  return people.get(id)!;
};
const connect = (id: string, url = relay.url): Promise<RawClient> =>
  RawClient.connect(url, id, who(id).identity, { keep: (f) => f.t !== 'event' });
const isEntry = (group: string, epoch?: number) => (f: Frame) =>
  f.t === 'deliver' &&
  f.kind === 'event' &&
  f.event?.type === 'groupEntry' &&
  f.event.group === group &&
  (epoch === undefined || f.event.epoch === epoch);
const entryEvent = async (
  c: RawClient,
  group: string,
  epoch?: number,
): Promise<{ epoch: number; entry: string }> => {
  const f = (await c.next(isEntry(group, epoch))) as Deliver;
  return f.event as { epoch: number; entry: string };
};

beforeEach(async () => {
  people.clear();
  relay = await startRelay({ port: 0 });
});
afterEach(async () => {
  await relay.close();
});

/** alice's invite-only group with bob invited and accepted. */
async function team(): Promise<{ a: RawClient; b: RawClient; g: TestGroup }> {
  const a = await connect('alice');
  const b = await connect('bob');
  const { group: g, genesis } = TestGroup.create('team', who('alice'));
  expect(await g.append(a, genesis)).toMatchObject({ t: 'ok', group: 'team', epoch: 0 });
  expect(
    await g.append(
      a,
      g.next(who('alice'), {
        type: EntryType.INVITE,
        userId: 'bob',
        identity: who('bob').identity.publicIdentity,
      }),
    ),
  ).toMatchObject({ t: 'ok', epoch: 1 });
  expect(await g.append(b, g.next(who('bob'), { type: EntryType.ACCEPT }))).toMatchObject({
    t: 'ok',
    epoch: 2,
  });
  return { a, b, g };
}

describe('groups on the relay (signed membership log)', () => {
  it('creates, invites, accepts: each entry goes to everyone it concerns, durably and in order', async () => {
    const { a, b, g } = await team();
    expect((await entryEvent(a, 'team', 0)).entry).toBe(b64(g.entries[0]!));
    expect((await entryEvent(a, 'team', 1)).entry).toBe(b64(g.entries[1]!));
    // bob was told of his invitation (epoch 1) and of his acceptance (epoch 2)
    expect((await entryEvent(b, 'team', 1)).entry).toBe(b64(g.entries[1]!));
    expect((await entryEvent(b, 'team', 2)).entry).toBe(b64(g.entries[2]!));
    expect((await entryEvent(a, 'team', 2)).entry).toBe(b64(g.entries[2]!));
    // A second genesis for the name is refused.
    const { genesis } = TestGroup.create('team', who('bob'));
    expect(await b.request({ t: 'groupAppend', group: 'team', entry: b64(genesis) })).toMatchObject({
      code: 'GROUP_EXISTS',
    });
    expect(a.violations).toEqual([]);
    expect(b.violations).toEqual([]);
  });

  it('keeps invite-only groups closed: no reading the log, no joining, no entries by non-admins, no epoch told to strangers', async () => {
    const { a, g } = await team();
    const c = await connect('carol');
    expect(await c.request({ t: 'groupLog', group: 'team', from: 0 })).toMatchObject({
      code: 'NOT_A_MEMBER',
    });
    // A stranger's entries are refused like a reading, and say nothing of the group (not its epoch).
    expect(
      await c.request({ t: 'groupAppend', group: 'team', entry: b64(g.join(who('carol'))) }),
    ).toMatchObject({ code: 'NOT_A_MEMBER' });
    const stale = TestGroup.create('team', who('carol'));
    stale.group.apply(stale.genesis);
    const probe = await c.request({
      t: 'groupAppend',
      group: 'team',
      entry: b64(stale.group.next(who('carol'), { type: EntryType.LEAVE })),
    });
    expect(probe).toMatchObject({ code: 'NOT_A_MEMBER' });
    expect(JSON.stringify(probe)).not.toMatch(/epoch/);
    const bobInvites = g.next(who('bob'), {
      type: EntryType.INVITE,
      userId: 'carol',
      identity: who('carol').identity.publicIdentity,
    });
    const b = await connect('bob'); // replaces the first connection of bob
    expect(await b.request({ t: 'groupAppend', group: 'team', entry: b64(bobInvites) })).toMatchObject({
      code: 'FORBIDDEN',
    });
    // Nothing was added: the head is where it was.
    expect(await a.request({ t: 'groupLog', group: 'team', from: 3 })).toMatchObject({
      t: 'ok',
      epoch: 2,
      entries: [],
    });
  });

  it('refuses entries that do not verify or fit, and says when the client is behind', async () => {
    const { a, g } = await team();
    await connect('carol');
    const invite = (identity = who('carol').identity) =>
      g.next(who('alice'), { type: EntryType.INVITE, userId: 'carol', identity: identity.publicIdentity });
    // An invitation naming another identity than the one carol registered.
    expect(
      await a.request({ t: 'groupAppend', group: 'team', entry: b64(invite(Identity.generate())) }),
    ).toMatchObject({ code: 'BAD_ENTRY' });
    // Someone never registered.
    const ghost = g.next(who('alice'), {
      type: EntryType.INVITE,
      userId: 'ghost',
      identity: Identity.generate().publicIdentity,
    });
    expect(await a.request({ t: 'groupAppend', group: 'team', entry: b64(ghost) })).toMatchObject({
      code: 'UNKNOWN_USER',
    });
    // A tampered signature, another author's entry, another group's name.
    const tampered = invite();
    tampered[tampered.length - 1]! ^= 1;
    expect(await a.request({ t: 'groupAppend', group: 'team', entry: b64(tampered) })).toMatchObject({
      code: 'BAD_ENTRY',
    });
    const b = await connect('bob');
    expect(await b.request({ t: 'groupAppend', group: 'team', entry: b64(invite()) })).toMatchObject({
      code: 'BAD_ENTRY',
    });
    expect(await a.request({ t: 'groupAppend', group: 'other', entry: b64(invite()) })).toMatchObject({
      code: 'BAD_ENTRY',
    });
    // An entry made on an older head: STALE_ENTRY, then it works made again on the current one.
    const stale = invite();
    expect(
      await g.append(a, g.next(who('alice'), { type: EntryType.ROLE, userId: 'bob', role: 'admin' })),
    ).toMatchObject({ t: 'ok', epoch: 3 });
    expect(await a.request({ t: 'groupAppend', group: 'team', entry: b64(stale) })).toMatchObject({
      code: 'STALE_ENTRY',
    });
    expect(await g.append(a, invite())).toMatchObject({ t: 'ok', epoch: 4 });
  });

  it('caps the roster (limits.groupMembers) with GROUP_FULL', async () => {
    await relay.close();
    relay = await startRelay({ port: 0, limits: { groupMembers: 2 } });
    const { a, g } = await team();
    await connect('carol');
    const third = g.next(who('alice'), {
      type: EntryType.INVITE,
      userId: 'carol',
      identity: who('carol').identity.publicIdentity,
    });
    expect(await a.request({ t: 'groupAppend', group: 'team', entry: b64(third) })).toMatchObject({
      code: 'GROUP_FULL',
    });
  });

  it('routes group messages to full members only; a removed member gets its removal and nothing after', async () => {
    const { a, b, g } = await team();
    const c = await connect('carol');
    await g.append(
      a,
      g.next(who('alice'), {
        type: EntryType.INVITE,
        userId: 'carol',
        identity: who('carol').identity.publicIdentity,
      }),
    );
    const before = msgId();
    expect(await a.request({ t: 'groupSend', group: 'team', id: before, body: body('1') })).toMatchObject({
      t: 'ack',
    });
    expect(((await b.next((f) => f.t === 'deliver' && f.kind === 'group')) as Deliver).id).toBe(before);
    // carol is only invited: no group message for her, and she may not send one.
    expect(await c.request({ t: 'groupSend', group: 'team', id: msgId(), body: body('x') })).toMatchObject({
      code: 'NOT_A_MEMBER',
    });
    await g.append(a, g.next(who('alice'), { type: EntryType.REMOVE, userId: 'bob' }));
    const removal = await entryEvent(b, 'team', 4);
    expect(removal.entry).toBe(b64(g.entries[4]!));
    await a.request({ t: 'groupSend', group: 'team', id: msgId(), body: body('2') });
    await expect(b.next((f) => f.t === 'deliver' && f.kind === 'group', 300)).rejects.toThrow(
      /no matching frame/,
    );
    await expect(c.next((f) => f.t === 'deliver' && f.kind === 'group', 300)).rejects.toThrow(
      /no matching frame/,
    );
    expect(await b.request({ t: 'groupLog', group: 'team', from: 0 })).toMatchObject({
      code: 'NOT_A_MEMBER',
    });
  });

  it('serves the log in pages of at most 100 entries; ready lists heads only', async () => {
    const a = await connect('alice');
    const b = await connect('bob');
    const { group: g, genesis } = TestGroup.create('open', who('alice'), JoinPolicy.OPEN);
    await g.append(a, genesis);
    for (let i = 0; i < 75; i++) {
      await g.append(b, g.join(who('bob')));
      await g.append(b, g.next(who('bob'), { type: EntryType.LEAVE }));
    }
    expect(g.log.epoch).toBe(150);
    const first = await a.request({ t: 'groupLog', group: 'open', from: 0 });
    expect(first).toMatchObject({ t: 'ok', epoch: 150 });
    expect((first.entries as string[]).length).toBe(100);
    const second = await a.request({ t: 'groupLog', group: 'open', from: 100, limit: 100 });
    expect((second.entries as string[]).map((e) => unb64(e))).toEqual(g.entries.slice(100));
    // Anyone may read an open group's log (to join it); ready names only the head.
    const c = await connect('carol');
    expect(await c.request({ t: 'groupLog', group: 'open', from: 150 })).toMatchObject({
      t: 'ok',
      entries: [b64(g.entries[150]!)],
    });
    const again = await connect('alice');
    expect(again.ready!.groups).toEqual([
      {
        group: 'open',
        epoch: 150,
        head: b64(entryHash(g.entries[150]!.subarray(0, g.entries[150]!.length - 64))),
      },
    ]);
  });

  it('keeps logs, heads and routes across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-groups-'));
    try {
      await relay.close();
      relay = await startRelay({ port: 0, dataDir: dir });
      const { a, g } = await team();
      await a.close();
      await relay.close();
      relay = await startRelay({ port: 0, dataDir: dir });
      const a2 = await connect('alice');
      const b2 = await connect('bob');
      expect(a2.ready!.groups).toMatchObject([{ group: 'team', epoch: 2 }]);
      const page = await a2.request({ t: 'groupLog', group: 'team', from: 0 });
      expect((page.entries as string[]).map((e) => unb64(e))).toEqual(g.entries);
      const id = msgId();
      await a2.request({ t: 'groupSend', group: 'team', id, body: body('after restart') });
      expect(((await b2.next((f) => f.t === 'deliver' && f.kind === 'group')) as Deliver).id).toBe(id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a deleted account stops receiving; whoever registers the id again is not the member the roster names', async () => {
    const { a, b, g } = await team();
    expect(await b.deleteAccount()).toMatchObject({ t: 'ok' });
    people.delete('bob');
    const impostor = await connect('bob');
    await a.request({ t: 'groupSend', group: 'team', id: msgId(), body: body('secret') });
    await expect(impostor.next((f) => f.t === 'deliver' && f.kind === 'group', 300)).rejects.toThrow(
      /no matching frame/,
    );
    // It cannot act as the member either: its entries are signed with another key.
    expect(
      await impostor.request({
        t: 'groupAppend',
        group: 'team',
        entry: b64(g.next(who('bob'), { type: EntryType.LEAVE })),
      }),
    ).toMatchObject({ code: 'NOT_A_MEMBER' });
    expect(
      await impostor.request({ t: 'groupSend', group: 'team', id: msgId(), body: body('x') }),
    ).toMatchObject({ code: 'NOT_A_MEMBER' });
    expect(impostor.ready!.groups).toEqual([]);
    expect(await impostor.request({ t: 'groupLog', group: 'team', from: 0 })).toMatchObject({
      code: 'NOT_A_MEMBER',
    });
  });

  it('deletes a group on an admin’s DELETE entry: everyone is told, the name is free again', async () => {
    const { a, b, g } = await team();
    const del = g.next(who('alice'), { type: EntryType.DELETE });
    expect(
      await g.append(
        b,
        new EntryAuthor('bob', who('bob').identity, Date.now).next(g.log, { type: EntryType.DELETE }),
      ),
    ).toMatchObject({ code: 'FORBIDDEN' });
    expect(await g.append(a, del)).toMatchObject({ t: 'ok', epoch: 3 });
    expect((await entryEvent(b, 'team', 3)).entry).toBe(b64(del));
    expect(await a.request({ t: 'groupLog', group: 'team', from: 0 })).toMatchObject({
      code: 'UNKNOWN_GROUP',
    });
    const b2 = await connect('bob');
    expect(b2.ready!.groups).toEqual([]);
    const { group: again, genesis } = TestGroup.create('team', who('bob'));
    expect(await again.append(b2, genesis)).toMatchObject({ t: 'ok', epoch: 0 });
  });
});
