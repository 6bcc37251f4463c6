/**
 * Hosting the bundled relay for the local network and finding other people's: the relay listens on
 * every interface (IPv6 and IPv4), and mDNS/DNS-SD (lan-mdns.ts) advertises it on every LAN interface
 * as `_sealed-relay._tcp` with txt { v: '1' }, each interface answering with its own addresses.
 * Discovery only suggests URLs: a relay is untrusted whoever runs it, so nothing here weakens
 * end-to-end encryption; the user still compares safety numbers.
 */
import { connect as tcpConnect } from 'node:net';
import { hostname as osHostname } from 'node:os';
import type { Relay, RelayOptions } from '../relay/index.js';
import type { DiscoveredRelay, HostedRelay } from '../shared/messenger-api.js';
import { wsUrl, type RelayDiscovery } from './lan-mdns.js';
import { localAddresses, reachableAddresses } from './lan-networks.js';

export { createMdnsDiscovery, SERVICE_TYPE, type DiscoveryView, type RelayDiscovery } from './lan-mdns.js';

/** How long connect() waits for one address of a discovered relay to accept a TCP connection. */
export const PROBE_TIMEOUT_MS = 2_000;

/** URLs others can use for a relay listening on every interface (no loopback: see lan-networks.ts). */
export function lanUrls(port: number, addresses = localAddresses()): string[] {
  return reachableAddresses(addresses).map((a) => wsUrl(a, port));
}

/** This computer's first host-name label, as a DNS label (`machine-a` of `machine-a.example.org`). */
export function hostLabel(hostname = osHostname()): string {
  const label = (hostname.split('.')[0] ?? '').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 63);
  return label || 'sealed';
}

/** The mDNS instance name `${userId} on ${hostname}`; dots would cut it short in DNS-SD labels. */
export function advertisedName(userId: string, hostname = osHostname()): string {
  const host = hostname.split('.')[0] || 'this computer';
  return `${userId} on ${host}`.replace(/\./g, '-').slice(0, 63);
}

/** A relay this app hosts for the LAN. */
export interface HostedLanRelay {
  readonly info: HostedRelay;
  /** Stops advertising (mDNS goodbye), then closes the relay; a second call is harmless. */
  stop(): Promise<void>;
}

/** Options of hostLanRelay. */
export interface HostLanRelayOptions {
  port: number;
  /** The relay's database directory (<profileDir>/relay). */
  dataDir: string;
  userId: string;
  discovery: RelayDiscovery | null;
  startRelay: (options: RelayOptions) => Promise<Relay>;
  hostname?: string | undefined;
  log?: ((line: string) => void) | undefined;
}

/**
 * Starts the bundled relay on every interface and advertises it on the LAN: on `::` (IPv6 and, dual
 * stack, IPv4), or on 0.0.0.0 where this computer has no IPv6.
 */
export async function hostLanRelay(opts: HostLanRelayOptions): Promise<HostedLanRelay> {
  const start = (host: string): Promise<Relay> =>
    opts.startRelay({ host, port: opts.port, dataDir: opts.dataDir, log: opts.log });
  let relay: Relay;
  try {
    relay = await start('::');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw e;
    relay = await start('0.0.0.0');
  }
  let ad: { stop(): Promise<void> } | undefined;
  try {
    ad = opts.discovery?.advertise({
      name: advertisedName(opts.userId, opts.hostname),
      host: hostLabel(opts.hostname),
      port: relay.port,
    });
  } catch (e) {
    await relay.close();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    info: {
      port: relay.port,
      urls: lanUrls(relay.port),
      localUrl: `ws://127.0.0.1:${relay.port}`,
      fingerprint: relay.fingerprint,
    },
    stop: () =>
      (stopping ??= (async () => {
        await ad?.stop();
        await relay.close();
      })()),
  };
}

/**
 * The URL to connect to for `url`: when it is an address of a discovered relay, the first of that
 * relay's addresses, in its order, that accepts a TCP connection (all are tried at once, for at most
 * PROBE_TIMEOUT_MS); otherwise, or when none answers, `url` itself.
 */
export async function reachableUrl(
  url: string,
  relays: readonly DiscoveredRelay[],
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<string> {
  const relay = relays.find((r) => r.url === url || r.urls?.includes(url));
  if (!relay?.urls || relay.urls.length < 2) return url;
  const order = [url, ...relay.urls.filter((u) => u !== url)];
  const results = order.map((u) => probe(u, timeoutMs));
  for (const [i, result] of results.entries()) if (await result) return order[i]!;
  return url;
}

/** True when a TCP connection to the URL's host and port opens within `timeoutMs`. */
function probe(url: string, timeoutMs: number): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || (u.protocol === 'wss:' ? 443 : 80));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
