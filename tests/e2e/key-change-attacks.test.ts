/**
 * Issue 8, "key changes that the user actually decides": a malicious relay speaks "as bob" under an
 * identity key of its own (tests/e2e/impostor.ts, injected through the proxy in front of a real relay).
 * Before the fix each of these worked: its sender key replaced bob's and its group and direct messages
 * showed as bob's, and a second key silently replaced the one the user was comparing. Now nothing sent
 * under an unapproved key is shown or processed, every new key is a new warning, and the user decides
 * with the number they were shown. The clients use the library's default options throughout: approval
 * of key changes is required by default.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../../src-main/relay/index.js';
import { connectClient, until } from './helpers.js';
import { Impostor, relayView } from './impostor.js';
import { startProxy, type Proxy } from './proxy.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

async function setup(): Promise<Proxy> {
  const relay = await startRelay({ port: 0 });
  cleanup.push(() => relay.close());
  const proxy = await startProxy(relay.url);
  cleanup.push(() => proxy.close());
  return proxy;
}

/** alice and bob with a pairwise session both ways, in the group 'team'. */
async function aliceAndBob(proxy: Proxy, transitionWindowMs?: number) {
  const alice = await connectClient(proxy.url, 'alice', { transitionWindowMs });
  cleanup.push(() => alice.client.close());
  const bob = await connectClient(proxy.url, 'bob', { transitionWindowMs });
  cleanup.push(() => bob.client.close());
  await alice.client.createGroup('team', { policy: 'open' });
  await bob.client.joinGroup('team');
  await alice.rec.wait('groupMemberJoin', (e) => e.userId === 'bob');
  const hello = await bob.client.sendDirectMessage('alice', 'hello from the real bob');
  await alice.rec.wait('message', (m) => m.id === hello);
  const hi = await alice.client.sendDirectMessage('bob', 'hi real bob');
  await bob.rec.wait('message', (m) => m.id === hi);
  const pinned = alice.client.safetyNumber('bob')!;
  expect(pinned).toMatch(/^\d{60}$/);
  return { alice, bob, pinned };
}

const texts = (events: { text: string }[]) => events.map((e) => e.text);

describe('a relay speaking as bob under its own key', () => {
  it('cannot install a sender key: its group message is not shown and bob’s genuine ones still decrypt', async () => {
    const proxy = await setup();
    // A short transition window: before the fix, bob's own key stopped working once it passed.
    const { alice, bob } = await aliceAndBob(proxy, 200);
    const first = await bob.client.sendGroupMessage('team', 'genuine group message 1');
    await alice.rec.wait('groupMessage', (m) => m.id === first);

    const mallory = new Impostor('bob', proxy);
    const view = await relayView(proxy.url, 'team');
    mallory.inject('alice', mallory.senderKey('alice', 'team', view));
    mallory.inject('alice', mallory.groupText('team', 'FORGED group message', view));
    await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    await settle(400); // past the transition window
    expect(texts(alice.rec.all('groupMessage'))).toEqual(['genuine group message 1']);

    const second = await bob.client.sendGroupMessage('team', 'genuine group message 2');
    await alice.rec.wait('groupMessage', (m) => m.id === second);
    expect(texts(alice.rec.all('groupMessage'))).toEqual([
      'genuine group message 1',
      'genuine group message 2',
    ]);
    expect(alice.rec.all('e2eeError')).toEqual([]);
    // Both frames are kept for the user's decision (the sender key and the message it would decrypt).
    expect(alice.client.heldMessageCount('bob')).toBe(2);
  });

  it('cannot show a direct message as bob’s: it is held, bob’s genuine messages still arrive', async () => {
    const proxy = await setup();
    const { alice, bob } = await aliceAndBob(proxy);
    const mallory = new Impostor('bob', proxy);
    mallory.inject('alice', mallory.text('alice', 'FORGED: send the money to mallory'));
    const warning = await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    await settle();
    expect(texts(alice.rec.all('message'))).toEqual(['hello from the real bob']);
    expect(warning.safetyNumber).toBe(mallory.safetyNumberWith('alice', await alice.client.publicIdentity()));
    expect(await alice.rec.wait('messagesHeld', (e) => e.userId === 'bob')).toEqual({
      userId: 'bob',
      count: 1,
    });
    expect(alice.client.heldMessageCount('bob')).toBe(1);

    const genuine = await bob.client.sendDirectMessage('alice', 'genuine while the change is pending');
    await alice.rec.wait('message', (m) => m.id === genuine);
    expect(texts(alice.rec.all('message'))).toEqual([
      'hello from the real bob',
      'genuine while the change is pending',
    ]);
    // Sending waits for the user's decision.
    await expect(alice.client.sendDirectMessage('bob', 'who are you?')).rejects.toMatchObject({
      code: 'E2EE_IDENTITY_CHANGED',
    });
  });

  it('is rejected: the old pin stays, its messages are dropped, alice writes to the real bob again', async () => {
    const proxy = await setup();
    const { alice, bob, pinned } = await aliceAndBob(proxy);
    const mallory = new Impostor('bob', proxy);
    mallory.inject('alice', mallory.text('alice', 'FORGED before reject'));
    mallory.inject('alice', mallory.senderKey('alice', 'team', await relayView(proxy.url, 'team')));
    await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');

    await alice.client.rejectIdentity('bob');
    expect(alice.client.identityChangePending('bob')).toBe(false);
    expect(alice.client.heldMessageCount('bob')).toBe(0);
    expect(alice.client.safetyNumber('bob')).toBe(pinned);
    expect(await alice.client.pendingSafetyNumber('bob')).toBeUndefined();

    // Sending resumes, on the session under bob's pinned key: the real bob reads it.
    const id = await alice.client.sendDirectMessage('bob', 'after reject');
    expect((await bob.rec.wait('message', (m) => m.id === id)).text).toBe('after reject');
    const group = await alice.client.sendGroupMessage('team', 'group after reject');
    await bob.rec.wait('groupMessage', (m) => m.id === group);

    // More from the rejected key: dropped, no new warning.
    const warnings = alice.rec.all('identityChanged').length;
    mallory.inject('alice', mallory.text('alice', 'FORGED after reject'));
    await alice.rec.wait('e2eeError', (e) => e.code === 'E2EE_IDENTITY_REJECTED');
    expect(alice.rec.all('identityChanged')).toHaveLength(warnings);
    expect(alice.client.identityChangePending('bob')).toBe(false);
    expect(texts(alice.rec.all('message')).filter((t) => t.startsWith('FORGED'))).toEqual([]);
  });

  it('cannot flood the hold: at most 100 messages are kept, later ones are dropped with a typed error', async () => {
    const proxy = await setup();
    const { alice } = await aliceAndBob(proxy);
    const mallory = new Impostor('bob', proxy);
    for (let i = 0; i < 103; i++) mallory.inject('alice', mallory.text('alice', `FORGED flood ${i}`));
    await until(() => alice.rec.all('e2eeError').length === 3, 10_000, 'three refused');
    expect(alice.client.heldMessageCount('bob')).toBe(100);
    expect(alice.rec.all('e2eeError').map((e) => [e.code, e.from])).toEqual(
      Array(3).fill(['E2EE_IDENTITY_CHANGED', 'bob']),
    );
    expect(alice.rec.all('identityChanged')).toHaveLength(1);
    expect(texts(alice.rec.all('message'))).toEqual(['hello from the real bob']);
  });

  it('raises a new warning for every new key: a second key during approval is never silently swapped in', async () => {
    const proxy = await setup();
    const { alice, pinned } = await aliceAndBob(proxy);
    const aliceIdentity = await alice.client.publicIdentity();
    const first = new Impostor('bob', proxy);
    first.inject('alice', first.text('alice', 'under the first new key'));
    await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    const shown = await alice.client.pendingSafetyNumber('bob');

    // While alice compares that number, another key appears.
    const second = new Impostor('bob', proxy);
    second.inject('alice', second.text('alice', 'under the second new key'));
    const [w1, w2] = await alice.rec.waitCount('identityChanged', 2, (e) => e.userId === 'bob');
    expect(shown).toBe(first.safetyNumberWith('alice', aliceIdentity));
    expect(w1!.safetyNumber).toBe(shown);
    expect(w2!.safetyNumber).toBe(second.safetyNumberWith('alice', aliceIdentity));
    expect(await alice.client.pendingSafetyNumber('bob')).toBe(w2!.safetyNumber);
    expect(w2!.safetyNumber).not.toBe(shown);
    expect(alice.client.safetyNumber('bob')).toBe(pinned);
    expect(alice.rec.all('message').map((m) => m.text)).toEqual(['hello from the real bob']);
  });

  it('accepting with a stale safety number is refused and changes nothing; the number shown now works', async () => {
    const proxy = await setup();
    const { alice, pinned } = await aliceAndBob(proxy);
    const aliceIdentity = await alice.client.publicIdentity();
    const first = new Impostor('bob', proxy);
    first.inject('alice', first.text('alice', 'under the first new key'));
    await alice.rec.wait('identityChanged', (e) => e.userId === 'bob');
    const shown = (await alice.client.pendingSafetyNumber('bob'))!;
    const second = new Impostor('bob', proxy);
    second.inject('alice', second.text('alice', 'under the second new key'));
    await alice.rec.waitCount('identityChanged', 2, (e) => e.userId === 'bob');

    await expect(alice.client.approveIdentity('bob', shown)).rejects.toMatchObject({
      code: 'E2EE_SAFETY_NUMBER_MISMATCH',
    });
    expect(alice.client.safetyNumber('bob')).toBe(pinned);
    expect(alice.client.identityChangePending('bob')).toBe(true);
    expect(alice.client.heldMessageCount('bob')).toBe(2);
    expect(alice.rec.all('message').map((m) => m.text)).toEqual(['hello from the real bob']);

    // The number for the key pending now, grouped as a person would type it, is accepted: the
    // messages under that key are shown, those under the replaced key are dropped.
    const now = second.safetyNumberWith('alice', aliceIdentity);
    await alice.client.approveIdentity('bob', now.replace(/(\d{5})/g, '$1 ').trim());
    expect(alice.client.safetyNumber('bob')).toBe(now);
    expect(alice.client.heldMessageCount('bob')).toBe(0);
    expect(alice.rec.all('message').map((m) => m.text)).toEqual([
      'hello from the real bob',
      'under the second new key',
    ]);
  });
});
