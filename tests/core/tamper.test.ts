/**
 * What an attacker on the relay (or a member of the group) can do to messages: flip any byte, cut,
 * extend, re-type, re-address, replay or forge them. Every attempt must fail with a typed error, yield
 * no plaintext, and leave the receiver's state as it was, so the genuine message still decrypts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Writer } from '../../src-main/core/encoding.js';
import { ErrorCode } from '../../src-main/core/errors.js';
import { MessageType } from '../../src-main/core/crypto/constants.js';
import { SigningKeyPair, randomBytes } from '../../src-main/core/crypto/primitives.js';
import { SessionRecord, parseDirectMessage } from '../../src-main/core/crypto/ratchet.js';
import {
  GroupSession,
  decodeSenderKeyDistribution,
  encodeSenderKeyDistribution,
} from '../../src-main/core/crypto/sender-keys.js';
import {
  advanceChainKey,
  craftGroupMessage,
  establishedSession,
  expectE2EE,
  flip,
  makeUser,
  receive,
  startSession,
  text,
  typeOf,
} from './fixtures.js';

/** A message, a receiver ready for it, and a way to observe the receiver's whole state. */
interface Target {
  readonly wire: Uint8Array;
  readonly plaintext: Uint8Array;
  open(bytes: Uint8Array): Uint8Array;
  state(): Uint8Array;
}

function direct(
  rec: SessionRecord,
  user: ReturnType<typeof makeUser>,
  wire: Uint8Array,
  plaintext: Uint8Array,
): Target {
  return {
    wire,
    plaintext,
    open: (b) => rec.decrypt(user.identity, user.prekeys, b).plaintext,
    state: () => Uint8Array.from([...rec.serialize(), ...user.prekeys.serialize()]),
  };
}

const scenarios: Record<string, () => Target> = {
  'PREKEY message starting a session': () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = startSession(alice, bob);
    const wire = ab.encrypt(text('first words'));
    expect(typeOf(wire)).toBe(MessageType.PREKEY);
    return direct(ba, bob, wire, text('first words'));
  },
  'PREKEY message of an existing session': () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = startSession(alice, bob);
    receive(ba, bob, ab.encrypt(text('one')), text('one'));
    const wire = ab.encrypt(text('two'));
    expect(typeOf(wire)).toBe(MessageType.PREKEY);
    return direct(ba, bob, wire, text('two'));
  },
  'DIRECT message starting a new ratchet chain': () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = establishedSession(alice, bob);
    const wire = ab.encrypt(text('new chain'));
    expect(typeOf(wire)).toBe(MessageType.DIRECT);
    return direct(ba, bob, wire, text('new chain'));
  },
  'DIRECT message on the current chain': () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = establishedSession(alice, bob);
    receive(ba, bob, ab.encrypt(text('a')), text('a'));
    return direct(ba, bob, ab.encrypt(text('same chain')), text('same chain'));
  },
  'DIRECT message read with a skipped key': () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = establishedSession(alice, bob);
    const wire = ab.encrypt(text('late'));
    receive(ba, bob, ab.encrypt(text('early')), text('early'));
    return direct(ba, bob, wire, text('late'));
  },
  'GROUP message': () => {
    const alice = new GroupSession('g', 'alice');
    const bob = new GroupSession('g', 'bob');
    bob.processDistribution('alice', alice.rotate(0), 0);
    bob.decrypt(alice.encrypt(text('warm-up')), 0);
    const wire = alice.encrypt(text('group secret'));
    return {
      wire,
      plaintext: text('group secret'),
      open: (b) => bob.decrypt(b, 0).plaintext,
      state: () => bob.serialize(),
    };
  },
  'GROUP message read with a skipped key': () => {
    const alice = new GroupSession('g', 'alice');
    const bob = new GroupSession('g', 'bob');
    bob.processDistribution('alice', alice.rotate(0), 0);
    const wire = alice.encrypt(text('late group'));
    bob.decrypt(alice.encrypt(text('early group')), 0);
    return {
      wire,
      plaintext: text('late group'),
      open: (b) => bob.decrypt(b, 0).plaintext,
      state: () => bob.serialize(),
    };
  },
};

/** Asserts that `bytes` is refused with a typed error and that the receiver's state did not change. */
function refused(t: Target, bytes: Uint8Array, before: Uint8Array, what: string): void {
  try {
    expectE2EE(() => t.open(bytes));
    expect(t.state()).toEqual(before);
  } catch (e) {
    throw new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

describe('tampering', () => {
  for (const [name, make] of Object.entries(scenarios)) {
    describe(name, () => {
      it('flipping any byte (xor a random non-zero value) is refused and changes nothing', () => {
        const length = make().wire.length;
        fc.assert(
          fc.property(
            fc.array(fc.integer({ min: 1, max: 255 }), { minLength: length, maxLength: length }),
            (xors) => {
              const t = make();
              expect(t.wire.length).toBe(length);
              const before = t.state();
              xors.forEach((x, i) => refused(t, flip(t.wire, i, x), before, `byte ${i} ^ ${x}`));
              expect(t.open(t.wire)).toEqual(t.plaintext);
              expectE2EE(() => t.open(t.wire), ErrorCode.REPLAY);
            },
          ),
          // Each failure names its byte; shrinking a whole-message xor array would only cost time.
          { numRuns: name.startsWith('PREKEY message starting') ? 2 : 3, endOnFailure: true },
        );
      });

      it('every truncation and any appended bytes are refused and change nothing', () => {
        const t = make();
        const before = t.state();
        for (let n = 0; n < t.wire.length; n++) refused(t, t.wire.subarray(0, n), before, `first ${n} bytes`);
        for (const extra of [Uint8Array.of(0), randomBytes(1), randomBytes(16), randomBytes(64)]) {
          refused(t, Uint8Array.from([...t.wire, ...extra]), before, `${extra.length} bytes appended`);
        }
        expect(t.open(t.wire)).toEqual(t.plaintext);
      });
    });
  }
});

describe('messages on the wrong path', () => {
  it('a group message given to a pairwise session is WRONG_TYPE, a direct one given to a group is too', () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = establishedSession(alice, bob);
    const ga = new GroupSession('g', 'alice');
    const gb = new GroupSession('g', 'bob');
    gb.processDistribution('alice', ga.rotate(0), 0);
    const groupWire = ga.encrypt(text('to the group'));
    const directWire = ab.encrypt(text('to bob'));

    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, groupWire), ErrorCode.WRONG_TYPE);
    expectE2EE(() => gb.decrypt(directWire, 0), ErrorCode.WRONG_TYPE);
    const { ab: fresh } = startSession(makeUser('carol', 1), bob);
    expectE2EE(() => gb.decrypt(fresh.encrypt(text('prekey')), 0), ErrorCode.WRONG_TYPE);
    // Both still arrive where they belong.
    expect(gb.decrypt(groupWire, 0).plaintext).toEqual(text('to the group'));
    receive(ba, bob, directWire, text('to bob'));
  });

  it('rewriting the type byte never turns a message into something that decrypts', () => {
    const [alice, bob] = [makeUser('alice', 1), makeUser('bob', 1)];
    const { ab, ba } = startSession(alice, bob);
    const prekey = ab.encrypt(text('p'));
    const ga = new GroupSession('g', 'alice');
    const gb = new GroupSession('g', 'bob');
    gb.processDistribution('alice', ga.rotate(0), 0);
    const group = ga.encrypt(text('g'));
    const retype = (w: Uint8Array, t: number): Uint8Array => Uint8Array.from(w, (b, i) => (i === 1 ? t : b));

    // PREKEY announced as DIRECT: no session to read it with yet.
    expectE2EE(
      () => ba.decrypt(bob.identity, bob.prekeys, retype(prekey, MessageType.DIRECT)),
      ErrorCode.UNKNOWN_SESSION,
    );
    // Direct and group messages carry different version bytes (1 and 2): a retyped one no longer matches.
    expectE2EE(
      () => ba.decrypt(bob.identity, bob.prekeys, retype(prekey, MessageType.GROUP)),
      ErrorCode.BAD_VERSION,
    );
    receive(ba, bob, prekey, text('p'));
    receive(ab, alice, ba.encrypt(text('r')), text('r'));
    const directWire = ab.encrypt(text('d'));
    expect(typeOf(directWire)).toBe(MessageType.DIRECT);
    // DIRECT announced as PREKEY: its ratchet key is read as an identity and refused.
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, retype(directWire, MessageType.PREKEY)));
    expectE2EE(() => gb.decrypt(retype(directWire, MessageType.GROUP), 0));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, retype(group, MessageType.DIRECT)));
    expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, retype(group, MessageType.PREKEY)));
    expectE2EE(() => gb.decrypt(retype(group, MessageType.DIRECT), 0), ErrorCode.BAD_VERSION);
    for (const t of [0, 4, 0x7f, 0xff]) {
      expectE2EE(() => ba.decrypt(bob.identity, bob.prekeys, retype(directWire, t)), ErrorCode.MALFORMED);
      expectE2EE(() => gb.decrypt(retype(group, t), 0), ErrorCode.MALFORMED);
    }
    const reversion = (w: Uint8Array, v: number): Uint8Array =>
      Uint8Array.from(w, (b, i) => (i === 0 ? v : b));
    expect([directWire[0], group[0]]).toEqual([1, 2]);
    for (const v of [0, 2, 3, 0xff])
      expectE2EE(
        () => ba.decrypt(bob.identity, bob.prekeys, reversion(directWire, v)),
        ErrorCode.BAD_VERSION,
      );
    for (const v of [0, 1, 3, 0xff])
      expectE2EE(() => gb.decrypt(reversion(group, v), 0), ErrorCode.BAD_VERSION);
    receive(ba, bob, directWire, text('d'));
    expect(gb.decrypt(group, 0).plaintext).toEqual(text('g'));
  });

  it('a replayed group message is REPLAY, at every member', () => {
    const ga = new GroupSession('g', 'alice');
    const members = ['bob', 'carol'].map((id) => new GroupSession('g', id));
    const skdm = ga.rotate(0);
    for (const g of members) g.processDistribution('alice', skdm, 0);
    const m0 = ga.encrypt(text('m0'));
    const m1 = ga.encrypt(text('m1'));
    for (const g of members) {
      expect(g.decrypt(m1, 0).plaintext).toEqual(text('m1'));
      expect(g.decrypt(m0, 0).plaintext).toEqual(text('m0'));
      expectE2EE(() => g.decrypt(m0, 0), ErrorCode.REPLAY);
      expectE2EE(() => g.decrypt(m1, 0), ErrorCode.REPLAY);
    }
  });

  it("Bob's direct messages cannot be read by Carol, even re-addressed to her", () => {
    const [alice, bob, carol] = [makeUser('alice', 2), makeUser('bob', 2), makeUser('carol', 2)];
    const toBob = startSession(alice, bob);
    const toCarol = establishedSession(alice, carol);
    const first = toBob.ab.encrypt(text('for bob only'));

    // Carol's record with Alice refuses a message addressed to Bob.
    expectE2EE(() => toCarol.ba.decrypt(carol.identity, carol.prekeys, first), ErrorCode.WRONG_RECIPIENT);
    // The relay rewrites the recipient: Carol's keys do not open it (whatever prekey ids collide).
    const readdress = (w: Uint8Array, to: string): Uint8Array => {
      const m = parseDirectMessage(w);
      const prefix = new Writer().u8(w[0]!).u8(w[1]!).str(m.senderId).str(m.recipientId).finish();
      const ids = new Writer().u8(w[0]!).u8(w[1]!).str(m.senderId).str(to).finish();
      return Uint8Array.from([...ids, ...w.subarray(prefix.length)]);
    };
    const carolPrekeys = carol.prekeys.serialize();
    const forged = readdress(first, 'carol');
    expect(parseDirectMessage(forged).recipientId).toBe('carol');
    expectE2EE(() => new SessionRecord('carol', 'alice').decrypt(carol.identity, carol.prekeys, forged));
    expectE2EE(() => toCarol.ba.decrypt(carol.identity, carol.prekeys, forged));
    // A DIRECT message to Bob, re-addressed to Carol, who has her own session with Alice.
    receive(toBob.ba, bob, first, text('for bob only'));
    receive(toBob.ab, alice, toBob.ba.encrypt(text('ok')), text('ok'));
    const later = toBob.ab.encrypt(text('still for bob'));
    expectE2EE(() => toCarol.ba.decrypt(carol.identity, carol.prekeys, readdress(later, 'carol')));
    // Carol's prekeys were not touched and her session with Alice works; Bob reads his message.
    expect(carol.prekeys.serialize()).toEqual(carolPrekeys);
    receive(toCarol.ba, carol, toCarol.ab.encrypt(text('hi carol')), text('hi carol'));
    receive(toBob.ba, bob, later, text('still for bob'));
  });
});

describe('forged group messages', () => {
  it("a member holding Alice's chain key but not her signing key cannot speak as Alice", () => {
    const G = 'g';
    const alice = new GroupSession(G, 'alice');
    const bob = new GroupSession(G, 'bob');
    const carol = new GroupSession(G, 'carol');
    const skdm = alice.rotate(0);
    bob.processDistribution('alice', skdm, 0);
    carol.processDistribution('alice', skdm, 0);
    const m0 = alice.encrypt(text('hello from alice'));
    carol.decrypt(m0, 0);

    // Bob knows everything the SKDM gave him; he signs with a key of his own.
    const { keyId, chainKey } = decodeSenderKeyDistribution(skdm);
    const bobSigner = SigningKeyPair.generate();
    const forge = (counter: number, plaintext: Uint8Array): Uint8Array =>
      craftGroupMessage({
        groupId: G,
        senderId: 'alice',
        keyId,
        counter,
        chainKey: advanceChainKey(chainKey, counter),
        signer: bobSigner,
        plaintext,
      });
    expectE2EE(() => carol.decrypt(forge(1, text('send bob money')), 0), ErrorCode.BAD_SIGNATURE);
    expectE2EE(() => carol.decrypt(forge(5, text('later lie')), 0), ErrorCode.BAD_SIGNATURE);
    // Alice's signature moved onto Bob's ciphertext does not help either.
    const genuine = alice.encrypt(text('the real message 1'));
    const forgedBody = forge(1, text('a different text'));
    const spliced = Uint8Array.from([...forgedBody.subarray(0, -64), ...genuine.subarray(-64)]);
    expectE2EE(() => carol.decrypt(spliced, 0), ErrorCode.BAD_SIGNATURE);
    // Nothing was consumed: Alice's real message 1 still decrypts.
    expect(carol.decrypt(genuine, 0).plaintext).toEqual(text('the real message 1'));

    // The same construction with a key Bob distributed himself is accepted: only the signature differs.
    const own = encodeSenderKeyDistribution({
      groupId: G,
      senderId: 'bob',
      keyId: 7,
      counter: 0,
      chainKey: randomBytes(32),
      signingKey: bobSigner.publicKey,
    });
    carol.processDistribution('bob', own, 0);
    const d = decodeSenderKeyDistribution(own);
    const honest = craftGroupMessage({
      groupId: G,
      senderId: 'bob',
      keyId: 7,
      counter: 0,
      chainKey: d.chainKey,
      signer: bobSigner,
      plaintext: text('bob speaking'),
    });
    expect(carol.decrypt(honest, 0)).toMatchObject({ senderId: 'bob', keyId: 7, counter: 0 });
    // Nor can Bob announce a key in Alice's name over his own pairwise channel.
    const fakeForAlice = encodeSenderKeyDistribution({ ...d, senderId: 'alice', keyId: 8 });
    expectE2EE(() => carol.processDistribution('bob', fakeForAlice, 0), ErrorCode.WRONG_RECIPIENT);
    expect(carol.decrypt(alice.encrypt(text('alice again')), 0).plaintext).toEqual(text('alice again'));
  });
});
