/**
 * Command line: `npm run relay -- [--host 127.0.0.1] [--port 8787] [--data ./relay-data | --memory]
 * [--tls-cert FILE --tls-key FILE] [--metrics loopback|open|off] [--log-level LEVEL]`.
 * Logs one JSON line per event (pino; the first says where it listens: log.ts lists the events and
 * fields), closes gracefully on SIGINT/SIGTERM and reloads its TLS certificate on SIGHUP. The options
 * are one table (RELAY): --help, the usage line and parsing come from it, so a new relay option is one
 * more row that sets a field of RelayOptions.
 */
import { pino, type Level } from 'pino';
import { UsageError } from '../core/errors.js';
import { normaliseRelayUrl } from '../core/protocol/login.js';
import { type CommandLine, helpText, type OptionSpec, parseCommandLine, usageLine } from '../cli/options.js';
import { type RelayLog, type RelayOptions, startRelay } from './index.js';
import { DEFAULT_OPTIONS, type LimitOptions, resolveOptions } from './options.js';
import { StorageStartError } from './storage.js';

/** What the command line sets: the relay's options and how much it logs. */
type RelayCommandLine = RelayOptions & { logLevel?: Level | 'silent' };

const LOG_LEVELS = ['info', 'warn', 'error', 'silent'] as const;

/** The quotas (LimitOptions), one flag each: the flag, its field and what it bounds. */
const LIMIT_FLAGS: readonly {
  name: string;
  field: Exclude<keyof LimitOptions, 'limitLoopback'>;
  help: string;
}[] = [
  { name: 'group-members', field: 'groupMembers', help: "people on one group's roster, in any standing" },
  { name: 'groups-per-user', field: 'groupsPerUser', help: 'groups one person may be on the roster of' },
  { name: 'mailbox-items', field: 'queuedItemsPerRecipient', help: "items waiting in one person's mailbox" },
  { name: 'mailbox-bytes', field: 'queuedBytesPerRecipient', help: "bytes waiting in one person's mailbox" },
  {
    name: 'group-fanout-bytes',
    field: 'groupFanoutBytesPerMinute',
    help: "one sender's group traffic per minute: message size × recipients",
  },
  {
    name: 'connections-per-ip',
    field: 'connectionsPerIpPerMinute',
    help: 'new connections per network address per minute (refused with HTTP 429)',
  },
  {
    name: 'registrations-per-ip',
    field: 'registrationsPerIpPerMinute',
    help: 'new accounts per network address per minute',
  },
  {
    name: 'bundle-requests',
    field: 'bundleRequestsPerMinute',
    help: 'key bundles one person may fetch per minute',
  },
  {
    name: 'prekeys-per-target',
    field: 'oneTimePreKeysPerTargetPerMinute',
    help: "one person's one-time prekeys handed out per minute, all requesters together",
  },
  {
    name: 'prekeys-per-requester',
    field: 'oneTimePreKeysPerRequesterPerMinute',
    help: 'one-time prekeys one person may take per minute, all targets together',
  },
];

/** Timers and the slow-consumer bound (RelayOptions), one flag each. */
const TUNING_FLAGS: readonly {
  name: string;
  field: 'heartbeatIntervalMs' | 'handshakeTimeoutMs' | 'storageProbeIntervalMs' | 'maxBufferedBytes';
  help: string;
}[] = [
  {
    name: 'heartbeat-ms',
    field: 'heartbeatIntervalMs',
    help: 'how often each connection is pinged; one that has not answered the previous ping is closed',
  },
  {
    name: 'handshake-timeout-ms',
    field: 'handshakeTimeoutMs',
    help: 'a connection that has not logged in within this is closed',
  },
  {
    name: 'storage-probe-ms',
    field: 'storageProbeIntervalMs',
    help: 'while the disk refuses writes (full, read-only), how often the relay tries again',
  },
  {
    name: 'max-buffered-bytes',
    field: 'maxBufferedBytes',
    help: 'a recipient that leaves more than this unread on its connection is closed as a slow consumer (its messages stay queued)',
  },
];

const cliNumber = (flag: string, value: string, unlimited: boolean): number => {
  if (unlimited && value === 'unlimited') return Infinity;
  if (!/^\d+(\.\d+)?$/.test(value))
    throw new UsageError(`--${flag} must be a number${unlimited ? ' or "unlimited"' : ''}, not "${value}"`);
  return Number(value);
};

/** Every option of the relay CLI, in the order --help lists them. */
const RELAY: CommandLine<RelayCommandLine> = {
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
      name: 'tls-cert',
      kind: 'value',
      placeholder: 'FILE',
      defaultText: 'none: plain ws://',
      requires: ['tls-key'],
      help: "serve wss:// with this certificate chain (PEM; e.g. fullchain.pem of Let's Encrypt); SIGHUP reloads it",
      apply: (o, value) => {
        if (value.trim() === '') throw new UsageError('--tls-cert needs a PEM file');
        o.tlsCert = value;
      },
    },
    {
      name: 'tls-key',
      kind: 'value',
      placeholder: 'FILE',
      defaultText: 'none',
      requires: ['tls-cert'],
      help: 'the private key of --tls-cert (PEM)',
      apply: (o, value) => {
        if (value.trim() === '') throw new UsageError('--tls-key needs a PEM file');
        o.tlsKey = value;
      },
    },
    {
      name: 'metrics',
      kind: 'value',
      placeholder: 'WHO',
      default: 'loopback',
      help: 'who may read Prometheus metrics at /metrics: loopback (this computer, not through a proxy), open (anyone who reaches the port) or off',
      apply: (o, value) => {
        if (value !== 'loopback' && value !== 'open' && value !== 'off')
          throw new UsageError(`--metrics must be loopback, open or off, not "${value}"`);
        o.metrics = value === 'off' ? false : value;
      },
    },
    {
      name: 'log-level',
      kind: 'value',
      placeholder: 'LEVEL',
      default: 'info',
      help: 'least severe events logged (JSON lines on stdout): info (every connection), warn, error or silent',
      apply: (o, value) => {
        if (!(LOG_LEVELS as readonly string[]).includes(value))
          throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${value}"`);
        o.logLevel = value as Level | 'silent';
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
    ...rateOptions(),
    ...limitOptions(),
    ...tuningOptions(),
    { name: 'help', short: 'h', kind: 'flag', help: 'show this help' },
  ],
};

/** The per-connection frame rate. */
function rateOptions(): OptionSpec<RelayCommandLine>[] {
  const rate = (o: RelayCommandLine): NonNullable<RelayOptions['rateLimit']> => (o.rateLimit ??= {});
  return [
    {
      name: 'frames-per-second',
      kind: 'value',
      placeholder: 'N',
      defaultText: String(DEFAULT_OPTIONS.rateLimit.framesPerSecond),
      help: 'frames one connection may send per second, sustained (beyond it the relay reads it more slowly); "unlimited" turns it off',
      apply: (o, value) => {
        rate(o).framesPerSecond = cliNumber('frames-per-second', value, true);
      },
    },
    {
      name: 'frame-burst',
      kind: 'value',
      placeholder: 'N',
      defaultText: String(DEFAULT_OPTIONS.rateLimit.burst),
      help: 'frames one connection may send at once before --frames-per-second applies',
      apply: (o, value) => {
        rate(o).burst = cliNumber('frame-burst', value, false);
      },
    },
  ];
}

/** One flag per quota; their ranges are checked by resolveOptions (checkRanges below). */
function limitOptions(): OptionSpec<RelayCommandLine>[] {
  const limits = (o: RelayCommandLine): LimitOptions => (o.limits ??= {});
  return [
    ...LIMIT_FLAGS.map(({ name, field, help }): OptionSpec<RelayCommandLine> => ({
      name,
      kind: 'value',
      placeholder: 'N',
      defaultText: String(DEFAULT_OPTIONS.limits[field]),
      help: `${help}${field === 'groupMembers' ? '' : '; "unlimited" turns it off'}`,
      apply: (o, value) => {
        limits(o)[field] = cliNumber(name, value, field !== 'groupMembers');
      },
    })),
    {
      name: 'limit-loopback',
      kind: 'flag',
      help: 'apply --connections-per-ip and --registrations-per-ip to this computer too: needed behind a reverse proxy on the same computer, where every client comes from loopback',
      apply: (o) => {
        limits(o).limitLoopback = true;
      },
    },
  ];
}

/** Timers and the slow-consumer bound; ranges checked by resolveOptions like the quotas'. */
function tuningOptions(): OptionSpec<RelayCommandLine>[] {
  return TUNING_FLAGS.map(({ name, field, help }): OptionSpec<RelayCommandLine> => ({
    name,
    kind: 'value',
    placeholder: 'N',
    defaultText: String(DEFAULT_OPTIONS[field]),
    help,
    apply: (o, value) => {
      o[field] = cliNumber(name, value, false);
    },
  }));
}

/** A value out of its range, in the words of the flag that set it. */
function checkRanges(options: RelayCommandLine): void {
  const { logLevel: _level, ...relay } = options;
  try {
    resolveOptions(relay);
  } catch (e) {
    if (!(e instanceof RangeError || e instanceof TypeError)) throw e;
    // "limits.groupMembers must be an integer in 2..10000, got 1" → "--group-members must be …".
    const flags: [string, string][] = [
      ...LIMIT_FLAGS.map((f): [string, string] => [`limits.${f.field}`, `--${f.name}`]),
      ['rateLimit.framesPerSecond', '--frames-per-second'],
      ['rateLimit.burst', '--frame-burst'],
      ...TUNING_FLAGS.map((f): [string, string] => [f.field, `--${f.name}`]),
    ];
    let message = e.message;
    for (const [option, flag] of flags) message = message.replace(option, flag);
    throw new UsageError(message.replace(/, got .*$/, ''));
  }
}

/**
 * JSON lines on stdout: `{"level":"info","time":"…","pid":…,"event":"connect","conn":"#1",…,"msg":"…"}`.
 * pino writes synchronously, so nothing is lost when the process exits right after.
 */
function jsonLog(level: Level | 'silent'): { log: RelayLog; logger: pino.Logger } {
  const logger = pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
  const log: RelayLog = (_line, { level: severity, msg, ...fields }) => logger[severity](fields, msg);
  return { log, logger };
}

/** Why the relay could not start, in one sentence with what to do. */
function startFailure(err: unknown, options: RelayOptions): string {
  const code = (err as { code?: unknown }).code;
  const where = `${options.host}:${options.port}`;
  if (code === 'EADDRINUSE')
    return `Port ${options.port} on ${options.host} is already in use (another relay?): stop it, or choose another --port.`;
  if (code === 'EACCES')
    return `Not allowed to listen on ${where}: ports below 1024 need privileges; choose a --port above 1023.`;
  // A damaged database or an unwritable data directory: the sentence names the file and what to do.
  if (err instanceof StorageStartError) return err.message;
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return `This computer has no address ${options.host}: use 127.0.0.1, 0.0.0.0 or one of its own addresses for --host.`;
  return `The relay could not start: ${err instanceof Error ? err.message : String(err)}`;
}

async function main(): Promise<void> {
  let options: RelayCommandLine;
  try {
    const parsed = parseCommandLine(RELAY, process.argv.slice(2), {});
    if (parsed.help) {
      process.stdout.write(`${helpText(RELAY)}\n`);
      return;
    }
    options = parsed.values;
    checkRanges(options);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const sentence = `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.`;
    process.stderr.write(`! ${sentence}\n${usageLine(RELAY)}\n(--help explains every option)\n`);
    process.exit(2);
  }

  const { logLevel = 'info', ...relayOptions } = options;
  const { log, logger } = jsonLog(logLevel);
  let relay;
  try {
    relay = await startRelay({ ...relayOptions, processMetrics: true, log });
  } catch (err) {
    process.stderr.write(`! ${startFailure(err, options)}\n`);
    process.exit(1);
  }
  const stop = (signal: string): void => {
    logger.info({ event: 'signal', signal }, `${signal}: closing`);
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
  // systemctl reload, a certbot deploy hook: the renewed certificate, without dropping anyone.
  process.on('SIGHUP', () => {
    if (!relay.url.startsWith('wss:')) {
      logger.warn({ event: 'signal', signal: 'SIGHUP' }, 'SIGHUP: no TLS certificate to reload');
      return;
    }
    try {
      relay.reloadTls();
    } catch (err) {
      logger.error(
        { event: 'tls_reload_failed', error: err instanceof Error ? err.message : String(err) },
        'SIGHUP: the TLS certificate was not reloaded; the relay keeps the one it has',
      );
    }
  });
}

void main();
