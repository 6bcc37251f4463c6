/**
 * Pairwise sessions (X3DH + Double Ratchet) under an unreliable relay: random interleavings with losses,
 * reordering and duplicates, lost session starts, skipped keys across DH ratchet steps, and the bounds
 * MAX_FORWARD_JUMP / MAX_SKIPPED_KEYS seen from the receiver's side.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src-main/core/encoding.js';
import { ErrorCode } from '../../src-main/core/errors.js';
import { MAX_FORWARD_JUMP, MAX_SKIPPED_KEYS, MessageType } from '../../src-main/core/crypto/constants.js';
import { encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { SessionRecord, parseDirectMessage } from '../../src-main/core/crypto/ratchet.js';
import {
  type User,
  establishedSession,
  expectE2EE,
  identityBytes,
  makeUser,
  receive,
  startSession,
  text,
  typeOf,
} from './fixtures.js';

/**
 * How many of a receiver's most recent receiving chains it remembers as finished: the current one plus
 * the 8 previous ratchet keys ratchet.ts keeps (PREVIOUS_RATCHET_KEYS_KEPT). A duplicate from one of these
 * is recognised as a REPLAY; an older one can only be refused as an unauthenticated message (BAD_TAG).
 */
const REMEMBERED_CHAINS = 9;

type Side = 'A' | 'B';
type Action =
  | { kind: 'send'; from: Side; size: number }
  | { kind: 'deliver' | 'drop' | 'duplicate'; to: Side; pick: number };

const side = fc.constantFrom<Side>('A', 'B');
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('send' as const), from: side, size: fc.nat(40) }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: side, pick: fc.nat() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), to: side, pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('duplicate' as const), to: side, pick: fc.nat() }),
  },
);

interface Sent {
  readonly wire: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly ratchetKey: string;
}

describe('two parties over a lossy, reordering, duplicating relay', () => {
  it('every delivered message decrypts once to what was sent; duplicates are refused; losses never block', () => {
    fc.assert(
      fc.property(
        fc.array(action, { minLength: 20, maxLength: 120, size: 'max' }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 20 }),
        (actions, finalOrder) => {
          const alice = makeUser('alice', 1);
          const bob = makeUser('bob', 1);
          const { ab, ba, bundle } = startSession(alice, bob);
          const user = { A: alice, B: bob };
          const rec = { A: ab, B: ba };
          const peer = (s: Side): Side => (s === 'A' ? 'B' : 'A');
          /** Messages addressed to each side, not delivered yet / already delivered. */
          const inFlight: Record<Side, Sent[]> = { A: [], B: [] };
          const delivered: Record<Side, Sent[]> = { A: [], B: [] };
          /** Ratchet keys each side has received from, in the order it first did. */
          const chains: Record<Side, string[]> = {
            // The initiator starts with the responder's signed prekey as its (chainless) receiving key.
            A: [toHex(bundle.signedPreKey.publicKey)],
            B: [],
          };
          let sent = 0;

          const deliver = (to: Side, m: Sent): void => {
            const first = delivered[to].length === 0;
            const res = rec[to].decrypt(user[to].identity, user[to].prekeys, m.wire);
            expect(res.plaintext).toEqual(m.plaintext);
            expect(encodePublicIdentity(res.peerIdentity)).toEqual(identityBytes(user[peer(to)]));
            // Only the responder's first decryption starts a session, and it consumes the one-time prekey.
            expect(res.newSession).toBe(to === 'B' && first);
            expect(res.consumedOneTimePreKeyId).toBe(
              to === 'B' && first ? bundle.oneTimePreKey!.id : undefined,
            );
            if (!chains[to].includes(m.ratchetKey)) chains[to].push(m.ratchetKey);
            delivered[to].push(m);
          };

          for (const a of actions) {
            if (a.kind === 'send') {
              const to = peer(a.from);
              const plaintext = text(`${a.from}#${sent++}:${'x'.repeat(a.size)}`);
              if (a.from === 'B' && delivered.B.length === 0) {
                // The responder has no session until a session start reaches it.
                expectE2EE(() => ba.encrypt(plaintext), ErrorCode.UNKNOWN_SESSION);
                continue;
              }
              const wire = rec[a.from].encrypt(plaintext);
              // The initiator announces X3DH in every message until it has decrypted a reply.
              const expectedType =
                a.from === 'A' && delivered.A.length === 0 ? MessageType.PREKEY : MessageType.DIRECT;
              expect(typeOf(wire)).toBe(expectedType);
              inFlight[to].push({ wire, plaintext, ratchetKey: toHex(parseDirectMessage(wire).ratchetKey) });
            } else if (a.kind === 'duplicate') {
              const pool = delivered[a.to];
              if (pool.length === 0) continue;
              const m = pool[a.pick % pool.length]!;
              const recent = chains[a.to].slice(-REMEMBERED_CHAINS).includes(m.ratchetKey);
              expectE2EE(
                () => rec[a.to].decrypt(user[a.to].identity, user[a.to].prekeys, m.wire),
                recent ? ErrorCode.REPLAY : [ErrorCode.REPLAY, ErrorCode.BAD_TAG],
              );
            } else {
              const pool = inFlight[a.to];
              if (pool.length === 0) continue;
              const [m] = pool.splice(a.pick % pool.length, 1);
              if (a.kind === 'deliver') deliver(a.to, m!);
            }
          }

          // Everything still in flight arrives, in a random order, and decrypts.
          let i = 0;
          for (const to of ['A', 'B'] as const) {
            while (inFlight[to].length > 0) {
              const [m] = inFlight[to].splice(finalOrder[i++ % finalOrder.length]! % inFlight[to].length, 1);
              deliver(to, m!);
            }
          }
          // And the conversation goes on in both directions (if it ever started).
          if (delivered.B.length > 0) {
            receive(ba, bob, ab.encrypt(text('still there?')), text('still there?'));
            receive(ab, alice, ba.encrypt(text('yes')), text('yes'));
            receive(ba, bob, ab.encrypt(text('good')), text('good'));
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('session start and skipped keys', () => {
  let alice: User;
  let bob: User;
  beforeAll(() => {
    alice = makeUser('alice', 8);
    bob = makeUser('bob', 8);
  });

  it('a lost first PREKEY message does not block: later PREKEY messages start the session', () => {
    const { ab, ba } = startSession(alice, bob);
    const lost = ab.encrypt(text('m0'));
    const m1 = ab.encrypt(text('m1'));
    const m2 = ab.encrypt(text('m2'));
    expect([lost, m1, m2].map(typeOf)).toEqual([MessageType.PREKEY, MessageType.PREKEY, MessageType.PREKEY]);

    const r2 = ba.decrypt(bob.identity, bob.prekeys, m2);
    expect(r2.plaintext).toEqual(text('m2'));
    expect(r2.newSession).toBe(true);
    // Still no reply: the initiator keeps announcing the session.
    const m3 = ab.encrypt(text('m3'));
    expect(typeOf(m3)).toBe(MessageType.PREKEY);
    const r1 = ba.decrypt(bob.identity, bob.prekeys, m1);
    expect(r1.plaintext).toEqual(text('m1'));
    expect(r1.newSession).toBe(false);
    expect(r1.consumedOneTimePreKeyId).toBeUndefined();

    const reply = ba.encrypt(text('r0'));
    expect(typeOf(reply)).toBe(MessageType.DIRECT);
    receive(ab, alice, reply, text('r0'));
    const m4 = ab.encrypt(text('m4'));
    expect(typeOf(m4)).toBe(MessageType.DIRECT);
    receive(ba, bob, m4, text('m4'));

    // The PREKEY messages still in flight decrypt after the ratchet moved on, once each.
    receive(ba, bob, m3, text('m3'));
    receive(ba, bob, lost, text('m0'));
    for (const m of [lost, m1, m2, m3, m4])
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, m), ErrorCode.REPLAY);
  });

  it('messages from chains older than the current one decrypt after several DH ratchet steps', () => {
    const { ab, ba } = establishedSession(alice, bob);
    const late: [Uint8Array, string][] = [];
    // Five round trips; in each, Alice's chain leaves two messages behind that arrive at the end.
    for (let round = 0; round < 5; round++) {
      const kept = [ab.encrypt(text(`a${round}.0`)), ab.encrypt(text(`a${round}.1`))];
      late.push([kept[0]!, `a${round}.0`], [kept[1]!, `a${round}.1`]);
      receive(ba, bob, ab.encrypt(text(`a${round}.2`)), text(`a${round}.2`));
      receive(ab, alice, ba.encrypt(text(`b${round}`)), text(`b${round}`));
    }
    receive(ba, bob, ab.encrypt(text('latest')), text('latest'));
    for (const [wire, pt] of late.reverse()) receive(ba, bob, wire, text(pt));
    for (const [wire] of late)
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, wire), ErrorCode.REPLAY);
  });

  it('a duplicate is a REPLAY while its chain is remembered, and never decrypts once it is forgotten', () => {
    const { ab, ba } = establishedSession(alice, bob);
    const first = ab.encrypt(text('first'));
    receive(ba, bob, first, text('first'));
    const rounds: Uint8Array[] = [];
    for (let round = 0; round < REMEMBERED_CHAINS + 3; round++) {
      receive(ab, alice, ba.encrypt(text(`b${round}`)), text(`b${round}`));
      const wire = ab.encrypt(text(`a${round}`));
      receive(ba, bob, wire, text(`a${round}`));
      rounds.push(wire);
    }
    // Recent chains: recognised as replays.
    for (const wire of rounds.slice(-(REMEMBERED_CHAINS - 1))) {
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, wire), ErrorCode.REPLAY);
    }
    // The oldest chain is no longer remembered: still refused, as an unauthenticated message.
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, first), [ErrorCode.REPLAY, ErrorCode.BAD_TAG]);
    receive(ba, bob, ab.encrypt(text('after')), text('after'));
    receive(ab, alice, ba.encrypt(text('fine')), text('fine'));
  });

  it(`skipped keys are bounded: after 2,499 messages skipped in two jumps only the newest ${MAX_SKIPPED_KEYS} decrypt`, () => {
    const { ab, ba } = establishedSession(alice, bob);
    const msgs = Array.from({ length: 2501 }, (_, i) => ab.encrypt(Uint8Array.of(i & 0xff)));
    // One message may not skip more than MAX_FORWARD_JUMP (= MAX_SKIPPED_KEYS): 2,500 take two.
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, msgs[2500]!), ErrorCode.TOO_FAR_AHEAD);
    receive(ba, bob, msgs[2000]!, Uint8Array.of(2000 & 0xff)); // skips 0..1999
    receive(ba, bob, msgs[2500]!, Uint8Array.of(2500 & 0xff)); // skips 2001..2499
    // The oldest 499 skipped keys were erased: those messages can never be read (refused as replays).
    for (let i = 0; i < 499; i++)
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, msgs[i]!), ErrorCode.REPLAY);
    // The newest 2,000 decrypt, in any order, once.
    for (let i = 2499; i >= 499; i--) if (i !== 2000) receive(ba, bob, msgs[i]!, Uint8Array.of(i & 0xff));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, msgs[1234]!), ErrorCode.REPLAY);
    // The session is fine.
    receive(ab, alice, ba.encrypt(text('ok')), text('ok'));
  });

  it('the skipped-key bound evicts the oldest first across several gaps', () => {
    const { ab, ba } = establishedSession(alice, bob);
    const msgs = Array.from({ length: 3001 }, (_, i) => ab.encrypt(Uint8Array.of(i & 0xff)));
    receive(ba, bob, msgs[1500]!, Uint8Array.of(1500 & 0xff)); // skips 0..1499
    receive(ba, bob, msgs[3000]!, Uint8Array.of(3000 & 0xff)); // skips 1501..2999: 2,999 in all
    const evicted = 2999 - MAX_SKIPPED_KEYS; // the first 999 skipped (0..998)
    for (const i of [0, 500, evicted - 1]) {
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, msgs[i]!), ErrorCode.REPLAY);
    }
    for (const i of [evicted, 1000, 1499, 1501, 2999]) receive(ba, bob, msgs[i]!, Uint8Array.of(i & 0xff));
  });
});

describe(`a jump of more than MAX_FORWARD_JUMP (${MAX_FORWARD_JUMP}) messages`, () => {
  const J = MAX_FORWARD_JUMP;
  let alice: User;
  let bob: User;
  /** Alice's and Bob's records after a round trip, before Alice's long chain. */
  let bobBefore: Uint8Array;
  let aliceAfter: Uint8Array;
  /** Alice's long chain (J + 4 messages); only the ones the tests deliver are kept. */
  const chain = new Map<number, Uint8Array>();
  const pt = (i: number): Uint8Array => Uint8Array.of(i & 0xff, (i >> 8) & 0xff);
  const wanted = (i: number): boolean => i < 6 || (i >= J - 2000 && i <= J - 1994) || i > J;

  beforeAll(() => {
    alice = makeUser('alice', 1);
    bob = makeUser('bob', 1);
    const { ab, ba } = establishedSession(alice, bob);
    bobBefore = ba.serialize();
    for (let i = 0; i < J + 4; i++) {
      const wire = ab.encrypt(pt(i));
      if (wanted(i)) chain.set(i, wire);
    }
    aliceAfter = ab.serialize();
  });

  const get = (i: number): Uint8Array => chain.get(i)!;

  it('is refused with TOO_FAR_AHEAD, changes nothing, and the same message decrypts once within reach', () => {
    const ba = SessionRecord.deserialize(bobBefore);
    const open = (i: number): Uint8Array => ba.decrypt(bob.identity, bob.prekeys, get(i)).plaintext;
    // First message of a new chain that claims J + 1 skipped messages.
    expectE2EE(() => open(J + 1), ErrorCode.TOO_FAR_AHEAD);
    expect(open(0)).toEqual(pt(0));
    // Same chain, receiver at 1: a jump of J + 1 is refused, a jump of exactly J is not.
    const before = ba.serialize();
    expectE2EE(() => open(J + 2), ErrorCode.TOO_FAR_AHEAD);
    expect(ba.serialize()).toEqual(before);
    expect(open(1)).toEqual(pt(1));
    expect(open(J + 2)).toEqual(pt(J + 2));
    // The refused message and later ones still arrive. A jump never sets aside more keys than are kept
    // (MAX_FORWARD_JUMP <= MAX_SKIPPED_KEYS), so every skipped message of it is still readable, once.
    expect(MAX_FORWARD_JUMP).toBeLessThanOrEqual(MAX_SKIPPED_KEYS);
    expect(open(J + 1)).toEqual(pt(J + 1));
    expect(open(J + 3)).toEqual(pt(J + 3));
    expectE2EE(() => open(1), ErrorCode.REPLAY);
    for (const i of [2, 3, 5]) expect(open(i)).toEqual(pt(i));
    expectE2EE(() => open(2), ErrorCode.REPLAY);
    // Normal traffic in both directions goes on.
    const ab = SessionRecord.deserialize(aliceAfter);
    receive(ab, alice, ba.encrypt(text('back')), text('back'));
    receive(ba, bob, ab.encrypt(text('forth')), text('forth'));
  });

  it('a new chain whose previous chain is more than J ahead is refused until the gap is within reach', () => {
    const ba = SessionRecord.deserialize(bobBefore);
    const ab = SessionRecord.deserialize(aliceAfter);
    const open = (i: number): Uint8Array => ba.decrypt(bob.identity, bob.prekeys, get(i)).plaintext;
    expect(open(0)).toEqual(pt(0));
    // Bob answers; Alice's next message starts a new chain announcing J + 4 messages in the old one.
    receive(ab, alice, ba.encrypt(text('r')), text('r'));
    const next = ab.encrypt(text('new chain'));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, next), ErrorCode.TOO_FAR_AHEAD);
    expect(open(1)).toEqual(pt(1));
    expect(open(2)).toEqual(pt(2));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, next), ErrorCode.TOO_FAR_AHEAD);
    expect(open(3)).toEqual(pt(3));
    // Receiver at 4 in the old chain, which has J + 4 messages: exactly J to skip, so the second message
    // of the new chain (one more key to set aside) is still too far, and the first is not.
    const next1 = ab.encrypt(text('new chain 2'));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, next1), ErrorCode.TOO_FAR_AHEAD);
    receive(ba, bob, next, text('new chain'));
    receive(ba, bob, next1, text('new chain 2'));
    // The rest of the old chain was set aside, all of it (at most MAX_SKIPPED_KEYS): each reads once.
    expect(open(J + 3)).toEqual(pt(J + 3));
    expect(open(J + 1)).toEqual(pt(J + 1));
    expectE2EE(() => open(3), ErrorCode.REPLAY);
    expect(open(4)).toEqual(pt(4));
    expectE2EE(() => open(4), ErrorCode.REPLAY);
    receive(ab, alice, ba.encrypt(text('back')), text('back'));
    receive(ba, bob, ab.encrypt(text('forth')), text('forth'));
  });
});

describe('simultaneous session starts', () => {
  it('both sides initiating at once still converge on a working session', () => {
    const alice = makeUser('alice', 1);
    const bob = makeUser('bob', 1);
    const { ab } = startSession(alice, bob);
    const { ab: ba } = startSession(bob, alice);
    const fromAlice = ab.encrypt(text('from alice'));
    const fromBob = ba.encrypt(text('from bob'));
    receive(ba, bob, fromAlice, text('from alice'));
    receive(ab, alice, fromBob, text('from bob'));
    for (let i = 0; i < 3; i++) {
      receive(ba, bob, ab.encrypt(text(`a${i}`)), text(`a${i}`));
      receive(ab, alice, ba.encrypt(text(`b${i}`)), text(`b${i}`));
    }
  });
});
