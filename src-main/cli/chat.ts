/**
 * Line-based headless client: how a person tries the protocol without the desktop app, and how a bot
 * uses it.  npm run chat -- --relay ws://HOST:8787 --user alice [--state DIR]
 *
 * The options are checked before anything is created: a wrong --relay or --user prints one sentence
 * and the usage and exits with 2. Identity and sessions persist in DIR/USER@HOST_PORT.db, held under
 * an exclusive lock while the chat runs, so a second chat with the same identity is refused instead
 * of corrupting the first (issue 7). The commands are in commands.ts, the chat itself in session.ts.
 */
import { homedir } from 'node:os';
import path from 'node:path';
import * as v from 'valibot';
import { E2EEClient, UsageError, parseFingerprint } from '../core/index.js';
import { Name } from '../core/protocol/wire.js';
import { SqliteStore, StoreLockedError } from '../storage/sqlite-store.js';
import { commandHelp } from './commands.js';
import { type CommandLine, helpText, parseCommandLine, usageLine } from './options.js';
import { ChatSession } from './session.js';
import { Terminal } from './terminal.js';

/** What the command line sets. */
interface ChatSettings {
  relay: string;
  user: string;
  state: string;
  /** The relay key fingerprint (30 digits) the user accepts in place of the pinned one. */
  acceptRelayKey?: string;
}

const DEFAULT_STATE = path.join(homedir(), '.sealed-chat');

/** The chat's options; --help and the usage line are derived from this table. */
const CHAT: CommandLine<Partial<ChatSettings>> = {
  invocation: 'npm run chat --',
  summary:
    'An end-to-end encrypted chat in the terminal: direct messages and groups through a Sealed relay (npm run relay).',
  options: [
    {
      name: 'user',
      kind: 'value',
      placeholder: 'NAME',
      required: true,
      help: 'your user id: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
      apply: (s, value) => {
        if (!v.is(Name, value))
          throw new UsageError(
            `--user "${value}" is not a valid user id: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
          );
        s.user = value.toLowerCase(); // user ids are case-insensitive: one spelling (docs/PROTOCOL.md)
      },
    },
    {
      name: 'relay',
      kind: 'value',
      placeholder: 'URL',
      default: 'ws://127.0.0.1:8787',
      help: 'the relay to connect to, ws:// or wss://',
      apply: (s, value) => {
        let url: URL;
        try {
          url = new URL(value);
        } catch {
          throw new UsageError(`--relay "${value}" is not a URL: write it like ws://192.168.1.20:8787`);
        }
        if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
          throw new UsageError(`--relay must start with ws:// or wss://, not ${url.protocol}//`);
        if (!url.hostname) throw new UsageError(`--relay "${value}" names no host`);
        s.relay = value;
      },
    },
    {
      name: 'state',
      kind: 'value',
      placeholder: 'DIR',
      default: DEFAULT_STATE,
      defaultText: '~/.sealed-chat',
      help: 'folder of your identity and sessions, one file per user and relay',
      apply: (s, value) => {
        if (value.trim() === '') throw new UsageError('--state needs a folder');
        s.state = path.resolve(value);
      },
    },
    {
      name: 'accept-relay-key',
      kind: 'value',
      placeholder: 'DIGITS',
      help: "accept the relay's new key, after a warning that it changed, if its fingerprint is DIGITS (compare them with the relay's operator first)",
      apply: (s, value) => {
        const digits = parseFingerprint(value);
        if (!digits)
          throw new UsageError(
            `--accept-relay-key needs the 30 digits of the relay's fingerprint, not "${value}"`,
          );
        s.acceptRelayKey = digits;
      },
    },
    { name: 'help', short: 'h', kind: 'flag', help: 'show this help' },
  ],
  epilogue: `commands, once running:\n${commandHelp()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}`,
};

/** The state file of `user` on the relay at `url`, inside `state` (user ids cannot contain a slash). */
function stateFile(settings: ChatSettings): string {
  const host = new URL(settings.relay).host.replace(/[^A-Za-z0-9.-]/g, '_');
  const file = path.join(settings.state, `${settings.user}@${host}.db`);
  if (path.dirname(file) !== settings.state) throw new UsageError('--user would leave the state folder');
  return file;
}

function main(): void {
  let settings: ChatSettings;
  try {
    const parsed = parseCommandLine(CHAT, process.argv.slice(2), {});
    if (parsed.help) {
      process.stdout.write(`${helpText(CHAT)}\n`);
      process.exit(0);
    }
    settings = parsed.values as ChatSettings;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const sentence = `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.`;
    process.stderr.write(`! ${sentence}\n${usageLine(CHAT)}\n(--help explains every option)\n`);
    process.exit(2);
  }

  const file = stateFile(settings);
  let store: SqliteStore;
  try {
    store = new SqliteStore(file, '', { exclusive: true });
  } catch (e) {
    if (e instanceof StoreLockedError) {
      process.stderr.write(
        `! Another chat is already running as ${settings.user} on this relay with ${settings.state}: use that one, or quit it first (${file} is locked).\n`,
      );
    } else {
      process.stderr.write(`! Cannot open ${file}: ${(e as Error).message}.\n`);
    }
    process.exit(1);
  }

  const client = new E2EEClient({
    url: settings.relay,
    userId: settings.user,
    keyStore: store.asKeyStore(),
    stateStore: store,
    ack: { rcvDirectMessage: true, rcvGroupMessage: true },
    // The library's default, stated: a contact's new key waits for /accept-key or /reject-key (issue 8).
    requireApprovalOnIdentityChange: true,
  });
  const session: ChatSession = new ChatSession({
    client,
    url: settings.relay,
    acceptRelayKey: settings.acceptRelayKey,
    terminal: () =>
      new Terminal(process.stdin, process.stdout, settings.user, {
        line: (text) => session.onLine(text),
        end: () => void session.onEnd(),
        interrupt: () => void session.quit(),
      }),
    exit: (code) => {
      store.close();
      process.exit(code);
    },
    probeStorage: () => store.probeWrite(),
    // Tests check sooner than every 5 s.
    storageProbeMs: Number(process.env.SEALED_STORAGE_PROBE_MS) || undefined,
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(signal, () => void session.quit());
  session.start();
}

main();
