/**
 * A setup step's plumbing, shared by `npm start`, `npm run dist` and `npm test` (plain Node, no
 * dependency): run its tool with the output kept in a log file, and when it fails, say why and which
 * command fixes it.
 *
 * A step that fails throws a `StepError` with three parts, printed as one paragraph: what failed, why,
 * and the exact command to run. The "why" is found by looking at the machine, not only at the failed
 * tool's output (which is often a bare "fetch failed" or a node-gyp stack): can the download host be
 * reached, are the build tools and the libsecret headers there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';

/**
 * A step that failed, told as one paragraph: what failed, why, in what state it left things (and where
 * the full output is), then how to fix it, ending with the exact command to run.
 */
export class StepError extends Error {
  /** @param {{ what: string, why: string, left?: string, log?: string, fix: string }} parts */
  constructor({ what, why, left, log, fix }) {
    super(`${what}, because ${why}`);
    this.name = 'StepError';
    this.what = what;
    this.why = why;
    this.left = left;
    this.log = log;
    this.fix = fix;
  }

  /** The paragraph a user reads: one block of text, no stack. */
  toParagraph() {
    const log = this.log ? `The full output is in ${this.log}.` : '';
    const left = this.left ? `${this.left}.` : '';
    return [`${this.what}, because ${this.why}.`, left, log, this.fix].filter(Boolean).join(' ');
  }
}

/** Signals that stop a tool from the terminal; while one runs, they stop the tool, not this script. */
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs a tool with its output (stdout and stderr) written to `logFile` rather than the terminal, so a
 * step prints one line while it works. Resolves to { status, signal, output }: a tool that cannot start
 * at all (ENOENT…) has status null and the reason as its output. Ctrl-C reaches the tool (same process
 * group) while this script lives on to clean up: `signal` then names what stopped it.
 */
export async function runLogged(command, args, { cwd, env = process.env, logFile }) {
  let received = null;
  const survive = (signal) => {
    received = signal;
  };
  for (const signal of INTERRUPTS) process.on(signal, survive);
  let fd;
  try {
    mkdirSync(dirname(logFile), { recursive: true });
    fd = openSync(logFile, 'w');
    const child = spawn(command, args, {
      cwd,
      env,
      stdio: ['ignore', fd, fd],
      // Windows runs npm.cmd only through a shell; node.exe (whose path may hold spaces) without one.
      shell: process.platform === 'win32' && command.endsWith('.cmd'),
    });
    const { status, signal } = await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, killedBy) => resolve({ status: code, signal: killedBy }));
    });
    return { status: status ?? 1, signal: received ?? signal, output: readFileSync(logFile, 'utf8') };
  } catch (error) {
    return { status: null, signal: received, output: error instanceof Error ? error.message : String(error) };
  } finally {
    if (fd !== undefined) closeSync(fd);
    for (const signal of INTERRUPTS) process.off(signal, survive);
  }
}

/** The StepError for a step stopped by a signal (Ctrl-C…): what it left, and the command to start over. */
export function stoppedError({ what, signal, left, log, retry }) {
  return new StepError({
    what: `${what} was stopped`,
    why: `it received ${signal}`,
    left,
    log,
    fix: `To try again, run: ${retry}`,
  });
}

/** `path` relative to the current directory when inside it (shorter in a message), else absolute. */
export function shown(path) {
  const inside = relative(process.cwd(), path);
  return inside && !inside.startsWith('..') ? inside : path;
}

/** Error codes of a host that cannot be resolved or reached (Node's `fetch` puts them on `error.cause`). */
const UNREACHABLE = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Why `url`'s host cannot be reached, or undefined when it answers (any HTTP status counts as an answer).
 * One HEAD request, bounded by `timeoutMs`.
 */
export async function networkProblem(url, timeoutMs = 8_000) {
  const { host, origin } = new URL(url);
  try {
    await fetch(origin, { method: 'HEAD', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    return undefined;
  } catch (error) {
    const cause = error?.cause ?? error;
    const code = cause?.code ?? cause?.name;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return `the network is unreachable: ${host} cannot be resolved (${code})`;
    }
    if (code === 'TimeoutError' || code === 'AbortError') {
      return `the network is unreachable: ${host} did not answer within ${timeoutMs / 1000} s`;
    }
    if (UNREACHABLE.has(code)) return `the network is unreachable: ${host} cannot be reached (${code})`;
    return `${host} cannot be reached (${cause?.message ?? String(cause)})`;
  }
}

/** True when `name` is a command on this PATH. */
export function hasCommand(name, env = process.env) {
  if (process.platform === 'win32') {
    return spawnSync('where', [name], { stdio: 'ignore', env }).status === 0;
  }
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore', env }).status === 0;
}

/** True when pkg-config finds libsecret's development files (keytar's binding.gyp asks it the same). */
export function hasLibsecretHeaders(env = process.env) {
  return spawnSync('pkg-config', ['--exists', 'libsecret-1'], { stdio: 'ignore', env }).status === 0;
}

/**
 * The Debian/Ubuntu command that installs `packages`: `sudo` only when not already root, `-y` so it can
 * be pasted as it is.
 */
export function aptInstall(packages) {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  return `${sudo}apt-get install -y ${packages.join(' ')}`;
}

/**
 * What is missing to compile a native module from source on this system, as the packages (or, off
 * Linux, the tools) that provide it. Empty when everything is there.
 */
export function missingBuildTools(env = process.env) {
  if (process.platform === 'win32') return [];
  const missing = [];
  if (!hasCommand('python3', env)) missing.push('python3');
  if (!hasCommand('make', env)) missing.push('make');
  if (!hasCommand('c++', env) && !hasCommand('g++', env) && !hasCommand('clang++', env)) missing.push('g++');
  if (process.platform === 'linux') {
    if (!hasCommand('pkg-config', env)) missing.push('pkg-config');
    // keytar links against libsecret on Linux.
    if (!hasLibsecretHeaders(env)) missing.push('libsecret-1-dev');
  }
  return missing;
}

/** How to install the build tools `missing` names on this operating system (a sentence ending in a command). */
export function buildToolsFix(missing) {
  if (process.platform === 'darwin')
    return 'Install the Xcode command line tools with: xcode-select --install';
  if (process.platform === 'win32') {
    return 'Install Python 3 and the Visual Studio Build Tools (workload "Desktop development with C++") from https://visualstudio.microsoft.com/visual-cpp-build-tools/';
  }
  return `Install them (Debian/Ubuntu) with: ${aptInstall(missing)}`;
}

/** Lines of a tool's output that look like network failures: used when the host probe itself answers. */
const NETWORK_OUTPUT =
  /\b(EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ECONNRESET|ENETUNREACH|EHOSTUNREACH|ETIMEDOUT)\b|fetch failed|getaddrinfo|socket hang up/;

/**
 * Why a step that downloads from `url` and may compile native code failed: network first (without it
 * neither prebuilt binaries nor headers arrive), then the build tools, then libsecret, then the tool's
 * own last error line. Returns { why, kind: 'network' | 'tools' | 'unknown', missing? }.
 */
export async function explainFailure({ output, url, compiles }) {
  const unreachable = await networkProblem(url);
  if (unreachable) return { why: unreachable, kind: 'network' };
  if (compiles) {
    const missing = missingBuildTools();
    if (missing.length > 0) {
      const verb = missing.length === 1 ? 'is' : 'are';
      return {
        why: `compiling needs ${missing.join(', ')}, which ${verb} not installed`,
        kind: 'tools',
        missing,
      };
    }
  }
  const networkLine = output.split('\n').find((line) => NETWORK_OUTPUT.test(line));
  if (networkLine) return { why: `a download failed (${networkLine.trim()})`, kind: 'network' };
  return { why: `it stopped with: ${lastErrorLine(output)}`, kind: 'unknown' };
}

/** The most telling line of a tool's output: the last one that says "error", else the last line. */
export function lastErrorLine(output) {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const errors = lines.filter((line) => /err/i.test(line));
  return (errors.at(-1) ?? lines.at(-1) ?? 'no output').slice(0, 300);
}
