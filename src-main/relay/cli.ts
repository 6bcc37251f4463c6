/**
 * Command line: `npm run relay -- [--host 127.0.0.1] [--port 8787] [--data ./relay-data | --memory]`.
 * Prints the URL, logs connection events to stdout, and closes gracefully on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startRelay } from './index.js';

const USAGE = 'usage: npm run relay -- [--host 127.0.0.1] [--port 8787] [--data ./relay-data | --memory]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8787' },
      data: { type: 'string' },
      memory: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.memory && values.data !== undefined)
    throw new TypeError('--data and --memory exclude each other');
  if (!/^\d+$/.test(values.port)) throw new RangeError(`--port must be a number, got "${values.port}"`);
  const relay = await startRelay({
    host: values.host,
    port: Number(values.port),
    dataDir: values.memory ? undefined : (values.data ?? './relay-data'),
    log: (line) => console.log(`${new Date().toISOString()} ${line}`),
  });
  console.log(`Relay listening on ${relay.url}`);
  const stop = (signal: string): void => {
    console.log(`${signal}: closing`);
    relay.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  console.error(USAGE);
  process.exit(1);
});
