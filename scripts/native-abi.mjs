#!/usr/bin/env node
/**
 * `node scripts/native-abi.mjs <node|electron> [--quiet]`: makes the native modules (better-sqlite3, keytar) loadable
 * by that runtime, rebuilding them only when switching, and never leaving them worse than they were.
 *
 * One node_modules serves two runtimes: the tests and the terminal tools run under Node, the app under
 * Electron. What the modules are built for is checked, not assumed, by loading each one in a child Node
 * process (a fraction of a second, no network):
 * - built for this Node: it loads;
 * - built for Electron: Node refuses it with "compiled against … NODE_MODULE_VERSION <Electron's ABI>"
 *   (`node_modules/electron/abi_version`); Electron itself is never started.
 * A Node-API module (keytar: `binary.napi_versions` in its package.json) has one build for every
 * runtime: it only has to load. better-sqlite3 is built against one ABI, so switching rebuilds it: for
 * Node `npm rebuild better-sqlite3 keytar` (a prebuilt download or a node-gyp build); for Electron
 * `electron-builder install-app-deps` (@electron/rebuild against Electron's headers, downloaded from
 * electronjs.org the first time: needs network).
 *
 * A rebuild that fails half-way leaves a module with no `build/` (node-gyp removes it first). So each
 * module's `build/` is moved aside before the rebuild and put back if the result does not load; an
 * interrupted run (Ctrl-C) leaves it aside, and the next run puts it back before anything else.
 * After a switch, the build replaced is kept beside the new one as `build.sealed-abi-<ABI>`: switching
 * back (`npm test` after `npm start`, and again) is then two renames, offline, checked by the same probe.
 * npm ci or an upgrade of the module replaces its folder, and the kept builds with it.
 * The rebuild's output goes to `node_modules/.cache/sealed/native-<runtime>.log`; a failure throws a
 * `StepError` saying why (network, build tools, libsecret) and what to run.
 * `node_modules/.sealed-native-abi` records the runtime last built for (`npm ci` removes it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { StepError, buildToolsFix, explainFailure, runLogged, shown, stoppedError } from './setup-step.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const fromRoot = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const readJson = (path) => JSON.parse(readFileSync(fromRoot(path), 'utf8'));
const MARKER = fromRoot('node_modules/.sealed-native-abi');
const BACKUP_SUFFIX = '.sealed-previous';

/** Each native module with the code that makes Node load its addon (better-sqlite3 loads it lazily). */
const PROBES = {
  'better-sqlite3': "const Database = require('better-sqlite3'); new Database(':memory:').close();",
  keytar: "require('keytar');",
};
export const NATIVE_MODULES = Object.keys(PROBES);

/** Where the rebuilds download from: Electron's headers, and the modules' prebuilt binaries. */
const DOWNLOAD_URL = {
  electron: 'https://www.electronjs.org/headers',
  node: 'https://github.com/',
};

/** The command that redoes only this step. */
const thisStep = (runtime) => `node scripts/native-abi.mjs ${runtime}`;

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

/** The runtime's name for messages: "Node v20.20.2", "Electron 45.4.1". */
export const labelOf = (target) =>
  target.runtime === 'node' ? `Node ${target.version}` : `Electron ${target.version}`;

/** True for a Node-API module: one binary loads in every runtime, so it is never rebuilt to switch. */
export function isNodeApi(name) {
  const binary = readJson(`node_modules/${name}/package.json`).binary;
  return Array.isArray(binary?.napi_versions) && binary.napi_versions.length > 0;
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

/** True when a module found as `found` (see `probe`) loads in `target`. */
function loadsIn(target, name, found) {
  if (found === 'node') {
    return target.runtime === 'node' || target.abi === process.versions.modules || isNodeApi(name);
  }
  return 'abi' in found && found.abi === target.abi;
}

/** The modules that are not loadable by `target`, with what each is built for instead. */
export function mismatches(target) {
  return NATIVE_MODULES.map((name) => ({ name, found: probe(name) })).filter(
    ({ name, found }) => !loadsIn(target, name, found),
  );
}

function describe(found) {
  if (found === 'node') return `built for this Node (ABI ${process.versions.modules})`;
  if ('abi' in found) return `built for ABI ${found.abi}`;
  return `not loadable: ${found.error}`;
}

const buildDir = (name) => fromRoot(`node_modules/${name}/build`);
const backupDir = (name) => `${buildDir(name)}${BACKUP_SUFFIX}`;
/** Where a module's build for another ABI is kept once replaced. */
const keptDir = (name, abi) => `${buildDir(name)}.sealed-abi-${abi}`;

/** The ABI a probed module is built for, when it loads somewhere (see `probe`). */
function abiOf(found) {
  if (found === 'node') return process.versions.modules;
  return 'abi' in found ? found.abi : undefined;
}

/** Moves the `build/` of each of `names` aside (a rename: instant, and nothing is copied). */
function setBuildsAside(names = NATIVE_MODULES) {
  for (const name of names) {
    rmSync(backupDir(name), { recursive: true, force: true });
    if (existsSync(buildDir(name))) renameSync(buildDir(name), backupDir(name));
  }
}

/** Puts back every `build/` set aside, replacing what a failed rebuild left; returns the modules restored. */
export function restoreBuilds() {
  const restored = [];
  for (const name of NATIVE_MODULES) {
    if (!existsSync(backupDir(name))) continue;
    rmSync(buildDir(name), { recursive: true, force: true });
    renameSync(backupDir(name), buildDir(name));
    restored.push(name);
  }
  return restored;
}

/**
 * Once the new builds load: keeps each replaced build of `switched` (the modules that did not load,
 * with what they were) under its ABI for a later switch back, and drops the other builds set aside.
 */
function keepReplacedBuilds(switched) {
  for (const { name, found } of switched) {
    const abi = abiOf(found);
    if (!abi || !existsSync(backupDir(name))) continue;
    rmSync(keptDir(name, abi), { recursive: true, force: true });
    renameSync(backupDir(name), keptDir(name, abi));
  }
  for (const name of NATIVE_MODULES) rmSync(backupDir(name), { recursive: true, force: true });
}

/**
 * Switches the modules in `before` (those not loadable by `target`) to builds kept from an earlier
 * switch, if every one of them has one and they load; otherwise leaves everything as it was.
 * Returns true when switched.
 */
function switchToKeptBuilds(target, before) {
  if (!before.every(({ name }) => existsSync(keptDir(name, target.abi)))) return false;
  const names = before.map(({ name }) => name);
  setBuildsAside(names);
  for (const name of names) renameSync(keptDir(name, target.abi), buildDir(name));
  if (mismatches(target).length === 0) {
    keepReplacedBuilds(before);
    return true;
  }
  // A kept build that does not load (a module upgraded in place…) is dropped, never retried.
  for (const name of names) rmSync(buildDir(name), { recursive: true, force: true });
  restoreBuilds();
  return false;
}

/** The rebuild command for `runtime`, run from the project root. */
function rebuildCommand(runtime) {
  if (runtime === 'node') {
    // `npm rebuild` runs each module's install script (prebuilt download, else node-gyp).
    return {
      command: process.platform === 'win32' ? 'npm.cmd' : 'npm',
      args: ['rebuild', ...NATIVE_MODULES],
    };
  }
  const builder = readJson('node_modules/electron-builder/package.json');
  const cli = fromRoot(`node_modules/electron-builder/${builder.bin['electron-builder']}`);
  return { command: process.execPath, args: [cli, 'install-app-deps'] };
}

/** The environment of a rebuild: a `nodedir` npm setting would point node-gyp at Node's headers. */
function rebuildEnv(runtime) {
  if (runtime === 'node') return process.env;
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => key.toLowerCase() !== 'npm_config_nodedir'),
  );
}

/** Turns a failed rebuild into a StepError: why (network, tools, libsecret…) and the command to run. */
async function rebuildFailure({ target, output, logFile, retry, restored }) {
  const { why, kind, missing } = await explainFailure({
    output,
    url: DOWNLOAD_URL[target.runtime],
    compiles: true,
  });
  const headers =
    kind === 'network' && target.runtime === 'electron'
      ? " (the first rebuild for Electron downloads Electron's headers once)"
      : '';
  const nodeLoads = NATIVE_MODULES.every((name) => probe(name) === 'node');
  const left =
    (restored.length === 0
      ? 'node_modules was not changed'
      : `the previous build of ${restored.join(' and ')} was put back`) +
    (nodeLoads ? ', so npm test, npm run chat and npm run relay still work' : '');
  const fixes = {
    network: `Connect to the internet, then run: ${retry}`,
    tools: `${buildToolsFix(missing ?? [])}; then run: ${retry}`,
    unknown: `Fix what the log names, then run: ${retry}`,
  };
  return new StepError({
    what: `${NATIVE_MODULES.join(' and ')} could not be rebuilt for ${labelOf(target)}`,
    why: `${why}${headers}`,
    left: `${left[0].toUpperCase()}${left.slice(1)}`,
    log: shown(logFile),
    fix: fixes[kind],
  });
}

/**
 * Makes the native modules loadable by `runtime`; returns 'kept' (nothing to do), 'switched' (to builds
 * kept from an earlier switch) or 'rebuilt'; throws a StepError
 * (node_modules put back as it was) when it cannot. `retry` is the command the error tells the user to
 * run again once fixed; `log` receives one line per thing it does.
 */
export async function ensureNativeAbi(runtime, { log = console.error, retry = thisStep(runtime) } = {}) {
  const target = targetFor(runtime);
  const label = labelOf(target);
  if (runtime === 'electron' && !target.abi) {
    throw new StepError({
      what: `the native modules cannot be built for ${label}`,
      why: 'node_modules/electron/abi_version is missing (an incomplete install)',
      fix: 'Reinstall the dependencies: npm ci',
    });
  }
  const recovered = restoreBuilds();
  if (recovered.length > 0) {
    log(`put back the build of ${recovered.join(', ')} left aside by an interrupted rebuild`);
  }
  const before = mismatches(target);
  if (before.length === 0) {
    writeFileSync(MARKER, `${JSON.stringify(target)}\n`);
    return 'kept';
  }
  if (switchToKeptBuilds(target, before)) {
    log(
      `switched ${before.map(({ name }) => name).join(', ')} to the build for ${label} (ABI ${target.abi}) ` +
        'kept from an earlier switch',
    );
    writeFileSync(MARKER, `${JSON.stringify(target)}\n`);
    return 'switched';
  }
  const logFile = fromRoot(`node_modules/.cache/sealed/native-${runtime}.log`);
  log(
    `rebuilding ${NATIVE_MODULES.join(', ')} for ${label} (ABI ${target.abi}): ` +
      `${before.map(({ name, found }) => `${name} is ${describe(found)}`).join('; ')}; ` +
      `output in ${shown(logFile)}`,
  );
  rmSync(MARKER, { force: true });
  setBuildsAside();
  const { command, args } = rebuildCommand(runtime);
  const { status, signal, output } = await runLogged(command, args, {
    cwd: ROOT,
    env: rebuildEnv(runtime),
    logFile,
  });
  if (signal) {
    const restored = restoreBuilds();
    throw stoppedError({
      what: `the rebuild of ${NATIVE_MODULES.join(' and ')} for ${label}`,
      signal,
      left: `The previous build of ${restored.join(' and ')} was put back`,
      log: shown(logFile),
      retry,
    });
  }
  const after = status === 0 ? mismatches(target) : before;
  if (status !== 0 || after.length > 0) {
    const restored = restoreBuilds();
    const details =
      status === 0
        ? `the rebuild finished, but ${after.map(({ name, found }) => `${name} is ${describe(found)}`).join('; ')}`
        : output;
    throw await rebuildFailure({ target, output: details, logFile, retry, restored });
  }
  keepReplacedBuilds(before);
  writeFileSync(MARKER, `${JSON.stringify(target)}\n`);
  return 'rebuilt';
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // `--quiet` (npm run chat, npm run relay): a line only when something is done or fails.
  const [runtime, ...flags] = process.argv.slice(2);
  const quiet = flags.includes('--quiet');
  try {
    const outcome = await ensureNativeAbi(runtime, { log: (line) => console.error(`native-abi: ${line}`) });
    if (!quiet || outcome !== 'kept') {
      console.error(
        `native-abi: ${NATIVE_MODULES.join(', ')} ${outcome === 'kept' ? 'already' : 'now'} load in ${runtime}`,
      );
    }
  } catch (error) {
    const message = error instanceof StepError ? error.toParagraph() : String(error);
    console.error(`native-abi: ${message}`);
    process.exit(1);
  }
}
