/**
 * The relay's own long-term key (issue 8): a P-256 ECDSA key that signs every login challenge, so clients
 * can pin it per relay address and notice when another relay answers there. Made on the first start and
 * kept in `<dataDir>/relay.key` (readable by the relay's user only); an in-memory relay makes a new one
 * each start. Its fingerprint is what an operator tells users (`npm run relay` prints it).
 *
 * File format: `u8 version = 1 || 32-byte private scalar` (33 bytes). Written to a temporary file created
 * with mode 0600, synced, then renamed into place, so a crash never leaves half a key behind.
 */
import {
  chmodSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { SigningKeyPair } from '../core/crypto/primitives.js';
import { relayKeyFingerprint } from '../core/protocol/login.js';
import type { RelayLogger } from './log.js';

/** The relay key's file in the data directory. */
export const RELAY_KEY_FILE = 'relay.key';
const VERSION = 1;
const FILE_BYTES = 33;

/** The relay's key pair and the fingerprint of its public key. */
export interface RelayKey {
  readonly signing: SigningKeyPair;
  /** 65-byte SEC1 public key, as sent in every challenge. */
  readonly publicKey: Uint8Array;
  /** 30 digits (login.ts relayKeyFingerprint). */
  readonly fingerprint: string;
}

function relayKey(signing: SigningKeyPair): RelayKey {
  return { signing, publicKey: signing.publicKey, fingerprint: relayKeyFingerprint(signing.publicKey) };
}

/**
 * The relay's key: read from `<dataDir>/relay.key`, or made (and, with a data directory, written there).
 * A key file others can read is made private again, and said so in the log; a damaged one stops the start
 * with a sentence saying what to do (the caller holds the directory's lock, so no other relay writes it).
 */
export function loadRelayKey(dataDir: string | undefined, log: RelayLogger): RelayKey {
  if (dataDir === undefined) return relayKey(SigningKeyPair.generate());
  const file = join(dataDir, RELAY_KEY_FILE);
  let bytes: Buffer;
  try {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      chmodSync(file, 0o600);
      log.warn(
        'relay_key_file',
        `relay key ${file} was readable by others (mode ${mode.toString(8)}); made it private (600)`,
      );
    }
    bytes = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = relayKey(SigningKeyPair.generate());
    writeKeyFile(file, key.signing.privateKeyBytes());
    log.info('relay_key_file', `made a new relay key in ${file}`);
    return key;
  }
  if (bytes.length !== FILE_BYTES || bytes[0] !== VERSION)
    throw new Error(
      `The relay key ${file} is damaged (${bytes.length} bytes). Restore it from a backup, or move it away to make a new key: every client will then warn its user that the relay's key changed.`,
    );
  try {
    return relayKey(SigningKeyPair.fromPrivateKey(new Uint8Array(bytes.subarray(1))));
  } catch {
    throw new Error(
      `The relay key ${file} does not hold a valid P-256 key. Restore it from a backup, or move it away to make a new key.`,
    );
  }
}

function writeKeyFile(file: string, privateKey: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, Buffer.concat([Buffer.of(VERSION), privateKey]));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    privateKey.fill(0);
  }
  renameSync(tmp, file);
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
