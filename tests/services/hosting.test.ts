/**
 * Hosting a relay (issue 7): `hostRelay` connects the hosting user to their own relay, hosting and
 * that connection come back when the app starts again, and stopping hosting is remembered too. No
 * mDNS here (discovery off): tests/services/lan.test.ts covers advertising and discovery.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import { loopbackUrl } from '../../src-main/services/messenger-service.js';
import type { MessengerEvent } from '../../src-main/shared/messenger-api.js';
import { Events, startService, tempDir, testKeychain } from './helpers.js';

const keychain = testKeychain();
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await keychain.cleanup();
});

async function start(dataDir: string): Promise<{ service: MessengerService; events: Events }> {
  const service = await startService({ dataDir, secrets: keychain.secrets() });
  cleanups.push(() => service.close());
  return { service, events: new Events(service) };
}

async function user(userId: string): Promise<{ service: MessengerService; events: Events; dir: string }> {
  const t = tempDir('sealed-hosting-');
  cleanups.push(t.cleanup);
  const started = await start(t.dir);
  await started.service.createProfile({ userId });
  return { ...started, dir: t.dir };
}

const connected = (e: MessengerEvent): boolean => e.type === 'connection' && e.state === 'connected';

describe('hosting a relay', () => {
  it('connects the host to it, and both come back when the app starts again', async () => {
    const alice = await user('alice');
    expect((await alice.service.getStatus()).connection).toBe('offline');

    const hosted = await alice.service.hostRelay({ port: 0 });
    const own = loopbackUrl(hosted.port);
    // When hostRelay resolves, alice is on her own relay and it is remembered as her relay.
    expect(await alice.service.getStatus()).toMatchObject({
      connection: 'connected',
      hostedRelay: hosted,
      profile: { userId: 'alice', relayUrl: own },
    });

    // Somebody else uses it: a message reaches alice without her connecting anywhere herself.
    const bob = await user('bob');
    await bob.service.connect({ relayUrl: own });
    await bob.service.sendDirect({ to: 'alice', text: 'hello host' });
    await alice.events.item('dm:bob', 'hello host');

    // Hosting twice keeps the running relay and the connection.
    expect(await alice.service.hostRelay({})).toEqual(hosted);
    expect((await alice.service.getStatus()).connection).toBe('connected');

    // alice quits and starts again: her relay is back on the same port and she is connected to it.
    await alice.service.close();
    await bob.events.wait((e) => e.type === 'connection' && e.state === 'reconnecting');
    const again = await start(alice.dir);
    await again.events.wait(connected);
    expect(await again.service.getStatus()).toMatchObject({
      connection: 'connected',
      hostedRelay: { port: hosted.port },
      profile: { relayUrl: own },
    });
    // bob's client finds the relay again by itself, and the conversation goes on.
    const mark = bob.events.all.length;
    await bob.events.wait((e) => bob.events.all.indexOf(e) >= mark && connected(e), 15_000);
    await bob.service.sendDirect({ to: 'alice', text: 'you are back' });
    await again.events.item('dm:bob', 'you are back');
    await again.service.sendDirect({ to: 'bob', text: 'so is my relay' });
    await bob.events.item('dm:alice', 'so is my relay');

    // Stopped hosting stays stopped at the next start.
    await again.service.stopHostingRelay();
    expect((await again.service.getStatus()).hostedRelay).toBeNull();
    await again.service.close();
    const third = await start(alice.dir);
    expect((await third.service.getStatus()).hostedRelay).toBeNull();
    expect(third.events.all.filter((e) => e.type === 'status' && e.status.hostedRelay)).toEqual([]);
  });
});
