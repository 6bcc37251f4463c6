/**
 * The receiving side of the flood suite, in its own process: the app's MessengerService as the
 * Electron main process runs it (LocalStore database and E2EEClient), with an in-memory keychain and
 * no LAN discovery. `node --import tsx bench/flood-victim.ts '{"dataDir":"…","relayUrl":"ws://…"}'`.
 *
 * Prints `{"ready":true}` once its profile `victim` is connected. Then answers commands read from
 * stdin, one line each, with one JSON line on stdout:
 *   send <to> <text>  → {}: sends a direct message (the bench's contact then holds a reply)
 *   wait <text>       → {}: once a message with this text has been received (at once if it was)
 *   count             → { errors }: undecryptable messages reported since `start`
 *   start             → {}: resets the event-loop delay histogram and the counters
 *   stop              → { p50, p99, max } in ms (perf_hooks monitorEventLoopDelay since `start`),
 *                       cpuMs (this process's CPU since `start`), errors (undecryptable messages the
 *                       service reported since `start`)
 * Exits when stdin closes.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

import { MessengerService } from '../src-main/services/messenger-service.js';
import { Secrets, type KeychainBackend } from '../src-main/services/secrets.js';

export interface FloodVictimConfig {
  readonly dataDir: string;
  readonly relayUrl: string;
}

export interface LoopDelayReport {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly cpuMs: number;
  readonly errors: number;
}

/** A keychain in memory: the bench has no Secret Service, and the keys live only as long as the run. */
function memoryKeychain(): KeychainBackend {
  const map = new Map<string, string>();
  return {
    getPassword: async (s, a) => map.get(`${s}/${a}`) ?? null,
    setPassword: async (s, a, p) => void map.set(`${s}/${a}`, p),
    deletePassword: async (s, a) => map.delete(`${s}/${a}`),
  };
}

const config = JSON.parse(process.argv[2] ?? '{}') as FloodVictimConfig;
const service = new MessengerService({
  dataDir: config.dataDir,
  secrets: new Secrets({ keychain: memoryKeychain(), service: 'Sealed-bench' }),
  discovery: null,
});
const seen = new Set<string>();
const waiting = new Map<string, () => void>();
let errors = 0;
service.subscribe((e) => {
  if (e.type === 'error') errors++;
  else if (e.type === 'item' && e.item.direction === 'in') {
    seen.add(e.item.text);
    waiting.get(e.item.text)?.();
  }
});
await service.start();
await service.createProfile({ userId: 'victim' });
await service.connect({ relayUrl: config.relayUrl });

// 1 ms resolution: the delays that matter here are tens of milliseconds.
const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();
let cpuAt = process.cpuUsage();
const reply = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  const [command, ...args] = line.trim().split(' ');
  switch (command) {
    case 'send':
      service.sendDirect({ to: args[0]!, text: args.slice(1).join(' ') }).then(
        () => reply({}),
        (e: unknown) => reply({ error: String(e) }),
      );
      return;
    case 'wait': {
      const text = args.join(' ');
      if (seen.has(text)) reply({});
      else waiting.set(text, () => reply({}));
      return;
    }
    case 'count':
      reply({ errors });
      return;
    case 'start':
      histogram.reset();
      cpuAt = process.cpuUsage();
      errors = 0;
      reply({});
      return;
    case 'stop': {
      const cpu = process.cpuUsage(cpuAt);
      const report: LoopDelayReport = {
        p50: histogram.percentile(50) / 1e6,
        p99: histogram.percentile(99) / 1e6,
        max: histogram.max / 1e6,
        cpuMs: (cpu.user + cpu.system) / 1000,
        errors,
      };
      reply(report);
      return;
    }
    default:
      reply({ error: `unknown command ${command}` });
  }
});
commands.on('close', () => {
  histogram.disable();
  void service.close().then(() => process.exit(0));
});
