/**
 * Persisted state: every serialisable object restored mid-conversation (skipped keys pending, a group
 * key in its transition window, a session start not yet answered) carries on as if nothing happened,
 * messages in flight across the restore included; corrupt bytes are a StorageError, never a crash.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, StorageError } from '../../src-main/core/errors.js';
import { MessageType } from '../../src-main/core/crypto/constants.js';
import { Identity, encodePublicIdentity, safetyNumber } from '../../src-main/core/crypto/identity.js';
import { SessionRecord } from '../../src-main/core/crypto/ratchet.js';
import { GroupSession } from '../../src-main/core/crypto/sender-keys.js';
import { PreKeys, decodePreKeyBundle, encodePreKeyBundle } from '../../src-main/core/crypto/x3dh.js';
import {
  type User,
  establishedSession,
  expectE2EE,
  fetchBundle,
  makeUser,
  receive,
  startSession,
  text,
  typeOf,
} from './fixtures.js';

/** The same user, as restored from the bytes a client persists. */
function restoreUser(u: User): User {
  return {
    id: u.id,
    identity: Identity.deserialize(u.identity.serialize()),
    prekeys: PreKeys.deserialize(u.prekeys.serialize()),
    published: u.published,
  };
}

describe('state round trips mid-conversation', () => {
  it('pairwise sessions restored with skipped keys pending and messages in flight both ways', () => {
    const alice0 = makeUser('alice', 2);
    const bob0 = makeUser('bob', 2);
    const s = establishedSession(alice0, bob0);
    // Alice's chain: a0 and a1 are overtaken by a2 (skipped keys at Bob), a3 is in flight.
    const a = [0, 1, 2, 3].map((i) => s.ab.encrypt(text(`a${i}`)));
    receive(s.ba, bob0, a[2]!, text('a2'));
    // Bob answers twice; b0 is in flight, b1 arrives (skipped key at Alice).
    const b = [0, 1].map((i) => s.ba.encrypt(text(`b${i}`)));
    receive(s.ab, alice0, b[1]!, text('b1'));
    // Alice's next chain: a4 in flight.
    const a4 = s.ab.encrypt(text('a4'));

    const alice = restoreUser(alice0);
    const bob = restoreUser(bob0);
    const ab = SessionRecord.deserialize(s.ab.serialize());
    const ba = SessionRecord.deserialize(s.ba.serialize());
    expect(ab.serialize()).toEqual(s.ab.serialize());
    expect(encodePublicIdentity(ba.peerIdentity!)).toEqual(
      encodePublicIdentity(alice0.identity.publicIdentity),
    );

    // In-flight and skipped messages arrive out of order after the restore, once each.
    receive(ba, bob, a4, text('a4'));
    receive(ba, bob, a[0]!, text('a0'));
    receive(ab, alice, b[0]!, text('b0'));
    receive(ba, bob, a[3]!, text('a3'));
    receive(ba, bob, a[1]!, text('a1'));
    for (const m of [...a, a4]) expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, m), ErrorCode.REPLAY);
    for (const m of b) expectE2EE(() => ab.decrypt(alice.identity, alice.prekeys, m), ErrorCode.REPLAY);
    // The conversation goes on, with more DH ratchet steps.
    for (let i = 0; i < 3; i++) {
      receive(ab, alice, ba.encrypt(text(`bob ${i}`)), text(`bob ${i}`));
      receive(ba, bob, ab.encrypt(text(`alice ${i}`)), text(`alice ${i}`));
    }
  });

  it('an unanswered session start survives a restore on both sides', () => {
    const alice = makeUser('alice', 1);
    const bob0 = makeUser('bob', 1);
    const { ab: ab0, bundle } = startSession(alice, bob0);
    const p0 = ab0.encrypt(text('p0'));
    const ab = SessionRecord.deserialize(ab0.serialize());
    const p1 = ab.encrypt(text('p1'));
    expect(typeOf(p1)).toBe(MessageType.PREKEY);
    const bob = restoreUser(bob0);
    const ba = new SessionRecord('bob', 'alice');
    const r = ba.decrypt(bob.identity, bob.prekeys, p1);
    expect(r).toMatchObject({ newSession: true, consumedOneTimePreKeyId: bundle.oneTimePreKey!.id });
    expect(r.plaintext).toEqual(text('p1'));
    const ba2 = SessionRecord.deserialize(ba.serialize());
    receive(ba2, bob, p0, text('p0'));
    receive(ab, alice, ba2.encrypt(text('answer')), text('answer'));
    expect(typeOf(ab.encrypt(text('direct now')))).toBe(MessageType.DIRECT);
  });

  it('a group restored during a transition window with skipped keys pending', () => {
    const W = 60_000;
    const alice0 = new GroupSession('g', 'alice', W);
    const bob0 = new GroupSession('g', 'bob', W);
    bob0.processDistribution('alice', alice0.rotate(0), 0);
    const m = [0, 1, 2, 3].map((i) => alice0.encrypt(text(`m${i}`)));
    bob0.decrypt(m[0]!, 10);
    bob0.decrypt(m[2]!, 10); // m1 skipped, m3 in flight
    const T = 1_000;
    bob0.processDistribution('alice', alice0.rotate(T), T);
    const n = [0, 1].map((i) => alice0.encrypt(text(`n${i}`)));
    bob0.decrypt(n[1]!, T); // n0 skipped

    const alice = GroupSession.deserialize(alice0.serialize());
    const bob = GroupSession.deserialize(bob0.serialize());
    expect(bob.transitionWindowMs).toBe(W);
    expect(alice.ownKeyId).toBe(alice0.ownKeyId);
    expect(alice.needsRotation(T)).toBe(false);
    expect(bob.hasSenderKey('alice')).toBe(true);

    // Within the window: the old key's skipped and in-flight messages, and the new key's skipped one.
    expect(bob.decrypt(m[1]!, T + W - 1).plaintext).toEqual(text('m1'));
    expect(bob.decrypt(n[0]!, T + W - 1).plaintext).toEqual(text('n0'));
    for (const x of [m[0]!, m[1]!, m[2]!, n[0]!, n[1]!])
      expectE2EE(() => bob.decrypt(x, T + W - 1), ErrorCode.REPLAY);
    // The restored sender continues its chain: no counter is reused.
    const n2 = alice.encrypt(text('n2'));
    expect(bob.decrypt(n2, T + W - 1)).toMatchObject({ counter: 2, keyId: alice0.ownKeyId });
    // The window ends when it would have without the restore.
    expectE2EE(() => bob.decrypt(m[3]!, T + W), ErrorCode.UNKNOWN_KEY_ID);
    // A restored group that must rotate still must.
    bob.membershipChanged();
    expect(GroupSession.deserialize(bob.serialize()).needsRotation(T + W)).toBe(true);
  });

  it('identity and prekeys restored: same public keys, same safety number, sessions start on them', () => {
    const bob0 = makeUser('bob', 3);
    const bundle0 = fetchBundle(bob0);
    const alice = makeUser('alice', 1);
    const ab = new SessionRecord('alice', 'bob');
    ab.initiate(alice.identity, bundle0);
    const first = ab.encrypt(text('to the old bob'));

    const bob = restoreUser(bob0);
    expect(encodePublicIdentity(bob.identity.publicIdentity)).toEqual(
      encodePublicIdentity(bob0.identity.publicIdentity),
    );
    expect(safetyNumber('alice', alice.identity.publicIdentity, 'bob', bob.identity.publicIdentity)).toBe(
      safetyNumber('alice', alice.identity.publicIdentity, 'bob', bob0.identity.publicIdentity),
    );
    expect(bob.prekeys.currentSignedPreKey()).toEqual(bob0.prekeys.currentSignedPreKey());
    expect(bob.prekeys.oneTimeCount).toBe(3);
    const ba = new SessionRecord('bob', 'alice');
    receive(ba, bob, first, text('to the old bob'));
    expect(bob.prekeys.oneTimeCount).toBe(2);

    // The consumption persists: restored again, the used one-time prekey is gone.
    const again = PreKeys.deserialize(bob.prekeys.serialize());
    expectE2EE(() => again.oneTimeKeyPair(bundle0.oneTimePreKey!.id), ErrorCode.UNKNOWN_PREKEY);
    // A restored identity still signs prekeys that verify, and new ids do not collide with old ones.
    const rotated = again.rotateSignedPreKey(bob.identity, 5);
    const fresh = again.generateOneTimePreKeys(1)[0]!;
    const issued = [bundle0.signedPreKey.id, bundle0.oneTimePreKey!.id, ...bob0.published.map((k) => k.id)];
    expect(issued).toHaveLength(4);
    expect(issued).not.toContain(fresh.id);
    expect(issued).not.toContain(rotated.id);
    const bundle = decodePreKeyBundle(
      encodePreKeyBundle({
        userId: 'bob',
        identity: bob.identity.publicIdentity,
        signedPreKey: rotated,
        oneTimePreKey: fresh,
      }),
    );
    const carol = makeUser('carol', 0);
    const cb = new SessionRecord('carol', 'bob');
    cb.initiate(carol.identity, bundle);
    const bc = new SessionRecord('bob', 'carol');
    expect(bc.decrypt(bob.identity, again, cb.encrypt(text('hi'))).consumedOneTimePreKeyId).toBe(fresh.id);
  });
});

describe('corrupt state', () => {
  const alice = makeUser('alice', 2);
  const bob = makeUser('bob', 2);
  const s = establishedSession(alice, bob);
  s.ab.encrypt(text('lost')); // leaves a skipped key at Bob
  receive(s.ba, bob, s.ab.encrypt(text('y')), text('y'));
  const ga = new GroupSession('g', 'alice');
  const gb = new GroupSession('g', 'bob');
  gb.processDistribution('alice', ga.rotate(0), 0);
  ga.encrypt(text('lost')); // leaves a skipped key at Bob
  gb.decrypt(ga.encrypt(text('1')), 0);
  gb.processDistribution('alice', ga.rotate(1), 1); // a previous key in its window

  const kinds: Record<string, { bytes: Uint8Array; restore: (b: Uint8Array) => unknown }> = {
    SessionRecord: { bytes: s.ba.serialize(), restore: (b) => SessionRecord.deserialize(b) },
    GroupSession: { bytes: gb.serialize(), restore: (b) => GroupSession.deserialize(b) },
    'GroupSession (own key)': { bytes: ga.serialize(), restore: (b) => GroupSession.deserialize(b) },
    PreKeys: { bytes: bob.prekeys.serialize(), restore: (b) => PreKeys.deserialize(b) },
    Identity: { bytes: bob.identity.serialize(), restore: (b) => Identity.deserialize(b) },
  };

  const badState = (fn: () => unknown): void => {
    const e = expectE2EE(fn, ErrorCode.BAD_STATE);
    expect(e).toBeInstanceOf(StorageError);
  };

  for (const [name, { bytes, restore }] of Object.entries(kinds)) {
    describe(name, () => {
      it('round-trips to the same bytes', () => {
        expect((restore(bytes) as { serialize(): Uint8Array }).serialize()).toEqual(bytes);
      });

      it('every truncation, appended bytes, another version, or another kind of state is BAD_STATE', () => {
        for (let n = 0; n < bytes.length; n++) badState(() => restore(bytes.subarray(0, n)));
        badState(() => restore(Uint8Array.from([...bytes, 0])));
        badState(() => restore(Uint8Array.from(bytes, (b, i) => (i === 0 ? b + 1 : b))));
        for (const [other, k] of Object.entries(kinds)) {
          if (!other.startsWith(name) && !name.startsWith(other)) badState(() => restore(k.bytes));
        }
      });

      it('random corruption either restores some state or is BAD_STATE, never another error', () => {
        fc.assert(
          fc.property(
            fc.oneof(
              fc
                .record({ at: fc.nat(bytes.length - 1), x: fc.integer({ min: 1, max: 255 }) })
                .map(({ at, x }) => Uint8Array.from(bytes, (b, i) => (i === at ? b ^ x : b))),
              fc.uint8Array({ maxLength: 2 * bytes.length }),
            ),
            (corrupt) => {
              try {
                restore(corrupt);
              } catch (e) {
                expect(e).toBeInstanceOf(StorageError);
                expect((e as StorageError).code).toBe(ErrorCode.BAD_STATE);
              }
            },
          ),
          { numRuns: 150 },
        );
      });
    });
  }

  it('an identity with any byte changed is refused (its parts no longer belong together)', () => {
    const bytes = bob.identity.serialize();
    for (let i = 0; i < bytes.length; i++)
      badState(() => Identity.deserialize(Uint8Array.from(bytes, (b, j) => (j === i ? b ^ 0x80 : b))));
  });
});
