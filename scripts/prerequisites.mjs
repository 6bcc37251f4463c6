#!/usr/bin/env node
/**
 * `node scripts/prerequisites.mjs`: the system packages `npm test` needs on Linux, checked before any
 * test runs, so a missing one is named with the exact install command instead of failing deep inside a
 * test. `npm test` runs it first; exit status 1 when something is missing.
 *
 * Each requirement is checked by what the tests use (a command on PATH, a file, a font fontconfig
 * knows), and named by the Debian/Ubuntu package that provides it. macOS and Windows need none of them:
 * their keychains need no service, and the native modules install prebuilt or with the platform's tools.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { aptInstall, hasCommand, hasLibsecretHeaders } from './setup-step.mjs';

/** True when fontconfig knows a font of this family (what Chromium asks when it draws text). */
function hasFontFamily(family, env) {
  const result = spawnSync('fc-list', [`:family=${family}`, 'family'], { encoding: 'utf8', env });
  return result.status === 0 && result.stdout.trim() !== '';
}

/** What the tests need: the Debian package, why, and how to see it is there. */
export const REQUIREMENTS = [
  {
    pkg: 'chromium',
    why: 'renderer and browser tests drive /usr/bin/chromium',
    present: () => existsSync('/usr/bin/chromium'),
  },
  {
    pkg: 'fonts-noto-color-emoji',
    why: 'screenshots draw emoji',
    present: (env) => hasFontFamily('Noto Color Emoji', env),
  },
  {
    pkg: 'dbus',
    why: 'a private D-Bus session for the keychain tests',
    present: (env) => hasCommand('dbus-run-session', env),
  },
  {
    pkg: 'gnome-keyring',
    why: 'a Secret Service for the keychain tests',
    present: (env) => hasCommand('gnome-keyring-daemon', env),
  },
  { pkg: 'python3', why: 'node-gyp, to build native modules', present: (env) => hasCommand('python3', env) },
  { pkg: 'make', why: 'node-gyp, to build native modules', present: (env) => hasCommand('make', env) },
  {
    pkg: 'g++',
    why: 'node-gyp, to build native modules',
    present: (env) => hasCommand('g++', env) || hasCommand('c++', env),
  },
  {
    pkg: 'pkg-config',
    why: "keytar's build finds libsecret with it",
    present: (env) => hasCommand('pkg-config', env),
  },
  {
    pkg: 'libsecret-1-dev',
    why: 'keytar is built against libsecret',
    present: (env) => hasLibsecretHeaders(env),
  },
  {
    pkg: 'util-linux',
    why: 'terminal tests run the CLIs under `script`; start tests run `npm start` offline with `unshare`',
    present: (env) => hasCommand('script', env) && hasCommand('unshare', env),
  },
  {
    pkg: 'iproute2',
    why: 'the LAN tests build simulated computers with `ip netns` and veth links',
    present: (env) => hasCommand('ip', env),
  },
  {
    pkg: 'tcpdump',
    why: 'the LAN tests capture what crosses the simulated network',
    present: (env) => hasCommand('tcpdump', env),
  },
  {
    pkg: 'nftables',
    why: 'the LAN tests block multicast and addresses with `nft`',
    present: (env) => hasCommand('nft', env),
  },
  {
    pkg: 'openssl',
    why: "the relay's TLS tests make self-signed certificates with `openssl req`",
    present: (env) => hasCommand('openssl', env),
  },
];

/** The requirements not met on this system (none off Linux). */
export function missingPrerequisites(env = process.env, platform = process.platform) {
  if (platform !== 'linux') return [];
  return REQUIREMENTS.filter((requirement) => !requirement.present(env));
}

/** The message for `missing`: one line per package and the command that installs them all. */
export function describeMissing(missing) {
  const lines = missing.map(({ pkg, why }) => `  ${pkg}: ${why}`);
  return [
    `npm test needs ${missing.length === 1 ? 'a system package' : 'system packages'} that ${missing.length === 1 ? 'is' : 'are'} not installed:`,
    ...lines,
    `Install ${missing.length === 1 ? 'it' : 'them'} (Debian/Ubuntu), then run npm test again:`,
    `  ${aptInstall(missing.map(({ pkg }) => pkg))}`,
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const missing = missingPrerequisites();
  if (missing.length > 0) {
    console.error(describeMissing(missing));
    process.exit(1);
  }
  console.error('prerequisites: every system package npm test needs is installed');
}
