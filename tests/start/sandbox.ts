/**
 * A disposable copy of the project for running `npm start` as a user would, without touching this
 * checkout's node_modules (other tests load better-sqlite3 from it at the same time).
 *
 * Copied: package.json, scripts/, and the packages the start script writes to or reads per checkout —
 * better-sqlite3 and keytar (rebuilt, their `build/` moved), electron (its installer writes `dist/`).
 * Everything else in node_modules is a symlink to this checkout's (read only). The scripts find their
 * project from their own location, so the copy is a project of its own. With `sources`, the app's sources
 * and build configuration are copied too, so electron-vite can build it into the copy's out/.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Packages copied rather than linked: the ones `npm start` may change. */
const COPIED = new Set(['better-sqlite3', 'keytar', 'electron']);
/** node_modules entries that are linked although hidden: npm's and the tools' read-only files. */
const LINKED_HIDDEN = new Set(['.bin', '.package-lock.json']);
const SOURCES = [
  'src-main',
  'src-preload',
  'src-renderer',
  'electron.vite.config.ts',
  'svelte.config.js',
  'tsconfig.json',
  'tsconfig.renderer.json',
];

/** Loads both native modules the way the app and the terminal tools do: open a database, load keytar. */
const NODE_BUILD_PROBE =
  "const Database = require('better-sqlite3'); const db = new Database(':memory:');" +
  "db.exec('create table t (x)'); db.close(); require('keytar'); console.log('node build loads');";

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  root: string;
  /** A HOME of its own: no cached Electron download or headers from this machine's user. */
  home: string;
  /** Runs a command in the copy with a clean cache; resolves when it exits (killed after `timeoutMs`). */
  run(command: string, args: string[], env?: Record<string, string>, timeoutMs?: number): Promise<RunResult>;
  /** Starts a command in the copy in a process group of its own (to signal it with everything it started); stderr piped. */
  start(command: string, args: string[], env?: Record<string, string>): ChildProcess;
  /** Whether the copy's native modules load in this Node (exit status 0 and the probe's line). */
  nodeBuildLoads(): RunResult;
  /** SHA-256 of each native module's compiled addon, to show a build is the very one that was there. */
  addonDigests(): Record<string, string>;
  remove(): void;
}

/** The addon file of each native module, relative to node_modules. */
export const ADDONS = {
  'better-sqlite3': 'better-sqlite3/build/Release/better_sqlite3.node',
  keytar: 'keytar/build/Release/keytar.node',
};

function linkNodeModules(root: string, electronAbi: string | undefined): void {
  const source = join(ROOT, 'node_modules');
  const target = join(root, 'node_modules');
  mkdirSync(target);
  for (const name of readdirSync(source)) {
    if (name.startsWith('.') && !LINKED_HIDDEN.has(name)) continue;
    if (!COPIED.has(name)) {
      symlinkSync(join(source, name), join(target, name));
      continue;
    }
    // As after `npm ci`: no Electron downloaded, no build set aside or kept by an earlier switch here.
    cpSync(join(source, name), join(target, name), {
      recursive: true,
      filter: (path) =>
        !/[\\/]electron[\\/](dist|path\.txt)$/.test(path) && !/[\\/]build\.sealed-[^\\/]+$/.test(path),
    });
  }
  if (electronAbi) writeFileSync(join(target, 'electron', 'abi_version'), electronAbi);
}

/**
 * Makes the copy. `electronAbi` replaces the ABI that node_modules/electron declares (a fake Electron);
 * `sources` copies the app's sources for a build.
 */
export function createSandbox({
  electronAbi,
  sources = false,
}: { electronAbi?: string; sources?: boolean } = {}): Sandbox {
  const root = mkdtempSync(join(tmpdir(), 'sealed-start-'));
  const home = join(root, '.home');
  mkdirSync(home);
  cpSync(join(ROOT, 'package.json'), join(root, 'package.json'));
  cpSync(join(ROOT, 'scripts'), join(root, 'scripts'), { recursive: true });
  if (sources) for (const path of SOURCES) cpSync(join(ROOT, path), join(root, path), { recursive: true });
  linkNodeModules(root, electronAbi);

  const cleanEnv = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, '.cache') };
    for (const key of Object.keys(env)) {
      if (/^(ELECTRON_|electron_config_cache|npm_config_electron)/i.test(key)) delete env[key];
    }
    return env;
  };

  return {
    root,
    home,
    run(command, args, env = {}, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const child = spawn(command, args, { cwd: root, env: { ...cleanEnv(), ...env } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.on('error', reject);
        child.on('close', (status) => {
          clearTimeout(timer);
          resolve({ status, stdout, stderr });
        });
      });
    },
    start(command, args, env = {}) {
      return spawn(command, args, {
        cwd: root,
        env: { ...cleanEnv(), ...env },
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    },
    nodeBuildLoads() {
      const result = spawnSync(process.execPath, ['-e', NODE_BUILD_PROBE], { cwd: root, encoding: 'utf8' });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    },
    addonDigests() {
      return Object.fromEntries(
        Object.entries(ADDONS).map(([name, path]) => [
          name,
          createHash('sha256')
            .update(readFileSync(join(root, 'node_modules', path)))
            .digest('hex'),
        ]),
      );
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Why `unshare --net` cannot give a child an empty network namespace here, or undefined when it can.
 * It needs root (as CI runs) or unprivileged user namespaces (`unshare --net --map-root-user`).
 */
export function netnsUnavailable(): string | undefined {
  const result = spawnSync('unshare', ['--net', 'true'], { encoding: 'utf8' });
  if (result.error) return `unshare is not installed (${result.error.message}); it is in Debian's util-linux`;
  if (result.status !== 0) {
    return `unshare --net failed (${result.stderr.trim()}): run the tests as root, as CI does`;
  }
  return undefined;
}

/** A fake Electron dist folder: an `electron` that records its arguments and what it was asked to open. */
export function fakeElectronDist(into: string): { dir: string; record: string } {
  const dir = join(into, 'fake-electron-dist');
  const record = join(into, 'fake-electron-launch.json');
  mkdirSync(dir);
  // The copy's package.json says "type": "module"; this file is CommonJS.
  writeFileSync(join(dir, 'package.json'), '{ "type": "commonjs" }\n');
  const script = `#!${process.execPath}
const fs = require('node:fs');
const path = require('node:path');
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const main = path.resolve(process.argv[2] ?? '.', pkg.main);
fs.writeFileSync(${JSON.stringify(record)}, JSON.stringify({
  argv: process.argv.slice(2),
  cwd: process.cwd(),
  rendererUrl: process.env.ELECTRON_RENDERER_URL ?? null,
  main,
  mainExists: fs.existsSync(main),
}));
`;
  writeFileSync(join(dir, 'electron'), script, { mode: 0o755 });
  return { dir, record };
}
