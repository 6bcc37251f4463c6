/** Relay handshake: registration, authentication, impersonation, and the public API's options. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity, encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { WIRE_VERSION, b64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient } from './raw-client.js';

let relay: Relay;
const clients: RawClient[] = [];
const track = (c: RawClient): RawClient => (clients.push(c), c);
const connect = async (userId: string, identity?: Identity): Promise<RawClient> =>
  track(await RawClient.connect(relay.url, userId, identity));
const open = async (): Promise<RawClient> => track(await RawClient.open(relay.url));

beforeEach(async () => {
  relay = await startRelay({ port: 0, handshakeTimeoutMs: 500 });
});
afterEach(async () => {
  for (const c of clients.splice(0)) expect(c.violations).toEqual([]);
  await relay.close();
});

describe('relay handshake', () => {
  it('registers a new user, then authenticates the same identity again', async () => {
    const alice = Identity.generate();
    const first = await connect('alice', alice);
    expect(first.ready).toMatchObject({
      userId: 'alice',
      registered: true,
      oneTimePreKeyCount: 0,
      groups: [],
    });
    await first.close();
    const second = await connect('alice', alice);
    expect(second.ready).toMatchObject({ userId: 'alice', registered: false });
  });

  it('announces a new user to the others with a live userCreated event', async () => {
    const bob = await connect('bob');
    await connect('carol');
    expect(await bob.next((f) => f.t === 'event')).toEqual({
      t: 'event',
      event: { type: 'userCreated', userId: 'carol' },
    });
  });

  it('refuses a second identity for an existing user id (AUTH_FAILED, close 1008)', async () => {
    await (await connect('alice')).close();
    const mallory = await open();
    const answer = await mallory.handshake('alice', Identity.generate());
    expect(answer).toMatchObject({ t: 'error', code: 'AUTH_FAILED' });
    expect((await mallory.closed).code).toBe(1008);
  });

  it('refuses a wrong signature', async () => {
    const c = await open();
    c.send({ t: 'hello', v: WIRE_VERSION, userId: 'dave' });
    await c.next((f) => f.t === 'challenge');
    const id = Identity.generate();
    // Signed over another nonce: valid signature, wrong message.
    const sig = id.signing.sign(new Uint8Array(32));
    c.send({
      t: 'auth',
      identity: b64(encodePublicIdentity(id.publicIdentity)),
      signature: b64(sig),
      relayUrl: c.relayUrl,
    });
    expect(await c.next()).toMatchObject({ t: 'error', code: 'AUTH_FAILED' });
    expect((await c.closed).code).toBe(1008);
  });

  it('refuses an identity whose DH key is not certified by its signing key', async () => {
    const c = await open();
    c.send({ t: 'hello', v: WIRE_VERSION, userId: 'erin' });
    await c.next((f) => f.t === 'challenge');
    c.send({
      t: 'auth',
      identity: b64(new Uint8Array(194).fill(4)),
      signature: b64(new Uint8Array(64)),
      relayUrl: c.relayUrl,
    });
    expect(await c.next()).toMatchObject({ t: 'error', code: 'AUTH_FAILED' });
    expect((await c.closed).code).toBe(1008);
  });

  it('refuses frames before authentication, then closes', async () => {
    const c = await open();
    c.send({ t: 'send', rid: 7, to: 'bob', id: 'abcdefgh', body: 'AAAA' });
    expect(await c.next()).toMatchObject({ t: 'error', rid: 7, code: 'NOT_AUTHENTICATED' });
    c.send({ t: 'received', seq: 1 });
    c.send({ t: 'groupLog', rid: 8, group: 'g', from: 0 });
    expect((await c.closed).code).toBe(1008);
  });

  it('refuses another wire version with UNSUPPORTED_VERSION and 1008', async () => {
    const c = await open();
    c.send({ t: 'hello', v: WIRE_VERSION + 1, userId: 'frank' });
    expect(await c.next()).toMatchObject({ t: 'error', code: 'UNSUPPORTED_VERSION' });
    expect((await c.closed).code).toBe(1008);
  });

  it('closes a connection that does not finish the handshake in time', async () => {
    const c = await open();
    expect((await c.closed).code).toBe(1008);
  });

  it('drops a peer that stops answering pings', async () => {
    await relay.close();
    relay = await startRelay({ port: 0, heartbeatIntervalMs: 50 });
    const alive = await connect('kim');
    const dead = track(await RawClient.open(relay.url, { autoPong: false }));
    await dead.handshake('lee', Identity.generate());
    expect((await dead.closed).code).toBe(1006); // terminated, no close frame
    await new Promise((r) => setTimeout(r, 200));
    expect(alive.closeInfo).toBeUndefined();
  });

  it('replaces an older connection of the same user (1000 replaced)', async () => {
    const id = Identity.generate();
    const first = await connect('gina', id);
    await connect('gina', id);
    expect(await first.closed).toEqual({ code: 1000, reason: 'replaced' });
  });

  it('answers bad JSON and unknown frame types with BAD_FRAME naming the problem', async () => {
    const c = await connect('hank');
    c.send('{not json');
    expect(await c.next()).toMatchObject({
      t: 'error',
      code: 'BAD_FRAME',
      message: expect.stringContaining('JSON'),
    });
    c.send({ t: 'teleport', rid: 3 });
    expect(await c.next()).toMatchObject({
      t: 'error',
      rid: 3,
      code: 'BAD_FRAME',
      message: expect.stringContaining('t'),
    });
    c.send({ t: 'send', rid: 4, to: 'x', id: 'abcdefgh', body: '!!!' });
    expect(await c.next()).toMatchObject({
      t: 'error',
      rid: 4,
      code: 'BAD_FRAME',
      message: expect.stringContaining('body'),
    });
    c.send(Buffer.from([1, 2, 3]));
    expect(await c.next()).toMatchObject({
      t: 'error',
      code: 'BAD_FRAME',
      message: expect.stringContaining('Binary'),
    });
  });

  it('rate-limits frames by backpressure: a fast client is slowed down, nothing dropped or reordered', async () => {
    await relay.close();
    relay = await startRelay({ port: 0, rateLimit: { framesPerSecond: 20, burst: 5 } });
    const c = await connect('ivy');
    const started = Date.now();
    for (let i = 0; i < 30; i++) c.send({ t: 'groupLog', rid: i + 1, group: 'none', from: 0 });
    const answers: { rid?: number | undefined; code: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const f = await c.next((f) => f.t === 'error', 10_000);
      if (f.t === 'error') answers.push(f);
    }
    // Every frame answered, in order; none refused for its rate.
    expect(answers.map((f) => [f.rid, f.code])).toEqual(
      Array.from({ length: 30 }, (_, i) => [i + 1, 'UNKNOWN_GROUP']),
    );
    // 25 frames beyond the burst at 20 a second cannot all have been read in less than about 1.25 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(c.violations).toEqual([]);
  });
});

describe('startRelay options', () => {
  it('rejects unknown, mistyped and contradictory options', async () => {
    await expect(startRelay({ port: 70000 })).rejects.toThrow(RangeError);
    await expect(startRelay({ port: '1' as never })).rejects.toThrow(TypeError);
    await expect(startRelay({ prot: 1 } as never)).rejects.toThrow(TypeError);
    await expect(startRelay({ rateLimit: { burst: 0.5 } })).rejects.toThrow(RangeError);
    await expect(startRelay({ rateLimit: { framesPerSecond: -1 } })).rejects.toThrow(RangeError);
    await expect(startRelay({ maxBufferedBytes: 1024 })).rejects.toThrow(RangeError);
    await expect(startRelay({ log: 'yes' as never })).rejects.toThrow(TypeError);
    await expect(startRelay({ publicUrls: 'ws://relay.example' as never })).rejects.toThrow(TypeError);
    await expect(startRelay({ publicUrls: [] })).rejects.toThrow(RangeError);
    await expect(startRelay({ publicUrls: ['http://relay.example'] })).rejects.toThrow(RangeError);
  });

  it('refuses a second relay on the same data directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-lock-'));
    try {
      const first = await startRelay({ dataDir: dir });
      await expect(startRelay({ dataDir: dir })).rejects.toThrow(/in use by another relay/);
      await first.close();
      await (await startRelay({ dataDir: dir })).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves a URL on a free port, and close is idempotent', async () => {
    const r = await startRelay();
    expect(r.url).toBe(`ws://127.0.0.1:${r.port}`);
    expect(r.port).toBeGreaterThan(0);
    await Promise.all([r.close(), r.close()]);
    await r.close();
  });
});
