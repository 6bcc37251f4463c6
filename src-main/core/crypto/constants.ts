/**
 * Wire constants of the cryptographic protocol (docs/PROTOCOL.md, "Cryptography").
 * Changing any value here is a protocol version change.
 */
import { utf8Encode } from '../encoding.js';

/** Version byte at the start of every direct message, distribution message and serialised state. */
export const PROTOCOL_VERSION = 1;
/**
 * Version byte of group messages. 2: the one-time message key is the AES-256-GCM key itself, with a
 * zero nonce and no associated data; the signature over the whole message authenticates the header
 * (version 1 derived a key and a nonce from the message key and the header with two more HMACs).
 */
export const GROUP_MESSAGE_VERSION = 2;

/** Message types: the second byte of every encrypted message. */
export const MessageType = {
  /** First direct messages of a session, carrying the X3DH parameters. */
  PREKEY: 1,
  /** Direct Double Ratchet message. */
  DIRECT: 2,
  /** Group message under a sender key, signed. */
  GROUP: 3,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Skipped message keys stored per ratchet session / per sender key (libsignal's bound). */
export const MAX_SKIPPED_KEYS = 2000;
/**
 * The most message keys one received message may make the receiver derive and set aside. No larger
 * than MAX_SKIPPED_KEYS: keys beyond what is kept would be derived only to be erased, and a forged
 * message claiming a far-ahead counter would buy that work before its tag is checked (issue 9;
 * libsignal allows 25,000). Every chain step costs an HMAC, so this bounds a frame's work.
 */
export const MAX_FORWARD_JUMP = MAX_SKIPPED_KEYS;
/**
 * Largest plaintext an encrypted message may carry. With headers, tag and base64 it stays under the
 * relay's body limit (wire.ts MAX_BODY_B64 = 240 KiB of base64, i.e. 180 KiB of ciphertext).
 */
export const MAX_PLAINTEXT_BYTES = 160 * 1024;
/** Previous sessions kept per peer (simultaneous initiation, in-flight messages). */
export const MAX_ARCHIVED_SESSIONS = 4;
/** X3DH base keys remembered per peer to refuse a replayed session start. */
export const MAX_SEEN_BASE_KEYS = 1000;
/** How long a sender's previous group key id stays valid after rotation (ms). */
export const DEFAULT_TRANSITION_WINDOW_MS = 60_000;

/** Domain-separation labels: each KDF and signature input starts with one of these. */
const l = (s: string): Uint8Array => utf8Encode(`E2EE-v1/${s}`);
export const Label = {
  IDENTITY_DH: l('identity-dh'),
  SIGNED_PREKEY: l('signed-prekey'),
  X3DH: l('x3dh'),
  ROOT: l('ratchet-root'),
  DIRECT_KEYS: l('direct-message-keys'),
  GROUP_SIGNATURE: l('group-signature'),
  /** Signed by the relay's key in every challenge (docs/PROTOCOL.md "Authentication"). */
  RELAY_CHALLENGE: l('relay-challenge'),
  /** Signed by the user's identity to log in: names the relay's key and address (issue 8). */
  RELAY_LOGIN: l('relay-login'),
  /** Signed by the user's identity over a fresh relay nonce to delete the account. */
  DELETE_ACCOUNT: l('delete-account'),
  /** Hashed with a relay's public key into the fingerprint people compare. */
  RELAY_KEY: l('relay-key'),
  SAFETY_NUMBER: l('safety-number'),
  GROUP_ENTRY: l('group-entry'),
  GROUP_ENTRY_HASH: l('group-entry-hash'),
  GROUP_LINK_JOIN: l('group-link-join'),
  GROUP_SAFETY_NUMBER: l('group-safety-number'),
} as const;

/** Chain KDF inputs (Signal's Double Ratchet section 5.2): message key 0x01, next chain key 0x02. */
export const CHAIN_MESSAGE_KEY = new Uint8Array([0x01]);
export const CHAIN_NEXT_KEY = new Uint8Array([0x02]);
