/**
 * The seeds' scenario over real sockets: a relay on 127.0.0.1 and clients exchanging direct
 * messages both ways, then three clients creating, joining, using, leaving and deleting a group,
 * with every event checked on every client.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../../src-main/relay/index.js';
import type { E2EEClient } from '../../src-main/core/index.js';
import { connectClient, until } from './helpers.js';

type Relay = Awaited<ReturnType<typeof startRelay>>;
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relay(): Promise<Relay> {
  const r = await startRelay({ port: 0 });
  cleanup.push(() => r.close());
  return r;
}
function track(c: E2EEClient): void {
  cleanup.push(() => c.close());
}

describe('seeds scenario', () => {
  it('two clients exchange direct messages both ways, with sent and delivered acks', async () => {
    const r = await relay();
    const a = await connectClient(r.url, 'alice', { ack: { rcvDirectMessage: true } });
    track(a.client);
    const b = await connectClient(r.url, 'bob', { ack: { rcvDirectMessage: true } });
    track(b.client);
    await a.rec.wait('userCreated', (e) => e.userId === 'bob');

    const id1 = await a.client.sendDirectMessage('bob', 'hello bob');
    expect(await b.rec.wait('message', (m) => m.id === id1)).toEqual({
      id: id1,
      from: 'alice',
      text: 'hello bob',
    });
    const id2 = await b.client.sendDirectMessage('alice', 'hi alice');
    expect(await a.rec.wait('message', (m) => m.id === id2)).toEqual({
      id: id2,
      from: 'bob',
      text: 'hi alice',
    });
    const bin = new Uint8Array([0, 1, 2, 255]);
    const id3 = await a.client.sendDirectMessage('bob', bin);
    const got = await b.rec.wait('binaryMessage', (m) => m.id === id3);
    expect(got.from).toBe('alice');
    expect([...got.data]).toEqual([0, 1, 2, 255]);

    // acks: 'sent' from the relay, 'delivered' once the recipient decrypted
    expect(a.rec.all('ack').filter((x) => x.id === id1 && x.state === 'sent')).toEqual([
      { id: id1, from: 'alice', to: 'bob', group: undefined, state: 'sent' },
    ]);
    expect(await a.rec.wait('ack', (x) => x.id === id1 && x.state === 'delivered')).toMatchObject({
      from: 'alice',
      to: 'bob',
    });
    await b.rec.wait('ack', (x) => x.id === id2 && x.state === 'delivered');
    // nothing undecryptable along the way
    expect(a.rec.all('e2eeError')).toEqual([]);
    expect(b.rec.all('e2eeError')).toEqual([]);
    // many messages in both directions, interleaved, all arrive exactly once
    const sends: Promise<string>[] = [];
    for (let i = 0; i < 30; i++) {
      sends.push(a.client.sendDirectMessage('bob', `a${i}`));
      sends.push(b.client.sendDirectMessage('alice', `b${i}`));
    }
    await Promise.all(sends);
    await b.rec.waitCount('message', 31, (m) => m.text.startsWith('a') || m.text === 'hello bob');
    await a.rec.waitCount('message', 31, (m) => m.text.startsWith('b') || m.text === 'hi alice');
    const bTexts = b.rec.all('message').map((m) => m.text);
    expect(new Set(bTexts).size).toBe(bTexts.length);
  });

  it('three clients: create, join, send, leave and delete a group with every event on every client', async () => {
    const r = await relay();
    const a = await connectClient(r.url, 'alice', { ack: { rcvGroupMessage: true } });
    const b = await connectClient(r.url, 'bob', { ack: { rcvGroupMessage: true } });
    const c = await connectClient(r.url, 'carol', { ack: { rcvGroupMessage: true } });
    for (const x of [a, b, c]) track(x.client);

    await a.client.createGroup('friends', { policy: 'open' });
    await a.rec.wait('groupCreated', (e) => e.group === 'friends');

    const jb = await b.client.joinGroup('friends');
    expect(jb.creator).toBe('alice');
    expect(jb.members.sort()).toEqual(['alice', 'bob']);
    expect(await b.rec.wait('groupJoin')).toEqual({
      group: 'friends',
      creator: 'alice',
      members: expect.arrayContaining(['alice', 'bob']),
    });
    expect(b.client.listGroups()).toContainEqual({
      group: 'friends',
      creator: 'alice',
      members: ['alice', 'bob'],
    });
    await a.rec.wait('groupMemberJoin', (e) => e.userId === 'bob');

    const jc = await c.client.joinGroup('friends');
    expect(jc.members.sort()).toEqual(['alice', 'bob', 'carol']);
    await c.rec.wait('groupJoin');
    await a.rec.wait('groupMemberJoin', (e) => e.userId === 'carol');
    await b.rec.wait('groupMemberJoin', (e) => e.userId === 'carol');

    // joining again as a member returns the members and changes nothing
    const again = await c.client.joinGroup('friends');
    expect(again.members.sort()).toEqual(['alice', 'bob', 'carol']);

    const g1 = await a.client.sendGroupMessage('friends', 'hello group');
    for (const x of [b, c]) {
      expect(await x.rec.wait('groupMessage', (m) => m.id === g1)).toEqual({
        id: g1,
        group: 'friends',
        from: 'alice',
        text: 'hello group',
      });
    }
    const g2 = await b.client.sendGroupMessage('friends', 'bob here');
    await a.rec.wait('groupMessage', (m) => m.id === g2);
    await c.rec.wait('groupMessage', (m) => m.id === g2);
    // delivered acks from each member who decrypted
    await a.rec.wait('ack', (x) => x.id === g1 && x.state === 'delivered' && x.to === 'bob');
    await a.rec.wait('ack', (x) => x.id === g1 && x.state === 'delivered' && x.to === 'carol');

    // carol leaves: events to her and to the others; later messages are not for her
    await c.client.leaveGroup('friends');
    await c.rec.wait('groupLeave', (e) => e.group === 'friends');
    await a.rec.wait('groupMemberLeave', (e) => e.userId === 'carol');
    await b.rec.wait('groupMemberLeave', (e) => e.userId === 'carol');
    const g3 = await a.client.sendGroupMessage('friends', 'carol is gone');
    await b.rec.wait('groupMessage', (m) => m.id === g3);
    await expect(c.client.sendGroupMessage('friends', 'still here?')).rejects.toMatchObject({
      code: 'E2EE_NOT_A_MEMBER',
    });

    // only an admin (here the creator) may delete: refused before it reaches the relay
    await expect(b.client.deleteGroup('friends')).rejects.toMatchObject({ code: 'E2EE_NOT_ALLOWED' });
    await a.client.deleteGroup('friends');
    await a.rec.wait('groupDeleted', (e) => e.group === 'friends');
    await b.rec.wait('groupDeleted', (e) => e.group === 'friends');
    await expect(b.client.sendGroupMessage('friends', 'x')).rejects.toMatchObject({
      code: 'E2EE_NOT_A_MEMBER',
    });

    expect(c.rec.all('groupMessage').map((m) => m.id)).toEqual([g1, g2]);
    for (const x of [a, b, c]) expect(x.rec.all('e2eeError')).toEqual([]);
    // every group event each client saw, in order
    const groupEvents = (rec: typeof a.rec): string[] =>
      rec.events
        .filter((e) => e.name.startsWith('group') && !e.name.endsWith('Message'))
        .map((e) => `${e.name}:${(e.payload as { userId?: string }).userId ?? ''}`);
    expect(groupEvents(a.rec)).toEqual([
      'groupCreated:',
      'groupMemberJoin:bob',
      'groupMemberJoin:carol',
      'groupMemberLeave:carol',
      'groupDeleted:',
    ]);
    expect(groupEvents(b.rec)).toEqual([
      'groupJoin:',
      'groupMemberJoin:carol',
      'groupMemberLeave:carol',
      'groupDeleted:',
    ]);
    expect(groupEvents(c.rec)).toEqual(['groupJoin:', 'groupLeave:']);
  });

  it('an offline user gets queued messages and group events on reconnect, and a new client on the same stores resumes', async () => {
    const r = await relay();
    const { MemoryKeyStore, MemoryStateStore } = await import('../../src-main/core/index.js');
    const bobKeys = new MemoryKeyStore();
    const bobState = new MemoryStateStore();
    const a = await connectClient(r.url, 'alice');
    track(a.client);
    const b1 = await connectClient(r.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    await a.client.createGroup('g', { policy: 'open' });
    await b1.client.joinGroup('g');
    await a.rec.wait('groupMemberJoin');
    await a.client.sendDirectMessage('bob', 'before');
    await b1.rec.wait('message', (m) => m.text === 'before');
    await b1.client.close();

    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(await a.client.sendDirectMessage('bob', `offline ${i}`));
    await a.client.sendGroupMessage('g', 'group while away');
    const b2 = await connectClient(r.url, 'bob', { keyStore: bobKeys, stateStore: bobState });
    track(b2.client);
    const got = await b2.rec.waitCount('message', 20);
    expect(got.map((m) => m.text)).toEqual(ids.map((_, i) => `offline ${i}`));
    await b2.rec.wait('groupMessage', (m) => m.text === 'group while away');
    // bob answers on the same session: alice reads it
    await b2.client.sendDirectMessage('alice', 'back');
    await a.rec.wait('message', (m) => m.text === 'back');
    await until(() => a.rec.all('e2eeError').length === 0 && b2.rec.all('e2eeError').length === 0);
    expect(b2.rec.all('e2eeError')).toEqual([]);
  });
});
