/**
 * Flood suite (issue 9): how responsive the app's main process stays while forged direct messages
 * arrive. A real relay (bench/relay-server.ts, our relay in its own process) and a real
 * MessengerService (bench/flood-victim.ts, in its own process, as the Electron main process runs it)
 * with a contact, `mallory`, who holds five sessions with it. Mallory then sends 1,000 forged frames a
 * second through the relay, each the costliest a receiver could be made to work on: a fresh ratchet key
 * (a DH step every session awaits) claiming either counter 25,000 (the frame) or the edge of
 * the window. The victim measures its own event-loop delay (perf_hooks monitorEventLoopDelay): the
 * 99th percentile over a round, beside the same service idle (no flood) in rounds interleaved with it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { E2EEClient } from '../src-main/core/client/client.js';
import { MemoryKeyStore, MemoryStateStore } from '../src-main/core/client/stores.js';
import { Identity } from '../src-main/core/crypto/identity.js';
import { DhKeyPair, randomBytes } from '../src-main/core/crypto/primitives.js';
import { MessageType, PROTOCOL_VERSION } from '../src-main/core/crypto/constants.js';
import { Writer } from '../src-main/core/encoding.js';
import { b64 } from '../src-main/core/protocol/wire.js';
import type { LoopDelayReport } from './flood-victim.js';
import { type ResultRow, type Suite, type SuiteContext, row, summarise } from './harness.js';
import { type Server, connectAs, startServer, tempDataDir } from './relay.js';

export const Scenario = {
  FLOOD: 'event-loop delay p99, 1,000 forged frames/s',
} as const;

/** The app's main process must answer within this (ms, p99) under the flood. */
const P99_TARGET_MS = 50;
const FRAMES_PER_SECOND = 1000;
/** Frames go out in bursts every TICK_MS (a timer cannot fire every millisecond). */
const TICK_MS = 10;
const SESSIONS = 5;
/** Counters the forged frames claim: the far-ahead frame, and the edge of today's window. */
const FAR_AHEAD = 25_000;
const WINDOW_EDGE = 2000;
/** After a flood round, how long the victim may take to finish the frames it already received. */
const SETTLE_MS = 20_000;

const VICTIM_SCRIPT = fileURLToPath(new URL('./flood-victim.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The MessengerService process and its command line (see flood-victim.ts). */
interface Victim {
  command<T = Record<string, unknown>>(line: string, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

async function startVictim(relayUrl: string, dataDir: string): Promise<Victim> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', VICTIM_SCRIPT, JSON.stringify({ dataDir, relayUrl })],
    {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.shift()?.(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = (timeoutMs: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('victim: no answer')), timeoutMs);
      lines.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  const stop = async (): Promise<void> => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await next(60_000); // {"ready":true}
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    async command<T>(line: string, timeoutMs = 60_000): Promise<T> {
      const answer = next(timeoutMs);
      child.stdin.write(`${line}\n`);
      const reply = JSON.parse(await answer) as T & { error?: string };
      if (reply.error) throw new Error(`victim ${line}: ${reply.error}`);
      return reply;
    },
    stop,
  };
}

/**
 * Mallory starts over SESSIONS times (a fresh client state each time, the same identity), and the
 * victim replies each time: it then holds SESSIONS sessions with her, each awaiting her next ratchet
 * key, the situation in which an unknown ratchet key could be tried on every one of them.
 */
async function fiveSessions(server: Server, victim: Victim, identity: Identity): Promise<void> {
  const keyStore = new MemoryKeyStore();
  await keyStore.set('identity', identity.serialize());
  for (let i = 0; i < SESSIONS; i++) {
    const client = new E2EEClient({
      url: server.url,
      userId: 'mallory',
      keyStore,
      stateStore: new MemoryStateStore(),
      reconnect: false,
    });
    try {
      await client.connect();
      const replied = new Promise<void>((resolve) =>
        client.on('message', (m) => {
          if (m.text === `reply ${i}`) resolve();
        }),
      );
      await client.sendDirectMessage('victim', `hello ${i}`);
      await victim.command(`wait hello ${i}`);
      await victim.command(`send mallory reply ${i}`);
      await replied;
    } finally {
      await client.close();
    }
  }
}

/** A DIRECT message from mallory as the wire format documents it: a fresh ratchet key, any counter. */
function forged(ratchetKey: Uint8Array, counter: number): string {
  const bytes = new Writer(512)
    .u8(PROTOCOL_VERSION)
    .u8(MessageType.DIRECT)
    .str('mallory')
    .str('victim')
    .fixed(ratchetKey)
    .u32(1)
    .u32(counter)
    .fixed(randomBytes(200))
    .finish();
  return b64(bytes);
}

interface Rounds {
  readonly idle: LoopDelayReport[];
  readonly flood: LoopDelayReport[];
  readonly sent: number[];
  /** Frames the victim had finished (reported as undecryptable) by the end of each flood round. */
  readonly handledInRound: number[];
}

async function measure(ctx: SuiteContext): Promise<{ rounds: Rounds; note: string }> {
  const data = tempDataDir();
  const victimDir = mkdtempSync(join(tmpdir(), 'sealed-bench-victim-'));
  let server: Server | undefined;
  let victim: Victim | undefined;
  try {
    server = await startServer({ kind: 'relay', dataDir: data.dir });
    victim = await startVictim(server.url, victimDir);
    const identity = Identity.generate();
    await fiveSessions(server, victim, identity);
    const attacker = await connectAs(server, 'mallory', identity);
    attacker.onFrame = () => {}; // the relay's acks: nothing to do
    // Valid points (a DH with each is real work), used in turn; a refused message changes nothing, so
    // a key stays unknown to the victim however often it comes back.
    const keys = Array.from({ length: 64 }, () => DhKeyPair.generate().publicKey);
    const bodies = keys.flatMap((k) => [forged(k, FAR_AHEAD), forged(k, WINDOW_EDGE)]);

    const roundMs = ctx.quick ? 1000 : 2000;
    const count = ctx.quick ? 1 : 3;
    const rounds: Rounds = { idle: [], flood: [], sent: [], handledInRound: [] };
    let nextId = 0;
    for (let r = 0; r < count; r++) {
      await victim.command('start');
      await sleep(roundMs);
      rounds.idle.push(await victim.command<LoopDelayReport>('stop'));

      await victim.command('start');
      let sent = 0;
      const floodStart = performance.now();
      // Each tick sends what the schedule owes, so a late timer does not lower the rate.
      const timer = setInterval(() => {
        const due = Math.floor(((performance.now() - floodStart) * FRAMES_PER_SECOND) / 1000);
        for (; sent < due; sent++) {
          const id = `forged-${(nextId++).toString(36).padStart(8, '0')}`;
          attacker.send(
            `{"t":"send","rid":${attacker.rid()},"to":"victim","id":"${id}","body":"${bodies[sent % bodies.length]}"}`,
          );
        }
      }, TICK_MS);
      await sleep(roundMs);
      clearInterval(timer);
      rounds.flood.push(await victim.command<LoopDelayReport>('stop'));
      rounds.sent.push(sent);
      rounds.handledInRound.push(rounds.flood[rounds.flood.length - 1]!.errors);
      // Let the victim finish what it received before the next idle round.
      const deadline = Date.now() + SETTLE_MS;
      while (Date.now() < deadline) {
        const { errors } = await victim.command<{ errors: number }>('count');
        if (errors >= sent) break;
        await sleep(200);
      }
      ctx.log(
        `flood: round ${r + 1}: idle p99 ${rounds.idle[r]!.p99.toFixed(1)} ms, flood p99 ${rounds.flood[r]!.p99.toFixed(1)} ms, ` +
          `${rounds.handledInRound[r]}/${sent} frames handled within the round`,
      );
    }
    attacker.terminate();
    const cpu = (reports: LoopDelayReport[]): string =>
      `${Math.round((summarise(reports.map((x) => x.cpuMs)).median / roundMs) * 100)}%`;
    const handled = summarise(rounds.handledInRound).median;
    const sent = summarise(rounds.sent).median;
    const note =
      `MessengerService (LocalStore, E2EEClient) in its own process behind our relay (rate limit off, ` +
      `as in the relay suite: one connection sends ${FRAMES_PER_SECOND.toLocaleString('en-US')}/s); ` +
      `the sender holds ${SESSIONS} sessions with it, each awaiting a new ratchet key; every frame has a fresh ` +
      `ratchet key, half claim counter ${FAR_AHEAD.toLocaleString('en-US')}, half ${WINDOW_EDGE.toLocaleString('en-US')}; ` +
      `${roundMs} ms rounds, median of ${count}; max delay under the flood ` +
      `${summarise(rounds.flood.map((x) => x.max)).median.toFixed(1)} ms; victim CPU ${cpu(rounds.flood)} ` +
      `(idle ${cpu(rounds.idle)}); ${handled.toLocaleString('en-US')} of ${sent.toLocaleString('en-US')} frames ` +
      `handled within the round`;
    return { rounds, note };
  } finally {
    await victim?.stop();
    await server?.stop();
    data.remove();
    rmSync(victimDir, { recursive: true, force: true });
  }
}

export const floodSuite: Suite = {
  name: 'service',
  reference: 'same, idle',
  scenarios: Object.values(Scenario),
  async run(ctx: SuiteContext): Promise<ResultRow[]> {
    if (!ctx.selected(Scenario.FLOOD)) return [];
    ctx.log(`service: ${Scenario.FLOOD} ...`);
    try {
      const { rounds, note } = await measure(ctx);
      const flood = summarise(rounds.flood.map((x) => x.p99));
      const idle = summarise(rounds.idle.map((x) => x.p99));
      return [
        row(Scenario.FLOOD, 'ms', null, flood, idle, note, {
          direction: 'lower',
          absoluteTarget: P99_TARGET_MS,
        }),
      ];
    } catch (e) {
      ctx.log(
        `service: ${Scenario.FLOOD} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      );
      return [
        row(Scenario.FLOOD, 'ms', null, null, null, `failed: ${e instanceof Error ? e.message : String(e)}`),
      ];
    }
  },
};
