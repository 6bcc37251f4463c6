/**
 * Trust on first use: a contact who re-registers with a new identity (after deleting the account)
 * is detected, sending waits for the user's decision (the library's default), the safety number shown
 * is the new key's and accepting needs it, what the new key sends meanwhile is held (across a restart)
 * and shown once accepted, and the decision survives a restart. Attacks by a relay speaking under its
 * own key are in key-change-attacks.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../../src-main/relay/index.js';
import {
  MemoryKeyStore,
  MemoryStateStore,
  decodePublicIdentity,
  safetyNumber,
} from '../../src-main/core/index.js';
import { connectClient, until } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relayWithAlice() {
  const relay = await startRelay({ port: 0 });
  cleanup.push(() => relay.close());
  const opts = { keyStore: new MemoryKeyStore(), stateStore: new MemoryStateStore() };
  const alice = await connectClient(relay.url, 'alice', opts);
  cleanup.push(() => alice.client.close());
  return { relay, alice, opts };
}

/** bob registers, talks to alice, deletes his account; a new bob registers under a new key. */
async function bobReinstalls(url: string, alice: Awaited<ReturnType<typeof relayWithAlice>>['alice']) {
  const bob1 = await connectClient(url, 'bob');
  await alice.client.sendDirectMessage('bob', 'hi old bob');
  await bob1.rec.wait('message');
  const oldNumber = alice.client.safetyNumber('bob')!;
  await bob1.client.deleteAccount();
  await alice.rec.wait('userDeleted', (e) => e.userId === 'bob');
  const bob2 = await connectClient(url, 'bob');
  cleanup.push(() => bob2.client.close());
  const newNumber = safetyNumber(
    'alice',
    decodePublicIdentity(await alice.client.publicIdentity()),
    'bob',
    decodePublicIdentity(await bob2.client.publicIdentity()),
  );
  return { bob2, oldNumber, newNumber };
}

describe('identity change', () => {
  it('is detected, blocks sending until accepted with the number shown, and the approval persists', async () => {
    const { relay, alice, opts } = await relayWithAlice();
    const { bob2, oldNumber, newNumber } = await bobReinstalls(relay.url, alice);

    await expect(alice.client.sendDirectMessage('bob', 'are you still you?')).rejects.toMatchObject({
      code: 'E2EE_IDENTITY_CHANGED',
    });
    const warning = await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    expect(alice.client.identityChangePending('bob')).toBe(true);
    // The number to compare is the new key's: what bob's new installation computes.
    expect(warning.safetyNumber).toBe(newNumber);
    expect(await alice.client.pendingSafetyNumber('bob')).toBe(newNumber);
    expect(newNumber).not.toBe(oldNumber);
    expect(alice.client.safetyNumber('bob')).toBe(oldNumber);
    expect(bob2.rec.all('message')).toEqual([]);

    // The old number is not the pending key's: refused, nothing changes.
    await expect(alice.client.approveIdentity('bob', oldNumber)).rejects.toMatchObject({
      code: 'E2EE_SAFETY_NUMBER_MISMATCH',
    });
    expect(alice.client.identityChangePending('bob')).toBe(true);
    await alice.client.approveIdentity('bob', newNumber);
    expect(alice.client.identityChangePending('bob')).toBe(false);
    expect(alice.client.safetyNumber('bob')).toBe(newNumber);
    const id = await alice.client.sendDirectMessage('bob', 'hello new bob');
    expect((await bob2.rec.wait('message', (m) => m.id === id)).text).toBe('hello new bob');

    // A restarted alice keeps the approval.
    await alice.client.close();
    const alice2 = await connectClient(relay.url, 'alice', opts);
    cleanup.push(() => alice2.client.close());
    expect(alice2.client.identityChangePending('bob')).toBe(false);
    await alice2.client.sendDirectMessage('bob', 'after restart');
    await bob2.rec.wait('message', (m) => m.text === 'after restart');
  });

  it('holds what the new key sends (also across a restart) and shows it once the key is accepted', async () => {
    const { relay, alice, opts } = await relayWithAlice();
    await alice.client.createGroup('team', { policy: 'open' });
    const { bob2, newNumber } = await bobReinstalls(relay.url, alice);
    await bob2.client.joinGroup('team');
    await alice.rec.wait('groupMemberJoin', (e) => e.userId === 'bob');
    // bob's new installation writes first: a sender key and a group message, then a direct message.
    await bob2.client.sendGroupMessage('team', 'group hello from the new bob');
    await bob2.client.sendDirectMessage('alice', 'direct hello from the new bob');
    await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    await until(() => alice.client.heldMessageCount('bob') === 3, 10_000, 'three held');
    expect(alice.rec.all('message')).toEqual([]);
    expect(alice.rec.all('groupMessage')).toEqual([]);

    await alice.client.close();
    const alice2 = await connectClient(relay.url, 'alice', opts);
    cleanup.push(() => alice2.client.close());
    expect(alice2.client.heldMessageCount('bob')).toBe(3);
    expect(await alice2.client.pendingSafetyNumber('bob')).toBe(newNumber);

    expect(await alice2.client.approveIdentity('bob', newNumber)).toEqual({ released: 3, dropped: 0 });
    expect(alice2.client.heldMessageCount('bob')).toBe(0);
    expect(alice2.rec.all('messagesHeld')).toEqual([{ userId: 'bob', count: 0 }]);
    expect(alice2.rec.all('groupMessage').map((m) => [m.from, m.text])).toEqual([
      ['bob', 'group hello from the new bob'],
    ]);
    expect(alice2.rec.all('message').map((m) => [m.from, m.text])).toEqual([
      ['bob', 'direct hello from the new bob'],
    ]);
    expect(alice2.rec.all('e2eeError')).toEqual([]);
    const reply = await alice2.client.sendDirectMessage('bob', 'welcome back');
    await bob2.rec.wait('message', (m) => m.id === reply);
  });

  it('a contact who registered again while we were offline is noticed at our next connection', async () => {
    const { relay, alice, opts } = await relayWithAlice();
    const bob1 = await connectClient(relay.url, 'bob');
    cleanup.push(() => bob1.client.close());
    await alice.client.sendDirectMessage('bob', 'hi old bob');
    await bob1.rec.wait('message');
    // alice is offline while bob deletes his account and a new installation takes the id: she gets
    // neither userDeleted nor userCreated (live only).
    await alice.client.close();
    await bob1.client.deleteAccount();
    const bob2 = await connectClient(relay.url, 'bob');
    cleanup.push(() => bob2.client.close());

    const alice2 = await connectClient(relay.url, 'alice', opts);
    cleanup.push(() => alice2.client.close());
    // Told at the connection, before anything is sent: her next message would otherwise go out under
    // the old session, which nobody can read any more, and show as sent.
    const warning = alice2.rec.all('identityChanged').find((e) => e.userId === 'bob');
    expect(warning?.safetyNumber).toBe(
      safetyNumber(
        'alice',
        decodePublicIdentity(await alice2.client.publicIdentity()),
        'bob',
        decodePublicIdentity(await bob2.client.publicIdentity()),
      ),
    );
    await expect(alice2.client.sendDirectMessage('bob', 'still you?')).rejects.toMatchObject({
      code: 'E2EE_IDENTITY_CHANGED',
    });
    await alice2.client.approveIdentity('bob', warning!.safetyNumber);
    const id = await alice2.client.sendDirectMessage('bob', 'hello new bob');
    expect((await bob2.rec.wait('message', (m) => m.id === id)).text).toBe('hello new bob');
    expect(bob2.rec.all('e2eeError')).toEqual([]);

    // A later connection with nothing new says nothing.
    await alice2.client.close();
    const alice3 = await connectClient(relay.url, 'alice', opts);
    cleanup.push(() => alice3.client.close());
    expect(alice3.rec.all('identityChanged')).toEqual([]);
    expect(alice3.rec.all('e2eeError')).toEqual([]);
  });

  it('opted out of approval, a message to a contact who registered again while we were offline reaches the new installation', async () => {
    const relay = await startRelay({ port: 0 });
    cleanup.push(() => relay.close());
    const opts = {
      keyStore: new MemoryKeyStore(),
      stateStore: new MemoryStateStore(),
      requireApprovalOnIdentityChange: false,
    };
    const alice = await connectClient(relay.url, 'alice', opts);
    const bob1 = await connectClient(relay.url, 'bob');
    cleanup.push(() => bob1.client.close());
    await alice.client.sendDirectMessage('bob', 'hi');
    await bob1.rec.wait('message');
    await alice.client.close();
    await bob1.client.deleteAccount();
    const bob2 = await connectClient(relay.url, 'bob');
    cleanup.push(() => bob2.client.close());

    const alice2 = await connectClient(relay.url, 'alice', opts);
    cleanup.push(() => alice2.client.close());
    expect(alice2.rec.all('identityChanged').map((e) => e.userId)).toEqual(['bob']);
    const id = await alice2.client.sendDirectMessage('bob', 'new session, new key');
    expect((await bob2.rec.wait('message', (m) => m.id === id)).text).toBe('new session, new key');
    expect(bob2.rec.all('e2eeError')).toEqual([]);
  });

  it('without approval (opted out) pins the new key at once and still reports it', async () => {
    const relay = await startRelay({ port: 0 });
    cleanup.push(() => relay.close());
    const alice = await connectClient(relay.url, 'alice', { requireApprovalOnIdentityChange: false });
    cleanup.push(() => alice.client.close());
    const bob1 = await connectClient(relay.url, 'bob');
    await alice.client.sendDirectMessage('bob', 'hi');
    await bob1.rec.wait('message');
    await bob1.client.deleteAccount();
    await alice.rec.wait('userDeleted', (e) => e.userId === 'bob');
    const bob2 = await connectClient(relay.url, 'bob');
    cleanup.push(() => bob2.client.close());
    const id = await bob2.client.sendDirectMessage('alice', 'new key, no questions');
    expect((await alice.rec.wait('message', (m) => m.id === id)).text).toBe('new key, no questions');
    const warning = await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    expect(alice.client.safetyNumber('bob')).toBe(warning.safetyNumber);
    expect(alice.client.identityChangePending('bob')).toBe(false);
    expect(alice.client.heldMessageCount('bob')).toBe(0);
  });

  it('refuses decisions without a pending change or with a malformed number, changing nothing', async () => {
    const { relay, alice } = await relayWithAlice();
    const { newNumber } = await bobReinstalls(relay.url, alice);
    await expect(alice.client.approveIdentity('bob', newNumber)).rejects.toMatchObject({
      code: 'E2EE_USAGE',
    });
    await expect(alice.client.rejectIdentity('bob')).rejects.toMatchObject({ code: 'E2EE_USAGE' });
    await expect(alice.client.sendDirectMessage('bob', 'hello?')).rejects.toMatchObject({
      code: 'E2EE_IDENTITY_CHANGED',
    });
    for (const bad of ['', '123', `${newNumber}1`, newNumber.replace(/^\d/, 'x'), 42]) {
      await expect(alice.client.approveIdentity('bob', bad as string)).rejects.toBeInstanceOf(TypeError);
    }
    await expect(alice.client.approveIdentity('no such user!', newNumber)).rejects.toBeInstanceOf(TypeError);
    expect(alice.client.identityChangePending('bob')).toBe(true);
    expect(await alice.client.pendingSafetyNumber('bob')).toBe(newNumber);
  });
});
