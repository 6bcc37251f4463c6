/**
 * A relay in its own process, for tests that kill it: `node --import tsx relay-process.ts '<options JSON>'`.
 * Prints `{"port":…,"url":…}` on one line once listening; SIGTERM closes it gracefully.
 */
import { startRelay } from '../../src-main/relay/index.js';

const relay = await startRelay(JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startRelay>[0]);
process.stdout.write(`${JSON.stringify({ port: relay.port, url: relay.url })}\n`);
process.once('SIGTERM', () => {
  void relay.close().then(() => process.exit(0));
});
