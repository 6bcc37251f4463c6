/**
 * The login is bound to the relay (issue 8, docs/PROTOCOL.md "Authentication"), tried as an attacker
 * would against real relays on 127.0.0.1: a rogue relay that takes the honest relay's challenge for the
 * victim, a proxy that passes another relay's challenge through, a relay whose key changed, replayed and
 * injected deletions. Before this change the first and the injected deletion succeeded (commit 8577cde,
 * tests/e2e/old-attacks.test.ts there).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { SigningKeyPair } from '../../src-main/core/crypto/primitives.js';
import {
  E2EEClient,
  ErrorCode,
  MemoryKeyStore,
  MemoryStateStore,
  RelayError,
  RelayKeyChangedError,
  formatFingerprint,
} from '../../src-main/core/index.js';
import { challengeSignatureInput, normaliseRelayUrl } from '../../src-main/core/protocol/login.js';
import { b64, unb64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { connectClient, until } from './helpers.js';
import { startProxy } from './proxy.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relay(log?: string[]): Promise<Relay> {
  const r = await startRelay({ port: 0, log: log ? (line) => log.push(line) : undefined });
  cleanup.push(() => r.close());
  return r;
}

type Json = Record<string, unknown> & { t: string };

/**
 * A rogue relay with a key of its own. For each client it logs in to `honest` as that client: it asks the
 * honest relay for a challenge and hands the client the honest nonce, either signed with its own key
 * ('own-key', the only way to get past a pin of its own key) or passed through as it came ('forward'),
 * then forwards the client's `auth`, as is or with the honest relay's address put in. Every answer of the
 * honest relay to those logins is recorded.
 */
async function startRogue(honest: Relay, mode: 'own-key' | 'forward', rewriteUrl = false) {
  const key = SigningKeyPair.generate();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const answers: Json[] = [];
  const upstreams: WebSocket[] = [];
  wss.on('connection', (victim) => {
    const up = new WebSocket(honest.url);
    upstreams.push(up);
    const early: string[] = [];
    up.on('open', () => early.splice(0).forEach((f) => up.send(f)));
    const toHonest = (f: Json): void => {
      if (up.readyState === WebSocket.OPEN) up.send(JSON.stringify(f));
      else early.push(JSON.stringify(f));
    };
    let userId = '';
    victim.on('message', (d) => {
      const f = JSON.parse(d.toString()) as Json;
      if (f.t === 'hello') userId = String(f.userId);
      if (f.t === 'auth' && rewriteUrl) f.relayUrl = normaliseRelayUrl(honest.url);
      toHonest(f);
    });
    up.on('message', (d) => {
      const f = JSON.parse(d.toString()) as Json;
      if (f.t === 'challenge') {
        if (mode === 'forward') victim.send(d.toString());
        else {
          const nonce = unb64(String(f.nonce));
          const signature = key.sign(challengeSignatureInput(key.publicKey, userId, nonce));
          victim.send(JSON.stringify({ ...f, relayKey: b64(key.publicKey), signature: b64(signature) }));
        }
        return;
      }
      answers.push(f);
      if (f.t === 'ready') up.send(JSON.stringify({ t: 'deleteAccountChallenge', rid: 1 }));
      if (f.t === 'deliver') up.send(JSON.stringify({ t: 'received', seq: f.seq })); // deletes the mail
    });
    victim.on('close', () => undefined); // the rogue keeps its honest connection open
  });
  const rogue = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    answers,
    close: async () => {
      for (const u of upstreams) u.terminate();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
  cleanup.push(rogue.close);
  return rogue;
}

/** A client that is expected to fail: its connect() outcome, its errors kept. */
function tryConnect(
  url: string,
  userId: string,
  extra: Partial<ConstructorParameters<typeof E2EEClient>[0]>,
) {
  const client = new E2EEClient({ url, userId, reconnectDelayMs: { min: 20, max: 200 }, ...extra });
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  cleanup.push(() => client.close());
  const outcome = client.connect().then(
    () => 'connected' as const,
    (e: unknown) => e as Error,
  );
  return { client, errors, outcome };
}

describe('a login is useless at any other relay', () => {
  it('a rogue relay that hands the victim the honest relay nonce under its own key is refused there', async () => {
    const honest = await relay();
    const keys = new MemoryKeyStore();
    const state = new MemoryStateStore();
    const alice = await connectClient(honest.url, 'alice', { keyStore: keys, stateStore: state });
    const bob = await connectClient(honest.url, 'bob');
    cleanup.push(() => bob.client.close());
    await bob.client.sendDirectMessage('alice', 'hello alice');
    await alice.rec.wait('message');
    await alice.client.close();
    await bob.client.sendDirectMessage('alice', 'queued while away');

    for (const rewriteUrl of [false, true]) {
      const rogue = await startRogue(honest, 'own-key', rewriteUrl);
      // The victim has no pin for the rogue's address: it trusts the rogue's key and signs its login.
      const victim = tryConnect(rogue.url, 'alice', { keyStore: keys, reconnect: false });
      await until(() => rogue.answers.length > 0, 5000, 'the honest relay to answer the rogue');
      expect(rogue.answers[0]).toMatchObject({ t: 'error', code: 'AUTH_FAILED' });
      expect(rogue.answers.some((f) => f.t === 'ready')).toBe(false);
      await victim.client.close();
    }

    // Nothing was lost at the honest relay: the binding is alice's, her mail is there.
    const mallory = tryConnect(honest.url, 'alice', { reconnect: false }); // another identity
    expect(await mallory.outcome).toMatchObject({ relayCode: 'AUTH_FAILED' });
    const back = await connectClient(honest.url, 'alice', { keyStore: keys, stateStore: state });
    cleanup.push(() => back.client.close());
    expect((await back.rec.wait('message', (m) => m.text === 'queued while away')).from).toBe('bob');
  });

  it('a proxy that passes another relay challenge through is refused where the victim pinned a key', async () => {
    const mine = await relay();
    const other = await relay();
    const proxy = await startProxy(mine.url);
    cleanup.push(() => proxy.close());
    const keys = new MemoryKeyStore();
    const state = new MemoryStateStore();
    const first = await connectClient(proxy.url, 'alice', { keyStore: keys, stateStore: state });
    await first.client.close();

    proxy.upstream = other.url; // the address now leads to another relay, whose challenge passes through
    const framesBefore = proxy.clientFrames.length;
    const victim = tryConnect(proxy.url, 'alice', { keyStore: keys, stateStore: state });
    const err = await victim.outcome;
    expect(err).toBeInstanceOf(RelayKeyChangedError);
    expect(proxy.clientFrames.slice(framesBefore).map((f) => (JSON.parse(f) as Json).t)).toEqual(['hello']);
  });
});

describe('a relay that knows its addresses', () => {
  it('refuses a login signed for another address: a pass-through proxy at first use gets nowhere', async () => {
    const probe = await startRelay({ port: 0 });
    const port = probe.port;
    await probe.close();
    const own = `ws://127.0.0.1:${port}`;
    const r = await startRelay({ port, publicUrls: [own] });
    cleanup.push(() => r.close());
    const proxy = await startProxy(r.url);
    cleanup.push(() => proxy.close());
    const keys = new MemoryKeyStore();
    // First use of the proxy's address: the client pins the relay's key there and signs for that address.
    const victim = tryConnect(proxy.url, 'alice', { keyStore: keys });
    const refused = await victim.outcome;
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).relayCode).toBe('AUTH_FAILED');
    expect(refused).toMatchObject({ message: 'authentication failed' });
    // At the relay's own address the same user logs in.
    const direct = await connectClient(own, 'alice', { keyStore: keys });
    cleanup.push(() => direct.client.close());
    expect(direct.client.connected).toBe(true);
  });
});

describe('a relay whose key changed', () => {
  it('is refused with a typed error naming both fingerprints, and accepted after explicit approval', async () => {
    const before = await relay();
    const after = await relay();
    const proxy = await startProxy(before.url);
    cleanup.push(() => proxy.close());
    const state = new MemoryStateStore(); // where the pins are kept by default
    const keys = new MemoryKeyStore();
    const alice = await connectClient(proxy.url, 'alice', { keyStore: keys, stateStore: state });
    expect(await alice.client.pinnedRelayKey()).toEqual(before.publicKey);
    await alice.client.close();

    proxy.upstream = after.url;
    const again = tryConnect(proxy.url, 'alice', { keyStore: keys, stateStore: state });
    const err = await again.outcome;
    expect(err).toBeInstanceOf(RelayKeyChangedError);
    const changed = err as RelayKeyChangedError;
    expect(changed.code).toBe(ErrorCode.RELAY_KEY_CHANGED);
    expect(changed.relayUrl).toBe(normaliseRelayUrl(proxy.url));
    expect(changed.pinnedFingerprint).toBe(before.fingerprint);
    expect(changed.presentedFingerprint).toBe(after.fingerprint);
    expect(changed.presentedKey).toEqual(after.publicKey);
    expect(changed.message).toContain(after.fingerprint);
    expect(again.errors).toEqual([err]);
    // Nothing was signed for the new relay, and the client does not keep trying.
    const sent = (): string[] => proxy.clientFrames.map((f) => (JSON.parse(f) as Json).t);
    await new Promise((r) => setTimeout(r, 400));
    expect(sent().filter((t) => t === 'hello')).toHaveLength(2);
    expect(sent().filter((t) => t === 'auth')).toHaveLength(1);
    expect(again.client.connected).toBe(false);

    // A fresh client on the same state refuses too: the pin is kept.
    const third = tryConnect(proxy.url, 'alice', { keyStore: keys, stateStore: state, reconnect: false });
    expect(await third.outcome).toBeInstanceOf(RelayKeyChangedError);
    await third.client.close();

    // The user compared the fingerprints with the operator and accepts the new key.
    await again.client.acceptRelayKey(changed.presentedKey);
    await again.client.connect();
    expect(again.client.connected).toBe(true);
    expect(await again.client.pinnedRelayKey()).toEqual(after.publicKey);
    expect(formatFingerprint(after.fingerprint)).toMatch(/^(\d{5} ){5}\d{5}$/);
  });

  it('a relay that cannot sign for the key it presents is refused before anything is signed', async () => {
    const honest = await relay();
    const proxy = await startProxy(honest.url);
    cleanup.push(() => proxy.close());
    const impostor = SigningKeyPair.generate();
    proxy.hooks.fromRelay = (f) => {
      const j = JSON.parse(f) as Json;
      return j.t === 'challenge' ? JSON.stringify({ ...j, relayKey: b64(impostor.publicKey) }) : f;
    };
    const victim = tryConnect(proxy.url, 'alice', {});
    const err = await victim.outcome;
    expect(err).toMatchObject({ code: ErrorCode.BAD_SIGNATURE });
    expect(proxy.clientFrames.map((f) => (JSON.parse(f) as Json).t)).toEqual(['hello']);
  });
});

describe('deleteAccount needs a fresh proof', () => {
  it('an injected deleteAccount, a replayed one and one signed for another relay delete nothing', async () => {
    const home = await relay();
    const elsewhere = await relay();
    const proxy = await startProxy(elsewhere.url);
    cleanup.push(() => proxy.close());
    const keys = new MemoryKeyStore();
    // alice deletes an account elsewhere, through a proxy that records her frames.
    const old = await connectClient(proxy.url, 'alice', { keyStore: keys });
    await old.client.deleteAccount();
    const recorded = proxy.clientFrames
      .map((f) => JSON.parse(f) as Json)
      .find((f) => f.t === 'deleteAccount')!;
    expect(recorded.signature).toBeTypeOf('string');

    // At home, alice's connection runs through a proxy that injects frames of its own.
    proxy.upstream = home.url;
    const bob = await connectClient(home.url, 'bob');
    cleanup.push(() => bob.client.close());
    const alice = await connectClient(proxy.url, 'alice', { keyStore: keys, reconnect: false });
    cleanup.push(() => alice.client.close());
    const conn = proxy.connections.at(-1)!;
    const answers: Json[] = [];
    proxy.hooks.fromRelay = (f) => {
      const j = JSON.parse(f) as Json;
      if (typeof j.rid === 'number' && j.rid >= 900) {
        answers.push(j);
        return null; // answers to injected frames never reach alice
      }
      return f;
    };
    conn.toRelay(JSON.stringify({ t: 'deleteAccount', rid: 900, signature: recorded.signature }));
    conn.toRelay(JSON.stringify({ t: 'deleteAccountChallenge', rid: 901 }));
    conn.toRelay(JSON.stringify({ t: 'deleteAccount', rid: 902, signature: recorded.signature }));
    await until(() => answers.length === 3, 5000, 'three answers');
    expect(answers[0]).toMatchObject({ t: 'error', rid: 900, code: 'BAD_PROOF' });
    expect(answers[1]).toMatchObject({ t: 'ok', rid: 901 });
    expect(answers[2]).toMatchObject({ t: 'error', rid: 902, code: 'BAD_PROOF' });

    // alice is still registered and reachable.
    await bob.client.sendDirectMessage('alice', 'still there?');
    expect((await alice.rec.wait('message')).text).toBe('still there?');
    expect(bob.rec.all('userDeleted')).toEqual([]);
    // Her own deletion, with a fresh proof, works.
    await alice.client.deleteAccount();
    expect((await bob.rec.wait('userDeleted')).userId).toBe('alice');
  });
});

describe('user ids have one form', () => {
  it('ALICE cannot register beside alice; the client folds ids typed in capitals', async () => {
    const r = await relay();
    const alice = await connectClient(r.url, 'alice');
    cleanup.push(() => alice.client.close());
    const upper = tryConnect(r.url, 'ALICE', { reconnect: false });
    expect(upper.client.userId).toBe('alice');
    const refused = await upper.outcome;
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).relayCode).toBe('AUTH_FAILED');
    const bob = await connectClient(r.url, 'Bob');
    cleanup.push(() => bob.client.close());
    expect(bob.client.userId).toBe('bob');
    await alice.client.sendDirectMessage('BOB', 'hi');
    expect((await bob.rec.wait('message')).from).toBe('alice');
    expect(alice.rec.all('userCreated').map((e) => e.userId)).toEqual(['bob']);
  });
});
