/** Groups: membership changes reach every member as durable events; fan-out of group messages. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient, body, msgId, type Deliver, type Frame } from './raw-client.js';

let relay: Relay;
const ids = new Map<string, Identity>();
const identity = (u: string): Identity => {
  if (!ids.has(u)) ids.set(u, Identity.generate());
  return ids.get(u)!;
};
const connect = (u: string): Promise<RawClient> =>
  RawClient.connect(relay.url, u, identity(u), { keep: (f) => f.t !== 'event' });
const isEvent = (type: string) => (f: Frame) =>
  f.t === 'deliver' && f.kind === 'event' && f.event?.type === type;
const event = async (c: RawClient, type: string): Promise<unknown> =>
  ((await c.next(isEvent(type))) as Deliver).event;

beforeEach(async () => {
  ids.clear();
  relay = await startRelay({ port: 0 });
});
afterEach(async () => {
  await relay.close();
});

describe('groups', () => {
  it("deleting the creator's account deletes its groups, so a later holder of the id cannot", async () => {
    const a = await connect('alice');
    const b = await connect('bob');
    await a.request({ t: 'createGroup', group: 'club' });
    await b.request({ t: 'joinGroup', group: 'club' });
    await event(b, 'groupJoin');
    expect(await a.deleteAccount()).toMatchObject({ t: 'ok' });
    expect(await event(b, 'groupDeleted')).toEqual({ type: 'groupDeleted', group: 'club' });
    ids.delete('alice'); // someone else registers "alice" with a new identity
    const mallory = await connect('alice');
    expect(await mallory.request({ t: 'deleteGroup', group: 'club' })).toMatchObject({
      code: 'UNKNOWN_GROUP',
    });
    expect(await b.request({ t: 'members', group: 'club' })).toMatchObject({ code: 'UNKNOWN_GROUP' });
  });

  it('create, join (twice), leave, delete: every member is told, durably', async () => {
    const a = await connect('alice');
    const b = await connect('bob');

    expect(await a.request({ t: 'createGroup', group: 'team' })).toEqual({
      t: 'ok',
      rid: 1,
      group: 'team',
      members: ['alice'],
    });
    expect(await event(a, 'groupCreated')).toEqual({ type: 'groupCreated', group: 'team' });
    expect(await b.request({ t: 'createGroup', group: 'team' })).toMatchObject({ code: 'GROUP_EXISTS' });

    expect(await b.request({ t: 'joinGroup', group: 'team' })).toMatchObject({
      creator: 'alice',
      members: ['alice', 'bob'],
    });
    expect(await event(b, 'groupJoin')).toEqual({
      type: 'groupJoin',
      group: 'team',
      creator: 'alice',
      members: ['alice', 'bob'],
    });
    expect(await event(a, 'groupMemberJoin')).toEqual({
      type: 'groupMemberJoin',
      group: 'team',
      userId: 'bob',
    });

    // Joining again: the same answer, nothing else.
    expect(await b.request({ t: 'joinGroup', group: 'team' })).toMatchObject({
      creator: 'alice',
      members: ['alice', 'bob'],
    });
    await expect(a.next((f) => f.t === 'deliver', 300)).rejects.toThrow(/no matching frame/);
    await expect(b.next((f) => f.t === 'deliver', 1)).rejects.toThrow(/no matching frame/);

    // carol joins, then stays offline.
    const c = await connect('carol');
    await c.request({ t: 'joinGroup', group: 'team' });
    await c.close();
    await event(a, 'groupMemberJoin');
    await event(b, 'groupMemberJoin');

    expect(await b.request({ t: 'members', group: 'team' })).toMatchObject({
      members: ['alice', 'bob', 'carol'],
    });
    expect(await b.request({ t: 'leaveGroup', group: 'team' })).toEqual({ t: 'ok', rid: 5 });
    expect(await event(b, 'groupLeave')).toEqual({ type: 'groupLeave', group: 'team' });
    expect(await event(a, 'groupMemberLeave')).toEqual({
      type: 'groupMemberLeave',
      group: 'team',
      userId: 'bob',
    });
    expect(await b.request({ t: 'leaveGroup', group: 'team' })).toMatchObject({ code: 'NOT_A_MEMBER' });
    expect(await b.request({ t: 'members', group: 'team' })).toMatchObject({ code: 'NOT_A_MEMBER' });

    // Only the creator deletes.
    await b.request({ t: 'joinGroup', group: 'team' });
    expect(await b.request({ t: 'deleteGroup', group: 'team' })).toMatchObject({ code: 'FORBIDDEN' });
    expect(await a.request({ t: 'deleteGroup', group: 'team' })).toMatchObject({ t: 'ok' });
    expect(await event(a, 'groupDeleted')).toEqual({ type: 'groupDeleted', group: 'team' });
    expect(await event(b, 'groupDeleted')).toEqual({ type: 'groupDeleted', group: 'team' });
    expect(await a.request({ t: 'members', group: 'team' })).toMatchObject({ code: 'UNKNOWN_GROUP' });

    // carol, offline since she joined, gets every later change in order when she returns.
    const c2 = await connect('carol');
    const got = await c2.delivers(3);
    expect(got.map((d) => d.event)).toEqual([
      { type: 'groupMemberLeave', group: 'team', userId: 'bob' },
      { type: 'groupMemberJoin', group: 'team', userId: 'bob' },
      { type: 'groupDeleted', group: 'team' },
    ]);
    expect(c2.ready?.groups).toEqual([]);
  });

  it('fans a group message out to every other member, online or not', async () => {
    const a = await connect('alice');
    const b = await connect('bob');
    const c = await connect('carol');
    await a.request({ t: 'createGroup', group: 'g' });
    await b.request({ t: 'joinGroup', group: 'g' });
    await c.request({ t: 'joinGroup', group: 'g' });
    await c.close();
    const id = msgId();
    expect(await a.request({ t: 'groupSend', group: 'g', id, body: body('hello all') })).toEqual({
      t: 'ack',
      rid: 2,
      id,
      group: 'g',
      state: 'sent',
    });
    const isMsg = (f: Frame): boolean => f.t === 'deliver' && f.kind === 'group';
    expect(await b.next(isMsg)).toMatchObject({ from: 'alice', id, group: 'g' });
    const c2 = await connect('carol');
    expect(await c2.next(isMsg)).toMatchObject({ from: 'alice', id, group: 'g' });
    await expect(a.next(isMsg, 200)).rejects.toThrow(/no matching frame/);
  });

  it('refuses sends to unknown groups and from non-members', async () => {
    const a = await connect('alice');
    const b = await connect('bob');
    await a.request({ t: 'createGroup', group: 'g' });
    expect(await b.request({ t: 'groupSend', group: 'g', id: msgId(), body: body('x') })).toMatchObject({
      t: 'error',
      code: 'NOT_A_MEMBER',
    });
    expect(await b.request({ t: 'groupSend', group: 'nope', id: msgId(), body: body('x') })).toMatchObject({
      t: 'error',
      code: 'UNKNOWN_GROUP',
    });
    await expect(a.next((f) => f.t === 'deliver' && f.kind === 'group', 200)).rejects.toThrow();
  });

  it('lists groups in ready and keeps them across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-groups-'));
    try {
      await relay.close();
      relay = await startRelay({ port: 0, dataDir: dir });
      const a = await connect('alice');
      const b = await connect('bob');
      await a.request({ t: 'createGroup', group: 'g' });
      await b.request({ t: 'joinGroup', group: 'g' });
      await b.request({ t: 'members', group: 'g' }); // its `received` for groupJoin is processed by now
      await b.close();
      await a.request({ t: 'leaveGroup', group: 'g' }); // queued for bob
      await relay.close();
      relay = await startRelay({ port: 0, dataDir: dir });
      const b2 = await connect('bob');
      expect(b2.ready?.groups).toEqual([{ group: 'g', creator: 'alice', members: ['bob'] }]);
      const got = await b2.delivers(1);
      expect(got[0]!.event).toEqual({ type: 'groupMemberLeave', group: 'g', userId: 'alice' });
      await expect(b2.next((f) => f.t === 'deliver', 200)).rejects.toThrow(/no matching frame/);
    } finally {
      await relay.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
