#!/usr/bin/env node
/**
 * `node scripts/build-relay.mjs [outdir]`: the standalone relay as plain JavaScript, for a server or a
 * container image (deploy/Dockerfile): `relay.js` (the command line of `npm run relay`, bundled with
 * esbuild) and `relay-queue-worker.js` beside it (the delivery queue's worker thread, which the relay
 * looks for there). better-sqlite3 stays outside the bundle (a native module): install it beside, in
 * `node_modules`. Default outdir: out/relay.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = process.argv[2] ?? join(root, 'out', 'relay');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: ['better-sqlite3'],
  // Bundled CommonJS dependencies (pino, prom-client) call require() for Node's own modules.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
};

await build({
  ...common,
  entryPoints: {
    relay: join(root, 'src-main/relay/cli.ts'),
    'relay-queue-worker': join(root, 'src-main/relay/queue/sqlite-worker.ts'),
  },
  outdir,
});
process.stderr.write(`build-relay: ${join(outdir, 'relay.js')} and relay-queue-worker.js\n`);
