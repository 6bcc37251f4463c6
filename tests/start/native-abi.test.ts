/**
 * scripts/native-abi.mjs between two runs, on a disposable copy of the project (tests/start/sandbox.ts),
 * offline (`unshare --net`), so nothing can come from a download:
 * - a rebuild stopped with Ctrl-C (SIGINT to its whole process group) puts the previous build back at once;
 * - a rebuild killed half-way (SIGKILL: a crash, a closed terminal) leaves the build set aside; the next
 *   run, whatever its target, puts it back first;
 * - a build kept from an earlier switch is switched back to by renaming, without any rebuild.
 */
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createSandbox, netnsUnavailable, type Sandbox } from './sandbox.js';

const NODE_ABI = process.versions.modules;

let sandbox: Sandbox | undefined;
afterEach(() => {
  sandbox?.remove();
  sandbox = undefined;
});

beforeAll(() => {
  const problem = netnsUnavailable();
  if (problem) throw new Error(`These tests cut the network with an empty namespace, but ${problem}.`);
});

const nativeAbi = (box: Sandbox, runtime: string) =>
  box.run('unshare', ['--net', process.execPath, 'scripts/native-abi.mjs', runtime]);

/** Starts `native-abi.mjs electron` offline and resolves once it has set the builds aside and is rebuilding. */
async function rebuildingForElectron(box: Sandbox) {
  const child = box.start('unshare', ['--net', process.execPath, 'scripts/native-abi.mjs', 'electron']);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  // The rebuild's log is opened once the builds are set aside.
  const log = join(box.root, 'node_modules/.cache/sealed/native-electron.log');
  for (let waited = 0; !existsSync(log); waited += 10) {
    expect(waited, 'the rebuild never started').toBeLessThan(30_000);
    await sleep(10);
  }
  return { child, closed, stderr: () => stderr };
}

describe('native-abi between runs', () => {
  it('puts the previous build back at once when the rebuild is stopped with Ctrl-C', async () => {
    sandbox = createSandbox();
    const box = sandbox;
    const before = box.addonDigests();

    const rebuild = await rebuildingForElectron(box);
    process.kill(-rebuild.child.pid!, 'SIGINT'); // what the terminal sends the foreground group
    const status = await rebuild.closed;

    expect(status).toBe(1);
    expect(rebuild.stderr()).toMatch(
      /\nnative-abi: the rebuild of better-sqlite3 and keytar for Electron [\d.]+ was stopped, because it received SIGINT\. The previous build of better-sqlite3 and keytar was put back\. The full output is in node_modules\/\.cache\/sealed\/native-electron\.log\. To try again, run: node scripts\/native-abi\.mjs electron\n$/,
    );
    expect(box.addonDigests()).toEqual(before);
    expect(box.nodeBuildLoads()).toMatchObject({ status: 0, stdout: 'node build loads\n' });
  });

  it('puts back the build a killed rebuild left aside, on the next run', async () => {
    sandbox = createSandbox();
    const box = sandbox;
    const before = box.addonDigests();
    const moduleDir = join(box.root, 'node_modules/better-sqlite3');

    const rebuild = await rebuildingForElectron(box);
    process.kill(-rebuild.child.pid!, 'SIGKILL'); // no chance to clean up: a crash, a closed terminal
    await rebuild.closed;
    expect(existsSync(join(moduleDir, 'build.sealed-previous')), 'left aside').toBe(true);
    expect(box.nodeBuildLoads().status, 'broken until the next run').not.toBe(0);

    const next = await nativeAbi(box, 'node');

    expect(next.stderr).toBe(
      'native-abi: put back the build of better-sqlite3, keytar left aside by an interrupted rebuild\n' +
        'native-abi: better-sqlite3, keytar already load in node\n',
    );
    expect(next.status).toBe(0);
    expect(box.addonDigests()).toEqual(before);
    expect(box.nodeBuildLoads()).toMatchObject({ status: 0, stdout: 'node build loads\n' });
  });

  it('switches back to a build kept from an earlier switch, with no rebuild and no network', async () => {
    sandbox = createSandbox();
    const box = sandbox;
    const before = box.addonDigests();
    const moduleDir = join(box.root, 'node_modules/better-sqlite3');
    // What an `npm start` leaves: the Node build kept under its ABI, and in build/ one that Node cannot
    // load (Electron's; here none at all, as an interrupted rebuild of old left it).
    renameSync(join(moduleDir, 'build'), join(moduleDir, `build.sealed-abi-${NODE_ABI}`));
    expect(box.nodeBuildLoads().status).not.toBe(0);

    const { status, stderr } = await nativeAbi(box, 'node');

    expect(stderr).toBe(
      `native-abi: switched better-sqlite3 to the build for Node ${process.version} (ABI ${NODE_ABI}) kept from an earlier switch\n` +
        'native-abi: better-sqlite3, keytar now load in node\n',
    );
    expect(status).toBe(0);
    expect(box.addonDigests(), 'the very build that was kept').toEqual(before);
    expect(box.nodeBuildLoads()).toMatchObject({ status: 0, stdout: 'node build loads\n' });
    expect(existsSync(join(moduleDir, `build.sealed-abi-${NODE_ABI}`))).toBe(false);
  });
});
