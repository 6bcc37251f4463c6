/**
 * LAN relay discovery: DNS-SD (RFC 6763) over multicast DNS (RFC 6762), one multicast-dns socket per
 * network interface, each answering with the addresses of its own interface.
 *
 * Why not a whole-library responder: bonjour-service answers with every interface's addresses in one
 * order (a multi-homed host hands out an address the asker cannot reach), sends out of the interface
 * the routing table picks only, names the host `machine.` instead of `machine.local.`, takes a known
 * service's expiry from its PTR TTL (8 hours) and never refreshes it, and drops socket errors; ciao has
 * no browser and silences ENETUNREACH. multicast-dns (the transport under bonjour-service) does the
 * packets and sockets; this file keeps the DNS-SD part small:
 *
 * - Records: PTR `_sealed-relay._tcp.local` → `<name>._sealed-relay._tcp.local`; SRV (port, target
 *   `<host>.local`); TXT `v=1`; A/AAAA of the answering interface. TTL 120 s for all.
 * - Responder: answers PTR/SRV/TXT/A/AAAA/ANY queries on the interface the query came from (by source
 *   subnet; Linux hands every socket bound to 5353 every interface's packets); announces twice at start
 *   (§8.3), then every 20 s; the goodbye (TTL 0, §10.1) goes out on every interface at stop.
 * - Browser: queries every interface at 0, 1 and 3 s, then every 20 s; a relay is dropped after a
 *   goodbye, or when neither an announcement nor an answer refreshed it for 60 s (a crashed host), far
 *   sooner than the record TTL would.
 * - Failures are state: a send error (e.g. ENETUNREACH, EPERM from a firewall) or our own query never
 *   heard back on an interface becomes a plain sentence for the renderer (`problem`).
 */
import type { RemoteInfo } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import type { Answer } from 'dns-packet';
import makeMdns from 'multicast-dns';
import type { DiscoveredRelay } from '../shared/messenger-api.js';
import {
  isLinkLocal,
  isLoopback,
  localAddresses,
  mdnsInterfaces,
  Subnets,
  type LocalAddress,
} from './lan-networks.js';
import type { MdnsInterface } from './lan-networks.js';

/** DNS-SD service type of a Sealed relay. */
export const SERVICE_TYPE = 'sealed-relay';
/** The txt record version we advertise and accept. */
const TXT_VERSION = '1';
const SERVICE = `_${SERVICE_TYPE}._tcp.local`;
const SERVICES_META = '_services._dns-sd._udp.local';
const MDNS_PORT = 5353;

/** Record TTL in seconds (RFC 6762 §10 suggests 120 s for records naming a host's addresses). */
export const RECORD_TTL_S = 120;
/** A hosting app announces its relay this often. */
export const ANNOUNCE_MS = 20_000;
/** A browsing app asks every interface this often. */
export const QUERY_MS = 20_000;
/** A relay neither announced nor answering for this long is dropped from the list. */
export const EXPIRE_MS = 60_000;
/** Our own query must come back (multicast loopback) within this, or the interface cannot receive. */
const ECHO_TIMEOUT_MS = 3_000;
/** How often expiry and interface changes are checked. */
const TICK_MS = 5_000;
/** Limits on what the network can make us keep. */
const MAX_RELAYS = 64;
const MAX_SIGHTINGS = 8;
const MAX_ADDRESSES = 16;
const MAX_NAME = 63;

/** What browsing shows: the relays found and, when multicast fails, why (a plain sentence). */
export interface DiscoveryView {
  readonly relays: readonly DiscoveredRelay[];
  readonly problem: string | null;
}

/** Advertises relays and browses for them; tests and the app share the real implementation. */
export interface RelayDiscovery {
  /** Advertises a relay until the returned `stop()` (which sends the mDNS goodbye). */
  advertise(relay: { name: string; host: string; port: number }): { stop(): Promise<void> };
  /** Calls `onChange` whenever the list or the problem changes; returns stop. */
  browse(onChange: (view: DiscoveryView) => void): () => void;
  /** Stops everything (goodbyes included) and closes the mDNS sockets. */
  close(): Promise<void>;
}

/** Options of createMdnsDiscovery. */
export interface MdnsDiscoveryOptions {
  /** Interface names to use instead of choosing (tests: ['lo'] keeps mDNS on this computer). */
  interfaces?: readonly string[] | undefined;
  /** Receives mDNS errors and interface changes (they never throw into the app). */
  log?: ((line: string) => void) | undefined;
}

interface Advert {
  readonly fqdn: string;
  readonly host: string;
  readonly port: number;
}

interface Sighting {
  readonly referer: string;
  /** Our interface the answer came in on (by subnet), when known. */
  readonly via: LocalAddress | undefined;
  readonly addresses: readonly string[];
  readonly seenAt: number;
  readonly lifeMs: number;
}

interface Found {
  readonly name: string;
  host: string;
  port: number;
  readonly sightings: Map<string, Sighting>;
}

type Mdns = ReturnType<typeof makeMdns>;

/** One interface's socket and what we know about its health. */
class Link {
  readonly mdns: Mdns;
  /** Why multicast fails here (a short reason), or null. */
  sendError: string | null = null;
  /** Set when our last query was never heard back. */
  deaf = false;
  /** When each instance's records were last multicast here (RFC 6762 §6: at most once a second). */
  readonly lastAnswer = new Map<string, number>();
  private echoTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly iface: MdnsInterface,
    onPacket: (link: Link, packet: makeMdns.QueryPacket | makeMdns.ResponsePacket, rinfo: RemoteInfo) => void,
    private readonly log: (line: string) => void,
    private readonly changed: () => void,
  ) {
    this.mdns = makeMdns({
      interface: iface.ipv4.address,
      bind: '0.0.0.0',
      port: MDNS_PORT,
      reuseAddr: true,
    });
    this.mdns.on('query', (p, rinfo) => onPacket(this, p, rinfo));
    this.mdns.on('response', (p, rinfo) => onPacket(this, p, rinfo));
    // 'error': the socket could not bind (EADDRINUSE, EACCES); 'warning': a membership or interface failed.
    this.mdns.on('error', (err: Error) => this.failed(err));
    this.mdns.on('warning', (err: Error) => this.failed(err));
  }

  get name(): string {
    return this.iface.name;
  }

  get problem(): string | null {
    if (this.sendError) return this.sendError;
    return this.deaf ? 'deaf' : null;
  }

  /** Multicasts a query on this interface; resolves once sent or failed (the failure is recorded). */
  query(packet: makeMdns.QueryOutgoingPacket): Promise<void> {
    return this.sending((done) => this.mdns.query(packet, done));
  }

  /** Multicasts a response on this interface, like query(). */
  respond(packet: makeMdns.ResponseOutgoingPacket): Promise<void> {
    return this.sending((done) => this.mdns.respond(packet, done));
  }

  private sending(send: (done: (err: Error | null) => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const done = (err: Error | null): void => {
        if (err) this.failed(err);
        else if (this.sendError) {
          this.sendError = null;
          this.changed();
        }
        resolve();
      };
      try {
        send(done);
      } catch (e) {
        done(e as Error);
      }
    });
  }

  /** After sending a query: it must come back to us within ECHO_TIMEOUT_MS. */
  expectEcho(): void {
    if (this.echoTimer) return;
    this.echoTimer = setTimeout(() => {
      this.echoTimer = undefined;
      if (this.deaf || this.sendError) return;
      this.deaf = true;
      this.log(`mDNS: our query on ${this.name} never came back`);
      this.changed();
    }, ECHO_TIMEOUT_MS);
    this.echoTimer.unref();
  }

  heardEcho(): void {
    clearTimeout(this.echoTimer);
    this.echoTimer = undefined;
    if (this.deaf) {
      this.deaf = false;
      this.changed();
    }
  }

  /** A socket error (it has an errno code) makes the link fail; a malformed packet is only logged. */
  private failed(err: Error): void {
    this.log(`mDNS error on ${this.name} (${this.iface.ipv4.address}): ${String(err)}`);
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') return;
    if (this.sendError !== code) {
      this.sendError = code;
      this.changed();
    }
  }

  close(): Promise<void> {
    clearTimeout(this.echoTimer);
    return new Promise((resolve) => this.mdns.destroy(() => resolve()));
  }
}

/** mDNS discovery; sockets open on first use (browse or advertise), not at creation. */
export function createMdnsDiscovery(options: MdnsDiscoveryOptions = {}): RelayDiscovery {
  return new MdnsDiscovery(options);
}

class MdnsDiscovery implements RelayDiscovery {
  private readonly log: (line: string) => void;
  private readonly only: readonly string[] | undefined;
  private links = new Map<string, Link>();
  private subnets = new Subnets([]);
  private readonly adverts = new Set<Advert>();
  private readonly found = new Map<string, Found>();
  private readonly listeners = new Set<(view: DiscoveryView) => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private tick: NodeJS.Timeout | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private queryTimer: NodeJS.Timeout | undefined;
  private lastView = '';
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: MdnsDiscoveryOptions) {
    this.log = options.log ?? (() => undefined);
    this.only = options.interfaces;
  }

  advertise({ name, host, port }: { name: string; host: string; port: number }): { stop(): Promise<void> } {
    if (this.closing) throw new Error('discovery is closed');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError('port must be 1-65535');
    const advert: Advert = { fqdn: `${dnsLabel(name)}.${SERVICE}`, host: `${dnsLabel(host)}.local`, port };
    this.adverts.add(advert);
    this.start();
    for (const delay of [0, 1_000]) this.later(delay, () => this.announce(advert));
    this.announceTimer ??= this.every(ANNOUNCE_MS, () => {
      for (const a of this.adverts) this.announce(a);
    });
    let stopping: Promise<void> | undefined;
    return {
      stop: () =>
        (stopping ??= (async () => {
          if (!this.adverts.delete(advert) || this.closed) return;
          if (this.adverts.size === 0) {
            this.clear(this.announceTimer);
            this.announceTimer = undefined;
          }
          await this.goodbye(advert);
        })()),
    };
  }

  browse(onChange: (view: DiscoveryView) => void): () => void {
    if (this.closing) throw new Error('discovery is closed');
    this.listeners.add(onChange);
    this.start();
    if (this.listeners.size === 1) {
      for (const delay of [0, 1_000, 3_000]) this.later(delay, () => this.query());
      this.queryTimer = this.every(QUERY_MS, () => this.query());
    }
    onChange(this.view());
    return () => {
      this.listeners.delete(onChange);
      if (this.listeners.size === 0) {
        this.clear(this.queryTimer);
        this.queryTimer = undefined;
      }
    };
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await Promise.all([...this.adverts].map((a) => this.goodbye(a)));
      this.closed = true;
      this.adverts.clear();
      this.listeners.clear();
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      this.tick = this.announceTimer = this.queryTimer = undefined;
      const links = [...this.links.values()];
      this.links.clear();
      await Promise.all(links.map((l) => l.close()));
    })());
  }

  // ---------------------------------------------------------------------------------------------
  // Interfaces

  /** Opens the sockets and the periodic check, once. */
  private start(): void {
    if (this.tick) return;
    this.refreshLinks();
    this.tick = this.every(TICK_MS, () => {
      this.refreshLinks();
      this.expire();
    });
  }

  /** Follows interface changes: a socket per chosen interface, closed when the interface goes. */
  private refreshLinks(): void {
    if (this.closed) return;
    const addresses = localAddresses();
    this.subnets = new Subnets(addresses);
    const wanted = new Map(mdnsInterfaces(addresses, this.only).map((i) => [i.name, i]));
    let changed = false;
    for (const [name, link] of this.links) {
      const now = wanted.get(name);
      if (
        now &&
        now.ipv4.address === link.iface.ipv4.address &&
        sameList(now.addresses, link.iface.addresses)
      )
        continue;
      this.links.delete(name);
      void link.close();
      changed = true;
    }
    for (const [name, iface] of wanted) {
      if (this.links.has(name)) continue;
      const link = new Link(
        iface,
        (l, p, r) => this.onPacket(l, p, r),
        this.log,
        () => this.emit(),
      );
      this.links.set(name, link);
      changed = true;
      this.log(`mDNS on ${name} (${iface.ipv4.address})`);
      if (this.listeners.size > 0) void this.queryOn(link);
      for (const a of this.adverts) this.announceOn(link, a);
    }
    if (changed) this.emit();
  }

  /** The link whose subnet holds `address`, if any. */
  private linkFor(address: string): Link | undefined {
    const local = this.subnets.find(address);
    return local ? this.links.get(local.interface) : undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Packets

  /**
   * Every socket bound to 5353 receives every interface's packets (Linux), so each packet is handled
   * once: by the link of the sender's subnet, or by the first link when no subnet of ours holds it.
   */
  private onPacket(
    link: Link,
    packet: makeMdns.QueryPacket | makeMdns.ResponsePacket,
    rinfo: RemoteInfo,
  ): void {
    if (this.closed) return;
    const owner = this.linkFor(rinfo.address);
    if ((owner ?? this.links.values().next().value) !== link) return;
    try {
      if (packet.type === 'query') this.onQuery(owner, packet, rinfo);
      else if (rinfo.port === MDNS_PORT) this.onResponse(owner, packet, rinfo); // RFC 6762 §6
    } catch (e) {
      this.log(`mDNS packet from ${rinfo.address} ignored: ${String(e)}`);
    }
  }

  private onQuery(owner: Link | undefined, packet: makeMdns.QueryPacket, rinfo: RemoteInfo): void {
    if (owner && rinfo.address === owner.iface.ipv4.address) owner.heardEcho();
    if (this.adverts.size === 0) return;
    for (const advert of this.adverts) {
      if (!packet.questions.some((q) => asks(q, advert))) continue;
      // Known-answer suppression (§7.1): the asker already holds our PTR with more than half its TTL.
      const known = packet.answers.some(
        (a) => a.type === 'PTR' && eq(a.data, advert.fqdn) && (a.ttl ?? 0) > RECORD_TTL_S / 2,
      );
      if (known) continue;
      const meta = packet.questions.some((q) => eq(q.name, SERVICES_META));
      const now = Date.now();
      for (const link of owner ? [owner] : this.links.values()) {
        if (now - (link.lastAnswer.get(advert.fqdn) ?? -Infinity) < 1_000) continue;
        link.lastAnswer.set(advert.fqdn, now);
        const [first, ...rest] = this.records(advert, link, RECORD_TTL_S);
        const answers: Answer[] = meta
          ? [{ name: SERVICES_META, type: 'PTR', ttl: RECORD_TTL_S, data: SERVICE }, first!]
          : [first!];
        void link.respond({ answers, additionals: rest });
      }
    }
  }

  private onResponse(owner: Link | undefined, packet: makeMdns.ResponsePacket, rinfo: RemoteInfo): void {
    const records = [...packet.answers, ...packet.additionals];
    let changed = false;
    for (const ptr of records) {
      if (ptr.type !== 'PTR' || !eq(ptr.name, SERVICE) || typeof ptr.data !== 'string') continue;
      const fqdn = ptr.data.toLowerCase();
      if (!fqdn.endsWith(`.${SERVICE}`)) continue;
      if ((ptr.ttl ?? 0) === 0) {
        changed = this.found.delete(fqdn) || changed; // goodbye
        continue;
      }
      const srv = records.find((r) => r.type === 'SRV' && eq(r.name, fqdn));
      const txt = records.find((r) => r.type === 'TXT' && eq(r.name, fqdn));
      if (srv?.type !== 'SRV' || txt?.type !== 'TXT' || !hasVersion(txt.data)) continue;
      const { port, target } = srv.data;
      if (!Number.isInteger(port) || port < 1 || port > 65535 || typeof target !== 'string') continue;
      const addresses = records
        .flatMap((r) => ((r.type === 'A' || r.type === 'AAAA') && eq(r.name, target) ? [String(r.data)] : []))
        .filter((a) => isIPv4(a) || isIPv6(a))
        .slice(0, MAX_ADDRESSES);
      const name = ptr.data.slice(0, -(SERVICE.length + 1)).slice(0, MAX_NAME);
      let entry = this.found.get(fqdn);
      if (!entry) {
        if (this.found.size >= MAX_RELAYS) continue;
        entry = { name, host: target, port, sightings: new Map() };
        this.found.set(fqdn, entry);
      }
      const before = this.relayOf(entry);
      entry.host = target;
      entry.port = port;
      entry.sightings.delete(rinfo.address);
      entry.sightings.set(rinfo.address, {
        referer: rinfo.address,
        via: owner ? this.subnets.find(rinfo.address) : undefined,
        addresses,
        seenAt: Date.now(),
        lifeMs: Math.min((ptr.ttl ?? RECORD_TTL_S) * 1000, EXPIRE_MS),
      });
      while (entry.sightings.size > MAX_SIGHTINGS)
        entry.sightings.delete(entry.sightings.keys().next().value!);
      if (JSON.stringify(before) !== JSON.stringify(this.relayOf(entry))) changed = true;
    }
    if (changed) this.emit();
  }

  /** Drops sightings that were not refreshed in time, and relays left with none. */
  private expire(): void {
    const now = Date.now();
    let changed = false;
    for (const [fqdn, entry] of this.found) {
      for (const [referer, s] of entry.sightings) {
        if (now - s.seenAt >= s.lifeMs) {
          entry.sightings.delete(referer);
          changed = true;
        }
      }
      if (entry.sightings.size === 0) this.found.delete(fqdn);
    }
    if (changed) this.emit();
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /** PTR first, then SRV, TXT and the link's own A/AAAA records. */
  private records(advert: Advert, link: Link, ttl: number): Answer[] {
    const addresses: Answer[] = link.iface.addresses.map((a) =>
      isIPv4(a)
        ? { name: advert.host, type: 'A', ttl, data: a }
        : { name: advert.host, type: 'AAAA', ttl, data: a },
    );
    return [
      { name: SERVICE, type: 'PTR', ttl, data: advert.fqdn },
      {
        name: advert.fqdn,
        type: 'SRV',
        ttl,
        flush: true,
        data: { port: advert.port, target: advert.host, priority: 0, weight: 0 },
      },
      { name: advert.fqdn, type: 'TXT', ttl, flush: true, data: [`v=${TXT_VERSION}`] },
      ...addresses,
    ];
  }

  private announce(advert: Advert): void {
    if (this.closed || !this.adverts.has(advert)) return;
    for (const link of this.links.values()) this.announceOn(link, advert);
  }

  private announceOn(link: Link, advert: Advert): void {
    link.lastAnswer.set(advert.fqdn, Date.now());
    void link.respond({ answers: this.records(advert, link, RECORD_TTL_S) });
  }

  private async goodbye(advert: Advert): Promise<void> {
    await Promise.all(
      [...this.links.values()].map((link) =>
        link.respond({ answers: this.records(advert, link, 0).slice(0, 3) }),
      ),
    );
  }

  private query(): void {
    if (this.closed) return;
    for (const link of this.links.values()) void this.queryOn(link);
  }

  private async queryOn(link: Link): Promise<void> {
    await link.query({ questions: [{ name: SERVICE, type: 'PTR' }] });
    if (!link.sendError) link.expectEcho();
  }

  // ---------------------------------------------------------------------------------------------
  // What the listeners see

  private view(): DiscoveryView {
    const relays = [...this.found.values()]
      .map((f) => this.relayOf(f))
      .filter((r): r is DiscoveredRelay => r !== undefined)
      .sort((a, b) => a.name.localeCompare(b.name));
    return { relays, problem: this.problem() };
  }

  private emit(): void {
    if (this.closed || this.listeners.size === 0) return;
    const view = this.view();
    const text = JSON.stringify(view);
    if (text === this.lastView) return;
    this.lastView = text;
    for (const l of this.listeners) l(view);
  }

  /** A relay as the renderer shows it: the best address first, every other one to try after it. */
  private relayOf(f: Found): DiscoveredRelay | undefined {
    // The sighting through one of our networks, the newest first.
    const sightings = [...f.sightings.values()].sort(
      (a, b) => Number(b.via !== undefined) - Number(a.via !== undefined) || b.seenAt - a.seenAt,
    );
    const best = sightings[0];
    if (!best) return undefined;
    const urls = rankAddresses(sightings, this.subnets).map((a) => wsUrl(a, f.port));
    if (urls.length === 0) return undefined;
    return {
      name: f.name,
      url: urls[0]!,
      urls,
      host: `${f.host}.`,
      ...(best.via ? { interface: best.via.interface, subnet: best.via.subnet } : {}),
    };
  }

  /** One sentence about the interfaces where multicast fails, or null. */
  private problem(): string | null {
    const links = [...this.links.values()];
    if (links.length === 0)
      return 'This computer is on no network that Sealed can search, so no relay can be found. You can still connect by address.';
    const failing = links.filter((l) => l.problem !== null);
    if (failing.length === 0) return null;
    const reason = explain(failing[0]!.problem!);
    if (failing.length === links.length)
      return `Sealed cannot look for relays on your network: ${reason}. Connect by address instead.`;
    const where = failing.map((l) => `${l.name} (${l.iface.ipv4.subnet})`).join(', ');
    return `Sealed cannot look for relays on ${where}: ${reason}. Relays there can still be reached by address.`;
  }

  // ---------------------------------------------------------------------------------------------
  // Timers (all cleared by close)

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private every(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.add(t);
    return t;
  }

  private clear(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearInterval(t);
    this.timers.delete(t);
  }
}

/**
 * Addresses to try, best first: the one each answer came from (it reached us, so it is on a network we
 * share), then those on one of our subnets, then the other IPv4 and IPv6 ones. Link-local ones (no zone
 * in a URL) and loopback ones (unless the answer came from this computer) are left out.
 */
export function rankAddresses(
  sightings: readonly { referer: string; addresses: readonly string[] }[],
  subnets: Subnets,
): string[] {
  const fromHere = sightings.some((s) => isLoopback(s.referer));
  const usable = (a: string): boolean =>
    (isIPv4(a) || isIPv6(a)) && (!isLoopback(a) || fromHere) && !(isIPv6(a) && isLinkLocal(a));
  const referers = sightings.map((s) => s.referer).filter(usable);
  const rest = sightings.flatMap((s) => s.addresses).filter((a) => usable(a) && !referers.includes(a));
  const rank = (a: string): number => (subnets.find(a) ? 0 : 2) + (isIPv4(a) ? 0 : 1);
  const sorted = [...new Set(rest)].sort((a, b) => rank(a) - rank(b));
  return [...new Set([...referers, ...sorted])];
}

/** A ws:// URL for an address and port (IPv6 in brackets). */
export function wsUrl(address: string, port: number): string {
  return isIPv6(address) ? `ws://[${address}]:${port}` : `ws://${address}:${port}`;
}

/** A DNS label: dots would split it, and a label holds at most 63 bytes. */
function dnsLabel(text: string): string {
  let label = text.replace(/\./g, '-');
  while (Buffer.byteLength(label) > MAX_NAME) label = label.slice(0, -1);
  return label;
}

function eq(a: unknown, b: string): boolean {
  return typeof a === 'string' && a.toLowerCase() === b.toLowerCase();
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Whether a question asks for something of `advert`. */
function asks(q: { name: string; type: string }, advert: Advert): boolean {
  const any = q.type === 'ANY';
  if (eq(q.name, SERVICE) || eq(q.name, SERVICES_META)) return any || q.type === 'PTR';
  if (eq(q.name, advert.fqdn)) return any || q.type === 'SRV' || q.type === 'TXT';
  if (eq(q.name, advert.host)) return any || q.type === 'A' || q.type === 'AAAA';
  return false;
}

function hasVersion(data: unknown): boolean {
  const strings = (Array.isArray(data) ? data : [data]).map((d) => String(d));
  return strings.includes(`v=${TXT_VERSION}`);
}

/** The end of the problem sentence for a link's failure. */
function explain(code: string): string {
  switch (code) {
    case 'deaf':
      return 'multicast messages are not received here (a firewall may block UDP port 5353)';
    case 'EPERM':
    case 'EACCES':
      return `a firewall on this computer blocks multicast (${code})`;
    case 'EADDRINUSE':
      return 'another program holds the mDNS port 5353 (EADDRINUSE)';
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
    case 'ENODEV':
      return `multicast cannot be sent on this network (${code})`;
    default:
      return `multicast fails here (${code})`;
  }
}
