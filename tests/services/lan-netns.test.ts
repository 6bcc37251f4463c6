/**
 * LAN hosting and discovery between simulated computers: Linux network namespaces joined by veth links,
 * real multicast DNS, a real MessengerService in each (tests/services/netns/peer.ts), and tcpdump on the
 * links as the eavesdropper. Only addresses inside these namespaces are ever contacted.
 *
 *   bob (eth0 198.18.1.2) ── L1 ── eth1 ┐
 *   carol (eth0 198.18.2.2) ── L2 ── eth0 ├ alice (hosts; also docker0 198.18.9.1, a bridge, first in order)
 *   dave (eth0 198.18.3.2, multicast blocked) ── L3 ── eth2 │
 *   erin (eth0 198.18.4.2, multicast never received) ── L4 ── eth3 ┘
 *
 * Each link also has IPv6 (fd5e:a1ed:<link>::/64), which connect() falls back to when a firewall drops
 * the IPv4 address discovery chose, and which dave uses by hand. Needs root (CI runs as root) for namespaces; where the
 * kernel refuses them the suite is skipped with the reason printed.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AppStatus,
  DiscoveredRelay,
  GroupInfo,
  HostedRelay,
  MessengerEvent,
} from '../../src-main/shared/messenger-api.js';
import { findPlaintext, readCapture, startCapture, type Capture } from './netns/capture.js';
import { Lab, namespaceRefusal, type Peer } from './netns/lab.js';

const refusal = await namespaceRefusal();
if (refusal) console.log(`lan-netns: skipped, the kernel refuses network namespaces: ${refusal}`);

const PASS = 'correct horse battery';
const ALICE = 'alice on machine-a';
const BOB = 'bob on machine-b';

type RelaysEvent = Extract<MessengerEvent, { type: 'relays' }>;
const isRelays = (e: MessengerEvent): e is RelaysEvent => e.type === 'relays';
const relaysWith =
  (name: string) =>
  (e: MessengerEvent): e is RelaysEvent =>
    isRelays(e) && e.relays.some((r) => r.name === name);
const relaysWithout =
  (name: string) =>
  (e: MessengerEvent): e is RelaysEvent =>
    isRelays(e) && !e.relays.some((r) => r.name === name);
const found = (e: RelaysEvent, name: string): DiscoveredRelay => e.relays.find((r) => r.name === name)!;

describe.skipIf(refusal !== null).sequential('LAN on simulated networks', () => {
  const lab = new Lab();
  const peers: Record<'alice' | 'bob' | 'carol' | 'dave' | 'erin', Peer> = {} as never;
  const captures: Capture[] = [];
  const texts: string[] = [];
  let hosted: HostedRelay;
  let ns: Record<keyof typeof peers, string>;

  beforeAll(async () => {
    ns = {
      alice: await lab.host('alice'),
      bob: await lab.host('bob'),
      carol: await lab.host('carol'),
      dave: await lab.host('dave'),
      erin: await lab.host('erin'),
    };
    // A container bridge first, as Docker leaves one on many laptops: never offered to others.
    await lab.exec(ns.alice, 'ip', 'link', 'add', 'docker0', 'type', 'bridge');
    await lab.exec(ns.alice, 'ip', 'addr', 'add', '198.18.9.1/24', 'dev', 'docker0');
    await lab.exec(ns.alice, 'ip', 'link', 'set', 'docker0', 'up');
    const link = (n: number, aliceIf: string, other: string) =>
      lab.link(
        { ns: ns.alice, iface: aliceIf, addrs: [`198.18.${n}.1/24`, `fd5e:a1ed:${n}::1/64`] },
        { ns: other, iface: 'eth0', addrs: [`198.18.${n}.2/24`, `fd5e:a1ed:${n}::2/64`] },
      );
    await link(2, 'eth0', ns.carol); // alice's first LAN interface is carol's network, not bob's
    await link(1, 'eth1', ns.bob);
    await link(3, 'eth2', ns.dave);
    await link(4, 'eth3', ns.erin);
    // dave's firewall drops mDNS both ways (sending fails with EPERM); erin's drops what comes in.
    for (const [n, rules] of [
      [ns.dave, ['output', 'input']],
      [ns.erin, ['input']],
    ] as const) {
      await lab.exec(n, 'nft', 'add', 'table', 'inet', 'fw');
      for (const hook of rules) {
        await lab.exec(
          n,
          'nft',
          'add',
          'chain',
          'inet',
          'fw',
          hook,
          `{ type filter hook ${hook} priority 0; }`,
        );
        await lab.exec(n, 'nft', 'add', 'rule', 'inet', 'fw', hook, 'udp', 'dport', '5353', 'drop');
      }
    }
    // The eavesdroppers, on bob's and carol's links, before anything is sent.
    captures.push(await startCapture(ns.bob, 'eth0', path.join(lab.dir, 'l1.pcap')));
    captures.push(await startCapture(ns.carol, 'eth0', path.join(lab.dir, 'l2.pcap')));

    const started = await Promise.all([
      lab.peer('alice', ns.alice, 'machine-a'),
      lab.peer('bob', ns.bob, 'machine-b'),
      lab.peer('carol', ns.carol, 'machine-c'),
      lab.peer('dave', ns.dave, 'machine-d'),
      lab.peer('erin', ns.erin, 'machine-e'),
    ]);
    for (const p of started) {
      peers[p.name as keyof typeof peers] = p;
      await p.call('createProfile', { userId: p.name, passphrase: PASS });
    }
  }, 90_000);

  afterAll(async () => {
    for (const c of captures) await c.stop();
    await lab.cleanup();
  }, 60_000);

  const say = async (from: Peer, to: Peer, text: string): Promise<void> => {
    texts.push(text);
    await from.call('sendDirect', { to: to.name, text });
    await to.item(`dm:${from.name}`, text);
  };

  it('two computers on one link: found through discovery, then a direct and a group chat', async () => {
    const { alice, bob } = peers;
    const t0 = Date.now();
    hosted = await alice.call<HostedRelay>('hostRelay', { port: 0 });
    const seen = await bob.waitFor('alice in the list', relaysWith(ALICE), 15_000);
    console.log(`lan-netns: bob discovered alice's relay ${seen.at - t0} ms after hosting started`);
    const relay = found(seen.event, ALICE);
    const port = hosted.port;
    // The address alice has on bob's network, though her first interfaces are docker0 and carol's link.
    expect(relay).toMatchObject({
      url: `ws://198.18.1.1:${port}`,
      host: 'machine-a.local.',
      interface: 'eth0',
      subnet: '198.18.1.0/24',
    });
    expect(relay.urls).toEqual([`ws://198.18.1.1:${port}`, `ws://[fd5e:a1ed:1::1]:${port}`]);

    // The relay's IPv4 port is firewalled on alice's side: connect() goes on to her next address.
    await lab.exec(ns.alice, 'nft', 'add', 'table', 'inet', 'block');
    await lab.exec(
      ns.alice,
      'nft',
      'add',
      'chain',
      'inet',
      'block',
      'in',
      '{ type filter hook input priority 0; }',
    );
    await lab.exec(
      ns.alice,
      'nft',
      'add',
      'rule',
      'inet',
      'block',
      'in',
      'ip',
      'daddr',
      '198.18.1.1',
      'tcp',
      'dport',
      String(port),
      'drop',
    );
    await bob.call('connect', { relayUrl: relay.url });
    await lab.exec(ns.alice, 'nft', 'delete', 'table', 'inet', 'block');
    expect((await bob.call<AppStatus>('getStatus')).profile?.relayUrl).toBe(`ws://[fd5e:a1ed:1::1]:${port}`);
    await alice.call('connect', { relayUrl: hosted.localUrl });
    await say(bob, alice, 'found you on the LAN, alice');
    await say(alice, bob, 'hello bob, this stays between us');

    await alice.call('createGroup', { group: 'lan-party' });
    await alice.call('inviteToGroup', { group: 'lan-party', userId: 'bob' });
    await bob.item('group:lan-party', 'alice invited you to the group. Accept to read and write here.');
    const joined = await bob.call<GroupInfo>('acceptGroupInvitation', { group: 'lan-party' });
    expect(joined).toMatchObject({ group: 'lan-party', creator: 'alice', members: ['alice', 'bob'] });
    await alice.item('group:lan-party', 'bob joined the group.');
    texts.push('group secret: the cake is in the fridge');
    await alice.call('sendGroup', { group: 'lan-party', text: texts.at(-1) });
    await bob.item('group:lan-party', texts.at(-1)!);
    expect(await bob.call<GroupInfo>('getGroup', { group: 'lan-party' })).toEqual(joined);
  }, 60_000);

  it('a computer on two links is found on both, each side getting the address it can reach', async () => {
    const { bob, carol } = peers;
    const port = hosted.port;
    // Offered to others: every LAN address, IPv4 first; never loopback, never the container bridge.
    expect([...hosted.urls].sort()).toEqual(
      [1, 2, 3, 4].flatMap((n) => [`ws://198.18.${n}.1:${port}`, `ws://[fd5e:a1ed:${n}::1]:${port}`]).sort(),
    );
    expect(hosted.localUrl).toBe(`ws://127.0.0.1:${port}`);

    const seen = await carol.waitFor('alice in the list', relaysWith(ALICE), 15_000);
    const relay = found(seen.event, ALICE);
    expect(relay).toMatchObject({
      url: `ws://198.18.2.1:${port}`,
      interface: 'eth0',
      subnet: '198.18.2.0/24',
    });
    expect(relay.urls).toEqual([`ws://198.18.2.1:${port}`, `ws://[fd5e:a1ed:2::1]:${port}`]);
    await carol.call('connect', { relayUrl: relay.url });
    await say(carol, bob, 'carol here, from the other network');
    await say(bob, carol, 'hi carol, via alice');

    // What the eavesdroppers on both links recorded: the traffic, but none of the text.
    for (const c of captures) await c.stop();
    for (const file of ['l1.pcap', 'l2.pcap']) {
      const recorded = readCapture(path.join(lab.dir, file));
      const frames = recorded.messages.map((m) => (JSON.parse(m) as { t: string }).t);
      expect(frames, file).toContain('send');
      expect(frames, file).toContain('deliver');
      // The search sees what is in the clear: mDNS names, and routing fields inside the client's
      // masked frames (found only once unmasked).
      expect(findPlaintext(recorded, ALICE), file).toContain('packet bytes');
      const seen = findPlaintext(recorded, '"t":"send"');
      expect(seen.length, file).toBeGreaterThan(0);
      expect(seen, file).not.toContain('packet bytes');
      // The messages themselves: nowhere, not even as base64.
      for (const text of texts) expect(findPlaintext(recorded, text), `${file}: "${text}"`).toEqual([]);
    }
  }, 60_000);

  it('blocked multicast is said in a sentence, and the relay is still reached by address', async () => {
    const { alice, bob, dave, erin } = peers;
    const problem = async (p: Peer): Promise<string> => {
      const e = await p.waitFor(
        'a discovery problem',
        (x) => x.type === 'status' && typeof x.status.discoveryProblem === 'string',
        15_000,
      );
      return (e.event as Extract<MessengerEvent, { type: 'status' }>).status.discoveryProblem!;
    };
    expect(await problem(dave)).toBe(
      'Sealed cannot look for relays on your network: a firewall on this computer blocks multicast (EPERM). Connect by address instead.',
    );
    expect(await problem(erin)).toBe(
      'Sealed cannot look for relays on your network: multicast messages are not received here (a firewall may block UDP port 5353). Connect by address instead.',
    );
    expect(await dave.call('listDiscoveredRelays')).toEqual([]);
    expect((await alice.call<AppStatus>('getStatus')).discoveryProblem).toBeUndefined();

    // Typed by hand, over IPv6: the relay listens there too.
    await dave.call('connect', { relayUrl: `ws://[fd5e:a1ed:3::1]:${hosted.port}` });
    await say(dave, bob, 'dave by address');
  }, 60_000);

  it('a stopped relay goes at once; a relay whose host was killed goes within 90 s', async () => {
    const { alice, bob, carol } = peers;
    await bob.call('hostRelay', { port: 0 });
    const seen = await alice.waitFor('bob in the list', relaysWith(BOB), 15_000);
    expect(found(seen.event, BOB)).toMatchObject({ interface: 'eth1', subnet: '198.18.1.0/24' });
    const stopAt = Date.now();
    const mark = alice.events.length;
    await bob.call('stopHostingRelay');
    const gone = await alice.waitFor('bob gone', relaysWithout(BOB), 5_000, mark);
    console.log(`lan-netns: the goodbye removed bob's relay after ${gone.at - stopAt} ms`);

    const marks = { bob: bob.events.length, carol: carol.events.length };
    const killedAt = Date.now();
    alice.child.kill('SIGKILL');
    await alice.exited;
    const [b, c] = await Promise.all([
      bob.waitFor('alice gone', relaysWithout(ALICE), 90_000, marks.bob),
      carol.waitFor('alice gone', relaysWithout(ALICE), 90_000, marks.carol),
    ]);
    console.log(
      `lan-netns: after SIGKILL, alice's relay left bob's list in ${b.at - killedAt} ms, carol's in ${c.at - killedAt} ms`,
    );
    expect(b.at - killedAt).toBeLessThan(90_000);
    expect(c.at - killedAt).toBeLessThan(90_000);
  }, 120_000);
});
