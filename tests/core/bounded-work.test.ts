/**
 * What a forged message can make its receiver compute (issue 9; docs/PROTOCOL.md "Bounded work"). A
 * direct message claiming a far-ahead counter is refused before any key is derived, however many
 * sessions the receiver keeps with its sender; one within the window costs at most one chain walk; a
 * flood from one sender stops costing anything once its budget is spent. Forgeries change no state,
 * and genuine traffic on every session still decrypts.
 *
 * CPU is measured with process.cpuUsage around one call: an upper bound on work is the property here
 * (with a wide margin for a loaded machine), not a speed claim; speed lives in `npm run bench`.
 */
import { describe, expect, it } from 'vitest';
import { Writer } from '../../src-main/core/encoding.js';
import { ErrorCode } from '../../src-main/core/errors.js';
import {
  MAX_FORWARD_JUMP,
  MAX_PLAINTEXT_BYTES,
  MessageType,
  PROTOCOL_VERSION,
} from '../../src-main/core/crypto/constants.js';
import { DhKeyPair, SigningKeyPair, randomBytes } from '../../src-main/core/crypto/primitives.js';
import { SessionRecord, parseDirectMessage } from '../../src-main/core/crypto/ratchet.js';
import { GroupSession, encodeSenderKeyDistribution } from '../../src-main/core/crypto/sender-keys.js';
import { SENDER_WORK_BURST, WorkBudget } from '../../src-main/core/client/work-budget.js';
import {
  type User,
  craftGroupMessage,
  expectE2EE,
  fetchBundle,
  makeUser,
  receive,
  text,
} from './fixtures.js';

/** The CPU bound of one forged frame claiming more than the window allows. */
const FORGED_FRAME_MS = 5;
/**
 * The CPU bound of one forged frame within the window: one walk of MAX_FORWARD_JUMP HMACs (3.5-7 ms on
 * the loaded 2-core reference machine) and a DH; trying it on all five sessions costs five times that.
 */
const WINDOW_EDGE_FRAME_MS = 40;

/** CPU milliseconds of this process (all its threads) spent in `fn`. */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/** A DIRECT message as the wire format documents it, with any ratchet key, counters and ciphertext. */
function forgeDirect(m: {
  from: string;
  to: string;
  ratchetKey: Uint8Array;
  previousCounter: number;
  counter: number;
  bytes?: number;
}): Uint8Array {
  return new Writer()
    .u8(PROTOCOL_VERSION)
    .u8(MessageType.DIRECT)
    .str(m.from)
    .str(m.to)
    .fixed(m.ratchetKey)
    .u32(m.previousCounter)
    .u32(m.counter)
    .fixed(randomBytes(m.bytes ?? 200))
    .finish();
}

/** A point on the curve that no session has seen: a DH with it is real work. */
const freshRatchetKey = (): Uint8Array => DhKeyPair.generate().publicKey;

/**
 * Bob with five sessions from Alice (the current one and four archived: she started over four times),
 * each awaiting her next ratchet key (Bob replied on each). `keys[i]` is the ratchet key Alice used
 * in session i, which Bob's session i receives on.
 */
function fiveSessions(): {
  alice: User;
  bob: User;
  ba: SessionRecord;
  abs: SessionRecord[];
  keys: Uint8Array[];
} {
  const alice = makeUser('alice', 0);
  const bob = makeUser('bob', 5);
  const ba = new SessionRecord('bob', 'alice');
  const abs: SessionRecord[] = [];
  const keys: Uint8Array[] = [];
  for (let i = 0; i < 5; i++) {
    const ab = new SessionRecord('alice', 'bob');
    ab.initiate(alice.identity, fetchBundle(bob));
    const first = ab.encrypt(text(`start ${i}`));
    keys.push(parseDirectMessage(first).ratchetKey);
    receive(ba, bob, first, text(`start ${i}`));
    receive(ab, alice, ba.encrypt(text(`reply ${i}`)), text(`reply ${i}`));
    abs.push(ab);
  }
  return { alice, bob, ba, abs, keys };
}

/**
 * Asserts that `wire` is refused at `ba` with one of `codes`, within `ms` of CPU, changing nothing;
 * returns the CPU it cost. A refused message changes nothing, so each of three deliveries does the same
 * work: the least of the three measurements is the estimate of it (the machine, other processes and
 * V8's garbage-collector threads, which process.cpuUsage counts, only ever add to it).
 */
function refusedWithin(
  ba: SessionRecord,
  bob: User,
  wire: Uint8Array,
  codes: ErrorCode | ErrorCode[],
  ms: number,
): number {
  const before = ba.serialize();
  const spent: number[] = [];
  for (let i = 0; i < 3; i++) {
    let thrown: unknown;
    spent.push(
      cpuMs(() => {
        try {
          ba.decrypt(bob.identity, bob.prekeys, wire);
        } catch (e) {
          thrown = e;
        }
      }),
    );
    expectE2EE(() => {
      throw thrown ?? new Error('the forged message decrypted');
    }, codes);
  }
  const least = Math.min(...spent);
  expect(least).toBeLessThan(ms);
  expect(ba.serialize()).toEqual(before);
  return least;
}

describe('a forged direct message claiming a far-ahead counter', () => {
  it(`is refused with a typed error for < ${FORGED_FRAME_MS} ms of CPU, on every one of five sessions, and changes nothing`, () => {
    const { alice, bob, ba, abs, keys } = fiveSessions();
    // Warm the code paths once, so the measurements below are of the work, not of compilation.
    expectE2EE(() =>
      ba.decrypt(
        bob.identity,
        bob.prekeys,
        forgeDirect({
          from: 'alice',
          to: 'bob',
          ratchetKey: freshRatchetKey(),
          previousCounter: 0,
          counter: 1,
        }),
      ),
    );
    const far = [25_000, 0xfffffffe];
    for (const counter of far) {
      // On the chain of each session, the current one (4) and the archived ones.
      for (const ratchetKey of keys) {
        refusedWithin(
          ba,
          bob,
          forgeDirect({ from: 'alice', to: 'bob', ratchetKey, previousCounter: 0, counter }),
          ErrorCode.TOO_FAR_AHEAD,
          FORGED_FRAME_MS,
        );
      }
      // On a new ratchet key (a DH step every session awaits), far ahead in the new chain or the old one.
      for (const [previousCounter, n] of [
        [0, counter],
        [counter, 0],
      ] as const) {
        refusedWithin(
          ba,
          bob,
          forgeDirect({
            from: 'alice',
            to: 'bob',
            ratchetKey: freshRatchetKey(),
            previousCounter,
            counter: n,
          }),
          ErrorCode.TOO_FAR_AHEAD,
          FORGED_FRAME_MS,
        );
      }
    }
    // Just beyond the window, counting both chains: the old chain's rest plus the new counter.
    refusedWithin(
      ba,
      bob,
      forgeDirect({
        from: 'alice',
        to: 'bob',
        ratchetKey: freshRatchetKey(),
        previousCounter: 1 + MAX_FORWARD_JUMP / 2,
        counter: MAX_FORWARD_JUMP / 2 + 1,
      }),
      ErrorCode.TOO_FAR_AHEAD,
      FORGED_FRAME_MS,
    );
    // Every session still reads its sender: the genuine next message of each, a DH step on each.
    abs.forEach((ab, i) => receive(ba, bob, ab.encrypt(text(`again ${i}`)), text(`again ${i}`)));
    expect(alice.id).toBe('alice');
  });

  it('a session that awaits no new ratchet key refuses one without doing the DH', () => {
    const alice = makeUser('alice', 0);
    const bob = makeUser('bob', 1);
    const ab = new SessionRecord('alice', 'bob');
    ab.initiate(alice.identity, fetchBundle(bob));
    const ba = new SessionRecord('bob', 'alice');
    receive(ba, bob, ab.encrypt(text('hello')), text('hello'));
    // Bob has not replied: Alice cannot have a new ratchet key yet, whatever a message claims.
    for (let i = 0; i < 3; i++) {
      refusedWithin(
        ba,
        bob,
        forgeDirect({
          from: 'alice',
          to: 'bob',
          ratchetKey: freshRatchetKey(),
          previousCounter: 1,
          counter: 0,
        }),
        ErrorCode.BAD_TAG,
        FORGED_FRAME_MS,
      );
    }
    receive(ba, bob, ab.encrypt(text('still here')), text('still here'));
    receive(ab, alice, ba.encrypt(text('yes')), text('yes'));
    receive(ba, bob, ab.encrypt(text('new chain')), text('new chain'));
  });
});

describe('a forged direct message within the window', () => {
  it('costs one walk of the chain, not one per session, and changes nothing', () => {
    const { bob, ba, abs } = fiveSessions();
    // The same situation with one session: Bob replied on it, so it awaits Alice's next ratchet key.
    const lone = makeUser('alice', 0);
    const single = new SessionRecord('bob', 'alice');
    bob.published.push(...bob.prekeys.generateOneTimePreKeys(1));
    const ab1 = new SessionRecord('alice', 'bob');
    ab1.initiate(lone.identity, fetchBundle(bob));
    receive(single, bob, ab1.encrypt(text('start')), text('start'));
    single.encrypt(text('reply'));

    const edge = (bytes?: number): Uint8Array =>
      forgeDirect({
        from: 'alice',
        to: 'bob',
        ratchetKey: freshRatchetKey(),
        previousCounter: 1, // each of Bob's chains is at 1: nothing of it left to set aside
        counter: MAX_FORWARD_JUMP,
        bytes,
      });
    const cost = (rec: SessionRecord, bytes?: number): number =>
      refusedWithin(rec, bob, edge(bytes), ErrorCode.BAD_TAG, WINDOW_EDGE_FRAME_MS);
    cost(single); // warm-up
    cost(ba);
    const one = cost(single);
    const five = cost(ba);
    // Trying the DH step on each of the five sessions would cost five walks.
    expect(five).toBeLessThan(2 * one + 1);
    // The largest message adds one tag check over 160 KiB, still within one frame's allowance.
    cost(ba, MAX_PLAINTEXT_BYTES + 16);

    // Honest out-of-order delivery still works: on the current session across the whole window (the
    // last of MAX_FORWARD_JUMP + 1 messages first), and on the oldest archived session, tried after the
    // four others, across a gap that fits the frame's allowance beside theirs.
    const current = abs[4]!;
    const burst = Array.from({ length: MAX_FORWARD_JUMP + 1 }, (_, i) =>
      current.encrypt(Uint8Array.of(i & 0xff)),
    );
    receive(ba, bob, burst[MAX_FORWARD_JUMP]!, Uint8Array.of(MAX_FORWARD_JUMP & 0xff));
    for (const i of [0, 1, 999, MAX_FORWARD_JUMP - 1]) receive(ba, bob, burst[i]!, Uint8Array.of(i & 0xff));
    // Bob's current session has just taken a DH step and awaits nothing; send on it so it does again.
    ba.encrypt(text('awaiting again'));
    const oldest = abs[0]!;
    const late = Array.from({ length: 301 }, (_, i) => oldest.encrypt(text(`old ${i}`)));
    receive(ba, bob, late[300]!, text('old 300'));
    receive(ba, bob, late[0]!, text('old 0'));
  });
});

describe("a sender's work budget", () => {
  it('is not spent by genuine messages in order: a burst of 1,000 session starts all decrypt', () => {
    const alice = makeUser('alice', 0);
    const bob = makeUser('bob', 1);
    const ab = new SessionRecord('alice', 'bob');
    ab.initiate(alice.identity, fetchBundle(bob));
    const ba = new SessionRecord('bob', 'alice');
    // An offline queue draining: 1,000 PREKEY messages (each with an identity certificate to verify).
    const queued = Array.from({ length: 1000 }, (_, i) => ab.encrypt(text(`queued ${i}`)));
    const budget = new WorkBudget();
    const now = 5_000;
    queued.forEach((wire, i) => {
      const meter = budget.meter('alice', now);
      expect(ba.decrypt(bob.identity, bob.prekeys, wire, meter).plaintext).toEqual(text(`queued ${i}`));
      budget.settle('alice', meter, true, now);
    });
    expect(budget.available('alice', now)).toBe(SENDER_WORK_BURST);
  });

  it('refuses a flood from one sender once it is spent, cheaply, while other senders are unaffected', () => {
    const { bob, ba, abs } = fiveSessions();
    const carol = makeUser('carol', 0);
    const bc = new SessionRecord('bob', 'carol');
    const cb = new SessionRecord('carol', 'bob');
    bob.published.push(...bob.prekeys.generateOneTimePreKeys(1));
    cb.initiate(carol.identity, fetchBundle(bob));
    const budget = new WorkBudget();
    let now = 1_000_000;
    const deliver = (from: string, rec: SessionRecord, wire: Uint8Array): Uint8Array => {
      const meter = budget.meter(from, now);
      let plaintext: Uint8Array;
      try {
        plaintext = rec.decrypt(bob.identity, bob.prekeys, wire, meter).plaintext;
      } catch (e) {
        budget.settle(from, meter, false, now);
        throw e;
      }
      budget.settle(from, meter, true, now);
      return plaintext;
    };
    const forged = (): Uint8Array =>
      forgeDirect({
        from: 'alice',
        to: 'bob',
        ratchetKey: freshRatchetKey(),
        previousCounter: 1,
        counter: MAX_FORWARD_JUMP,
      });

    const before = ba.serialize();
    const codes: string[] = [];
    const frames = 200;
    // 200 of the costliest forgeries within 20 ms of the sender's clock: 10,000 a second.
    const spent = cpuMs(() => {
      for (let i = 0; i < frames; i++, now += 0.1) {
        const e = expectE2EE(
          () => deliver('alice', ba, forged()),
          [ErrorCode.BAD_TAG, ErrorCode.RATE_LIMITED],
        );
        codes.push(e.code);
      }
    });
    const tried = codes.filter((c) => c === ErrorCode.BAD_TAG).length;
    // The budget holds two of the costliest frames and refills by a fraction of one in 20 ms.
    expect(tried).toBeGreaterThanOrEqual(1);
    expect(tried).toBeLessThanOrEqual(3);
    // Without the budget the 200 would cost 200 walks (~1 s); with it, a few walks and 200 look-ups.
    expect(spent).toBeLessThan(tried * WINDOW_EDGE_FRAME_MS + frames * 0.25);
    expect(ba.serialize()).toEqual(before);
    // The forgeries refused were not charged: what is left still reads Alice's genuine (cheap) messages.
    expect(deliver('alice', ba, abs[4]!.encrypt(text('genuine')))).toEqual(text('genuine'));
    // Another sender is not affected.
    expect(deliver('carol', bc, cb.encrypt(text('from carol')))).toEqual(text('from carol'));
    // A second costly frame does not fit until the budget has refilled.
    const refused = expectE2EE(() => deliver('alice', ba, forged()), [ErrorCode.RATE_LIMITED]);
    expect(refused.code).toBe(ErrorCode.RATE_LIMITED);
    now += 1000;
    expectE2EE(() => deliver('alice', ba, forged()), ErrorCode.BAD_TAG);
  });
});

describe('a forged group message claiming a far-ahead counter', () => {
  it(`is refused before its signature is checked, for < ${FORGED_FRAME_MS} ms, and changes nothing`, () => {
    const G = 'g';
    const signer = SigningKeyPair.generate();
    const chainKey = randomBytes(32);
    const bob = new GroupSession(G, 'bob');
    bob.processDistribution(
      'dave',
      encodeSenderKeyDistribution({
        groupId: G,
        senderId: 'dave',
        keyId: 7,
        counter: 10,
        chainKey,
        signingKey: signer.publicKey,
      }),
      0,
    );
    const forger = SigningKeyPair.generate();
    const craft = (counter: number, s: SigningKeyPair): Uint8Array =>
      craftGroupMessage({
        groupId: G,
        senderId: 'dave',
        keyId: 7,
        counter,
        chainKey: randomBytes(32),
        signer: s,
        plaintext: text('forged'),
      });
    const before = bob.serialize();
    expectE2EE(() => bob.decrypt(craft(10 + MAX_FORWARD_JUMP + 1, forger), 0)); // warm-up
    for (const counter of [10 + MAX_FORWARD_JUMP + 1, 25_000, 0xfffffffe]) {
      const wire = craft(counter, forger);
      // As in refusedWithin: the least of three identical refusals estimates the work.
      const spent = [0, 1, 2].map(() =>
        cpuMs(() => void expectE2EE(() => bob.decrypt(wire, 0), ErrorCode.TOO_FAR_AHEAD)),
      );
      expect(Math.min(...spent)).toBeLessThan(FORGED_FRAME_MS);
    }
    // Within the window, a forgery fails on its signature; the chain has not moved.
    expectE2EE(() => bob.decrypt(craft(10 + MAX_FORWARD_JUMP, forger), 0), ErrorCode.BAD_SIGNATURE);
    expect(bob.serialize()).toEqual(before);
    const genuine = craftGroupMessage({
      groupId: G,
      senderId: 'dave',
      keyId: 7,
      counter: 10,
      chainKey,
      signer,
      plaintext: text('genuine'),
    });
    expect(bob.decrypt(genuine, 0).plaintext).toEqual(text('genuine'));
  });
});
