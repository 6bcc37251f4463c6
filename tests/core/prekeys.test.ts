/**
 * Prekeys as a relay or a replaying attacker sees them: one-time prekeys are used once, replayed session
 * starts are refused, session starts on used or unknown prekeys fail with typed errors, and bundles are
 * verified before use.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src-main/core/errors.js';
import { MAX_ARCHIVED_SESSIONS } from '../../src-main/core/crypto/constants.js';
import { SessionRecord } from '../../src-main/core/crypto/ratchet.js';
import { decodePreKeyBundle, encodePreKeyBundle } from '../../src-main/core/crypto/x3dh.js';
import { expectE2EE, fetchBundle, flip, makeUser, receive, startSession, text } from './fixtures.js';

describe('one-time prekeys', () => {
  it('is consumed by the first successful session start, not by a failed one', () => {
    const alice = makeUser('alice', 0);
    const bob = makeUser('bob', 2);
    const { ab, ba, bundle } = startSession(alice, bob);
    const opk = bundle.oneTimePreKey!.id;
    const first = ab.encrypt(text('hello'));
    // A corrupted session start fails and consumes nothing.
    expectE2EE(
      () => ba.decrypt(bob.identity, bob.prekeys, flip(first, first.length - 1, 1)),
      ErrorCode.BAD_TAG,
    );
    expect(bob.prekeys.oneTimeCount).toBe(2);
    expect(ba.hasSession).toBe(false);

    const r = ba.decrypt(bob.identity, bob.prekeys, first);
    expect(r).toMatchObject({ newSession: true, consumedOneTimePreKeyId: opk });
    expect(bob.prekeys.oneTimeCount).toBe(1);
    expectE2EE(() => bob.prekeys.oneTimeKeyPair(opk), ErrorCode.UNKNOWN_PREKEY);
    // Further PREKEY messages of the same session do not consume anything more.
    const second = ab.encrypt(text('again'));
    const r2 = ba.decrypt(bob.identity, bob.prekeys, second);
    expect(r2.newSession).toBe(false);
    expect(r2.consumedOneTimePreKeyId).toBeUndefined();
    expect(bob.prekeys.oneTimeCount).toBe(1);
  });

  it('a replayed first PREKEY message is REPLAY once the session exists, also after a restore', () => {
    const alice = makeUser('alice', 0);
    const bob = makeUser('bob', 1);
    const { ab, ba } = startSession(alice, bob);
    const first = ab.encrypt(text('hello'));
    receive(ba, bob, first, text('hello'));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, first), ErrorCode.REPLAY);
    receive(ab, alice, ba.encrypt(text('hi')), text('hi'));
    receive(ba, bob, ab.encrypt(text('how are you')), text('how are you'));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, first), ErrorCode.REPLAY);
    expectE2EE(
      () => SessionRecord.deserialize(ba.serialize()).decrypt(bob.identity, bob.prekeys, first),
      ErrorCode.REPLAY,
    );
  });

  it('a session start whose session is forgotten is REPLAY while its base key is remembered', () => {
    const alice = makeUser('alice', 0);
    const bob = makeUser('bob', MAX_ARCHIVED_SESSIONS + 2);
    const ba = new SessionRecord('bob', 'alice');
    const firsts: Uint8Array[] = [];
    // Alice starts more sessions than Bob keeps; the first one is dropped from his record.
    for (let i = 0; i < MAX_ARCHIVED_SESSIONS + 2; i++) {
      const ab = new SessionRecord('alice', 'bob');
      ab.initiate(alice.identity, fetchBundle(bob));
      const wire = ab.encrypt(text(`start ${i}`));
      receive(ba, bob, wire, text(`start ${i}`));
      firsts.push(wire);
    }
    for (const wire of firsts)
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, wire), ErrorCode.REPLAY);
  });

  it('a session start on a one-time prekey another session consumed fails with a typed error', () => {
    const alice = makeUser('alice', 0);
    const carol = makeUser('carol', 0);
    const bob = makeUser('bob', 1);
    // A misbehaving relay hands Bob's single one-time prekey to both Alice and Carol.
    const bytes = encodePreKeyBundle({
      userId: 'bob',
      identity: bob.identity.publicIdentity,
      signedPreKey: bob.prekeys.currentSignedPreKey(),
      oneTimePreKey: bob.published[0],
    });
    const fromAlice = new SessionRecord('alice', 'bob');
    fromAlice.initiate(alice.identity, decodePreKeyBundle(bytes));
    const fromCarol = new SessionRecord('carol', 'bob');
    fromCarol.initiate(carol.identity, decodePreKeyBundle(bytes));
    receive(new SessionRecord('bob', 'alice'), bob, fromAlice.encrypt(text('alice')), text('alice'));
    const bc = new SessionRecord('bob', 'carol');
    expectE2EE(
      () => bc.decrypt(bob.identity, bob.prekeys, fromCarol.encrypt(text('carol'))),
      [ErrorCode.UNKNOWN_PREKEY, ErrorCode.REPLAY],
    );
    expect(bc.hasSession).toBe(false);
    // Bob lost his record with Alice (new device state): her first message cannot start a second session.
    const again = fromAlice.encrypt(text('alice again'));
    expectE2EE(
      () => new SessionRecord('bob', 'alice').decrypt(bob.identity, bob.prekeys, again),
      [ErrorCode.UNKNOWN_PREKEY, ErrorCode.REPLAY],
    );
    // Carol recovers with a bundle without a one-time prekey.
    const retry = new SessionRecord('carol', 'bob');
    retry.initiate(carol.identity, fetchBundle(bob, false));
    receive(bc, bob, retry.encrypt(text('carol, take two')), text('carol, take two'));
  });

  it('signed prekeys: the last three still start sessions, older ones are UNKNOWN_PREKEY', () => {
    const alice = makeUser('alice', 0);
    const bob = makeUser('bob', 0);
    const starts: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) bob.prekeys.rotateSignedPreKey(bob.identity, i);
      const ab = new SessionRecord('alice', 'bob');
      ab.initiate(alice.identity, fetchBundle(bob, false));
      starts.push(ab.encrypt(text(`on spk ${i}`)));
    }
    bob.prekeys.rotateSignedPreKey(bob.identity, 9);
    // Kept: the current one (made at 9) and the two before it (made at 2 and 3).
    expectE2EE(
      () => new SessionRecord('bob', 'alice').decrypt(bob.identity, bob.prekeys, starts[0]!),
      ErrorCode.UNKNOWN_PREKEY,
    );
    expectE2EE(
      () => new SessionRecord('bob', 'alice').decrypt(bob.identity, bob.prekeys, starts[1]!),
      ErrorCode.UNKNOWN_PREKEY,
    );
    receive(new SessionRecord('bob', 'alice'), bob, starts[2]!, text('on spk 2'));
    receive(new SessionRecord('bob', 'alice'), bob, starts[3]!, text('on spk 3'));
  });
});

describe('prekey bundles', () => {
  it('any changed byte of a bundle is refused with a typed error, or changes nothing that matters', () => {
    const bob = makeUser('bob', 1);
    const bytes = encodePreKeyBundle({
      userId: 'bob',
      identity: bob.identity.publicIdentity,
      signedPreKey: bob.prekeys.currentSignedPreKey(),
      oneTimePreKey: bob.published[0],
    });
    const alice = makeUser('alice', 0);
    for (let i = 0; i < bytes.length; i++) {
      let bundle;
      try {
        bundle = decodePreKeyBundle(flip(bytes, i, 0x01));
      } catch (e) {
        expectE2EE(() => {
          throw e;
        });
        continue;
      }
      // Only the unsigned parts can change undetected (the user id, one-time prekey id or key): a session
      // on them never reaches Bob's state as a valid start.
      const ab = new SessionRecord('alice', bundle.userId);
      ab.initiate(alice.identity, bundle);
      if (bundle.userId === 'bob') {
        const before = bob.prekeys.serialize();
        expectE2EE(() =>
          new SessionRecord('bob', 'alice').decrypt(bob.identity, bob.prekeys, ab.encrypt(text('x'))),
        );
        expect(bob.prekeys.serialize()).toEqual(before);
      }
    }
    expect(decodePreKeyBundle(bytes).userId).toBe('bob');
  });

  it('a bundle cannot open a session with oneself or be used for another user', () => {
    const bob = makeUser('bob', 0);
    expectE2EE(
      () => new SessionRecord('bob', 'bob').initiate(bob.identity, fetchBundle(bob)),
      ErrorCode.USAGE,
    );
    expectE2EE(
      () => new SessionRecord('alice', 'carol').initiate(bob.identity, fetchBundle(bob)),
      ErrorCode.USAGE,
    );
  });
});
