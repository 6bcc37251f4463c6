#!/usr/bin/env node
/**
 * `npm test` [-- vitest arguments]: the system packages checked (`prerequisites.mjs`: the exact install
 * command for what is missing), native modules built for Node, then `npm run check`, then vitest with a
 * real Secret Service for the keychain (keytar) tests.
 *
 * The keychain: when the current D-Bus session already has a Secret Service that answers (a desktop
 * session with an unlocked keyring), the tests use it. Otherwise (CI, ssh, containers) they run in a
 * private session: `dbus-run-session` starts a bus for this run only, and `gnome-keyring-daemon`
 * unlocks a throwaway login keyring (password "pw", kept in a temporary XDG_DATA_HOME so a real
 * keyring is never touched). Both must be installed: missing ones fail the run, naming the Debian
 * packages; the keychain tests are never skipped silently. vitest's exit status is the script's.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureNativeAbi } from './native-abi.mjs';
import { describeMissing, missingPrerequisites } from './prerequisites.mjs';
import { StepError } from './setup-step.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const isWindows = process.platform === 'win32';
const npm = isWindows ? 'npm.cmd' : 'npm';
const npx = isWindows ? 'npx.cmd' : 'npx';

/** A read-only keychain call: succeeds only if a Secret Service answers on the current session bus. */
const KEYCHAIN_PROBE =
  "require('keytar').findCredentials('sealed-test-probe').then(() => process.exit(0), () => process.exit(1));";

function fail(message) {
  console.error(`test: ${message}`);
  process.exit(1);
}

/** Runs a command with inherited stdio and returns its exit status (signals count as failure). */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', shell: isWindows, ...options });
  if (result.error) fail(`${command}: ${result.error.message}`);
  return result.status ?? 1;
}

function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** True when keytar reaches a Secret Service on the session bus this process already has. */
function sessionKeychainWorks() {
  if (!process.env['DBUS_SESSION_BUS_ADDRESS']) return false;
  const probe = spawnSync(process.execPath, ['-e', KEYCHAIN_PROBE], {
    cwd: ROOT,
    stdio: 'ignore',
    timeout: 15_000,
  });
  return probe.status === 0;
}

/** vitest under a private D-Bus session with an unlocked, throwaway gnome-keyring. */
function vitestInPrivateKeyring(vitestArgs) {
  const missing = [
    ['dbus-run-session', 'dbus'],
    ['gnome-keyring-daemon', 'gnome-keyring'],
  ].filter(([command]) => !hasCommand(command));
  if (missing.length > 0) {
    fail(
      `the keychain tests need a Secret Service, but ${missing.map(([command]) => command).join(' and ')} ` +
        `${missing.length === 1 ? 'is' : 'are'} not installed. On Debian/Ubuntu: ` +
        `sudo apt-get install ${missing.map(([, pkg]) => pkg).join(' ')}`,
    );
  }
  const keyringHome = mkdtempSync(join(tmpdir(), 'sealed-keyring-'));
  // In the private session: unlock (creating it) a login keyring in the temporary data home, then
  // replace the shell with vitest so its exit status is the session's, and so the script's.
  const script =
    'printf pw | XDG_DATA_HOME="$SEALED_KEYRING_HOME" gnome-keyring-daemon --unlock --components=secrets >/dev/null' +
    ' || { echo "test: gnome-keyring-daemon could not start an unlocked keyring" >&2; exit 1; }\n' +
    'exec npx vitest run "$@"';
  try {
    return run('dbus-run-session', ['--', 'sh', '-c', script, 'sh', ...vitestArgs], {
      env: { ...process.env, SEALED_KEYRING_HOME: keyringHome },
    });
  } finally {
    rmSync(keyringHome, { recursive: true, force: true });
  }
}

async function main() {
  const vitestArgs = process.argv.slice(2);
  const missing = missingPrerequisites();
  if (missing.length > 0) fail(describeMissing(missing));
  try {
    await ensureNativeAbi('node', {
      retry: 'npm test',
      log: (line) => console.error(`test: native modules: ${line}`),
    });
  } catch (error) {
    fail(`native modules: ${error instanceof StepError ? error.toParagraph() : String(error)}`);
  }

  const checked = run(npm, ['run', 'check']);
  if (checked !== 0) process.exit(checked);

  let status;
  if (isWindows || process.platform === 'darwin') {
    // Windows Credential Manager and the macOS Keychain need no extra service.
    status = run(npx, ['vitest', 'run', ...vitestArgs]);
  } else if (sessionKeychainWorks()) {
    console.error("test: keychain: this session's Secret Service");
    status = run(npx, ['vitest', 'run', ...vitestArgs]);
  } else {
    console.error('test: keychain: a private D-Bus session with a throwaway gnome-keyring');
    status = vitestInPrivateKeyring(vitestArgs);
  }
  process.exit(status);
}

await main();
