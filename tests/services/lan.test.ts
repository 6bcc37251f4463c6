/**
 * LAN hosting and discovery with real mDNS on this machine's loopback interface (the only interface
 * used, so nothing leaves the machine): alice hosts the bundled relay and advertises it, bob's service
 * discovers it, connects to the advertised URL and they chat; when alice stops hosting, the goodbye
 * removes the relay from bob's list at once. Real networks (several hosts, several links, a crashed
 * host, blocked multicast) are in lan-netns.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { DiscoveredRelay, MessengerEvent } from '../../src-main/shared/messenger-api.js';
import { advertisedName, createMdnsDiscovery, lanUrls } from '../../src-main/services/lan.js';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import { Events, startService, tempDir, testKeychain } from './helpers.js';

const keychain = testKeychain();
const dirs: (() => void)[] = [];
const services: MessengerService[] = [];
afterAll(async () => {
  for (const s of services) await s.close();
  for (const c of dirs) c();
  await keychain.cleanup();
});

async function lanUser(
  userId: string,
  hostname: string,
): Promise<{ service: MessengerService; events: Events }> {
  const t = tempDir('sealed-lan-');
  dirs.push(t.cleanup);
  const service = await startService({
    dataDir: t.dir,
    secrets: keychain.secrets(),
    discovery: createMdnsDiscovery({ interfaces: ['lo'] }),
    hostname,
  });
  services.push(service);
  const events = new Events(service);
  await service.createProfile({ userId });
  return { service, events };
}

const relaysEvent = (pred: (relays: readonly DiscoveredRelay[]) => boolean) => (e: MessengerEvent) =>
  e.type === 'relays' && pred(e.relays);

describe('LAN relay', () => {
  it('is advertised by one service, discovered and used by another, and removed when stopped', async () => {
    // A host name of our own keeps this test's relay apart from any other Sealed relay on the network.
    const host = `test-${randomBytes(4).toString('hex')}`;
    const alice = await lanUser('alice', host);
    const bob = await lanUser('bob', `${host}-b`);
    const name = advertisedName('alice', host);
    expect(name).toBe(`alice on ${host}`);

    const hosted = await alice.service.hostRelay({ port: 0 });
    expect(hosted.port).toBeGreaterThan(0);
    // Others get this computer's LAN addresses, never loopback; this computer gets loopback.
    expect(hosted.urls).toEqual(lanUrls(hosted.port));
    expect(hosted.urls.filter((u) => /127\.0\.0\.1|\[::1\]/.test(u))).toEqual([]);
    expect(hosted.localUrl).toBe(`ws://127.0.0.1:${hosted.port}`);
    expect((await alice.service.getStatus()).hostedRelay).toEqual(hosted);

    const found = await bob.events.wait(
      relaysEvent((r) => r.some((x) => x.name === name)),
      15_000,
    );
    if (found.type !== 'relays') throw new Error('unreachable');
    const relay = found.relays.find((x) => x.name === name)!;
    // Heard on loopback: the address the answer came from, on the network it came in on.
    expect(relay).toMatchObject({
      url: `ws://127.0.0.1:${hosted.port}`,
      host: `${host}.local.`,
      interface: 'lo',
      subnet: '127.0.0.0/8',
    });
    expect(relay.urls?.[0]).toBe(relay.url);
    expect(await bob.service.listDiscoveredRelays()).toContainEqual(relay);
    expect((await bob.service.getStatus()).discoveryProblem).toBeUndefined();

    // bob uses exactly what discovery gave him; alice uses her loopback URL.
    await bob.service.connect({ relayUrl: relay.url });
    await alice.service.connect({ relayUrl: hosted.localUrl! });
    await bob.service.sendDirect({ to: 'alice', text: 'found you on the LAN' });
    await alice.events.item('dm:bob', 'found you on the LAN');

    // Hosting twice returns the running relay; a port in use is a plain error.
    expect(await alice.service.hostRelay({})).toEqual(hosted);
    await bob.service.stopHostingRelay(); // not hosting: harmless

    const mark = bob.events.all.length;
    await alice.service.stopHostingRelay();
    expect((await alice.service.getStatus()).hostedRelay).toBeNull();
    // The mDNS goodbye removes it at once (no waiting for the record's TTL).
    await bob.events.wait(
      (e) =>
        bob.events.all.indexOf(e) >= mark && e.type === 'relays' && !e.relays.some((x) => x.name === name),
      15_000,
    );
    expect((await bob.service.listDiscoveredRelays()).some((x) => x.name === name)).toBe(false);
  });

  it('reports a port that is already in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const port = (blocker.address() as { port: number }).port;
    const t = tempDir('sealed-lan-');
    dirs.push(t.cleanup);
    const carol = await startService({ dataDir: t.dir, secrets: keychain.secrets() });
    services.push(carol);
    await carol.createProfile({ userId: 'carol' });
    await expect(carol.hostRelay({ port })).rejects.toMatchObject({
      code: 'PORT_IN_USE',
      message: `Port ${port} is already in use. Choose another port.`,
    });
    await new Promise((resolve) => blocker.close(resolve));
  });
});
