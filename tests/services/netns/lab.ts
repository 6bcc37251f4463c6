/**
 * Simulated computers for the LAN tests: Linux network namespaces joined by veth pairs (each pair is
 * one network link), with addresses from the benchmarking range 198.18.0.0/15 (RFC 2544) and the ULA
 * fd5e:a1ed::/32, which exist only inside the namespaces. Each computer runs peer.ts as a child
 * process (`ip netns exec <ns> node --import tsx …`). `cleanup()` kills every process the lab started
 * and deletes its namespaces; namespaces left by a lab whose process died are deleted at the next start.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { MessengerEvent } from '../../../src-main/shared/messenger-api.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const PREFIX = 'sealedlan-';
const run = promisify(execFile);

/** `ip …`, throwing with its stderr. */
export async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

/**
 * Null when this machine lets us make network namespaces and veth pairs, else the reason (not root,
 * or the kernel refuses). Missing tools are not a reason: they fail the test.
 */
export async function namespaceRefusal(): Promise<string | null> {
  for (const tool of ['ip', 'tcpdump', 'nft']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      throw new Error(`${tool} is not installed (Debian packages: iproute2, tcpdump, nftables); see .ci/run`);
  }
  await sweepStale();
  const probe = `${PREFIX}${process.pid}-probe`;
  try {
    await ip('netns', 'add', probe);
    try {
      await ip('-n', probe, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1');
    } finally {
      await ip('netns', 'del', probe);
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Deletes namespaces of labs whose test process is gone. */
async function sweepStale(): Promise<void> {
  const list = await ip('netns', 'list').catch(() => '');
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const pid = Number(/^sealedlan-(\d+)-/.exec(name)?.[1]);
    if (!pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      await ip('netns', 'del', name).catch(() => undefined);
    }
  }
}

/** A reply of peer.ts. */
interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { code?: string; message: string };
}

/** One simulated computer running a real MessengerService (peer.ts). */
export class Peer {
  readonly events: { at: number; event: MessengerEvent }[] = [];
  readonly log: string[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private waiters: (() => void)[] = [];
  readonly exited: Promise<void>;
  /** Resolves once the peer's service has started. */
  readonly ready: Promise<void>;

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let started = (): void => undefined;
    this.ready = new Promise((resolve, reject) => {
      started = resolve;
      void this.exited.then(() => reject(new Error(`${name} exited: ${this.log.join('\n')}`)));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event?: MessengerEvent; ready?: true } & Partial<Reply>;
      if (msg.event) this.events.push({ at: Date.now(), event: msg.event });
      else if (msg.ready) started();
      else if (msg.id !== undefined) this.pending.get(msg.id)?.(msg as Reply);
      for (const w of this.waiters.splice(0)) w();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => this.log.push(line));
  }

  /** Calls a `window.messenger` method in the peer; rejects with its error (code and message). */
  async call<T = unknown>(method: string, args: unknown = {}): Promise<T> {
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: ${method} timed out`)), 30_000);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.child.stdin!.write(`${JSON.stringify({ id, method, args })}\n`);
    });
    this.pending.delete(id);
    if (!reply.ok)
      throw Object.assign(new Error(reply.error?.message ?? 'failed'), { code: reply.error?.code });
    return reply.value as T;
  }

  /** The first event since index `from` that matches, as it arrives. */
  async waitFor<T extends MessengerEvent>(
    what: string,
    pred: (e: MessengerEvent) => e is T,
    timeoutMs: number,
    from?: number,
  ): Promise<{ at: number; event: T }>;
  async waitFor(
    what: string,
    pred: (e: MessengerEvent) => boolean,
    timeoutMs: number,
    from?: number,
  ): Promise<{ at: number; event: MessengerEvent }>;
  async waitFor(
    what: string,
    pred: (e: MessengerEvent) => boolean,
    timeoutMs: number,
    from = 0,
  ): Promise<{ at: number; event: MessengerEvent }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find((e) => pred(e.event));
      if (hit) return hit;
      if (Date.now() > deadline || this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.log.slice(-20).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 250);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for a history item with this text in a conversation. */
  item(conversationId: string, text: string, timeoutMs = 15_000): Promise<unknown> {
    return this.waitFor(
      `"${text}" in ${conversationId}`,
      (e) => e.type === 'item' && e.item.conversationId === conversationId && e.item.text === text,
      timeoutMs,
    );
  }
}

/** A set of namespaces, links and peers, removed by cleanup(). */
export class Lab {
  private readonly id = `${PREFIX}${process.pid}-${randomBytes(2).toString('hex')}`;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  readonly dir = mkdtempSync(path.join(tmpdir(), 'sealed-lan-lab-'));

  /** A new namespace for `name`, with loopback up. */
  async host(name: string): Promise<string> {
    const ns = `${this.id}-${name}`;
    await ip('netns', 'add', ns);
    this.namespaces.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /**
   * One network link: a veth pair from `a`'s interface `aIf` to `b`'s `bIf`, with the given
   * addresses (CIDR); IPv6 ones without duplicate address detection, so they are usable at once.
   */
  async link(
    a: { ns: string; iface: string; addrs: string[] },
    b: { ns: string; iface: string; addrs: string[] },
  ): Promise<void> {
    await ip('link', 'add', a.iface, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.iface, 'netns', b.ns);
    for (const end of [a, b]) {
      for (const addr of end.addrs) {
        const extra = addr.includes(':') ? ['nodad'] : [];
        await ip('-n', end.ns, 'addr', 'add', addr, 'dev', end.iface, ...extra);
      }
      await ip('-n', end.ns, 'link', 'set', end.iface, 'up');
    }
  }

  /** Starts peer.ts in `ns` with its own data directory; resolves once its service has started. */
  async peer(name: string, ns: string, hostname: string): Promise<Peer> {
    const dataDir = mkdtempSync(path.join(this.dir, `${name}-`));
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '--import',
        'tsx',
        'tests/services/netns/peer.ts',
        dataDir,
        hostname,
      ],
      {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
        // No Secret Service in a namespace: the profile is passphrase-protected.
        env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent', DISPLAY: '' },
      },
    );
    this.children.push(child);
    const peer = new Peer(name, ns, child);
    await peer.ready;
    return peer;
  }

  /** Runs a command in a namespace and waits for it. */
  async exec(ns: string, ...command: string[]): Promise<string> {
    return ip('netns', 'exec', ns, ...command);
  }

  /** Kills every process this lab started and deletes its namespaces and files. */
  async cleanup(): Promise<void> {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    await Promise.all(
      this.children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? undefined
          : new Promise((resolve) => c.once('exit', resolve)),
      ),
    );
    for (const ns of this.namespaces) {
      // Anything still running in it was started by this lab (tcpdump, a peer's children).
      const pids = (await ip('netns', 'pids', ns).catch(() => '')).split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await ip('netns', 'del', ns).catch(() => undefined);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
