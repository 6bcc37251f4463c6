/**
 * Command line: `npm run relay -- [--host 127.0.0.1] [--port 8787] [--data ./relay-data | --memory]`.
 * Logs one timestamped line per event (the first says where it listens) and closes gracefully on
 * SIGINT/SIGTERM. The options are one table (OPTIONS): --help, the usage line and parsing come from
 * it, so a new relay option (limits, TLS) is one more row that sets a field of RelayOptions.
 */
import { UsageError } from '../core/errors.js';
import { normaliseRelayUrl } from '../core/protocol/login.js';
import { type CommandLine, helpText, parseCommandLine, usageLine } from '../cli/options.js';
import { type RelayOptions, startRelay } from './index.js';

/** Every option of the relay CLI, in the order --help lists them. */
const RELAY: CommandLine<RelayOptions> = {
  invocation: 'npm run relay --',
  summary:
    'Runs a Sealed relay: it routes end-to-end encrypted messages between chat clients and the app, and never sees their plaintext or keys.',
  options: [
    {
      name: 'host',
      kind: 'value',
      placeholder: 'ADDR',
      default: '127.0.0.1',
      help: 'interface to listen on; 0.0.0.0 listens on every interface (others on the network can connect)',
      apply: (o, value) => {
        if (value.trim() === '') throw new UsageError('--host needs an address, e.g. 0.0.0.0');
        o.host = value;
      },
    },
    {
      name: 'port',
      kind: 'value',
      placeholder: 'N',
      default: '8787',
      help: 'TCP port; 0 picks a free one',
      apply: (o, value) => {
        if (!/^\d{1,5}$/.test(value) || Number(value) > 65535)
          throw new UsageError(`--port must be a number from 0 to 65535, not "${value}"`);
        o.port = Number(value);
      },
    },
    {
      name: 'data',
      kind: 'value',
      placeholder: 'DIR',
      default: './relay-data',
      help: 'folder of the relay database: users, public keys, groups and queued (encrypted) messages',
      apply: (o, value) => {
        if (value.trim() === '') throw new UsageError('--data needs a folder');
        o.dataDir = value;
      },
    },
    {
      name: 'memory',
      kind: 'flag',
      excludes: ['data'],
      help: 'keep everything in memory instead of --data; all of it is gone when the relay stops',
      apply: (o) => {
        o.dataDir = undefined;
      },
    },
    {
      name: 'public-url',
      kind: 'value',
      placeholder: 'URLS',
      help: 'the address(es) clients use, comma-separated (e.g. wss://chat.example.org); logins signed for any other address are refused',
      apply: (o, value) => {
        const list = value
          .split(',')
          .map((u) => u.trim())
          .filter((u) => u !== '');
        for (const u of list) {
          try {
            normaliseRelayUrl(u);
          } catch {
            throw new UsageError(`--public-url "${u}" is not a ws:// or wss:// address`);
          }
        }
        if (list.length === 0) throw new UsageError('--public-url needs at least one address');
        o.publicUrls = list;
      },
    },
    { name: 'help', short: 'h', kind: 'flag', help: 'show this help' },
  ],
};

const log = (line: string): void => {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
};

/** Why the relay could not start, in one sentence with what to do. */
function startFailure(err: unknown, options: RelayOptions): string {
  const code = (err as { code?: unknown }).code;
  const where = `${options.host}:${options.port}`;
  if (code === 'EADDRINUSE')
    return `Port ${options.port} on ${options.host} is already in use (another relay?): stop it, or choose another --port.`;
  if (code === 'EACCES')
    return `Not allowed to listen on ${where}: ports below 1024 need privileges; choose a --port above 1023.`;
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return `This computer has no address ${options.host}: use 127.0.0.1, 0.0.0.0 or one of its own addresses for --host.`;
  return `The relay could not start: ${err instanceof Error ? err.message : String(err)}`;
}

async function main(): Promise<void> {
  let options: RelayOptions;
  try {
    const parsed = parseCommandLine(RELAY, process.argv.slice(2), {});
    if (parsed.help) {
      process.stdout.write(`${helpText(RELAY)}\n`);
      return;
    }
    options = parsed.values;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const sentence = `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.`;
    process.stderr.write(`! ${sentence}\n${usageLine(RELAY)}\n(--help explains every option)\n`);
    process.exit(2);
  }

  let relay;
  try {
    relay = await startRelay({ ...options, log });
  } catch (err) {
    process.stderr.write(`! ${startFailure(err, options)}\n`);
    process.exit(1);
  }
  const stop = (signal: string): void => {
    log(`${signal}: closing`);
    relay.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`! The relay did not close cleanly: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

void main();
