/**
 * The relay's own key and the login bound to it, frame by frame (docs/PROTOCOL.md "Authentication"), and
 * user ids in one form: what a relay with a data directory keeps, what the handshake carries, what it
 * refuses, and how a database from before lower-case ids is brought to that form.
 */
import Database from 'better-sqlite3';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity, encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { VerifyKey } from '../../src-main/core/crypto/primitives.js';
import {
  challengeSignatureInput,
  deleteAccountSignatureInput,
  loginSignatureInput,
  relayKeyFingerprint,
} from '../../src-main/core/protocol/login.js';
import { WIRE_VERSION, b64, unb64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RELAY_KEY_FILE } from '../../src-main/relay/relay-key.js';
import { QUEUE_FILE } from '../../src-main/relay/store.js';
import { RawClient, body, msgId, unbody, type Deliver } from './raw-client.js';

let dir: string;
const relays: Relay[] = [];
const clients: RawClient[] = [];
const start = async (opts: Parameters<typeof startRelay>[0] = {}): Promise<Relay> => {
  const r = await startRelay({ port: 0, dataDir: dir, ...opts });
  relays.push(r);
  return r;
};
const track = (c: RawClient): RawClient => (clients.push(c), c);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'relay-key-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const r of relays.splice(0)) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the relay key', () => {
  it('is made once, kept private in the data directory, and signs every challenge', async () => {
    const lines: string[] = [];
    const first = await start({ log: (l) => lines.push(l) });
    const file = join(dir, RELAY_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(file)).toHaveLength(33);
    expect(first.fingerprint).toBe(relayKeyFingerprint(first.publicKey));
    expect(lines.some((l) => l.includes(first.fingerprint.slice(0, 5)) && /fingerprint/.test(l))).toBe(true);

    const c = track(await RawClient.open(first.url));
    c.send({ t: 'hello', v: WIRE_VERSION, userId: 'alice' });
    const ch = await c.next((f) => f.t === 'challenge');
    if (ch.t !== 'challenge') throw new Error('no challenge');
    expect(unb64(ch.relayKey)).toEqual(first.publicKey);
    const input = challengeSignatureInput(first.publicKey, 'alice', unb64(ch.nonce));
    expect(new VerifyKey(first.publicKey).verify(input, unb64(ch.signature))).toBe(true);
    await c.close();
    await first.close();

    chmodSync(file, 0o644); // someone loosened it
    const lines2: string[] = [];
    const second = await start({ log: (l) => lines2.push(l) });
    expect(second.publicKey).toEqual(first.publicKey);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(lines2.some((l) => /readable by others/.test(l))).toBe(true);
  });

  it('an in-memory relay makes a new key each start; a damaged key file stops the start', async () => {
    const a = await startRelay({ port: 0 });
    const b = await startRelay({ port: 0 });
    relays.push(a, b);
    expect(a.publicKey).not.toEqual(b.publicKey);
    writeFileSync(join(dir, RELAY_KEY_FILE), Buffer.alloc(12), { mode: 0o600 });
    await expect(startRelay({ port: 0, dataDir: dir })).rejects.toThrow(/relay key .* is damaged/);
  });

  it('refuses a login signed for another relay key, another address or another nonce', async () => {
    const r = await start();
    const other = await startRelay({ port: 0 });
    relays.push(other);
    const id = Identity.generate();
    const attempt = async (sign: (key: Uint8Array, url: string, nonce: Uint8Array) => Uint8Array) => {
      const c = track(await RawClient.open(r.url));
      c.send({ t: 'hello', v: WIRE_VERSION, userId: 'alice' });
      const ch = await c.next((f) => f.t === 'challenge');
      if (ch.t !== 'challenge') throw new Error('no challenge');
      const signature = sign(unb64(ch.relayKey), c.relayUrl, unb64(ch.nonce));
      c.send({
        t: 'auth',
        identity: b64(encodePublicIdentity(id.publicIdentity)),
        signature: b64(signature),
        relayUrl: c.relayUrl,
      });
      return c.next((f) => f.t === 'ready' || f.t === 'error');
    };
    const login = (key: Uint8Array, url: string, nonce: Uint8Array) =>
      id.signing.sign(loginSignatureInput(key, url, 'alice', nonce));
    expect(await attempt((_k, url, n) => login(other.publicKey, url, n))).toMatchObject({
      code: 'AUTH_FAILED',
    });
    expect(await attempt((k, _u, n) => login(k, 'ws://elsewhere.example/', n))).toMatchObject({
      code: 'AUTH_FAILED',
    });
    expect(await attempt((k, url) => login(k, url, new Uint8Array(32)))).toMatchObject({
      code: 'AUTH_FAILED',
    });
    expect(await attempt((k, url, n) => login(k, url, n))).toMatchObject({ t: 'ready', userId: 'alice' });
  });

  it('refuses deleteAccount without a challenge, with a used one, and with a wrong signature', async () => {
    await start();
    const r = relays[0]!;
    const c = track(await RawClient.connect(r.url, 'alice'));
    expect(await c.request({ t: 'deleteAccount', signature: b64(new Uint8Array(64)) })).toMatchObject({
      code: 'BAD_PROOF',
    });
    const ch = await c.request({ t: 'deleteAccountChallenge' });
    const nonce = unb64(String(ch.nonce));
    expect(nonce).toHaveLength(32);
    expect(await c.request({ t: 'deleteAccount', signature: b64(new Uint8Array(64)) })).toMatchObject({
      code: 'BAD_PROOF',
    });
    // That attempt used the nonce up: even a correct signature over it is refused now.
    const proof = c.identity!.signing.sign(deleteAccountSignatureInput(r.publicKey, 'alice', nonce));
    expect(await c.request({ t: 'deleteAccount', signature: b64(proof) })).toMatchObject({
      code: 'BAD_PROOF',
    });
    expect(c.closeInfo).toBeUndefined();
    expect(await c.deleteAccount()).toMatchObject({ t: 'ok' });
    expect((await c.closed).code).toBe(1000);
  });
});

describe('user ids on the wire', () => {
  it('refuses an id that is not lower case in hello, getBundle and send', async () => {
    const r = await start();
    const c = track(await RawClient.open(r.url));
    c.send({ t: 'hello', v: WIRE_VERSION, userId: 'ALICE' });
    expect(await c.next()).toMatchObject({
      code: 'BAD_FRAME',
      message: expect.stringContaining('lower-case'),
    });
    const a = track(await RawClient.connect(r.url, 'alice'));
    expect(await a.request({ t: 'getBundle', userId: 'Alice' })).toMatchObject({ code: 'BAD_FRAME' });
    expect(await a.request({ t: 'send', to: 'Alice', id: msgId(), body: body('x') })).toMatchObject({
      code: 'BAD_FRAME',
    });
  });

  it('brings an older database to lower-case ids: the first registered keeps the id', async () => {
    // A relay database from before canonical ids: Alice (first), alice (later), BOB, and their traffic.
    const dave = await start();
    await dave.close();
    relays.length = 0;
    const ids = { Alice: Identity.generate(), alice: Identity.generate(), BOB: Identity.generate() };
    const db = new Database(join(dir, 'relay.sqlite'));
    // Its groups were the relay's own lists then (wire version 1).
    db.exec(
      'CREATE TABLE chat_groups (id TEXT PRIMARY KEY, creator TEXT NOT NULL, created INTEGER NOT NULL); CREATE TABLE group_members (group_id TEXT NOT NULL, user_id TEXT NOT NULL)',
    );
    const insert = db.prepare('INSERT INTO users (id, identity, created) VALUES (?, ?, ?)');
    insert.run('Alice', encodePublicIdentity(ids.Alice.publicIdentity), 1);
    insert.run('BOB', encodePublicIdentity(ids.BOB.publicIdentity), 2);
    insert.run('alice', encodePublicIdentity(ids.alice.publicIdentity), 3);
    db.prepare("INSERT INTO chat_groups (id, creator, created) VALUES ('club', 'BOB', 4)").run();
    db.prepare("INSERT INTO chat_groups (id, creator, created) VALUES ('fakes', 'alice', 5)").run();
    for (const [g, u] of [
      ['club', 'BOB'],
      ['club', 'Alice'],
      ['club', 'alice'],
      ['fakes', 'alice'],
    ])
      db.prepare('INSERT INTO group_members (group_id, user_id) VALUES (?, ?)').run(g, u);
    db.close();
    const q = new Database(join(dir, QUEUE_FILE));
    q.exec(
      'CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY, recipient TEXT NOT NULL, kind TEXT NOT NULL, sender TEXT, grp TEXT, msg_id TEXT, body TEXT, event TEXT, ts INTEGER NOT NULL)',
    );
    const item = q.prepare(
      "INSERT INTO queue (seq, recipient, kind, sender, msg_id, body, ts) VALUES (?, ?, 'direct', ?, ?, ?, 1)",
    );
    item.run(10, 'BOB', 'Alice', 'message-to-bob', body('for BOB'));
    item.run(11, 'alice', 'BOB', 'message-to-late', body('for the later alice'));
    q.close();

    const lines: string[] = [];
    const r = await start({ log: (l) => lines.push(l) });
    // Counted, not named: the log never names users.
    expect(lines).toContain(
      'user ids are lower case now: 2 renamed, 1 removed (registered after the same id in another case)',
    );
    expect(lines).toContain(
      'dropped 2 groups made before signed membership; their members must create them again',
    );
    expect(lines.join('\n')).not.toMatch(/Alice|BOB/);

    // The first Alice keeps "alice"; the later one is gone. The unsigned groups are gone too.
    const alice = track(await RawClient.connect(r.url, 'alice', ids.Alice));
    expect(alice.ready).toMatchObject({ registered: false, groups: [] });
    const late = track(await RawClient.open(r.url));
    expect(await late.handshake('alice', ids.alice)).toMatchObject({ code: 'AUTH_FAILED' });
    const bob = track(await RawClient.connect(r.url, 'bob', ids.BOB));
    const d = (await bob.next((f) => f.t === 'deliver')) as Deliver;
    expect([d.from, unbody(d.body)]).toEqual(['alice', 'for BOB']);
    expect(bob.pending().filter((f) => f.t === 'deliver')).toEqual([]);
    expect(await bob.request({ t: 'groupLog', group: 'club', from: 0 })).toMatchObject({
      code: 'UNKNOWN_GROUP',
    });
    expect(bob.violations).toEqual([]);
  });
});
