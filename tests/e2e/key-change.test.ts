/**
 * Trust on first use: a contact who re-registers with a new identity (after deleting the account)
 * is detected, sending waits for the user's approval, the safety number shown is the new key's,
 * and approval survives a restart.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../../src-main/relay/index.js';
import {
  MemoryKeyStore,
  MemoryStateStore,
  decodePublicIdentity,
  safetyNumber,
} from '../../src-main/core/index.js';
import { connectClient } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('identity change', () => {
  it('is detected, blocks sending until approved, and the approval persists', async () => {
    const relay = await startRelay({ port: 0 });
    cleanup.push(() => relay.close());
    const aliceKeys = new MemoryKeyStore();
    const aliceState = new MemoryStateStore();
    const opts = { keyStore: aliceKeys, stateStore: aliceState, requireApprovalOnIdentityChange: true };
    const alice = await connectClient(relay.url, 'alice', opts);
    cleanup.push(() => alice.client.close());
    const bob1 = await connectClient(relay.url, 'bob', { requireApprovalOnIdentityChange: true });
    await alice.client.sendDirectMessage('bob', 'hi old bob');
    await bob1.rec.wait('message');
    const oldNumber = alice.client.safetyNumber('bob');

    await bob1.client.deleteAccount();
    await alice.rec.wait('userDeleted', (e) => e.userId === 'bob');
    const bob2 = await connectClient(relay.url, 'bob', { requireApprovalOnIdentityChange: true });
    cleanup.push(() => bob2.client.close());

    await expect(alice.client.sendDirectMessage('bob', 'are you still you?')).rejects.toMatchObject({
      code: 'E2EE_IDENTITY_CHANGED',
    });
    await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    expect(alice.client.identityChangePending('bob')).toBe(true);
    // The number to compare is the new key's: what bob's new installation computes.
    const expected = safetyNumber(
      'alice',
      decodePublicIdentity(await alice.client.publicIdentity()),
      'bob',
      decodePublicIdentity(await bob2.client.publicIdentity()),
    );
    expect(await alice.client.pendingSafetyNumber('bob')).toBe(expected);
    expect(expected).not.toBe(oldNumber);
    expect(bob2.rec.all('message')).toEqual([]);

    await alice.client.approveIdentity('bob');
    expect(alice.client.identityChangePending('bob')).toBe(false);
    expect(alice.client.safetyNumber('bob')).toBe(expected);
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
});
