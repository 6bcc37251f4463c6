/**
 * A session record holding sessions under two identities of one peer (a key change): the client picks
 * the one under the pinned key to encrypt (selectSession), erases the others on a decision
 * (dropSessions), and decrypts on accepted identities only (docs/PROTOCOL.md, Key changes).
 */
import { describe, expect, it } from 'vitest';
import { type PublicIdentity, sameIdentityKeys } from '../../src-main/core/crypto/identity.js';
import { SessionRecord } from '../../src-main/core/crypto/ratchet.js';
import { fetchBundle, makeUser, text } from './fixtures.js';

describe('sessions under two identities of one peer', () => {
  const alice = makeUser('alice');
  const bob = makeUser('bob');
  // Someone else holding a key of its own for the user id "bob".
  const other = makeUser('bob');
  const isBob = (id: PublicIdentity): boolean => sameIdentityKeys(id, bob.identity.publicIdentity);

  it('encrypts under the chosen identity only, and erases the others', () => {
    const ab = new SessionRecord('alice', 'bob');
    ab.initiate(alice.identity, fetchBundle(bob));
    ab.initiate(alice.identity, fetchBundle(other)); // now current
    expect(sameIdentityKeys(ab.peerIdentity!, other.identity.publicIdentity)).toBe(true);

    expect(ab.selectSession(isBob)).toBe(true);
    const toBob = new SessionRecord('bob', 'alice');
    expect(toBob.decrypt(bob.identity, bob.prekeys, ab.encrypt(text('for bob'))).plaintext).toEqual(
      text('for bob'),
    );
    const toOther = new SessionRecord('bob', 'alice');
    expect(() => toOther.decrypt(other.identity, other.prekeys, ab.encrypt(text('not for you')))).toThrow();

    expect(ab.dropSessions(isBob)).toBe(1);
    expect(ab.selectSession((id) => !isBob(id))).toBe(false);
    expect(ab.selectSession(isBob)).toBe(true);
  });

  it('refuses a PREKEY message under an identity that is not accepted, before decrypting, and changes nothing', () => {
    const fromOther = new SessionRecord('bob', 'alice');
    fromOther.initiate(other.identity, fetchBundle(alice, false));
    const wire = fromOther.encrypt(text('as bob'));
    const ab = new SessionRecord('alice', 'bob');
    const before = ab.serialize();
    expect(() => ab.decrypt(alice.identity, alice.prekeys, wire, undefined, isBob)).toThrow(
      expect.objectContaining({ code: 'E2EE_IDENTITY_CHANGED' }),
    );
    expect(ab.serialize()).toEqual(before);
    // Accepted, the same message decrypts.
    expect(ab.decrypt(alice.identity, alice.prekeys, wire).plaintext).toEqual(text('as bob'));
  });
});
