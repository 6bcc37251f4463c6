/**
 * A profile whose keys cannot be read at start (issue 7): the status says why (`profileProblem`)
 * instead of an error event, every other call refuses with the same sentence, `reopenProfile` tries
 * again once the keychain is back, and `discardProfile` deletes only a profile whose keys are gone.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Secrets, type KeychainBackend } from '../../src-main/services/secrets.js';
import { Events, startService, tempDir, testKeychain } from './helpers.js';

const keychain = testKeychain();
const dirs: (() => void)[] = [];
afterAll(async () => {
  for (const c of dirs) c();
  await keychain.cleanup();
});

function dataDir(): string {
  const t = tempDir('sealed-problem-');
  dirs.push(t.cleanup);
  return t.dir;
}

const MISSING = 'Your keys are missing from the keychain. Sealed cannot open this profile without them.';

describe('a profile whose keys cannot be read at start', () => {
  it('is a state with its reason when the keys are gone, and can be discarded to start over', async () => {
    const dir = dataDir();
    const first = await startService({ dataDir: dir, secrets: keychain.secrets() });
    await first.createProfile({ userId: 'alice' });
    await first.updateSettings({ theme: 'dark' });
    await first.close();
    // The keychain entry goes away (a reset keyring, another user account, a cleaning tool).
    await keychain.backend.deletePassword(keychain.service, 'alice');

    const service = await startService({ dataDir: dir, secrets: keychain.secrets() });
    const events = new Events(service);
    try {
      expect(await service.getStatus()).toEqual({
        profile: { userId: 'alice', relayUrl: null, keyStorage: 'keychain' },
        keychainAvailable: true,
        locked: false,
        connection: 'offline',
        hostedRelay: null,
        profileProblem: { kind: 'keys-missing', message: MISSING },
      });
      await expect(service.listConversations()).rejects.toMatchObject({
        code: 'KEYS_MISSING',
        message: MISSING,
      });
      await expect(service.reopenProfile()).rejects.toMatchObject({ code: 'KEYS_MISSING' });
      // Only the profile's own user id deletes it.
      await expect(service.discardProfile({ userId: 'bob' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: 'That is not the user id of the profile on this computer.',
      });
      expect(existsSync(path.join(dir, 'profiles', 'alice', 'sealed.db'))).toBe(true);

      await service.discardProfile({ userId: 'alice' });
      expect(existsSync(path.join(dir, 'profiles', 'alice'))).toBe(false);
      const status = await service.getStatus();
      expect(status).toMatchObject({ profile: null, profileProblem: null, locked: false });
      expect(events.all).toContainEqual({ type: 'status', status });
      // Starting over works like a first run: a new profile with new keys, the same user id allowed.
      expect(await service.createProfile({ userId: 'alice' })).toEqual({
        userId: 'alice',
        relayUrl: null,
        keyStorage: 'keychain',
      });
      expect(await service.getSettings()).toMatchObject({ theme: 'system' });
      expect(await service.listConversations()).toEqual([]);
      // The problem was a state, never an error toast.
      expect(events.all.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      await service.close();
    }
  });

  it('waits for a keychain that does not answer, keeps the profile, and opens it when asked again', async () => {
    const dir = dataDir();
    const first = await startService({ dataDir: dir, secrets: keychain.secrets() });
    await first.createProfile({ userId: 'carol' });
    await first.close();

    // The same keychain, locked at first: every call fails as keytar's do when the keyring is locked.
    let locked = true;
    const gate =
      <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
      (...args: A): Promise<R> =>
        locked ? Promise.reject(new Error('Cannot create an item in a locked collection')) : fn(...args);
    const backend: KeychainBackend = {
      getPassword: gate((s, a) => keychain.backend.getPassword(s, a)),
      setPassword: gate((s, a, p) => keychain.backend.setPassword(s, a, p)),
      deletePassword: gate((s, a) => keychain.backend.deletePassword(s, a)),
    };
    const service = await startService({
      dataDir: dir,
      secrets: new Secrets({ keychain: backend, service: keychain.service }),
    });
    try {
      expect((await service.getStatus()).profileProblem).toEqual({
        kind: 'keychain-unavailable',
        message: 'The system keychain did not respond. Unlock it and try again.',
      });
      // The keys may still be there: this profile is not deletable.
      await expect(service.discardProfile({ userId: 'carol' })).rejects.toMatchObject({
        code: 'PROFILE_IN_USE',
      });
      await expect(service.reopenProfile()).rejects.toMatchObject({ code: 'KEYCHAIN_FAILED' });

      locked = false;
      expect(await service.reopenProfile()).toEqual({
        userId: 'carol',
        relayUrl: null,
        keyStorage: 'keychain',
      });
      expect((await service.getStatus()).profileProblem).toBeNull();
      expect(await service.listConversations()).toEqual([]);
      expect(existsSync(path.join(dir, 'profiles', 'carol', 'sealed.db'))).toBe(true);
    } finally {
      await service.close();
    }
  });
});
