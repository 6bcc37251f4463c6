#!/usr/bin/env node
/**
 * `npm start`: from a fresh `npm ci` to the app's window, in four steps, each announced in one line
 * (`npm run dev`, `--dev`: the first two, then electron-vite's dev server instead of 3 and 4):
 * 1. Electron's executable: installed by Electron's own installer when missing (a download, once);
 * 2. the native modules made loadable by that Electron (`native-abi.mjs`; a rebuild needs network once);
 * 3. the app built into `out/` (electron-vite build);
 * 4. the app opened (electron-vite preview, told where the executable is through ELECTRON_EXEC_PATH).
 * A step that fails prints one paragraph (what, why, the command that fixes it) and exits with 1; it has
 * left node_modules as it found it, so `npm test`, `npm run chat` and `npm run relay` keep working.
 * The tools' own output goes to log files under `node_modules/.cache/sealed/`; only the app's output
 * reaches the terminal.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { electronExecutable, electronVersion, ensureElectronBinary } from './electron-binary.mjs';
import { NATIVE_MODULES, ensureNativeAbi, labelOf, targetFor } from './native-abi.mjs';
import { StepError, lastErrorLine, runLogged, shown, stoppedError } from './setup-step.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The Node version Electron 45's installer and rebuild tools declare (@electron/get, @electron/rebuild). */
const TOOLING_NODE = [22, 12];

const say = (line) => console.error(`start: ${line}`);

/** The electron-vite command line, run with this Node (no shell, no npx). */
function electronVite() {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules/electron-vite/package.json'), 'utf8'));
  return join(ROOT, 'node_modules/electron-vite', pkg.bin['electron-vite']);
}

/** True when this Node is older than the one Electron's tooling declares. */
export function olderThanTooling(version = process.versions.node) {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major < TOOLING_NODE[0] || (major === TOOLING_NODE[0] && minor < TOOLING_NODE[1]);
}

/** Notes printed before the steps: things that may make a step fail, said before rather than after. */
function notes(command) {
  if (olderThanTooling()) {
    say(
      `note: Node ${process.version} is older than ${TOOLING_NODE.join('.')}, which Electron's installer ` +
        'and rebuild tools declare; if a step fails for no clear reason, use Node 22.12 or newer',
    );
  }
  if (process.getuid?.() === 0 && !process.env['NO_SANDBOX']) {
    say(
      "note: running as root, where Chromium's sandbox cannot start; run as a normal user (or " +
        `NO_SANDBOX=1 ${command}, which turns the sandbox off)`,
    );
  }
}

/** Step 1: Electron's executable, downloaded by Electron's installer when missing. */
async function stepElectron(env, say, retry) {
  const outcome = await ensureElectronBinary({ env, retry, log: say });
  const { path, overridden } = electronExecutable(env);
  const where = overridden ? 'from ELECTRON_OVERRIDE_DIST_PATH' : 'is installed';
  if (outcome === 'present') say(`Electron ${electronVersion()} ${where} (${shown(path)})`);
  return path;
}

/** Step 2: the native modules, rebuilt for Electron only when they do not load there yet. */
async function stepNativeModules(say, retry) {
  const target = targetFor('electron');
  const outcome = await ensureNativeAbi('electron', { retry, log: say });
  if (outcome === 'kept') {
    say(`${NATIVE_MODULES.join(' and ')} already load in ${labelOf(target)} (ABI ${target.abi})`);
  }
}

/** Step 3: electron-vite build into out/. */
async function stepBuild(say, retry) {
  const logFile = join(ROOT, 'node_modules/.cache/sealed/build.log');
  say(`building the app into out/ with electron-vite (output in ${shown(logFile)})`);
  const { status, signal, output } = await runLogged(process.execPath, [electronVite(), 'build'], {
    cwd: ROOT,
    logFile,
  });
  const left = 'node_modules is ready for Electron; only out/ may be incomplete';
  if (signal) {
    throw stoppedError({ what: 'the build of the app', signal, left, log: shown(logFile), retry });
  }
  if (status !== 0) {
    throw new StepError({
      what: 'the app could not be built (electron-vite build)',
      why: `it stopped with: ${lastErrorLine(output)}`,
      left,
      log: shown(logFile),
      fix: `Fix that error, then run: ${retry}`,
    });
  }
}

/**
 * The last step: electron-vite `preview` (the build just made) or `dev` (a dev server, reloading on
 * change), told where Electron is; returns Electron's exit status. The app's output reaches the terminal.
 */
function stepOpen(executable, env, dev) {
  const result = spawnSync(
    process.execPath,
    [electronVite(), ...(dev ? ['dev'] : ['preview', '--skipBuild'])],
    {
      cwd: ROOT,
      stdio: 'inherit',
      // electron-vite reads this before node_modules/electron/path.txt (its getElectronPath).
      env: { ...env, ELECTRON_EXEC_PATH: executable },
    },
  );
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/**
 * The whole of `npm start` (or, with `dev`, of `npm run dev`: the same first two steps, then electron-vite's
 * dev server instead of a build); returns the exit status.
 */
export async function start(env = process.env, { dev = false } = {}) {
  const retry = dev ? 'npm run dev' : 'npm start';
  const total = dev ? 3 : 4;
  const step = (n) => (line) => say(`${n}/${total} ${line}`);
  notes(retry);
  try {
    const executable = await stepElectron(env, step(1), retry);
    await stepNativeModules(step(2), retry);
    if (dev) {
      step(3)(`starting the dev server and ${shown(executable)} (electron-vite dev, reloads on change)`);
      return stepOpen(executable, env, true);
    }
    await stepBuild(step(3), retry);
    step(4)(`opening the app: ${shown(executable)} with out/main/index.js`);
    return stepOpen(executable, env, false);
  } catch (error) {
    if (!(error instanceof StepError)) throw error;
    console.error(`\nstart failed: ${error.toParagraph()}\n`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exit(await start(process.env, { dev: process.argv.includes('--dev') }));
}
