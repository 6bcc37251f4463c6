/**
 * The Electron executable of this checkout: where it is, and installing it with Electron's own installer.
 *
 * electron >= 42 downloads no binary at `npm ci`: `require('electron')` downloads it on first use, but
 * electron-vite never requires it (it reads `node_modules/electron/path.txt` and stops with "Electron
 * uninstall" when there is none). So `npm start` runs Electron's installer, `node_modules/electron/
 * install.js` (the package's `install-electron` bin): it downloads the zip for this version with
 * @electron/get (cached in the user's cache folder, checked against `checksums.json`), extracts it into
 * `node_modules/electron/dist` and writes `path.txt`. It honours ELECTRON_MIRROR, ELECTRON_GET_USE_PROXY
 * and the other @electron/get settings.
 *
 * Where the executable is follows Electron's own `index.js`: `ELECTRON_OVERRIDE_DIST_PATH` (a folder
 * holding an Electron build; nothing is downloaded then), else `node_modules/electron/dist`. `electron`
 * is never `require`d here (that could start a download, see ../shared/STYLE.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { StepError, explainFailure, runLogged, shown, stoppedError } from './setup-step.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const ELECTRON_DIR = join(ROOT, 'node_modules', 'electron');
const DEFAULT_MIRROR = 'https://github.com/electron/electron/releases/download/';

/** The executable's path inside an Electron dist folder, per platform (as install.js's getPlatformPath). */
export function executableInDist(platform = process.platform) {
  if (platform === 'darwin' || platform === 'mas') return 'Electron.app/Contents/MacOS/Electron';
  if (platform === 'win32') return 'electron.exe';
  return 'electron';
}

/** The installed electron package's version (read from its package.json). */
export function electronVersion() {
  return JSON.parse(readFileSync(join(ELECTRON_DIR, 'package.json'), 'utf8')).version;
}

/**
 * Where the Electron executable is (or will be once installed), and who said so:
 * { path, overridden } where `overridden` is true when ELECTRON_OVERRIDE_DIST_PATH chose it.
 */
export function electronExecutable(env = process.env) {
  const override = env['ELECTRON_OVERRIDE_DIST_PATH'];
  if (override) return { path: join(override, executableInDist()), overridden: true };
  return { path: join(ELECTRON_DIR, 'dist', executableInDist()), overridden: false };
}

/** True when Electron's installer would find nothing to do (the checks of install.js's `isInstalled`). */
export function isElectronInstalled(env = process.env) {
  const { path, overridden } = electronExecutable(env);
  if (overridden) return existsSync(path);
  try {
    const version = readFileSync(join(ELECTRON_DIR, 'dist', 'version'), 'utf8')
      .replace(/^v/, '')
      .trim();
    const pathTxt = readFileSync(join(ELECTRON_DIR, 'path.txt'), 'utf8');
    return version === electronVersion() && pathTxt === executableInDist() && existsSync(path);
  } catch {
    return false;
  }
}

/** The host the installer downloads from (ELECTRON_MIRROR as @electron/get reads it, else GitHub). */
export function downloadUrl(env = process.env) {
  return env['ELECTRON_MIRROR'] || env['npm_config_electron_mirror'] || DEFAULT_MIRROR;
}

/**
 * Makes sure the Electron executable is there: 'present', or 'installed' after running Electron's
 * installer; throws a StepError (why, and what to run) when it cannot. `retry` is the command to run
 * once the cause is fixed.
 */
export async function ensureElectronBinary({
  env = process.env,
  retry = 'npm start',
  log = console.error,
} = {}) {
  const version = electronVersion();
  const { path, overridden } = electronExecutable(env);
  if (isElectronInstalled(env)) return 'present';
  if (overridden) {
    throw new StepError({
      what: `Electron ${version} cannot be started`,
      why: `ELECTRON_OVERRIDE_DIST_PATH points at ${env['ELECTRON_OVERRIDE_DIST_PATH']}, which has no ${executableInDist()}`,
      left: 'Nothing was changed',
      fix: `Point it at a folder holding an Electron build, or unset it to download Electron: unset ELECTRON_OVERRIDE_DIST_PATH && ${retry}`,
    });
  }
  const logFile = join(ROOT, 'node_modules', '.cache', 'sealed', 'electron-install.log');
  log(
    `downloading Electron ${version} for ${process.platform}-${process.arch} with Electron's installer ` +
      `(node_modules/electron/install.js, once; output in ${shown(logFile)})`,
  );
  const { status, signal, output } = await runLogged(process.execPath, [join(ELECTRON_DIR, 'install.js')], {
    cwd: ROOT,
    env,
    logFile,
  });
  if (signal) {
    throw stoppedError({
      what: `the download of Electron ${version}`,
      signal,
      left: 'The native modules and the rest of node_modules were not touched',
      log: shown(logFile),
      retry,
    });
  }
  if (status === 0 && isElectronInstalled(env)) return 'installed';
  const { why, kind } = await explainFailure({ output, url: downloadUrl(env), compiles: false });
  const fixes = {
    network:
      'Connect to the internet (behind a proxy set ELECTRON_GET_USE_PROXY=1 and GLOBAL_AGENT_HTTPS_PROXY, ' +
      `or use a mirror with ELECTRON_MIRROR), then run: ${retry}`,
    unknown: `Fix what the log names, or download Electron alone to see the whole error: node node_modules/electron/install.js`,
  };
  throw new StepError({
    what: `Electron ${version} is not installed yet and could not be downloaded`,
    why: status === 0 ? `the installer finished but left no ${shown(path)}` : why,
    left: 'The native modules and the rest of node_modules were not touched',
    log: shown(logFile),
    fix: fixes[kind === 'network' ? 'network' : 'unknown'],
  });
}
