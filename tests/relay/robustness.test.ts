/**
 * Hostile input: oversize frames, and 10,000 random and malformed frames from several connections
 * while two honest clients keep talking. The relay must stay up and lose none of their messages.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { MAX_FRAME_BYTES, WIRE_VERSION } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient, body, msgId, type Deliver, type Frame } from './raw-client.js';

let relay: Relay;
let logLines: string[];
beforeEach(async () => {
  logLines = [];
  relay = await startRelay({
    port: 0,
    rateLimit: { framesPerSecond: 20_000, burst: 5_000 },
    log: (line) => logLines.push(line),
  });
});
afterEach(async () => {
  await relay.close();
});

const honest = (f: Frame): boolean => f.t !== 'event';

describe('robustness', () => {
  it('closes an oversize frame with 1009 and leaves other connections alone', async () => {
    const a = await RawClient.connect(relay.url, 'alice', Identity.generate(), { keep: honest });
    const b = await RawClient.connect(relay.url, 'bob', Identity.generate(), { keep: honest });
    const big = await RawClient.connect(relay.url, 'mallory', Identity.generate());
    big.send(
      JSON.stringify({ t: 'send', rid: 1, to: 'bob', id: msgId(), body: 'A'.repeat(MAX_FRAME_BYTES) }),
    );
    expect((await big.closed).code).toBe(1009);
    const id = msgId();
    expect(await a.request({ t: 'send', to: 'bob', id, body: body('still here') })).toMatchObject({
      t: 'ack',
    });
    expect(await b.next((f) => f.t === 'deliver')).toMatchObject({ id, from: 'alice' });
    // A large but allowed frame passes.
    const id2 = msgId();
    const maxBody = 'A'.repeat(240 * 1024);
    expect(await a.request({ t: 'send', to: 'bob', id: id2, body: maxBody })).toMatchObject({ t: 'ack' });
    expect(await b.next((f) => f.t === 'deliver')).toMatchObject({ id: id2, body: maxBody });
  });

  it('survives 10,000 random and malformed frames while honest clients exchange messages', async () => {
    const frames = fc.sample(hostileFrame(), { seed: 20260101, numRuns: 10_000 });
    const aliceId = Identity.generate();
    const bobId = Identity.generate();
    const a = await RawClient.connect(relay.url, 'alice', aliceId, { keep: honest });
    const b = await RawClient.connect(relay.url, 'bob', bobId, { keep: honest });
    const fromPeer = (peer: string) => (f: Frame) =>
      f.t === 'deliver' && f.kind === 'direct' && f.from === peer;

    const FUZZERS = 4;
    const violations: string[] = [];
    let sentFrames = 0;
    let reconnects = 0;
    const replies = new Map<string, number>();
    const fuzz = async (k: number): Promise<void> => {
      const identity = Identity.generate();
      const open = async (): Promise<RawClient> => {
        reconnects++;
        // Fuzzer 0 stays unauthenticated; the others fuzz the authenticated request handlers.
        const c = await RawClient.open(relay.url, {
          keep: () => false,
          onFrame: (f) => {
            const key = f.t === 'error' ? f.code : f.t;
            replies.set(key, (replies.get(key) ?? 0) + 1);
          },
        });
        if (k > 0) await c.handshake(`fuzz${k}`, identity);
        return c;
      };
      let c = await open();
      for (let i = k; i < frames.length; i += FUZZERS) {
        if (c.ws.readyState !== WebSocket.OPEN) {
          violations.push(...c.violations);
          c = await open();
        }
        const f = frames[i]!;
        if (f.binary) c.ws.send(f.data, { binary: true });
        else c.ws.send(f.data, { binary: false });
        sentFrames++;
        if (i % 64 < FUZZERS) await new Promise((r) => setImmediate(r));
      }
      violations.push(...c.violations);
      await c.close();
    };

    const talk = async (from: RawClient, to: string, n: number): Promise<string[]> => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = msgId();
        ids.push(id);
        expect(await from.request({ t: 'send', to, id, body: body(`${i}`) }, 20_000)).toMatchObject({
          t: 'ack',
        });
      }
      return ids;
    };

    const [aliceSent, bobSent] = await Promise.all([
      talk(a, 'bob', 200),
      talk(b, 'alice', 200),
      ...Array.from({ length: FUZZERS }, (_, k) => fuzz(k)),
    ]);
    const bobGot = await collect(b, fromPeer('alice'), 200);
    const aliceGot = await collect(a, fromPeer('bob'), 200);
    expect(bobGot).toEqual(aliceSent);
    expect(aliceGot).toEqual(bobSent);
    expect(sentFrames).toBe(10_000);
    expect(reconnects).toBeGreaterThan(FUZZERS);
    expect(violations).toEqual([]);
    // Most frames reached the relay's parser and many its handlers (the rest died with their socket).
    const answered = [...replies.values()].reduce((x, y) => x + y, 0);
    expect(answered).toBeGreaterThan(4000);
    for (const code of [
      'BAD_FRAME',
      'NOT_AUTHENTICATED',
      'UNKNOWN_USER',
      'UNKNOWN_GROUP',
      'BAD_ENTRY',
      'ack',
    ])
      expect(replies.get(code), code).toBeGreaterThan(0);
    expect(logLines.filter((l) => /internal error|database error|drain failed/.test(l))).toEqual([]);
    expect(a.violations).toEqual([]);
    expect(b.violations).toEqual([]);
    // Still accepting and authenticating.
    const late = await RawClient.connect(relay.url, 'late', Identity.generate());
    expect(late.ready?.registered).toBe(true);
  });
});

async function collect(c: RawClient, pred: (f: Frame) => boolean, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(((await c.next(pred, 20_000)) as Deliver).id!);
  return ids;
}

interface Hostile {
  binary: boolean;
  data: string | Buffer;
}

/** Frames an attacker might send: wrong types, bad base64, truncated JSON, random bytes, valid shapes. */
function hostileFrame(): fc.Arbitrary<Hostile> {
  // Mostly plausible values, so many frames pass the schema and reach the handlers; some are wrong.
  const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
    fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: bad });
  const name = mostly(
    fc.constantFrom('alice', 'bob', 'fuzz1', 'fuzz2', 'nobody', 'g1', 'g2'),
    fc.constantFrom('x'.repeat(65), '', '-bad', 'a b'),
  );
  const num = mostly(
    fc.integer({ min: 1, max: 1_000_000 }),
    fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.constantFrom(0, -1, 2 ** 53, 2 ** 64, 1e308, 1.5)),
  );
  const b64 = mostly(
    fc.base64String({ maxLength: 300 }),
    fc.oneof(fc.string(), fc.constantFrom('!!!!', '=')),
  );
  const id = mostly(fc.uuid(), fc.string({ maxLength: 80 }));
  const anything = fc.jsonValue({ maxDepth: 3 });
  const shapes = fc.oneof(
    fc.record({ t: fc.constant('hello'), v: fc.oneof(num, fc.constant(WIRE_VERSION)), userId: name }),
    fc.record({ t: fc.constant('auth'), identity: b64, signature: b64 }),
    fc.record({ t: fc.constant('send'), rid: num, to: name, id, body: b64 }),
    fc.record({ t: fc.constant('groupSend'), rid: num, group: name, id, body: b64 }),
    fc.record({ t: fc.constant('received'), seq: num }),
    fc.record({ t: fc.constant('receipt'), to: name, id, group: fc.option(name, { nil: undefined }) }),
    fc.record({
      t: fc.constant('publishPreKeys'),
      rid: num,
      bundle: b64,
      oneTimePreKeys: fc.array(fc.record({ id: num, key: b64 }), { maxLength: 4 }),
    }),
    fc.record({ t: fc.constant('getBundle'), rid: num, userId: name }),
    fc.record({ t: fc.constant('groupAppend'), rid: num, group: name, entry: b64 }),
    fc.record({ t: fc.constant('groupLog'), rid: num, group: name, from: num }),
    fc.record({ t: fc.string({ maxLength: 12 }), rid: num }),
  );
  // Any field of a plausible frame replaced by a value of some other type, or an extra field.
  const mutated = fc
    .tuple(shapes, fc.string({ maxLength: 10 }), anything)
    .map(([s, key, v]) => ({ ...s, [Object.keys(s)[key.length % Object.keys(s).length]!]: v }));
  const extra = fc.tuple(shapes, anything).map(([s, v]) => ({ ...s, extra: v }));
  const text = (s: string): Hostile => ({ binary: false, data: s });
  return fc.oneof(
    { weight: 40, arbitrary: shapes.map((s) => text(JSON.stringify(s))) },
    { weight: 10, arbitrary: mutated.map((s) => text(JSON.stringify(s))) },
    { weight: 5, arbitrary: extra.map((s) => text(JSON.stringify(s))) },
    {
      weight: 10,
      arbitrary: shapes
        .map((s) => JSON.stringify(s))
        .chain((s) => fc.nat({ max: Math.max(0, s.length - 1) }).map((n) => text(s.slice(0, n)))),
    },
    { weight: 5, arbitrary: fc.json({ maxDepth: 4 }).map(text) },
    { weight: 5, arbitrary: fc.string({ maxLength: 200 }).map(text) },
    {
      weight: 5,
      arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => ({ binary: true, data: Buffer.from(u) })),
    },
    { weight: 2, arbitrary: fc.nat({ max: 5000 }).map((n) => text('['.repeat(n) + ']'.repeat(n))) },
    // Raw bytes in a text frame: usually invalid UTF-8, which ws answers with close 1007.
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 50 }).map((u) => ({ binary: false, data: Buffer.from(u) })),
    },
  );
}
