/**
 * `npm test` checks its system packages first (scripts/prerequisites.mjs): run as a user would, once on
 * this machine (where CI installs them all) and once with a PATH on which no tool can be found.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ROOT } from './sandbox.js';

function prerequisites(env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['scripts/prerequisites.mjs'], { cwd: ROOT, env, encoding: 'utf8' });
}

describe('npm test prerequisites', () => {
  it('finds every system package on this machine', () => {
    const result = prerequisites(process.env);
    expect(result.stderr).toBe('prerequisites: every system package npm test needs is installed\n');
    expect(result.status).toBe(0);
  });

  it('names each missing package and prints the one command that installs them', () => {
    const emptyPath = mkdtempSync(join(tmpdir(), 'sealed-empty-path-'));
    try {
      const result = prerequisites({ ...process.env, PATH: emptyPath });
      expect(result.status).toBe(1);
      const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
      // chromium is found by its file, not on PATH, so it is still there.
      expect(result.stderr).toBe(
        [
          'npm test needs system packages that are not installed:',
          '  fonts-noto-color-emoji: screenshots draw emoji',
          '  dbus: a private D-Bus session for the keychain tests',
          '  gnome-keyring: a Secret Service for the keychain tests',
          '  python3: node-gyp, to build native modules',
          '  make: node-gyp, to build native modules',
          '  g++: node-gyp, to build native modules',
          "  pkg-config: keytar's build finds libsecret with it",
          '  libsecret-1-dev: keytar is built against libsecret',
          '  util-linux: terminal tests run the CLIs under `script`; start tests run `npm start` offline with `unshare`',
          '  iproute2: the LAN tests build simulated computers with `ip netns` and veth links',
          '  tcpdump: the LAN tests capture what crosses the simulated network',
          '  nftables: the LAN tests block multicast and addresses with `nft`',
          "  openssl: the relay's TLS tests make self-signed certificates with `openssl req`",
          'Install them (Debian/Ubuntu), then run npm test again:',
          `  ${sudo}apt-get install -y fonts-noto-color-emoji dbus gnome-keyring python3 make g++ pkg-config libsecret-1-dev util-linux iproute2 tcpdump nftables openssl`,
          '',
        ].join('\n'),
      );
    } finally {
      rmSync(emptyPath, { recursive: true, force: true });
    }
  });
});
