#!/usr/bin/env node
/**
 * `node scripts/native-abi.mjs <node|electron>`: makes the native modules (better-sqlite3, keytar) loadable
 * by that runtime, rebuilding them only when switching.
 *
 * One node_modules serves two runtimes with different ABIs: the tests run under Node, the app under
 * Electron. What the modules are built for is checked, not assumed, by loading each one in a child Node
 * process (a fraction of a second, no network):
 * - built for this Node: it loads;
 * - built for Electron: Node refuses it with "compiled against … NODE_MODULE_VERSION <Electron's ABI>"
 *   (`node_modules/electron/abi_version`); Electron itself is never started.
 * Only a mismatch rebuilds: for Node `npm rebuild better-sqlite3 keytar` (a prebuilt download or a
 * node-gyp build); for Electron `electron-builder install-app-deps` (@electron/rebuild against Electron's
 * headers, downloaded from electronjs.org the first time: needs network). The result is checked the same
 * way, and `node_modules/.sealed-native-abi` records the runtime last built for (`npm ci` removes it
 * together with node_modules, and builds for Node).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MARKER = fileURLToPath(new URL('../node_modules/.sealed-native-abi', import.meta.url));

/** Each native module with the code that makes Node load its addon (better-sqlite3 loads it lazily). */
const PROBES = {
  'better-sqlite3': "const Database = require('better-sqlite3'); new Database(':memory:').close();",
  keytar: "require('keytar');",
};
export const NATIVE_MODULES = Object.keys(PROBES);

const fromRoot = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const readJson = (path) => JSON.parse(readFileSync(fromRoot(path), 'utf8'));

/** What the modules must be built for. Electron's version is read from its package, never `require`d. */
export function targetFor(runtime) {
  const base = { platform: process.platform, arch: process.arch };
  if (runtime === 'node')
    return { runtime, version: process.version, abi: process.versions.modules, ...base };
  if (runtime === 'electron') {
    const version = readJson('node_modules/electron/package.json').version;
    const abiFile = fromRoot('node_modules/electron/abi_version');
    const abi = existsSync(abiFile) ? readFileSync(abiFile, 'utf8').trim() : undefined;
    return { runtime, version, abi, ...base };
  }
  throw new TypeError(`Unknown runtime "${runtime}": expected "node" or "electron".`);
}

/**
 * What a module is built for, seen from Node: 'node', { abi } when Node refuses it as built for another
 * ABI, or { error } when it fails for another reason (missing file, missing shared library…).
 */
export function probe(name) {
  const result = spawnSync(process.execPath, ['-e', PROBES[name]], { cwd: ROOT, encoding: 'utf8' });
  if (result.status === 0) return 'node';
  const output = `${result.stderr}${result.stdout}`;
  const abi = /compiled against a different Node\.js version using\s+NODE_MODULE_VERSION (\d+)/.exec(output);
  if (abi) return { abi: abi[1] };
  const firstLines = output.trim().split('\n').slice(0, 6).join('\n');
  return { error: firstLines || `exit status ${result.status}` };
}

/** The modules that are not built for `target`, with what each is built for instead. */
export function mismatches(target) {
  return NATIVE_MODULES.map((name) => ({ name, found: probe(name) })).filter(({ found }) =>
    target.runtime === 'node' ? found !== 'node' : !(typeof found === 'object' && found.abi === target.abi),
  );
}

function describe(found) {
  if (found === 'node') return `built for this Node (ABI ${process.versions.modules})`;
  if ('abi' in found) return `built for ABI ${found.abi}`;
  return `not loadable: ${found.error}`;
}

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, {
    cwd: ROOT,
    env,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`);
}

/** Rebuilds for this Node: `npm rebuild` runs each module's install script (prebuilt or node-gyp). */
function rebuildForNode() {
  run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['rebuild', ...NATIVE_MODULES]);
}

/** Rebuilds every production native module for the installed Electron with electron-builder. */
function rebuildForElectron() {
  // @electron/rebuild skips a module whose `.forge-meta` names the target ABI; after a Node rebuild that
  // file can outlive the binary it described, so it must not be trusted.
  for (const name of NATIVE_MODULES)
    rmSync(fromRoot(`node_modules/${name}/build/Release/.forge-meta`), { force: true });
  // A `nodedir` npm setting points node-gyp at Node's headers, which would silently build for Node again.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => key.toLowerCase() !== 'npm_config_nodedir'),
  );
  const cli = fromRoot(
    `node_modules/electron-builder/${readJson('node_modules/electron-builder/package.json').bin['electron-builder']}`,
  );
  run(process.execPath, [cli, 'install-app-deps'], env);
}

/** Makes the native modules loadable by `runtime`; returns 'kept' or 'rebuilt', throws when it cannot. */
export function ensureNativeAbi(runtime, log = console.error) {
  const target = targetFor(runtime);
  const label = runtime === 'node' ? `Node ${target.version}` : `Electron ${target.version}`;
  if (runtime === 'electron' && !target.abi) {
    throw new Error('node_modules/electron/abi_version is missing: reinstall with `npm ci`.');
  }
  const before = mismatches(target);
  if (before.length === 0) {
    writeFileSync(MARKER, `${JSON.stringify(target)}\n`);
    return 'kept';
  }
  log(
    `native-abi: rebuilding ${NATIVE_MODULES.join(', ')} for ${label}` +
      ` (${before.map(({ name, found }) => `${name} is ${describe(found)}`).join('; ')})`,
  );
  rmSync(MARKER, { force: true });
  if (runtime === 'node') rebuildForNode();
  else rebuildForElectron();
  const after = mismatches(target);
  if (after.length > 0) {
    const details = after.map(({ name, found }) => `  ${name}: ${describe(found)}`).join('\n');
    const hint =
      runtime === 'electron'
        ? "Electron's headers are downloaded from https://electronjs.org/headers: check the network."
        : 'Check the build tools (python3, make, a C++ compiler) and libsecret-1-dev.';
    throw new Error(
      `the native modules are still not built for ${label} after a rebuild:\n${details}\n${hint}`,
    );
  }
  writeFileSync(MARKER, `${JSON.stringify(target)}\n`);
  return 'rebuilt';
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runtime = process.argv[2];
  try {
    const outcome = ensureNativeAbi(runtime);
    console.error(
      `native-abi: ${NATIVE_MODULES.join(', ')} ${outcome === 'kept' ? 'already' : 'now'} built for ${runtime}`,
    );
  } catch (error) {
    console.error(`native-abi: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
