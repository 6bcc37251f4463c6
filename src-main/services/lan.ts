/**
 * Hosting the bundled relay for the local network and finding other people's: the relay listens on
 * every interface, and mDNS/DNS-SD (bonjour-service) advertises it as `_sealed-relay._tcp` with
 * txt { v: '1' }. Discovery only suggests URLs: a relay is untrusted whoever runs it, so nothing here
 * weakens end-to-end encryption; the user still compares safety numbers.
 */
import BonjourModule from 'bonjour-service';
import { hostname as osHostname, networkInterfaces } from 'node:os';
import type { Relay, RelayOptions } from '../relay/index.js';
import type { DiscoveredRelay, HostedRelay } from '../shared/messenger-api.js';

/** DNS-SD service type of a Sealed relay. */
export const SERVICE_TYPE = 'sealed-relay';
/** The txt record version we advertise and accept. */
const TXT_VERSION = '1';
/** How often the browser asks the network again and drops relays whose records expired. */
const REQUERY_MS = 20_000;

/** Advertises relays and browses for them; tests and the app share the real implementation. */
export interface RelayDiscovery {
  /** Advertises a relay until the returned `stop()` (which sends the mDNS goodbye). */
  advertise(relay: { name: string; port: number }): { stop(): Promise<void> };
  /** Calls `onChange` with the whole list whenever a relay appears or goes away; returns stop. */
  browse(onChange: (relays: readonly DiscoveredRelay[]) => void): () => void;
  /** Stops everything and closes the mDNS socket. */
  close(): Promise<void>;
}

/** Options of createBonjourDiscovery. */
export interface BonjourDiscoveryOptions {
  /** multicast-dns options, e.g. { interface: '127.0.0.1' } to stay on one interface (default: all). */
  mdns?: Record<string, unknown> | undefined;
  /** Receives mDNS errors (they never throw into the app). */
  log?: ((line: string) => void) | undefined;
}

type Bonjour = InstanceType<typeof BonjourModule.Bonjour>;
type BonjourService = BonjourModule.Service;

/** mDNS discovery with bonjour-service; the socket opens on first use, not at creation. */
export function createBonjourDiscovery(options: BonjourDiscoveryOptions = {}): RelayDiscovery {
  const log = options.log ?? (() => undefined);
  let bonjour: Bonjour | undefined;
  let closed = false;
  const stops = new Set<() => void>();
  const instance = (): Bonjour => {
    if (closed) throw new Error('discovery is closed');
    // Without an error callback bonjour-service throws mDNS socket errors out of the event loop.
    bonjour ??= new BonjourModule.Bonjour(options.mdns ?? {}, (err: unknown) =>
      log(`mDNS error: ${String(err)}`),
    );
    return bonjour;
  };

  return {
    advertise({ name, port }) {
      const service = instance().publish({ name, type: SERVICE_TYPE, port, txt: { v: TXT_VERSION } });
      service.on('error', (err: unknown) => log(`mDNS advertise error: ${String(err)}`));
      let stopping: Promise<void> | undefined;
      return {
        stop: () =>
          (stopping ??= new Promise<void>((resolve) => {
            if (closed) return resolve();
            service.stop(() => resolve());
          })),
      };
    },

    browse(onChange) {
      const found = new Map<string, DiscoveredRelay>();
      const emit = (): void => onChange([...found.values()].sort((a, b) => a.name.localeCompare(b.name)));
      const browser = instance().find({ type: SERVICE_TYPE });
      browser.on('up', (s: BonjourService) => {
        const relay = toRelay(s);
        if (!relay) return;
        const known = found.get(relay.name);
        if (known?.url === relay.url) return; // the same relay announced again
        found.set(relay.name, relay);
        emit();
      });
      browser.on('down', (s: BonjourService) => {
        if (found.delete(s.name)) emit();
      });
      const timer = setInterval(() => {
        browser.expire();
        browser.update();
      }, REQUERY_MS);
      timer.unref();
      const stop = (): void => {
        clearInterval(timer);
        browser.stop();
        stops.delete(stop);
      };
      stops.add(stop);
      return stop;
    },

    async close() {
      if (closed) return;
      for (const stop of [...stops]) stop();
      closed = true;
      const b = bonjour;
      bonjour = undefined;
      if (b) await new Promise<void>((resolve) => b.destroy(() => resolve()));
    },
  };
}

/** A discovered service as a relay: its first IPv4 address, only with our txt version. */
function toRelay(s: BonjourService): DiscoveredRelay | undefined {
  const txt = s.txt as Record<string, unknown> | undefined;
  if (String(txt?.['v']) !== TXT_VERSION) return undefined;
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) return undefined;
  const ipv4 = (s.addresses ?? []).find((a) => /^\d{1,3}(\.\d{1,3}){3}$/.test(a));
  const address = ipv4 ?? (s.referer?.family === 'IPv4' ? s.referer.address : undefined);
  if (!address) return undefined;
  return { name: s.name, url: `ws://${address}:${s.port}` };
}

/** URLs of a relay listening on every interface: one per non-internal IPv4 address, then loopback. */
export function lanUrls(port: number, interfaces = networkInterfaces()): string[] {
  const lan: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.internal) lan.push(`ws://${a.address}:${port}`);
    }
  }
  return [...new Set(lan), `ws://127.0.0.1:${port}`];
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

/** Starts the bundled relay on 0.0.0.0:`port` and advertises it on the LAN. */
export async function hostLanRelay(opts: HostLanRelayOptions): Promise<HostedLanRelay> {
  const relay = await opts.startRelay({
    host: '0.0.0.0',
    port: opts.port,
    dataDir: opts.dataDir,
    log: opts.log,
  });
  let ad: { stop(): Promise<void> } | undefined;
  try {
    ad = opts.discovery?.advertise({ name: advertisedName(opts.userId, opts.hostname), port: relay.port });
  } catch (e) {
    await relay.close();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    info: { port: relay.port, urls: lanUrls(relay.port) },
    stop: () =>
      (stopping ??= (async () => {
        await ad?.stop();
        await relay.close();
      })()),
  };
}
