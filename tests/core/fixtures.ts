/**
 * Shared helpers for the core's property and unit tests: users with published prekeys, pairwise sessions
 * built the way a client builds them (bundle through its wire encoding, first message as PREKEY), and one
 * assertion for "fails with a typed error and nothing else".
 */
import { expect } from 'vitest';
import { Writer, concatBytes, utf8Encode } from '../../src-main/core/encoding.js';
import { E2EEError, ErrorCode } from '../../src-main/core/errors.js';
import {
  CHAIN_MESSAGE_KEY,
  CHAIN_NEXT_KEY,
  GROUP_MESSAGE_VERSION,
  Label,
  MessageType,
} from '../../src-main/core/crypto/constants.js';
import { Identity, encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { aesGcmEncrypt, hmacSha256, type SigningKeyPair } from '../../src-main/core/crypto/primitives.js';
import { SessionRecord } from '../../src-main/core/crypto/ratchet.js';
import {
  type OneTimePreKeyPublic,
  type PreKeyBundle,
  PreKeys,
  decodePreKeyBundle,
  encodePreKeyBundle,
} from '../../src-main/core/crypto/x3dh.js';

const ALL_CODES: readonly string[] = Object.values(ErrorCode);

/**
 * Runs `fn` and asserts that it throws an E2EEError whose code is one of ErrorCode (and one of `codes`
 * when given). Returning anything, a plaintext included, fails the test. Returns the error.
 */
export function expectE2EE(fn: () => unknown, codes?: ErrorCode | readonly ErrorCode[]): E2EEError {
  let returned: unknown;
  try {
    returned = fn();
  } catch (e) {
    if (!(e instanceof E2EEError)) {
      throw new Error(`expected an E2EEError, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`, {
        cause: e,
      });
    }
    expect(ALL_CODES).toContain(e.code);
    if (codes !== undefined) expect(typeof codes === 'string' ? [codes] : codes).toContain(e.code);
    return e;
  }
  throw new Error(`expected an E2EEError${codes ? ` (${String(codes)})` : ''}, but the call returned`, {
    cause: returned,
  });
}

/** A distinct, recognisable plaintext. */
export const text = (s: string): Uint8Array => utf8Encode(s);

/** A copy of `bytes` with byte `i` xor-ed with `x`. */
export function flip(bytes: Uint8Array, i: number, x: number): Uint8Array {
  const out = bytes.slice();
  out[i]! ^= x;
  return out;
}

/** A user as the relay knows them: identity, private prekeys and the one-time prekeys still published. */
export interface User {
  readonly id: string;
  readonly identity: Identity;
  readonly prekeys: PreKeys;
  /** One-time prekeys uploaded to the relay and not handed out yet. */
  readonly published: OneTimePreKeyPublic[];
}

/** A fresh user with `oneTime` one-time prekeys uploaded. */
export function makeUser(id: string, oneTime = 2, now = 0): User {
  const identity = Identity.generate();
  const prekeys = PreKeys.create(identity, now);
  return { id, identity, prekeys, published: prekeys.generateOneTimePreKeys(oneTime) };
}

/**
 * What the relay hands out for `user` (one one-time prekey popped while any are left, unless
 * `oneTime` is false), passed through the bundle's wire encoding and its verification.
 */
export function fetchBundle(user: User, oneTime = true): PreKeyBundle {
  const oneTimePreKey = oneTime ? user.published.shift() : undefined;
  return decodePreKeyBundle(
    encodePreKeyBundle({
      userId: user.id,
      identity: user.identity.publicIdentity,
      signedPreKey: user.prekeys.currentSignedPreKey(),
      oneTimePreKey,
    }),
  );
}

/** The bytes of a public identity, for comparing identities. */
export const identityBytes = (u: User): Uint8Array => encodePublicIdentity(u.identity.publicIdentity);

/** A session started by `a` from `b`'s bundle; `b`'s record is still empty (nothing delivered yet). */
export function startSession(
  a: User,
  b: User,
  oneTime = true,
): { ab: SessionRecord; ba: SessionRecord; bundle: PreKeyBundle } {
  const bundle = fetchBundle(b, oneTime);
  const ab = new SessionRecord(a.id, b.id);
  ab.initiate(a.identity, bundle);
  return { ab, ba: new SessionRecord(b.id, a.id), bundle };
}

/** Decrypts `wire` at `rec` (owned by `user`) and asserts the plaintext. */
export function receive(rec: SessionRecord, user: User, wire: Uint8Array, expected: Uint8Array): void {
  expect(rec.decrypt(user.identity, user.prekeys, wire).plaintext).toEqual(expected);
}

/**
 * A session in which both sides have sent and received (so the next messages are DIRECT and the
 * initiator's one-time prekey is consumed).
 */
export function establishedSession(a: User, b: User): { ab: SessionRecord; ba: SessionRecord } {
  const { ab, ba } = startSession(a, b);
  receive(ba, b, ab.encrypt(text('hello')), text('hello'));
  receive(ab, a, ba.encrypt(text('hi')), text('hi'));
  return { ab, ba };
}

/** The message type byte of an encrypted message. */
export const typeOf = (wire: Uint8Array): number => wire[1]!;

/** Advances a sender-key chain key by `steps` (the HMAC hash ratchet of sender-keys.ts). */
export function advanceChainKey(chainKey: Uint8Array, steps: number): Uint8Array {
  let ck = chainKey;
  for (let i = 0; i < steps; i++) ck = hmacSha256(ck, CHAIN_NEXT_KEY);
  return ck;
}

/**
 * Builds a group message exactly as the wire format in sender-keys.ts documents it, from a chain key
 * at `counter` and any signing key: what a member holding someone's chain key could produce.
 */
export function craftGroupMessage(m: {
  groupId: string;
  senderId: string;
  keyId: number;
  counter: number;
  chainKey: Uint8Array;
  signer: SigningKeyPair;
  plaintext: Uint8Array;
  /** The version byte; anything but GROUP_MESSAGE_VERSION is an old or unknown format. */
  version?: number;
}): Uint8Array {
  const header = new Writer()
    .u8(m.version ?? GROUP_MESSAGE_VERSION)
    .u8(MessageType.GROUP)
    .str(m.groupId)
    .str(m.senderId)
    .u32(m.keyId)
    .u32(m.counter)
    .finish();
  // docs/PROTOCOL.md "Group messages": the message key is the AES key; zero nonce, no associated data.
  const mk = hmacSha256(m.chainKey, CHAIN_MESSAGE_KEY);
  const sealed = aesGcmEncrypt(mk, new Uint8Array(12), m.plaintext, new Uint8Array(0));
  const signed = new Writer().fixed(header).bytes(sealed).finish();
  return concatBytes(signed, m.signer.sign(concatBytes(Label.GROUP_SIGNATURE, signed)));
}
