/**
 * Secrets: real keys stored, read and deleted through keytar against the Secret Service of the
 * surrounding dbus-run-session; the passphrase-protected key file; and the path without a keychain
 * (a child process whose D-Bus address points nowhere, then the locked profile it leaves behind).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { promisify } from 'node:util';
import { Identity } from '../../src-main/core/crypto/identity.js';
import {
  DEFAULT_SCRYPT_N,
  Secrets,
  decodeSecrets,
  keytarBackend,
  newSecrets,
  vaultKeyStore,
  type ProfileSecrets,
} from '../../src-main/services/secrets.js';
import { startService, tempDir, testKeychain } from './helpers.js';

const keychain = testKeychain();
const dirs: (() => void)[] = [];
afterAll(async () => {
  await keychain.cleanup();
  for (const c of dirs) c();
});

function dir(): string {
  const t = tempDir('sealed-secrets-');
  dirs.push(t.cleanup);
  return t.dir;
}

const fresh = (): ProfileSecrets => newSecrets(Identity.generate().serialize());

/** Every way a key could appear in a text file: raw bytes, hex, base64, base64url. */
function encodings(bytes: Uint8Array): string[] {
  const b = Buffer.from(bytes);
  return [b.toString('latin1'), b.toString('hex'), b.toString('base64'), b.toString('base64url')];
}

describe('keychain (real Secret Service)', () => {
  it('stores, reads, updates and deletes a profile’s keys', async () => {
    const secrets = keychain.secrets();
    expect(await secrets.keychainAvailable()).toBe(true);
    const s = fresh();
    const vault = await secrets.createInKeychain('alice', s);
    expect(vault.storage).toBe('keychain');

    // What the keychain holds is one versioned blob under service/account.
    const blob = await keytarBackend().getPassword(keychain.service, 'alice');
    expect(blob).not.toBeNull();
    expect(decodeSecrets(blob!)).toEqual(s);
    expect(Buffer.from(blob!, 'base64')[0]).toBe(1);

    const opened = await secrets.openKeychain('alice');
    expect(opened.secrets).toEqual(s);
    const keyStore = vaultKeyStore(opened);
    expect(await keyStore.get('identity')).toEqual(s.identity);
    expect(await keyStore.get('other')).toBeUndefined();
    await expect(keyStore.set('other', new Uint8Array(1))).rejects.toThrow(TypeError);

    const next = Identity.generate().serialize();
    await keyStore.set('identity', next);
    expect((await secrets.openKeychain('alice')).secrets).toEqual({
      identity: next,
      databaseKey: s.databaseKey,
    });

    await secrets.remove('alice', path.join(dir(), 'keys.sealed'));
    expect(await keytarBackend().getPassword(keychain.service, 'alice')).toBeNull();
    await expect(secrets.openKeychain('alice')).rejects.toMatchObject({
      code: 'KEYS_MISSING',
      message: 'Your keys are missing from the keychain. Sealed cannot open this profile without them.',
    });
  });
});

describe('passphrase-protected key file', () => {
  it('opens with the right passphrase only, and holds no raw key', async () => {
    const secrets = new Secrets({ keychain: null, scryptN: 2 ** 15 });
    const file = path.join(dir(), 'keys.sealed');
    const s = fresh();
    await secrets.createKeyFile(file, 'correct horse battery', s);

    const text = readFileSync(file, 'utf8');
    const parsed = JSON.parse(text);
    expect(parsed).toMatchObject({
      format: 'sealed-key-file',
      version: 1,
      kdf: { name: 'scrypt', N: 2 ** 15, r: 8, p: 1 },
      cipher: 'aes-256-gcm',
    });
    expect(Buffer.from(parsed.kdf.salt, 'base64')).toHaveLength(16);
    expect(Buffer.from(parsed.nonce, 'base64')).toHaveLength(12);
    for (const secret of [s.databaseKey, s.identity, s.identity.subarray(1, 33)]) {
      for (const enc of encodings(secret)) expect(text).not.toContain(enc);
    }

    expect((await secrets.openKeyFile(file, 'correct horse battery')).secrets).toEqual(s);
    await expect(secrets.openKeyFile(file, 'wrong horse battery')).rejects.toMatchObject({
      code: 'WRONG_PASSPHRASE',
      message: 'That passphrase is not correct.',
    });

    // A weakened KDF in the file is refused, not used.
    const weak = { ...parsed, kdf: { ...parsed.kdf, N: 1024 } };
    writeFileSync(file, JSON.stringify(weak));
    await expect(secrets.openKeyFile(file, 'correct horse battery')).rejects.toMatchObject({
      code: 'KEY_FILE_CORRUPT',
    });
  });

  it('uses scrypt N = 2^17 by default', async () => {
    const file = path.join(dir(), 'keys.sealed');
    const secrets = new Secrets({ keychain: null });
    const s = fresh();
    await secrets.createKeyFile(file, 'a long enough passphrase', s);
    expect(JSON.parse(readFileSync(file, 'utf8')).kdf.N).toBe(DEFAULT_SCRYPT_N);
    expect(DEFAULT_SCRYPT_N).toBe(2 ** 17);
    expect((await secrets.openKeyFile(file, 'a long enough passphrase')).secrets).toEqual(s);
    expect(() => new Secrets({ scryptN: 2 ** 14 })).toThrow(RangeError);
  });
});

describe('without a keychain', () => {
  it('offers the passphrase file, then starts locked until unlocked', async () => {
    const dataDir = dir();
    // A real keytar with no D-Bus to talk to, in a child process (the variable is read at load).
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('fixtures/no-keychain.ts', import.meta.url)), dataDir],
      {
        env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent', DISPLAY: '' },
        timeout: 30_000,
      },
    );
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({
      status: {
        profile: null,
        keychainAvailable: false,
        locked: false,
        connection: 'offline',
        hostedRelay: null,
        profileProblem: null,
      },
    });
    expect(lines[1]).toEqual({
      error: {
        code: 'PASSPHRASE_REQUIRED',
        message: 'This computer has no keychain. Choose a passphrase to protect your keys.',
      },
    });
    expect(lines[2]).toEqual({
      profile: { userId: 'nokeychain', relayUrl: null, keyStorage: 'passphrase-file' },
    });
    const keyFile = readFileSync(path.join(dataDir, 'profiles', 'nokeychain', 'keys.sealed'), 'utf8');
    expect(JSON.parse(keyFile).format).toBe('sealed-key-file');

    // The same profile, reopened here with a keychain that fails the way keytar does without D-Bus.
    const failing = new Secrets({
      keychain: {
        getPassword: () => Promise.reject(new Error('Cannot autolaunch D-Bus without X11 $DISPLAY')),
        setPassword: () => Promise.reject(new Error('Cannot autolaunch D-Bus without X11 $DISPLAY')),
        deletePassword: () => Promise.reject(new Error('Cannot autolaunch D-Bus without X11 $DISPLAY')),
      },
    });
    const service = await startService({ dataDir, secrets: failing });
    try {
      expect(await service.getStatus()).toMatchObject({
        keychainAvailable: false,
        locked: true,
        profile: { userId: 'nokeychain', keyStorage: 'passphrase-file' },
      });
      await expect(service.listConversations()).rejects.toMatchObject({ code: 'LOCKED' });
      await expect(service.unlock({ passphrase: 'not the passphrase' })).rejects.toMatchObject({
        code: 'WRONG_PASSPHRASE',
        message: 'That passphrase is not correct.',
      });
      expect((await service.getStatus()).locked).toBe(true);
      await service.unlock({ passphrase: 'correct horse battery' });
      expect((await service.getStatus()).locked).toBe(false);
      expect(await service.listConversations()).toEqual([]);
    } finally {
      await service.close();
    }
  });

  it('never creates a profile without the keychain or a passphrase', async () => {
    const dataDir = dir();
    const service = await startService({ dataDir, secrets: new Secrets({ keychain: null }) });
    try {
      await expect(service.createProfile({ userId: 'x' })).rejects.toMatchObject({
        code: 'PASSPHRASE_REQUIRED',
      });
      expect((await service.getStatus()).profile).toBeNull();
    } finally {
      await service.close();
    }
  });
});
