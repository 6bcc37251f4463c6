/**
 * Relay suite: our relay (src-main/relay) beside a bare `ws` reference doing the same forwarding,
 * both measured in the same run, rounds interleaved (ours, reference, ours, ...).
 *
 * Each server runs in its own child process (bench/relay-server.ts), as in production; the
 * load-generating clients run here, in the bench process, and do exactly the same work against
 * either server (same frames out, same kind of frames in, the same cheap handling), so the difference
 * between the rows is the server. The machine's cores are shared by the two processes: the notes give
 * each side's CPU use during the rounds, so a client-bound figure is visible as such.
 *
 * Scenarios: 1:1 routing and 100-member fan-out (deliveries/s), memory per idle connection (server
 * RSS delta over N connections, KiB/conn: lower is better), and durably queued messages/s for an
 * offline recipient (our side only, against an absolute target). Loopback only; every wait is bounded.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

import { Identity, encodePublicIdentity } from '../src-main/core/crypto/identity.js';
import {
  EntryAuthor,
  type GroupLog,
  JoinPolicy,
  applyEntry,
  decodeEntry,
  startLog,
} from '../src-main/core/crypto/membership.js';
import { loginSignatureInput, normaliseRelayUrl } from '../src-main/core/protocol/login.js';
import { WIRE_VERSION, b64, unb64 } from '../src-main/core/protocol/wire.js';
import { Store } from '../src-main/relay/store.js';
import {
  type ResultRow,
  type Round,
  type Sample,
  type Suite,
  type SuiteContext,
  measureRounds,
  row,
  summarise,
} from './harness.js';
import type { MemoryReport, ServerConfig } from './relay-server.js';

/** Scenario names (also the row names in the output). */
export const Scenario = {
  ROUTING: '1:1 routing 1 KiB, 64 in flight',
  FANOUT: '100-member fan-out 1 KiB, 16 in flight',
  MEMORY: 'memory per idle connection',
  DURABLE: 'durable queue, offline recipient, 256 in flight',
} as const;

/** Online routing: at least this fraction of the bare ws forwarder's deliveries/s. */
const ROUTING_TARGET = 0.8;
/** Memory per idle connection: at most this multiple of the bare ws server's. */
const MEMORY_TARGET = 2.0;
/** Durably queued messages/s for an offline recipient (absolute; there is no reference). */
const DURABLE_TARGET = 20_000;

const BODY_BYTES = 1024;
const ROUTING_WINDOW = 64;
const FANOUT_MEMBERS = 100;
const FANOUT_WINDOW = 16;
const DURABLE_WINDOW = 256;
const IDLE_CONNECTIONS = 5_000;
const IDLE_CONNECTIONS_QUICK = 1_000;
/** Memory measurements per side (fresh server processes each time); one with --quick. */
const MEMORY_ROUNDS = 3;
/** Connections opened at once while filling the server (and in the warm-up before the baseline). */
const CONNECT_BATCH = 200;
/** File descriptors kept free for everything else (stdio, the database, the child's pipes). */
const FD_MARGIN = 256;
/** A round whose in-flight messages do not all complete within this after it ends has stalled. */
const SETTLE_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 30_000;

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SERVER_SCRIPT = fileURLToPath(new URL('./relay-server.ts', import.meta.url));

type Kind = ServerConfig['kind'];

/** `ws` as installed (for the report). */
export function wsVersion(): string | null {
  try {
    const require = createRequire(import.meta.url);
    return (require('ws/package.json') as { version: string }).version;
  } catch {
    return null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------------
// The server process

interface CpuTimes {
  readonly user: number;
  readonly system: number;
}

/** A server (ours or the reference) running in a child process. */
export interface Server {
  readonly kind: Kind;
  readonly url: string;
  /** RSS and heap after forced GCs. */
  mem(): Promise<MemoryReport>;
  /** CPU time of the server process so far, in seconds. */
  cpuSeconds(): Promise<number>;
  /** Ends the child (stdin closes, then SIGKILL if it lingers); idempotent. */
  stop(): Promise<void>;
}

/**
 * Spawns bench/relay-server.ts and waits for its port. With BENCH_RELAY_CPU_PROF=<dir> our relay's
 * process writes a V8 CPU profile (--cpu-prof) into <dir> when it ends.
 */
export async function startServer(config: ServerConfig): Promise<Server> {
  const args = ['--expose-gc'];
  const profDir = process.env.BENCH_RELAY_CPU_PROF;
  if (profDir && config.kind === 'relay') args.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  args.push('--import', 'tsx', SERVER_SCRIPT, JSON.stringify(config));
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  let exitedHow: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitedHow = signal ?? String(code);
      for (const w of waiters.splice(0)) w.reject(new Error(`${config.kind} server exited (${exitedHow})`));
      resolve();
    }),
  );
  const waiters: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => waiters.shift()?.resolve(line));
  const nextLine = (timeoutMs = 60_000): Promise<string> =>
    new Promise((resolve, reject) => {
      if (exitedHow !== undefined) {
        reject(new Error(`${config.kind} server exited (${exitedHow})`));
        return;
      }
      const timer = setTimeout(() => reject(new Error(`${config.kind} server: no answer`)), timeoutMs);
      waiters.push({
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  const command = async <T>(name: string): Promise<T> => {
    const answer = nextLine();
    child.stdin.write(`${name}\n`);
    return JSON.parse(await answer) as T;
  };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    })());
  try {
    const { port } = JSON.parse(await nextLine()) as { port: number };
    return {
      kind: config.kind,
      url: `ws://127.0.0.1:${port}`,
      mem: () => command<MemoryReport>('mem'),
      cpuSeconds: async () => {
        const c = await command<CpuTimes>('cpu');
        return (c.user + c.system) / 1e6;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A temporary data directory for our relay; `remove` deletes it. */
export function tempDataDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sealed-bench-relay-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Registers users in a relay database before the relay starts, through the relay's own Store (the
 * same rows a first authentication writes), so thousands of users need not each register over the
 * wire (every registration is broadcast to everyone online and costs a synchronous commit).
 */
function seedUsers(dataDir: string, users: readonly { id: string; identity: Identity }[]): void {
  const store = Store.open(dataDir, (err) => {
    throw err;
  });
  try {
    const now = Date.now();
    for (const u of users) store.insertUser(u.id, encodePublicIdentity(u.identity.publicIdentity), now);
  } finally {
    store.close(); // commits the batch
  }
}

// ---------------------------------------------------------------------------------------------
// Clients (in this process)

type Json = Record<string, unknown>;

interface Waiter {
  readonly pred: (f: Json) => boolean;
  readonly resolve: (f: Json) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** When any client last received a frame during setup (to wait until the relay has gone quiet). */
let lastSetupFrameAt = 0;

/**
 * A WebSocket client. During setup it parses every frame as JSON, answers `deliver` with `received`
 * and hands frames to waiters; a load phase replaces `onFrame` with a handler that parses nothing.
 */
export class Client {
  onFrame: (data: Buffer) => void = (data) => this.setupFrame(data);
  private readonly waiters: Waiter[] = [];
  private nextRid = 1;
  private corked = false;
  /** ws's underlying socket (not public API; without it frames are simply not coalesced). */
  private readonly socket: Socket | undefined;

  private constructor(private readonly ws: WebSocket) {
    const socket = (ws as unknown as { _socket?: unknown })._socket;
    this.socket = socket instanceof Socket ? socket : undefined;
    ws.on('message', (data) => this.onFrame(data as Buffer));
    ws.on('error', () => {}); // surfaces as a close
    ws.on('close', (code) => {
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed (${code})`));
      }
    });
  }

  static open(url: string): Promise<Client> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('error', reject);
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends a text frame. Frames sent in one event loop turn leave in one write (the socket is corked
   * until setImmediate), as our relay does on its side: a burst of `received` answers costs one
   * syscall, which keeps the clients' share of the machine down for both servers alike.
   */
  send(text: string): void {
    if (!this.corked && this.socket) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket?.uncork();
      });
    }
    this.ws.send(text);
  }

  rid(): number {
    return this.nextRid++;
  }

  /** The next frame (from now on) that matches `pred`. */
  next(pred: (f: Json) => boolean, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Json> {
    if (!this.open) return Promise.reject(new Error('connection is not open'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new Error(`no answer within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Sends a request with a fresh rid; resolves with its reply, throws on an error frame. */
  async request(frame: Json): Promise<Json> {
    const rid = this.rid();
    const reply = this.next((f) => f.rid === rid);
    this.send(JSON.stringify({ ...frame, rid }));
    const r = await reply;
    if (r.t === 'error') throw new Error(`${String(frame.t)} refused: ${JSON.stringify(r)}`);
    return r;
  }

  /** Closes and resolves once the close handshake is done (or after 2 s). */
  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2000);
      this.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close();
    });
  }

  terminate(): void {
    this.ws.terminate();
  }

  private setupFrame(data: Buffer): void {
    lastSetupFrameAt = performance.now();
    const f = JSON.parse(data.toString()) as Json;
    if (f.t === 'deliver') this.send(`{"t":"received","seq":${Number(f.seq)}}`);
    const i = this.waiters.findIndex((w) => w.pred(f));
    if (i < 0) return;
    const [w] = this.waiters.splice(i, 1);
    clearTimeout(w!.timer);
    w!.resolve(f);
  }
}

/**
 * Opens a connection and identifies as `userId`: for our relay the full handshake (hello →
 * challenge → auth signed with `identity` → ready), for the reference a bare `hello` naming it.
 */
export async function connectAs(server: Server, userId: string, identity: Identity): Promise<Client> {
  const c = await Client.open(server.url);
  try {
    if (server.kind === 'bare') {
      const ready = c.next((f) => f.t === 'ready');
      c.send(JSON.stringify({ t: 'hello', userId }));
      await ready;
      return c;
    }
    const challenge = c.next((f) => f.t === 'challenge' || f.t === 'error');
    c.send(JSON.stringify({ t: 'hello', v: WIRE_VERSION, userId }));
    const ch = await challenge;
    if (ch.t !== 'challenge') throw new Error(`hello refused: ${JSON.stringify(ch)}`);
    const relayUrl = normaliseRelayUrl(server.url);
    const signature = identity.signing.sign(
      loginSignatureInput(unb64(String(ch.relayKey)), relayUrl, userId, unb64(String(ch.nonce))),
    );
    const ready = c.next((f) => f.t === 'ready' || f.t === 'error');
    c.send(
      JSON.stringify({
        t: 'auth',
        identity: b64(encodePublicIdentity(identity.publicIdentity)),
        signature: b64(signature),
        relayUrl,
      }),
    );
    const r = await ready;
    if (r.t !== 'ready') throw new Error(`auth refused: ${JSON.stringify(r)}`);
    return c;
  } catch (e) {
    c.terminate();
    throw e;
  }
}

/** Opens `count` connections, `CONNECT_BATCH` at a time, with `open(i)`. */
async function openMany<T>(count: number, open: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i += CONNECT_BATCH) {
    const n = Math.min(CONNECT_BATCH, count - i);
    out.push(...(await Promise.all(Array.from({ length: n }, (_, j) => open(i + j)))));
  }
  return out;
}

/** Waits until no client has received a setup frame for `ms` (events of the setup have settled). */
async function quiet(ms = 150, maxMs = 10_000): Promise<void> {
  const deadline = performance.now() + maxMs;
  while (performance.now() - lastSetupFrameAt < ms && performance.now() < deadline) await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// Load: a window of messages in flight

/** Random ciphertext-like bodies (1 KiB of random bytes, base64), used in rotation. */
const BODIES = Array.from({ length: 64 }, () => randomBytes(BODY_BYTES).toString('base64'));

const DELIVER_PREFIX = '{"t":"deliver","seq":';
const isError = (head: string): boolean => head.startsWith('{"t":"error"');
const isAck = (head: string): boolean => head.startsWith('{"t":"ack"');

/**
 * Keeps `window` messages in flight and counts completions: a message is sent, and it completes after
 * `perMessage` completions (deliveries at its recipients, or its ack for the durable queue). Between
 * rounds nothing is sent and every message completes (and is acknowledged to the sender), so no
 * round's tail runs into the next round of the other side.
 */
class Pipeline {
  private sent = 0;
  private completions = 0;
  private acks = 0;
  private running = false;
  private failure: Error | undefined;
  private settled: (() => void) | undefined;

  constructor(
    private readonly sendOne: () => void,
    private readonly window: number,
    private readonly perMessage: number,
  ) {}

  /** One delivery (or durable ack) counted. */
  complete(): void {
    this.completions++;
    if (this.running) this.refill();
    else this.check();
  }

  /** The sender got the relay's ack for one message. */
  ack(): void {
    this.acks++;
    if (!this.running) this.check();
  }

  fail(e: Error): void {
    this.failure ??= e;
    this.running = false;
    this.settled?.();
  }

  /** Runs the stream for `ms`; returns completions per second within that window. */
  readonly round: Round = async (ms) => {
    if (this.failure) throw this.failure;
    const c0 = this.completions;
    const t0 = performance.now();
    this.running = true;
    this.refill();
    await sleep(ms);
    const c1 = this.completions;
    const t1 = performance.now();
    this.running = false;
    await this.settle();
    return (c1 - c0) / ((t1 - t0) / 1000);
  };

  private refill(): void {
    const { perMessage } = this;
    const limit = (this.window - 1) * perMessage;
    while (this.sent * perMessage - this.completions <= limit) {
      this.sent++;
      this.sendOne();
    }
  }

  private idle(): boolean {
    return this.completions === this.sent * this.perMessage && this.acks === this.sent;
  }

  private check(): void {
    if (this.idle()) this.settled?.();
  }

  private async settle(): Promise<void> {
    if (!this.idle() && !this.failure) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.settled = resolve;
        timer = setTimeout(resolve, SETTLE_TIMEOUT_MS);
      });
      clearTimeout(timer);
      this.settled = undefined;
    }
    if (this.failure) throw this.failure;
    if (!this.idle())
      throw new Error(
        `stalled: ${this.sent} sent, ${this.acks} acked, ${this.completions}/${this.sent * this.perMessage} completed`,
      );
  }
}

let nextMessage = 0;
/** A unique message id ([A-Za-z0-9_-]{8,64}). */
const messageId = (): string => `bench-${(nextMessage++).toString(36).padStart(8, '0')}`;

/** Recipient side of a load phase: answers every deliver with `received` and counts it. */
function receiveInto(c: Client, p: Pipeline): void {
  c.onFrame = (data) => {
    const head = data.toString('latin1', 0, 48);
    if (head.startsWith(DELIVER_PREFIX)) {
      c.send(`{"t":"received","seq":${parseInt(head.slice(DELIVER_PREFIX.length), 10)}}`);
      p.complete();
    } else if (isError(head)) p.fail(new Error(`recipient got ${data.toString().slice(0, 300)}`));
  };
}

/** Sender side: counts acks (and, for the durable queue, an ack is the completion). */
function ackInto(c: Client, p: Pipeline, ackCompletes = false): void {
  c.onFrame = (data) => {
    const head = data.toString('latin1', 0, 48);
    if (isAck(head)) {
      p.ack();
      if (ackCompletes) p.complete();
    } else if (isError(head)) p.fail(new Error(`sender got ${data.toString().slice(0, 300)}`));
  };
}

let nextBody = 0;
const body = (): string => BODIES[nextBody++ % BODIES.length]!;

const sendFrame = (c: Client, to: string): string =>
  `{"t":"send","rid":${c.rid()},"to":"${to}","id":"${messageId()}","body":"${body()}"}`;
const groupSendFrame = (c: Client, group: string): string =>
  `{"t":"groupSend","rid":${c.rid()},"group":"${group}","id":"${messageId()}","body":"${body()}"}`;

/** A stream set up on one server: its rounds, and how to tear it down. */
interface Stream {
  readonly server: Server;
  readonly round: Round;
  /** CPU seconds of the server and of this process, and wall seconds, over the rounds so far. */
  readonly busy: { server: number; clients: number; wall: number };
  close(): Promise<void>;
}

/** Wraps a pipeline's rounds to account CPU use of both processes. */
function accounted(server: Server, p: Pipeline, clients: readonly Client[]): Stream {
  const busy = { server: 0, clients: 0, wall: 0 };
  const round: Round = async (ms) => {
    const s0 = await server.cpuSeconds();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const rate = await p.round(ms);
    const c1 = process.cpuUsage(c0);
    busy.wall += (performance.now() - w0) / 1000;
    busy.clients += (c1.user + c1.system) / 1e6;
    busy.server += (await server.cpuSeconds()) - s0;
    return rate;
  };
  return {
    server,
    round,
    busy,
    close: async () => {
      for (const c of clients) c.terminate();
      await server.stop();
    },
  };
}

/**
 * Sends one message through the server before the load starts and checks that every recipient gets
 * it intact (the same id and body), so both servers are known to really forward.
 */
async function probe(sender: Client, recipients: readonly Client[], frame: Json): Promise<void> {
  const id = messageId();
  const b = body();
  const arrived = recipients.map((r) => r.next((f) => f.t === 'deliver' && f.id === id));
  const reply = await sender.request({ ...frame, id, body: b });
  if (reply.t !== 'ack') throw new Error(`probe: expected an ack, got ${JSON.stringify(reply)}`);
  for (const f of await Promise.all(arrived))
    if (f.body !== b) throw new Error('probe: the body changed in transit');
}

async function routingStream(server: Server): Promise<Stream> {
  const [sender, recipient] = await Promise.all([
    connectAs(server, 'alice', Identity.generate()),
    connectAs(server, 'bob', Identity.generate()),
  ]);
  await quiet();
  await probe(sender, [recipient], { t: 'send', to: 'bob' });
  const p = new Pipeline(() => sender.send(sendFrame(sender, 'bob')), ROUTING_WINDOW, 1);
  ackInto(sender, p);
  receiveInto(recipient, p);
  return accounted(server, p, [sender, recipient]);
}

/**
 * The fan-out group, built as clients build it (docs/PROTOCOL.md "Group membership"): the sender
 * creates an open group with a signed GENESIS, then every other member appends its own signed JOIN,
 * one after another (each entry names the head before it), each `groupAppend` answered before the
 * next. Our relay verifies every entry, sends it to the joiner as a durable `groupEntry` event and a
 * `groupHead` notice to everyone else on the roster; setup waits until every member has the last epoch's
 * entry or head, all of them answered with `received`. The bare reference takes the same frames as plain set
 * insertions and tells nobody.
 */
async function buildGroup(
  server: Server,
  group: string,
  members: readonly { client: Client; author: EntryAuthor }[],
): Promise<void> {
  const lastEpoch = members.length - 1;
  // Deliveries reach each member in order: the last entry means every earlier one arrived too.
  const settled =
    server.kind === 'relay'
      ? members.map(({ client }) =>
          client.next((f) => {
            const e = f.t === 'deliver' ? (f.event as Json | undefined) : undefined;
            // The joiner gets its entry; everyone else on the roster a notice of the new head.
            return (
              (e?.type === 'groupEntry' || e?.type === 'groupHead') &&
              e.group === group &&
              e.epoch === lastEpoch
            );
          }),
        )
      : [];
  let log: GroupLog | undefined;
  for (const { client, author } of members) {
    const entry = log ? author.join(log) : author.genesis(group, JoinPolicy.OPEN);
    await client.request({ t: 'groupAppend', group, entry: b64(entry) });
    log = log ? applyEntry(log, decodeEntry(entry)).log : startLog(decodeEntry(entry)).log;
  }
  await Promise.all(settled);
}

async function fanoutStream(server: Server): Promise<Stream> {
  const group = 'bench-group';
  const identities = Array.from({ length: FANOUT_MEMBERS }, () => Identity.generate());
  const members = await openMany(FANOUT_MEMBERS, (i) => connectAs(server, `member${i}`, identities[i]!));
  const [sender, ...recipients] = members as [Client, ...Client[]];
  await buildGroup(
    server,
    group,
    members.map((client, i) => ({
      client,
      author: new EntryAuthor(`member${i}`, identities[i]!, Date.now),
    })),
  );
  await quiet(); // nothing of the setup is still arriving
  await probe(sender, recipients, { t: 'groupSend', group });
  const p = new Pipeline(() => sender.send(groupSendFrame(sender, group)), FANOUT_WINDOW, recipients.length);
  ackInto(sender, p);
  for (const r of recipients) receiveInto(r, p);
  return accounted(server, p, members);
}

/** Starts our relay and the reference, sets the stream up on each, measures interleaved rounds. */
async function comparedStreams(
  ctx: SuiteContext,
  setup: (server: Server) => Promise<Stream>,
): Promise<{ ours: Sample; reference: Sample; note: string }> {
  const data = tempDataDir();
  const streams: Stream[] = [];
  const start = async (config: ServerConfig): Promise<Stream> => {
    const server = await startServer(config);
    try {
      return await setup(server);
    } catch (e) {
      await server.stop();
      throw e;
    }
  };
  try {
    streams.push(await start({ kind: 'relay', dataDir: data.dir }));
    streams.push(await start({ kind: 'bare' }));
    const [ours, bare] = streams as [Stream, Stream];
    const { a, b } = await measureRounds(ours.round, bare.round, relayTiming(ctx));
    const pct = (v: number, wall: number): string => `${Math.round((v / wall) * 100)}%`;
    const cpu = (s: Stream): string =>
      `server ${pct(s.busy.server, s.busy.wall)}, clients ${pct(s.busy.clients, s.busy.wall)}`;
    return {
      ours: a,
      reference: b!,
      note: `CPU of one core during the rounds: ours ${cpu(ours)}; bare ws ${cpu(bare)}`,
    };
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    data.remove();
  }
}

/** Round settings for this suite: the run's rounds, a longer warm-up (the child processes start cold). */
function relayTiming(ctx: SuiteContext): { rounds: number; roundMs: number; warmupMs: number } {
  const { rounds, roundMs, warmupMs } = ctx.measure;
  return { rounds, roundMs, warmupMs: Math.max(warmupMs, ctx.quick ? 300 : 1000) };
}

// ---------------------------------------------------------------------------------------------
// Durable queue: an offline recipient

async function durable(ctx: SuiteContext): Promise<{ ours: Sample; note: string }> {
  const data = tempDataDir();
  const senderIdentity = Identity.generate();
  seedUsers(data.dir, [
    { id: 'sender', identity: senderIdentity },
    { id: 'offline', identity: Identity.generate() },
  ]);
  const server = await startServer({ kind: 'relay', dataDir: data.dir });
  let stream: Stream | undefined;
  try {
    const sender = await connectAs(server, 'sender', senderIdentity);
    await quiet();
    let sent = 0;
    const p = new Pipeline(
      () => {
        sent++;
        sender.send(sendFrame(sender, 'offline'));
      },
      DURABLE_WINDOW,
      1,
    );
    ackInto(sender, p, true);
    stream = accounted(server, p, [sender]);
    const { a } = await measureRounds(stream.round, null, relayTiming(ctx));
    const pct = (v: number): string => `${Math.round((v / stream!.busy.wall) * 100)}%`;
    return {
      ours: a,
      note:
        `${sent.toLocaleString('en-US')} messages queued in ${tmpdir()} (WAL, synchronous=FULL); ` +
        `CPU: server ${pct(stream.busy.server)}, clients ${pct(stream.busy.clients)}; no reference`,
    };
  } finally {
    await (stream ? stream.close() : server.stop());
    data.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// Memory per idle connection

/** The soft limit on open files of this process (inherited by the child), or null if unknown. */
function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return null;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return null;
  }
}

/** (after - before) / connections, in KiB, of the server's memory figures. */
interface MemoryDelta {
  readonly rssKiB: number;
  /** V8 heap reserved (part of RSS), and used by live objects. */
  readonly heapTotalKiB: number;
  readonly heapUsedKiB: number;
  /** Memory of ArrayBuffers and other objects held outside the V8 heap but known to it. */
  readonly externalKiB: number;
}

/** Registered users for our relay's memory rounds (warm-up ones first), in a seeded data directory. */
interface IdleUsers {
  readonly users: readonly { id: string; identity: Identity }[];
  readonly dataDir: string;
}

/**
 * One measurement of server memory per idle connection: a fresh server, a warm-up (a batch of
 * connections opened and closed, so the code paths are compiled and the first buffers allocated),
 * the baseline, then `count` connections opened in batches and left idle; both figures after forced
 * GCs in the server. `ours` given: our relay with those users (authenticated); otherwise the
 * reference with plain connections.
 */
async function idleMemory(
  ours: IdleUsers | null,
  count: number,
  log: (m: string) => void,
): Promise<MemoryDelta> {
  const server = await startServer(ours ? { kind: 'relay', dataDir: ours.dataDir } : { kind: 'bare' });
  const clients: Client[] = [];
  const connect = async (i: number): Promise<Client> => {
    const u = ours?.users[i];
    const c = u ? await connectAs(server, u.id, u.identity) : await Client.open(server.url);
    c.onFrame = () => {}; // idle: nothing is expected, nothing is parsed
    return c;
  };
  try {
    const warmed = await openMany(CONNECT_BATCH, connect);
    await Promise.all(warmed.map((c) => c.close()));
    await sleep(200);
    const before = await server.mem();
    const t0 = performance.now();
    clients.push(...(await openMany(count, (i) => connect(CONNECT_BATCH + i))));
    log(
      `relay: ${count} ${server.kind} connections open in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    await sleep(500);
    if (!clients.every((c) => c.open)) throw new Error('connections were closed while idle');
    const after = await server.mem();
    const per = (k: keyof MemoryReport): number => (after[k] - before[k]) / count / 1024;
    return {
      rssKiB: per('rss'),
      heapTotalKiB: per('heapTotal'),
      heapUsedKiB: per('heapUsed'),
      externalKiB: per('external'),
    };
  } finally {
    await server.stop();
    for (const c of clients) c.terminate();
  }
}

const median = (values: readonly number[]): number => summarise([...values]).median;

/**
 * Memory per idle connection, ours and the reference alternately (`rounds` each, fresh servers every
 * time: V8 grows its heap in steps, so a single figure moves by 10-15 %). Idle connections do not write
 * to the database, so our rounds share one seeded data directory.
 */
async function memory(ctx: SuiteContext): Promise<{ ours: Sample; reference: Sample; note: string }> {
  let count = ctx.quick ? IDLE_CONNECTIONS_QUICK : IDLE_CONNECTIONS;
  const rounds = ctx.quick ? 1 : MEMORY_ROUNDS;
  const limit = openFileLimit();
  let fewer = '';
  if (limit !== null && limit < count + CONNECT_BATCH + FD_MARGIN) {
    const fit = Math.max(0, limit - CONNECT_BATCH - FD_MARGIN);
    fewer = ` (the open-file limit, ulimit -n = ${limit}, allows no more than ${fit}; raise it for ${count})`;
    ctx.log(`relay: memory scenario measured at ${fit} connections${fewer}`);
    count = fit;
  }
  if (count < 100) throw new Error(`too few file descriptors for the memory scenario${fewer}`);
  const data = tempDataDir();
  try {
    const users = Array.from({ length: CONNECT_BATCH + count }, (_, i) => ({
      id: i < CONNECT_BATCH ? `warm${i}` : `idle${i - CONNECT_BATCH}`,
      identity: Identity.generate(),
    }));
    seedUsers(data.dir, users);
    const ours: MemoryDelta[] = [];
    const reference: MemoryDelta[] = [];
    for (let i = 0; i < rounds; i++) {
      ours.push(await idleMemory({ users, dataDir: data.dir }, count, ctx.log));
      reference.push(await idleMemory(null, count, ctx.log));
    }
    const parts = (m: MemoryDelta[]): string =>
      `V8 heap ${median(m.map((d) => d.heapTotalKiB)).toFixed(1)} ` +
      `(live ${median(m.map((d) => d.heapUsedKiB)).toFixed(1)}), ` +
      `external ${median(m.map((d) => d.externalKiB)).toFixed(1)}`;
    return {
      ours: summarise(ours.map((d) => d.rssKiB)),
      reference: summarise(reference.map((d) => d.rssKiB)),
      note:
        `server RSS delta over ${count.toLocaleString('en-US')} idle connections${fewer}, ours authenticated, ` +
        `median of ${rounds}; KiB/conn of it (medians): ours ${parts(ours)}; bare ws ${parts(reference)}`,
    };
  } finally {
    data.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// The suite

export const relaySuite: Suite = {
  name: 'relay',
  reference: 'bare ws',
  scenarios: Object.values(Scenario),
  async run(ctx: SuiteContext): Promise<ResultRow[]> {
    if (ctx.measure.clock === 'cpu') ctx.log('relay: counts per wall second (--cpu-time applies to crypto)');
    const rows: ResultRow[] = [];
    const failed = (name: string, unit: string, e: unknown): ResultRow => {
      ctx.log(`relay: ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return row(name, unit, null, null, null, `failed: ${message(e)}`);
    };

    for (const [name, setup, target] of [
      [Scenario.ROUTING, routingStream, ROUTING_TARGET],
      [Scenario.FANOUT, fanoutStream, ROUTING_TARGET],
    ] as const) {
      if (!ctx.selected(name)) continue;
      ctx.log(`relay: ${name} ...`);
      try {
        const r = await comparedStreams(ctx, setup);
        rows.push(row(name, 'deliveries/s', target, r.ours, r.reference, r.note));
      } catch (e) {
        rows.push(failed(name, 'deliveries/s', e));
      }
    }

    if (ctx.selected(Scenario.MEMORY)) {
      ctx.log(`relay: ${Scenario.MEMORY} ...`);
      try {
        const m = await memory(ctx);
        rows.push(
          row(Scenario.MEMORY, 'KiB/conn', MEMORY_TARGET, m.ours, m.reference, m.note, {
            direction: 'lower',
          }),
        );
      } catch (e) {
        rows.push(failed(Scenario.MEMORY, 'KiB/conn', e));
      }
    }

    if (ctx.selected(Scenario.DURABLE)) {
      ctx.log(`relay: ${Scenario.DURABLE} ...`);
      try {
        const d = await durable(ctx);
        rows.push(
          row(Scenario.DURABLE, 'msgs/s', null, d.ours, null, d.note, { absoluteTarget: DURABLE_TARGET }),
        );
      } catch (e) {
        rows.push(failed(Scenario.DURABLE, 'msgs/s', e));
      }
    }
    return rows;
  },
};
