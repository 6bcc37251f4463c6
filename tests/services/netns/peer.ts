/**
 * One simulated computer of lan-netns.test.ts, run inside a network namespace as
 * `ip netns exec <ns> node --import tsx tests/services/netns/peer.ts <dataDir> <hostname>`.
 *
 * A real MessengerService with real mDNS discovery on the namespace's interfaces and a passphrase
 * profile (no Secret Service is reachable from a namespace). It reads calls as JSON lines on stdin,
 * `{ "id": 1, "method": "hostRelay", "args": {} }`, answers each with `{ "id", "ok", "value" | "error" }`
 * and writes every MessengerEvent as `{ "event": … }`, all on stdout; diagnostics go to stderr.
 */
import { createInterface } from 'node:readline';
import { createMdnsDiscovery } from '../../../src-main/services/lan.js';
import { MessengerService } from '../../../src-main/services/messenger-service.js';
import { Secrets } from '../../../src-main/services/secrets.js';
import { API_METHODS } from '../../../src-main/shared/messenger-api.js';

const [dataDir, hostname] = process.argv.slice(2);
if (!dataDir || !hostname) throw new Error('usage: peer.ts <dataDir> <hostname>');

const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
const log = (line: string): void => void process.stderr.write(`[${hostname}] ${line}\n`);

const service = new MessengerService({
  dataDir,
  hostname,
  secrets: new Secrets({ scryptN: 2 ** 15 }),
  discovery: createMdnsDiscovery({ log }),
  log,
  clientOptions: { reconnectDelayMs: { min: 50, max: 500 } },
  connectTimeoutMs: 5_000,
});
service.subscribe((event) => out({ event }));
await service.start();
out({ ready: true });

const methods = new Set<string>(API_METHODS);
for await (const line of createInterface({ input: process.stdin })) {
  const { id, method, args } = JSON.parse(line) as { id: number; method: string; args: unknown };
  if (!methods.has(method)) {
    out({ id, ok: false, error: { code: 'NO_METHOD', message: `no method ${method}` } });
    continue;
  }
  const call = (service as unknown as Record<string, (a: unknown) => Promise<unknown>>)[method]!;
  call.call(service, args).then(
    (value) => out({ id, ok: true, value }),
    (e: unknown) =>
      out({ id, ok: false, error: { code: (e as { code?: string }).code, message: (e as Error).message } }),
  );
}
// stdin closed: the test is done with this computer.
await service.close();
process.exit(0);
