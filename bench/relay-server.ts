/**
 * The server side of the relay suite, in its own process (the load-generating clients stay in the
 * bench process): `node --expose-gc --import tsx bench/relay-server.ts '<config JSON>'`.
 *
 * `{"kind":"relay","dataDir":"…"}` starts our relay (src-main/relay) with the benchmark settings below;
 * `{"kind":"bare"}` starts the bare `ws` reference: no authentication, no validation, no durability,
 * no in-flight bookkeeping, only the forwarding itself (see BareFrame).
 *
 * Prints `{"port":…}` on one line once listening. Then answers commands read from stdin, one line
 * each, with one JSON line on stdout:
 *   mem   → { rss, heapTotal, heapUsed, external, arrayBuffers } in bytes, after two forced garbage collections
 *   cpu   → { user, system }: this process's CPU time so far in µs (process.cpuUsage())
 * Exits when stdin closes (the bench process is done with it or died) or on SIGTERM.
 */
import { createInterface } from 'node:readline';
import { WebSocketServer, type WebSocket } from 'ws';

import { MAX_FRAME_BYTES } from '../src-main/core/protocol/wire.js';
import { startRelay } from '../src-main/relay/index.js';

export type ServerConfig = { kind: 'relay'; dataDir: string } | { kind: 'bare' };

export interface MemoryReport {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/**
 * What the reference understands: the same JSON frames the bench clients send our relay, without
 * the handshake (`hello` only names the connection) and with `groupAppend` as a plain set insertion
 * of its sender (the signed entry it carries is not looked at, and no one is told of it).
 */
type BareFrame =
  | { t: 'hello'; userId: string }
  | { t: 'groupAppend'; rid: number; group: string; entry: string }
  | { t: 'send'; rid: number; to: string; id: string; body: string }
  | { t: 'groupSend'; rid: number; group: string; id: string; body: string }
  | { t: 'received'; seq: number };

/**
 * The reference: a bare ws server. Per message it parses the JSON frame, builds one `deliver`
 * envelope per recipient (the same fields and order as ours: t, seq, kind, from, id, [group], body,
 * ts) with JSON.stringify, sends it, and answers the sender with an `ack` frame. `received` frames are
 * parsed and dropped (nothing is kept in flight, nothing is stored).
 */
async function startBare(): Promise<number> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: MAX_FRAME_BYTES,
  });
  const users = new Map<string, WebSocket>();
  const groups = new Map<string, Set<WebSocket>>();
  let seq = 0;
  wss.on('connection', (ws) => {
    let userId = '';
    ws.on('error', () => {});
    ws.on('close', () => {
      if (users.get(userId) === ws) users.delete(userId);
      for (const members of groups.values()) members.delete(ws);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let f: BareFrame;
      try {
        f = JSON.parse(data.toString()) as BareFrame;
      } catch {
        return;
      }
      const ts = Date.now();
      switch (f.t) {
        case 'hello':
          userId = f.userId;
          users.set(userId, ws);
          ws.send(JSON.stringify({ t: 'ready', userId }));
          return;
        case 'groupAppend': {
          let members = groups.get(f.group);
          if (!members) groups.set(f.group, (members = new Set()));
          members.add(ws);
          ws.send(JSON.stringify({ t: 'ok', rid: f.rid, group: f.group }));
          return;
        }
        case 'send': {
          const to = users.get(f.to);
          to?.send(
            JSON.stringify({
              t: 'deliver',
              seq: ++seq,
              kind: 'direct',
              from: userId,
              id: f.id,
              body: f.body,
              ts,
            }),
          );
          ws.send(JSON.stringify({ t: 'ack', rid: f.rid, id: f.id, to: f.to, state: 'sent' }));
          return;
        }
        case 'groupSend': {
          for (const m of groups.get(f.group) ?? []) {
            if (m === ws) continue;
            m.send(
              JSON.stringify({
                t: 'deliver',
                seq: ++seq,
                kind: 'group',
                from: userId,
                id: f.id,
                group: f.group,
                body: f.body,
                ts,
              }),
            );
          }
          ws.send(JSON.stringify({ t: 'ack', rid: f.rid, id: f.id, group: f.group, state: 'sent' }));
          return;
        }
        case 'received':
          return;
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const address = wss.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/**
 * Our relay as the benchmark runs it: production code and defaults, except that the per-connection
 * rate limit is off (`framesPerSecond: Infinity`: the load generators send far above the default 300
 * frames/s), the timers that would disturb a long idle run (heartbeat, handshake timeout) are long, and
 * the quotas a load generator exceeds by design are on but sized above the load: finite, so every
 * check and every counter runs as in production (also for loopback peers), without refusing the rounds.
 */
async function startOurs(dataDir: string): Promise<number> {
  const relay = await startRelay({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    rateLimit: { framesPerSecond: Infinity },
    limits: {
      limitLoopback: true,
      connectionsPerIpPerMinute: 1e9,
      registrationsPerIpPerMinute: 1e9,
      queuedItemsPerRecipient: 1e9,
      queuedBytesPerRecipient: 2 ** 50,
      groupFanoutBytesPerMinute: 2 ** 50,
    },
    heartbeatIntervalMs: 3_600_000,
    handshakeTimeoutMs: 120_000,
    log: (line) => {
      if (/error|slow consumer|rate limit|failed/.test(line)) process.stderr.write(`relay: ${line}\n`);
    },
  });
  process.once('SIGTERM', () => void relay.close().then(() => process.exit(0)));
  return relay.port;
}

function memory(): MemoryReport {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig;
const port = config.kind === 'relay' ? await startOurs(config.dataDir) : await startBare();
if (config.kind === 'bare') process.once('SIGTERM', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ port })}\n`);

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  const command = line.trim();
  if (command === 'mem') process.stdout.write(`${JSON.stringify(memory())}\n`);
  else if (command === 'cpu') process.stdout.write(`${JSON.stringify(process.cpuUsage())}\n`);
  else process.stdout.write(`${JSON.stringify({ error: `unknown command ${command}` })}\n`);
});
// Exit with the bench process. With --cpu-prof the profile is written on this orderly exit.
commands.on('close', () => process.exit(0));
