/**
 * Where a profile's private keys live: the OS keychain through keytar (service "Sealed", one account
 * per profile), or, only when there is no keychain, a passphrase-protected key file. Either way the
 * stored value is one versioned blob of ProfileSecrets: the E2EE identity and the key that encrypts
 * the local database. Nothing here ever writes a key in plaintext.
 */
import { randomBytes, scrypt, type ScryptOptions } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import type { KeyStore } from '../core/client/stores.js';
import { Reader, Writer, utf8Encode } from '../core/encoding.js';
import { aesGcmDecrypt, aesGcmEncrypt, wipe } from '../core/crypto/primitives.js';
import type { KeyStorage } from '../shared/messenger-api.js';
import { ServiceCode, ServiceError } from './errors.js';

/** The secrets of one profile. */
export interface ProfileSecrets {
  /** The E2EEClient's serialized identity (its KeyStore entry 'identity'). */
  readonly identity: Uint8Array;
  /** 32 random bytes: the AES-256-GCM key of the local database (local-store.ts). */
  readonly databaseKey: Uint8Array;
}

/** The keychain service name every account is stored under. */
export const KEYCHAIN_SERVICE = 'Sealed';
const SECRETS_VERSION = 1;
const DATABASE_KEY_BYTES = 32;

/** Encodes secrets as the versioned base64 blob stored in the keychain: u8 version, key, identity. */
export function encodeSecrets(s: ProfileSecrets): string {
  if (s.databaseKey.length !== DATABASE_KEY_BYTES) throw new RangeError('databaseKey must be 32 bytes');
  const bytes = new Writer(256).u8(SECRETS_VERSION).fixed(s.databaseKey).bytes(s.identity).finish();
  return Buffer.from(bytes).toString('base64');
}

/** Decodes `encodeSecrets` output; a corrupt or unknown blob is KEYS_MISSING (nothing usable is there). */
export function decodeSecrets(blob: string): ProfileSecrets {
  return decodeSecretBytes(new Uint8Array(Buffer.from(blob, 'base64')));
}

function decodeSecretBytes(bytes: Uint8Array): ProfileSecrets {
  try {
    const r = new Reader(bytes);
    if (r.u8() !== SECRETS_VERSION) throw new Error('version');
    const databaseKey = r.fixed(DATABASE_KEY_BYTES).slice();
    const identity = r.bytes(4096).slice();
    r.end();
    return { identity, databaseKey };
  } catch {
    throw new ServiceError(
      ServiceCode.KEYS_MISSING,
      'Your stored keys are damaged or from a newer version of Sealed.',
    );
  }
}

/** Fresh secrets for a new profile around an identity the caller generated. */
export function newSecrets(identity: Uint8Array): ProfileSecrets {
  return { identity, databaseKey: new Uint8Array(randomBytes(DATABASE_KEY_BYTES)) };
}

// ---------------------------------------------------------------------------------------------
// Keychain

/** The three keytar calls we use, so tests and other platforms can supply their own. */
export interface KeychainBackend {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
}

/** The real keychain via keytar, loaded on first use so a missing native module means "no keychain". */
export function keytarBackend(): KeychainBackend {
  // Default import: with "type": "module", `import * as` loses keytar's methods.
  const load = async (): Promise<KeychainBackend> => (await import('keytar')).default;
  return {
    getPassword: async (s, a) => (await load()).getPassword(s, a),
    setPassword: async (s, a, p) => (await load()).setPassword(s, a, p),
    deletePassword: async (s, a) => (await load()).deletePassword(s, a),
  };
}

// ---------------------------------------------------------------------------------------------
// Passphrase-protected key file (only without a keychain)

/** scrypt cost: 2^17 (about 128 MiB, a few hundred ms); files with less than 2^15 are refused. */
export const DEFAULT_SCRYPT_N = 2 ** 17;
const MIN_SCRYPT_N = 2 ** 15;
const MAX_SCRYPT_N = 2 ** 20;
const KEY_FILE_FORMAT = 'sealed-key-file';
const KEY_FILE_VERSION = 1;

const B64 = v.pipe(v.string(), v.maxLength(8192), v.base64());
const KeyFile = v.strictObject({
  format: v.literal(KEY_FILE_FORMAT),
  version: v.literal(KEY_FILE_VERSION),
  kdf: v.strictObject({
    name: v.literal('scrypt'),
    N: v.pipe(v.number(), v.integer(), v.minValue(MIN_SCRYPT_N), v.maxValue(MAX_SCRYPT_N)),
    r: v.literal(8),
    p: v.literal(1),
    salt: B64,
  }),
  cipher: v.literal('aes-256-gcm'),
  nonce: B64,
  ciphertext: B64,
});
type KeyFile = v.InferOutput<typeof KeyFile>;

function deriveKey(passphrase: string, salt: Uint8Array, N: number): Promise<Uint8Array> {
  // Async scrypt: the main process must not freeze the window while it runs.
  const options: ScryptOptions = { N, r: 8, p: 1, maxmem: 256 * N * 8 };
  return new Promise((resolve, reject) =>
    scrypt(passphrase.normalize('NFC'), salt, 32, options, (err, key) =>
      err ? reject(err) : resolve(new Uint8Array(key)),
    ),
  );
}

/** Associated data of the file's ciphertext: every header field, so a downgraded KDF fails the tag. */
function keyFileAad(f: Omit<KeyFile, 'nonce' | 'ciphertext'>): Uint8Array {
  const { kdf } = f;
  return utf8Encode(
    `${f.format}/${f.version}/${kdf.name}/${kdf.N}/${kdf.r}/${kdf.p}/${kdf.salt}/${f.cipher}`,
  );
}

function writeAtomically(file: string, contents: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, contents, { mode: 0o600, flush: true });
  renameSync(tmp, file);
}

function sealKeyFile(secretBytes: Uint8Array, key: Uint8Array, salt: Uint8Array, N: number): string {
  const header = {
    format: KEY_FILE_FORMAT,
    version: KEY_FILE_VERSION,
    kdf: { name: 'scrypt', N, r: 8, p: 1, salt: Buffer.from(salt).toString('base64') },
    cipher: 'aes-256-gcm',
  } as const;
  const nonce = new Uint8Array(randomBytes(12));
  const ciphertext = aesGcmEncrypt(key, nonce, secretBytes, keyFileAad(header));
  const file: KeyFile = {
    ...header,
    nonce: Buffer.from(nonce).toString('base64'),
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function secretBytes(s: ProfileSecrets): Uint8Array {
  return new Uint8Array(Buffer.from(encodeSecrets(s), 'base64'));
}

// ---------------------------------------------------------------------------------------------
// Vaults

/** An unlocked profile vault: its secrets in memory and a way to write changes back. */
export interface OpenVault {
  readonly storage: KeyStorage;
  readonly secrets: ProfileSecrets;
  /** Replaces the stored secrets (keychain entry or key file). */
  save(next: ProfileSecrets): Promise<void>;
  /** Forgets the secrets held in memory. */
  lock(): void;
}

/** Options of `new Secrets(...)`. */
export interface SecretsOptions {
  /** Keychain access (default keytar); `null` means this machine has none. */
  keychain?: KeychainBackend | null | undefined;
  /** Keychain service name (default "Sealed"; tests use their own). */
  service?: string | undefined;
  /** scrypt N for new key files (default 2^17, at least 2^15). */
  scryptN?: number | undefined;
  /** How long the keychain may take to answer the availability probe (default 5 s). */
  probeTimeoutMs?: number | undefined;
}

/** Creates, opens and deletes profile vaults in the keychain or in passphrase-protected key files. */
export class Secrets {
  private readonly keychain: KeychainBackend | null;
  private readonly service: string;
  private readonly scryptN: number;
  private readonly probeTimeoutMs: number;

  constructor(options: SecretsOptions = {}) {
    this.keychain = options.keychain === undefined ? keytarBackend() : options.keychain;
    this.service = options.service ?? KEYCHAIN_SERVICE;
    this.scryptN = options.scryptN ?? DEFAULT_SCRYPT_N;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 5000;
    if (
      !Number.isInteger(Math.log2(this.scryptN)) ||
      this.scryptN < MIN_SCRYPT_N ||
      this.scryptN > MAX_SCRYPT_N
    )
      throw new RangeError('scryptN must be a power of two in 2^15..2^20');
  }

  /** True when the OS keychain answers (keytar throws without a Secret Service, or may hang: both mean no). */
  async keychainAvailable(): Promise<boolean> {
    const keychain = this.keychain;
    if (!keychain) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.probeTimeoutMs);
    });
    const probe = keychain.getPassword(this.service, '.probe').then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stores new secrets in the keychain under `account`. */
  async createInKeychain(account: string, secrets: ProfileSecrets): Promise<OpenVault> {
    const vault = this.keychainVault(account, secrets);
    await vault.save(secrets);
    return vault;
  }

  /** Reads the keychain entry of `account`; KEYS_MISSING when it is not there. */
  async openKeychain(account: string): Promise<OpenVault> {
    const blob = await this.call(() => this.requireKeychain().getPassword(this.service, account));
    if (blob === null)
      throw new ServiceError(
        ServiceCode.KEYS_MISSING,
        'Your keys are missing from the keychain. Sealed cannot open this profile without them.',
      );
    return this.keychainVault(account, decodeSecrets(blob));
  }

  /** Writes new secrets to a key file protected by `passphrase` (scrypt, then AES-256-GCM). */
  async createKeyFile(file: string, passphrase: string, secrets: ProfileSecrets): Promise<OpenVault> {
    const salt = new Uint8Array(randomBytes(16));
    const key = await deriveKey(passphrase, salt, this.scryptN);
    const vault = keyFileVault(file, key, salt, this.scryptN, secrets);
    await vault.save(secrets);
    return vault;
  }

  /** Opens a key file; WRONG_PASSPHRASE when the passphrase does not decrypt it. */
  async openKeyFile(file: string, passphrase: string): Promise<OpenVault> {
    let parsed: KeyFile;
    try {
      const r = v.safeParse(KeyFile, JSON.parse(readFileSync(file, 'utf8')));
      if (!r.success) throw new Error('bad key file');
      parsed = r.output;
    } catch {
      throw new ServiceError(
        ServiceCode.KEY_FILE_CORRUPT,
        'Your key file is damaged or from a newer version of Sealed.',
      );
    }
    const salt = new Uint8Array(Buffer.from(parsed.kdf.salt, 'base64'));
    const key = await deriveKey(passphrase, salt, parsed.kdf.N);
    let plain: Uint8Array;
    try {
      plain = aesGcmDecrypt(
        key,
        new Uint8Array(Buffer.from(parsed.nonce, 'base64')),
        new Uint8Array(Buffer.from(parsed.ciphertext, 'base64')),
        keyFileAad(parsed),
      );
    } catch {
      wipe(key);
      throw new ServiceError(ServiceCode.WRONG_PASSPHRASE, 'That passphrase is not correct.');
    }
    const secrets = decodeSecretBytes(plain);
    wipe(plain);
    return keyFileVault(file, key, salt, parsed.kdf.N, secrets);
  }

  /** Deletes a profile's keychain entry and key file, whichever exist. */
  async remove(account: string, keyFile: string): Promise<void> {
    rmSync(keyFile, { force: true });
    if (this.keychain && (await this.keychainAvailable())) {
      await this.call(() => this.requireKeychain().deletePassword(this.service, account));
    }
  }

  private keychainVault(account: string, initial: ProfileSecrets): OpenVault {
    let secrets: ProfileSecrets | undefined = initial;
    return {
      storage: 'keychain',
      get secrets() {
        if (!secrets) throw new ServiceError(ServiceCode.LOCKED, 'Your profile is locked.');
        return secrets;
      },
      save: async (next) => {
        await this.call(() => this.requireKeychain().setPassword(this.service, account, encodeSecrets(next)));
        secrets = next;
      },
      lock: () => {
        if (secrets) wipe(secrets.databaseKey, secrets.identity);
        secrets = undefined;
      },
    };
  }

  private requireKeychain(): KeychainBackend {
    if (!this.keychain)
      throw new ServiceError(
        ServiceCode.KEYCHAIN_UNAVAILABLE,
        'This computer has no keychain Sealed can use.',
      );
    return this.keychain;
  }

  /** Runs a keychain call; its failures (no D-Bus, locked keyring, denied) become one plain error. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ServiceError) throw e;
      throw new ServiceError(
        ServiceCode.KEYCHAIN_FAILED,
        'The system keychain did not respond. Unlock it and try again.',
      );
    }
  }
}

/** A key-file vault keeps the derived key (never the passphrase) to re-seal the file on save. */
function keyFileVault(
  file: string,
  fileKey: Uint8Array,
  salt: Uint8Array,
  N: number,
  initial: ProfileSecrets,
): OpenVault {
  let secrets: ProfileSecrets | undefined = initial;
  let key: Uint8Array | undefined = fileKey;
  return {
    storage: 'passphrase-file',
    get secrets() {
      if (!secrets) throw new ServiceError(ServiceCode.LOCKED, 'Your profile is locked.');
      return secrets;
    },
    save: async (next) => {
      if (!key) throw new ServiceError(ServiceCode.LOCKED, 'Your profile is locked.');
      const plain = secretBytes(next);
      try {
        writeAtomically(file, sealKeyFile(plain, key, salt, N));
      } finally {
        wipe(plain);
      }
      secrets = next;
    },
    lock: () => {
      if (secrets) wipe(secrets.databaseKey, secrets.identity);
      if (key) wipe(key);
      secrets = undefined;
      key = undefined;
    },
  };
}

/** The E2EEClient KeyStore over a vault: the only entry is 'identity', kept inside the vault's blob. */
export function vaultKeyStore(vault: OpenVault): KeyStore {
  return {
    get: async (name) => (name === 'identity' ? vault.secrets.identity.slice() : undefined),
    set: async (name, value) => {
      // Anything else would have nowhere safe to go: refuse rather than drop or spill a secret.
      if (name !== 'identity') throw new TypeError(`the vault only holds the identity, not "${name}"`);
      await vault.save({ ...vault.secrets, identity: value.slice() });
    },
    delete: async (name) => {
      throw new TypeError(`"${name}" cannot be deleted from the vault: delete the profile instead`);
    },
  };
}
