/**
 * The desktop service and issue 8: a relay whose key changed is refused, reported in the status for the
 * warning screen, and used again only after the user accepts the fingerprint they compared; contacts
 * whose ids look like earlier contacts' carry the warning; user ids typed in capitals are the same user.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { createIpcDispatcher } from '../../src-main/services/ipc.js';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import { Events, startService, tempDir, testKeychain } from './helpers.js';

const keychain = testKeychain();
const dirs: (() => void)[] = [];
const services: MessengerService[] = [];
const relays: Relay[] = [];

async function user(userId: string): Promise<{ service: MessengerService; events: Events }> {
  const t = tempDir();
  dirs.push(t.cleanup);
  const service = await startService({ dataDir: t.dir, secrets: keychain.secrets() });
  services.push(service);
  const events = new Events(service);
  // A passphrase-protected profile: what is tested here does not depend on where the keys are.
  await service.createProfile({ userId, passphrase: 'correct horse battery' });
  return { service, events };
}

afterAll(async () => {
  for (const s of services) await s.close();
  for (const r of relays) await r.close();
  for (const c of dirs) c();
  await keychain.cleanup();
});

describe('a relay whose key changed', () => {
  it('is refused and reported until the user accepts the fingerprint they compared', async () => {
    const t = tempDir('sealed-relay-');
    dirs.push(t.cleanup);
    const first = await startRelay({ host: '127.0.0.1', port: 0, dataDir: t.dir });
    const url = first.url;
    const nina = await user('nina');
    await nina.service.connect({ relayUrl: url });
    expect((await nina.service.getStatus()).relayFingerprint).toBe(first.fingerprint);
    await nina.service.disconnect();
    await first.close();

    // Another relay, with another key, now answers at the same address.
    const second = await startRelay({ host: '127.0.0.1', port: first.port });
    relays.push(second);
    await expect(nina.service.connect({ relayUrl: url })).rejects.toMatchObject({
      code: 'RELAY_KEY_CHANGED',
      message: expect.stringContaining('its key changed'),
    });
    const status = await nina.service.getStatus();
    expect(status.connection).toBe('offline');
    expect(status.relayKeyChange).toEqual({
      relayUrl: url,
      pinnedFingerprint: first.fingerprint,
      presentedFingerprint: second.fingerprint,
    });
    expect(nina.events.all.some((e) => e.type === 'status' && e.status.relayKeyChange)).toBe(true);

    // Accepting another fingerprint than the one presented, or for another address, changes nothing.
    await expect(
      nina.service.acceptRelayKey({ relayUrl: url, fingerprint: first.fingerprint }),
    ).rejects.toMatchObject({ code: 'RELAY_KEY_CHANGED' });
    await expect(
      nina.service.acceptRelayKey({ relayUrl: 'ws://127.0.0.1:1', fingerprint: second.fingerprint }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await nina.service.getStatus()).connection).toBe('offline');

    await nina.service.acceptRelayKey({ relayUrl: url, fingerprint: second.fingerprint });
    const after = await nina.service.getStatus();
    expect(after.connection).toBe('connected');
    expect(after.relayKeyChange).toBeUndefined();
    expect(after.relayFingerprint).toBe(second.fingerprint);
  });
});

describe('look-alike contacts and user ids', () => {
  it('a new contact whose id looks like an earlier one carries the warning; capitals are the same user', async () => {
    const relay = await startRelay({ host: '127.0.0.1', port: 0 });
    relays.push(relay);
    const olga = await user('olga');
    await olga.service.connect({ relayUrl: relay.url });
    await olga.service.openDirect({ userId: 'bob' });
    await olga.service.openDirect({ userId: 'b0b' });
    await olga.service.openDirect({ userId: 'carol' });
    const contacts = await olga.service.listContacts();
    expect(contacts.find((c) => c.userId === 'b0b')?.looksLike).toEqual(['bob']);
    expect(contacts.find((c) => c.userId === 'bob')?.looksLike).toBeUndefined();
    expect(contacts.find((c) => c.userId === 'carol')?.looksLike).toBeUndefined();
    expect(olga.events.all).toContainEqual({
      type: 'contact',
      contact: { userId: 'b0b', verified: false, keyChanged: false, looksLike: ['bob'] },
    });

    // Through the IPC boundary, an id typed in capitals is the lower-case user.
    const dispatch = createIpcDispatcher(olga.service, { isTrustedSender: () => true });
    const opened = await dispatch('app://sealed/', 'openDirect', { userId: 'BOB' });
    expect(opened).toMatchObject({ ok: true, value: { id: 'dm:bob', title: 'bob' } });
    expect((await olga.service.listContacts()).map((c) => c.userId)).toEqual(['b0b', 'bob', 'carol']);
  });
});
