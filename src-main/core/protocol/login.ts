/**
 * Logging in to a relay, bound to that relay (issue 8; docs/PROTOCOL.md "Authentication"): the relay's
 * long-term key and its fingerprint, the normalised relay address, and the exact bytes each side signs.
 *
 *   challenge  = ECDSA-Sign(relay key,    "E2EE-v1/relay-challenge" || relayKey || str(userId) || nonce)
 *   login      = ECDSA-Sign(identity key, "E2EE-v1/relay-login"     || relayKey || str(relayUrl) || str(userId) || nonce)
 *   deletion   = ECDSA-Sign(identity key, "E2EE-v1/delete-account"  || relayKey || str(userId) || nonce)
 *
 * relayKey is the relay's 65-byte SEC1 public key, nonce 32 fresh random bytes chosen by the relay, str a
 * u16 length and UTF-8 bytes (so every field list encodes injectively). The login names the relay's key
 * and the address the client dialled, so a signature made for one relay verifies at no other; the
 * deletion is signed over a nonce of its own, so neither a login nor an earlier deletion can stand in.
 */
import { Label } from '../crypto/constants.js';
import { P256_PUBLIC_BYTES, sha256 } from '../crypto/primitives.js';
import { Writer } from '../encoding.js';

/** Bytes of every relay nonce (the login challenge and the deletion challenge). */
export const RELAY_NONCE_BYTES = 32;
/** Longest relay address (normalised) accepted in `auth`. */
export const MAX_RELAY_URL_CHARS = 1024;

/**
 * The one spelling of a relay address that pins are kept under and logins sign: the WHATWG URL
 * serialisation (lower-case scheme and host, the default port dropped, IPv4 and IPv6 in their canonical
 * forms, at least "/" as the path) without a fragment. `ws://Relay.example:80` becomes
 * `ws://relay.example/`. Throws TypeError for anything but a ws:// or wss:// URL without user info or
 * fragment, as the WebSocket client would refuse to dial it anyway.
 */
export function normaliseRelayUrl(url: string): string {
  if (typeof url !== 'string') throw new TypeError('the relay address must be a string');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`"${url.slice(0, 100)}" is not a URL`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:')
    throw new TypeError('the relay address must start with ws:// or wss://');
  if (u.username !== '' || u.password !== '')
    throw new TypeError('the relay address must not carry a user name or password');
  if (u.hash !== '' || url.includes('#')) throw new TypeError('the relay address must not have a #fragment');
  if (u.host === '') throw new TypeError('the relay address names no host');
  const out = `${u.protocol}//${u.host}${u.pathname}${u.search}`;
  if (out.length > MAX_RELAY_URL_CHARS)
    throw new TypeError(`the relay address is longer than ${MAX_RELAY_URL_CHARS} characters`);
  return out;
}

/** True when `url` is a relay address already in its normalised form. */
export function isNormalisedRelayUrl(url: string): boolean {
  try {
    return normaliseRelayUrl(url) === url;
  } catch {
    return false;
  }
}

/**
 * What people compare to check a relay's key: 30 decimal digits, built as safety numbers are
 * (SHA-256 of "E2EE-v1/relay-key" || relayKey; six 5-byte chunks, each mod 100000, 5 digits each).
 * Finding another key with the same digits takes about 2^100 work.
 */
export function relayKeyFingerprint(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== P256_PUBLIC_BYTES)
    throw new TypeError('a relay key is a 65-byte P-256 public key');
  const digest = sha256(Label.RELAY_KEY, publicKey);
  let out = '';
  for (let i = 0; i < 6; i++) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + digest[i * 5 + j]!;
    out += String(v % 100000).padStart(5, '0');
  }
  return out;
}

/** A fingerprint as it is shown and read out: six groups of five digits. */
export function formatFingerprint(digits: string): string {
  return (digits.match(/\d{1,5}/g) ?? []).join(' ');
}

/** The 30 digits of a fingerprint typed by a person (spaces and dashes ignored), or undefined. */
export function parseFingerprint(text: string): string | undefined {
  const digits = text.replace(/[\s-]/g, '');
  return /^\d{30}$/.test(digits) ? digits : undefined;
}

function checkInputs(relayKey: Uint8Array, nonce: Uint8Array): void {
  if (!(relayKey instanceof Uint8Array) || relayKey.length !== P256_PUBLIC_BYTES)
    throw new TypeError('relayKey must be a 65-byte public key');
  if (!(nonce instanceof Uint8Array) || nonce.length !== RELAY_NONCE_BYTES)
    throw new TypeError(`nonce must be ${RELAY_NONCE_BYTES} bytes`);
}

/** What the relay signs in its challenge: "E2EE-v1/relay-challenge" || relayKey || str(userId) || nonce. */
export function challengeSignatureInput(relayKey: Uint8Array, userId: string, nonce: Uint8Array): Uint8Array {
  checkInputs(relayKey, nonce);
  return new Writer(192).fixed(Label.RELAY_CHALLENGE).fixed(relayKey).str(userId).fixed(nonce).finish();
}

/** What a user signs to log in: "E2EE-v1/relay-login" || relayKey || str(relayUrl) || str(userId) || nonce. */
export function loginSignatureInput(
  relayKey: Uint8Array,
  relayUrl: string,
  userId: string,
  nonce: Uint8Array,
): Uint8Array {
  checkInputs(relayKey, nonce);
  return new Writer(256)
    .fixed(Label.RELAY_LOGIN)
    .fixed(relayKey)
    .str(relayUrl)
    .str(userId)
    .fixed(nonce)
    .finish();
}

/** What a user signs to delete the account: "E2EE-v1/delete-account" || relayKey || str(userId) || nonce. */
export function deleteAccountSignatureInput(
  relayKey: Uint8Array,
  userId: string,
  nonce: Uint8Array,
): Uint8Array {
  checkInputs(relayKey, nonce);
  return new Writer(192).fixed(Label.DELETE_ACCOUNT).fixed(relayKey).str(userId).fixed(nonce).finish();
}
