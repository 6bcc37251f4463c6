#!/usr/bin/env node
/**
 * `npm start`: from a fresh `npm ci` to the app's window, in four steps, each announced in one line:
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
const RETRY = 'npm start';
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
function notes() {
  if (olderThanTooling()) {
    say(
      `note: Node ${process.version} is older than ${TOOLING_NODE.join('.')}, which Electron's installer ` +
        'and rebuild tools declare; if a step fails for no clear reason, use Node 22.12 or newer',
    );
  }
  if (process.getuid?.() === 0 && !process.env['NO_SANDBOX']) {
    say(
      "note: running as root, where Chromium's sandbox cannot start; run as a normal user (or " +
        'NO_SANDBOX=1 npm start, which turns the sandbox off)',
    );
  }
}

/** Step 1: Electron's executable, downloaded by Electron's installer when missing. */
async function stepElectron(env) {
  const outcome = await ensureElectronBinary({ env, retry: RETRY, log: (line) => say(`1/4 ${line}`) });
  const { path, overridden } = electronExecutable(env);
  const where = overridden ? 'from ELECTRON_OVERRIDE_DIST_PATH' : 'is installed';
  if (outcome === 'present') say(`1/4 Electron ${electronVersion()} ${where} (${shown(path)})`);
  return path;
}

/** Step 2: the native modules, rebuilt for Electron only when they do not load there yet. */
async function stepNativeModules() {
  const target = targetFor('electron');
  const outcome = await ensureNativeAbi('electron', { retry: RETRY, log: (line) => say(`2/4 ${line}`) });
  if (outcome === 'kept') {
    say(`2/4 ${NATIVE_MODULES.join(' and ')} already load in ${labelOf(target)} (ABI ${target.abi})`);
  }
}

/** Step 3: electron-vite build into out/. */
async function stepBuild() {
  const logFile = join(ROOT, 'node_modules/.cache/sealed/build.log');
  say(`3/4 building the app into out/ with electron-vite (output in ${shown(logFile)})`);
  const { status, signal, output } = await runLogged(process.execPath, [electronVite(), 'build'], {
    cwd: ROOT,
    logFile,
  });
  if (signal) {
    const left = 'node_modules is ready for Electron; only out/ may be incomplete';
    throw stoppedError({ what: 'the build of the app', signal, left, log: shown(logFile), retry: RETRY });
  }
  if (status !== 0) {
    throw new StepError({
      what: 'the app could not be built (electron-vite build)',
      why: `it stopped with: ${lastErrorLine(output)}`,
      left: 'node_modules is ready for Electron; only out/ may be incomplete',
      log: shown(logFile),
      fix: `Fix that error, then run: ${RETRY}`,
    });
  }
}

/** Step 4: opens the app; returns Electron's exit status. */
function stepLaunch(executable, env) {
  say(`4/4 opening the app: ${shown(executable)} with out/main/index.js`);
  const result = spawnSync(process.execPath, [electronVite(), 'preview', '--skipBuild'], {
    cwd: ROOT,
    stdio: 'inherit',
    // electron-vite reads this before node_modules/electron/path.txt (its getElectronPath).
    env: { ...env, ELECTRON_EXEC_PATH: executable },
  });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/** The whole of `npm start`; returns the exit status. */
export async function start(env = process.env) {
  notes();
  try {
    const executable = await stepElectron(env);
    await stepNativeModules();
    await stepBuild();
    return stepLaunch(executable, env);
  } catch (error) {
    if (!(error instanceof StepError)) throw error;
    console.error(`\nstart failed: ${error.toParagraph()}\n`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exit(await start());
}
