/**
 * Sender keys seen by group members: the transition window after a rotation, re-sent distributions
 * (which must never rewind a chain), the skipped-key and forward-jump bounds, rotation rules and the
 * checks on distribution messages, and the message format as documented.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src-main/core/errors.js';
import { Reader, concatBytes } from '../../src-main/core/encoding.js';
import {
  CHAIN_MESSAGE_KEY,
  DEFAULT_TRANSITION_WINDOW_MS,
  Label,
  MAX_FORWARD_JUMP,
  MAX_SKIPPED_KEYS,
} from '../../src-main/core/crypto/constants.js';
import {
  SigningKeyPair,
  VerifyKey,
  aesGcmDecrypt,
  hmacSha256,
  randomBytes,
} from '../../src-main/core/crypto/primitives.js';
import {
  GroupSession,
  decodeSenderKeyDistribution,
  encodeSenderKeyDistribution,
} from '../../src-main/core/crypto/sender-keys.js';
import { advanceChainKey, craftGroupMessage, expectE2EE, flip, text } from './fixtures.js';

const W = 60_000;
const G = 'family';

/** Alice sends, Bob (and optionally Carol) receive; distributions are handed over directly. */
function trio(window = W): { alice: GroupSession; bob: GroupSession; carol: GroupSession } {
  return {
    alice: new GroupSession(G, 'alice', window),
    bob: new GroupSession(G, 'bob', window),
    carol: new GroupSession(G, 'carol', window),
  };
}

const keyIdOf = (skdm: Uint8Array): number => decodeSenderKeyDistribution(skdm).keyId;

describe('transition window after a rotation', () => {
  it('the previous key id decrypts until rotation + window, and is UNKNOWN_KEY_ID from then on', () => {
    const { alice, bob } = trio();
    const k1 = alice.rotate(0);
    bob.processDistribution('alice', k1, 0);
    const old = [0, 1, 2, 3].map((i) => alice.encrypt(text(`old ${i}`)));
    expect(bob.decrypt(old[0]!, 100).plaintext).toEqual(text('old 0'));

    const T = 5_000;
    const k2 = alice.rotate(T);
    expect(keyIdOf(k2)).not.toBe(keyIdOf(k1));
    bob.processDistribution('alice', k2, T);
    const fresh = alice.encrypt(text('fresh'));

    const r = bob.decrypt(old[2]!, T + W - 1);
    expect(r).toMatchObject({ senderId: 'alice', keyId: keyIdOf(k1), counter: 2 });
    expect(r.plaintext).toEqual(text('old 2'));
    expect(bob.decrypt(fresh, T + W - 1)).toMatchObject({ keyId: keyIdOf(k2), counter: 0 });
    // At the end of the window the old key is gone, including the skipped key of message 1.
    expectE2EE(() => bob.decrypt(old[3]!, T + W), ErrorCode.UNKNOWN_KEY_ID);
    expectE2EE(() => bob.decrypt(old[1]!, T + W + 1), ErrorCode.UNKNOWN_KEY_ID);
    // The current key is unaffected.
    expect(bob.decrypt(alice.encrypt(text('later')), T + 10 * W).plaintext).toEqual(text('later'));
  });

  it('only one previous key is kept: two rotations within the window retire the oldest at once', () => {
    const { alice, bob } = trio();
    bob.processDistribution('alice', alice.rotate(0), 0);
    const underK1 = alice.encrypt(text('k1'));
    bob.processDistribution('alice', alice.rotate(10), 10);
    const underK2 = alice.encrypt(text('k2'));
    bob.processDistribution('alice', alice.rotate(20), 20);
    expectE2EE(() => bob.decrypt(underK1, 30), ErrorCode.UNKNOWN_KEY_ID);
    expect(bob.decrypt(underK2, 30).plaintext).toEqual(text('k2'));
    expect(bob.decrypt(alice.encrypt(text('k3')), 30).plaintext).toEqual(text('k3'));
  });

  it('a zero window retires the previous key immediately; the default window is DEFAULT_TRANSITION_WINDOW_MS', () => {
    const zero = trio(0);
    zero.bob.processDistribution('alice', zero.alice.rotate(0), 0);
    const old = zero.alice.encrypt(text('old'));
    zero.bob.processDistribution('alice', zero.alice.rotate(1), 1);
    expectE2EE(() => zero.bob.decrypt(old, 1), ErrorCode.UNKNOWN_KEY_ID);

    const alice = new GroupSession(G, 'alice');
    const bob = new GroupSession(G, 'bob');
    bob.processDistribution('alice', alice.rotate(0), 0);
    const a = alice.encrypt(text('a'));
    const b = alice.encrypt(text('b'));
    bob.processDistribution('alice', alice.rotate(0), 0);
    expect(bob.decrypt(a, DEFAULT_TRANSITION_WINDOW_MS - 1).plaintext).toEqual(text('a'));
    expectE2EE(() => bob.decrypt(b, DEFAULT_TRANSITION_WINDOW_MS), ErrorCode.UNKNOWN_KEY_ID);
  });
});

describe('re-sent distribution messages never rewind a chain', () => {
  it('the same SKDM processed again leaves the current chain where it is', () => {
    const { alice, bob } = trio();
    const k1 = alice.rotate(0);
    bob.processDistribution('alice', k1, 0);
    const m = [0, 1, 2].map((i) => alice.encrypt(text(`m${i}`)));
    bob.decrypt(m[0]!, 1);
    bob.decrypt(m[1]!, 1);
    expect(bob.processDistribution('alice', k1, 2).keyId).toBe(keyIdOf(k1));
    expectE2EE(() => bob.decrypt(m[0]!, 3), ErrorCode.REPLAY);
    expectE2EE(() => bob.decrypt(m[1]!, 3), ErrorCode.REPLAY);
    expect(bob.decrypt(m[2]!, 3).plaintext).toEqual(text('m2'));
  });

  it('the current distribution given to a late member reads only what follows it', () => {
    const { alice, bob, carol } = trio();
    bob.processDistribution('alice', alice.rotate(0), 0);
    const before = [0, 1, 2].map((i) => alice.encrypt(text(`before ${i}`)));
    for (const m of before) bob.decrypt(m, 1);
    const current = alice.ownDistribution()!;
    expect(decodeSenderKeyDistribution(current).counter).toBe(3);
    carol.processDistribution('alice', current, 2);
    bob.processDistribution('alice', current, 2);
    for (const m of before) {
      expectE2EE(() => carol.decrypt(m, 3), ErrorCode.REPLAY);
      expectE2EE(() => bob.decrypt(m, 3), ErrorCode.REPLAY);
    }
    const next = alice.encrypt(text('next'));
    expect(carol.decrypt(next, 3).plaintext).toEqual(text('next'));
    expect(bob.decrypt(next, 3).plaintext).toEqual(text('next'));
  });

  it('an old SKDM re-sent during the window changes nothing', () => {
    const { alice, bob } = trio();
    const k1 = alice.rotate(0);
    bob.processDistribution('alice', k1, 0);
    const m0 = alice.encrypt(text('m0'));
    const m1 = alice.encrypt(text('m1'));
    bob.decrypt(m0, 0);
    bob.processDistribution('alice', alice.rotate(1_000), 1_000);
    const n0 = alice.encrypt(text('n0'));
    bob.processDistribution('alice', k1, 2_000);
    expectE2EE(() => bob.decrypt(m0, 2_000), ErrorCode.REPLAY);
    expect(bob.decrypt(n0, 2_000).plaintext).toEqual(text('n0'));
    // Re-processing did not extend the old key's window either.
    expectE2EE(() => bob.decrypt(m1, 1_000 + W), ErrorCode.UNKNOWN_KEY_ID);
  });

  it('an old SKDM re-sent after the window neither revives the old chain nor displaces the current key', () => {
    const { alice, bob } = trio();
    const k1 = alice.rotate(0);
    bob.processDistribution('alice', k1, 0);
    const m0 = alice.encrypt(text('m0'));
    bob.decrypt(m0, 0);
    bob.processDistribution('alice', alice.rotate(1_000), 1_000);
    const t = 1_000 + W + 1;
    expectE2EE(() => bob.decrypt(m0, t), ErrorCode.UNKNOWN_KEY_ID);
    bob.processDistribution('alice', k1, t);
    // The relay replays Alice's first message: it must not be accepted a second time.
    expectE2EE(() => bob.decrypt(m0, t), [ErrorCode.REPLAY, ErrorCode.UNKNOWN_KEY_ID]);
    // Nor after Bob's state went through storage.
    const restored = GroupSession.deserialize(bob.serialize());
    restored.processDistribution('alice', k1, t + 1);
    expectE2EE(() => restored.decrypt(m0, t + 1), [ErrorCode.REPLAY, ErrorCode.UNKNOWN_KEY_ID]);
    // Alice's current key keeps working, also after another window has passed.
    const n0 = alice.encrypt(text('n0'));
    expect(bob.decrypt(n0, t + 2 * W).plaintext).toEqual(text('n0'));
    expect(restored.decrypt(n0, t + 2 * W).plaintext).toEqual(text('n0'));
  });

  it("a removed sender's old SKDM re-sent after they rejoin does not bring back their old messages", () => {
    const { alice, bob } = trio();
    const k1 = alice.rotate(0);
    bob.processDistribution('alice', k1, 0);
    const m0 = alice.encrypt(text('before leaving'));
    bob.decrypt(m0, 0);
    bob.removeSender('alice');
    // Alice is back; an old distribution arrives before her new one.
    bob.processDistribution('alice', k1, 10);
    expectE2EE(() => bob.decrypt(m0, 10), [ErrorCode.REPLAY, ErrorCode.UNKNOWN_KEY_ID]);
    alice.membershipChanged();
    bob.processDistribution('alice', alice.rotate(20), 20);
    expect(bob.decrypt(alice.encrypt(text('back')), 20).plaintext).toEqual(text('back'));
    expectE2EE(() => bob.decrypt(m0, 20), ErrorCode.UNKNOWN_KEY_ID);
  });
});

describe('bounds on a sender chain', () => {
  it(`after 2,499 group messages skipped in two jumps, only the newest ${MAX_SKIPPED_KEYS} decrypt`, () => {
    const { alice, bob } = trio();
    bob.processDistribution('alice', alice.rotate(0), 0);
    const msgs = Array.from({ length: 2501 }, (_, i) => alice.encrypt(Uint8Array.of(i & 0xff)));
    expectE2EE(() => bob.decrypt(msgs[2500]!, 1), ErrorCode.TOO_FAR_AHEAD);
    expect(bob.decrypt(msgs[2000]!, 1).counter).toBe(2000);
    expect(bob.decrypt(msgs[2500]!, 1).counter).toBe(2500);
    for (let i = 0; i < 499; i++) expectE2EE(() => bob.decrypt(msgs[i]!, 1), ErrorCode.REPLAY);
    for (let i = 2499; i >= 499; i--)
      if (i !== 2000) expect(bob.decrypt(msgs[i]!, 1).plaintext).toEqual(Uint8Array.of(i & 0xff));
    expectE2EE(() => bob.decrypt(msgs[1000]!, 1), ErrorCode.REPLAY);
  });

  it('a jump of more than MAX_FORWARD_JUMP is refused without effect; exactly MAX_FORWARD_JUMP is not', () => {
    // A sender whose messages are built from the documented wire format (validated in tamper.test.ts).
    const J = MAX_FORWARD_JUMP;
    const signer = SigningKeyPair.generate();
    const ck0 = randomBytes(32);
    const bob = new GroupSession(G, 'bob');
    bob.processDistribution(
      'dave',
      encodeSenderKeyDistribution({
        groupId: G,
        senderId: 'dave',
        keyId: 42,
        counter: 0,
        chainKey: ck0,
        signingKey: signer.publicKey,
      }),
      0,
    );
    const base = { groupId: G, senderId: 'dave', keyId: 42, signer };
    const at = (counter: number, ck: Uint8Array): Uint8Array =>
      craftGroupMessage({ ...base, counter, chainKey: ck, plaintext: text(`#${counter}`) });
    const msg = new Map<number, Uint8Array>([[0, at(0, ck0)]]);
    let ck = advanceChainKey(ck0, J - MAX_SKIPPED_KEYS);
    for (let i = J - MAX_SKIPPED_KEYS; i <= J + 2; i++, ck = advanceChainKey(ck, 1)) {
      if (i <= J - MAX_SKIPPED_KEYS + 1 || i > J) msg.set(i, at(i, ck));
    }

    expectE2EE(() => bob.decrypt(msg.get(J + 1)!, 1), ErrorCode.TOO_FAR_AHEAD);
    expect(bob.decrypt(msg.get(0)!, 1).plaintext).toEqual(text('#0'));
    expect(bob.decrypt(msg.get(J + 1)!, 1).plaintext).toEqual(text(`#${J + 1}`));
    // Skipped 1..J; the newest MAX_SKIPPED_KEYS are kept.
    expectE2EE(() => bob.decrypt(msg.get(J - MAX_SKIPPED_KEYS)!, 1), ErrorCode.REPLAY);
    expect(bob.decrypt(msg.get(J - MAX_SKIPPED_KEYS + 1)!, 1).plaintext).toEqual(
      text(`#${J - MAX_SKIPPED_KEYS + 1}`),
    );
    expect(bob.decrypt(msg.get(J + 2)!, 1).plaintext).toEqual(text(`#${J + 2}`));
  });
});

describe('rotation rules', () => {
  it('nothing can be sent before the first rotation or after a membership change until the next one', () => {
    const { alice, bob } = trio();
    expect(alice.needsRotation(0)).toBe(true);
    expectE2EE(() => alice.encrypt(text('too early')), ErrorCode.USAGE);
    bob.processDistribution('alice', alice.rotate(0), 0);
    expect(alice.needsRotation(0)).toBe(false);
    const k1 = alice.ownKeyId;
    alice.membershipChanged();
    expect(alice.needsRotation(0)).toBe(true);
    expectE2EE(() => alice.encrypt(text('stale key')), ErrorCode.USAGE);
    const k2 = alice.rotate(1);
    expect(alice.ownKeyId).not.toBe(k1);
    expect(decodeSenderKeyDistribution(k2)).toMatchObject({ groupId: G, senderId: 'alice', counter: 0 });
    expect(alice.needsRotation(1)).toBe(false);
  });

  it('the rotation policy asks for a new key after maxMessages messages or maxAgeMs', () => {
    const { alice } = trio();
    alice.rotate(1_000);
    const policy = { maxMessages: 3, maxAgeMs: 10_000 };
    for (let i = 0; i < 3; i++) {
      expect(alice.needsRotation(1_000, policy)).toBe(false);
      alice.encrypt(text(`${i}`));
    }
    expect(alice.needsRotation(1_000, policy)).toBe(true);
    expect(alice.needsRotation(1_000)).toBe(false);
    alice.rotate(2_000);
    expect(alice.needsRotation(11_999, policy)).toBe(false);
    expect(alice.needsRotation(12_000, policy)).toBe(true);
  });

  it('removeSender erases a sender: their next and earlier-undelivered messages are UNKNOWN_KEY_ID', () => {
    const { alice, bob } = trio();
    bob.processDistribution('alice', alice.rotate(0), 0);
    const a = alice.encrypt(text('a'));
    const b = alice.encrypt(text('b'));
    bob.decrypt(b, 0);
    expect(bob.hasSenderKey('alice')).toBe(true);
    bob.removeSender('alice');
    expect(bob.hasSenderKey('alice')).toBe(false);
    expectE2EE(() => bob.decrypt(a, 0), ErrorCode.UNKNOWN_KEY_ID);
    expectE2EE(() => bob.decrypt(alice.encrypt(text('c')), 0), ErrorCode.UNKNOWN_KEY_ID);
  });
});

describe('distribution messages are checked', () => {
  it('refuses keys for another group, naming another sender, or from oneself', () => {
    const { alice, bob } = trio();
    const skdm = alice.rotate(0);
    expectE2EE(
      () => new GroupSession('other', 'bob').processDistribution('alice', skdm, 0),
      ErrorCode.WRONG_RECIPIENT,
    );
    // Carol relays Alice's key as if it were hers, or Bob is handed his "own" key: both refused.
    expectE2EE(() => bob.processDistribution('carol', skdm, 0), ErrorCode.WRONG_RECIPIENT);
    expectE2EE(() => alice.processDistribution('alice', skdm, 0), ErrorCode.WRONG_RECIPIENT);
    expect(bob.hasSenderKey('alice')).toBe(false);
    expect(bob.hasSenderKey('carol')).toBe(false);
  });

  it('a corrupted SKDM is refused with a typed error or installs a key that cannot read the sender', () => {
    const { alice, bob } = trio();
    const skdm = alice.rotate(0);
    const msg = alice.encrypt(text('secret'));
    for (let i = 0; i < skdm.length; i++) {
      const g = new GroupSession(G, 'bob');
      let refused: unknown;
      try {
        g.processDistribution('alice', flip(skdm, i, 0x01), 0);
      } catch (e) {
        refused = e;
      }
      if (refused !== undefined) {
        expectE2EE(() => {
          throw refused;
        });
      } else {
        // A flip in the chain key, key id or counter still parses: the key it installs never yields a plaintext.
        expectE2EE(() => g.decrypt(msg, 0));
      }
    }
    expectE2EE(
      () => bob.processDistribution('alice', skdm.subarray(0, skdm.length - 1), 0),
      ErrorCode.MALFORMED,
    );
    bob.processDistribution('alice', skdm, 0);
    expect(bob.decrypt(msg, 0).plaintext).toEqual(text('secret'));
  });
});

describe('group message format (docs/PROTOCOL.md "Group messages")', () => {
  it('a message opens with the documented layout and formula alone: MK is the AES key, zero nonce, no AAD', () => {
    const { alice, bob } = trio();
    const skdm = alice.rotate(0);
    bob.processDistribution('alice', skdm, 0);
    const { keyId, chainKey } = decodeSenderKeyDistribution(skdm);
    alice.encrypt(text('first'));
    const wire = alice.encrypt(text('second'));
    // Parsed by hand: u8 2 | u8 3 | str groupId | str senderId | u32 keyId | u32 counter | bytes sealed | sig.
    const r = new Reader(wire);
    expect([r.u8(), r.u8(), r.str(), r.str(), r.u32(), r.u32()]).toEqual([2, 3, G, 'alice', keyId, 1]);
    const sealed = r.bytes(1 << 20);
    const signed = wire.subarray(0, r.offset);
    const signature = r.fixed(64);
    r.end();
    const mk = hmacSha256(advanceChainKey(chainKey, 1), CHAIN_MESSAGE_KEY);
    expect(aesGcmDecrypt(mk, new Uint8Array(12), sealed, new Uint8Array(0))).toEqual(text('second'));
    expect(
      new VerifyKey(decodeSenderKeyDistribution(skdm).signingKey).verify(
        concatBytes(Label.GROUP_SIGNATURE, signed),
        signature,
      ),
    ).toBe(true);
    // The same plaintext twice: two message keys, two unrelated ciphertexts (a fixed nonce never repeats a key).
    const a = alice.encrypt(text('same'));
    const b = alice.encrypt(text('same'));
    expect(a.subarray(-64 - 20, -64)).not.toEqual(b.subarray(-64 - 20, -64));
  });

  it('a message with version byte 1 (the old format) or 3, signed by its real sender, is BAD_VERSION and changes nothing', () => {
    // Dave runs an old client; Carol has his sender key. Whatever an old message carries, it is refused
    // by its first byte, before signature or decryption, and his current messages still read in order.
    const carol = new GroupSession(G, 'carol');
    const dave = SigningKeyPair.generate();
    const chainKey = randomBytes(32);
    carol.processDistribution(
      'dave',
      encodeSenderKeyDistribution({
        groupId: G,
        senderId: 'dave',
        keyId: 9,
        counter: 0,
        chainKey,
        signingKey: dave.publicKey,
      }),
      0,
    );
    const message = (version: number | undefined, plaintext: Uint8Array): Uint8Array =>
      craftGroupMessage({
        groupId: G,
        senderId: 'dave',
        keyId: 9,
        counter: 0,
        chainKey,
        signer: dave,
        plaintext,
        version,
      });
    expectE2EE(() => carol.decrypt(message(1, text('old client')), 0), ErrorCode.BAD_VERSION);
    expectE2EE(() => carol.decrypt(message(3, text('from the future')), 0), ErrorCode.BAD_VERSION);
    expect(carol.decrypt(message(undefined, text('current')), 0)).toMatchObject({
      counter: 0,
      plaintext: text('current'),
    });
  });
});
