/**
 * `npm start` (scripts/start.mjs) as a newcomer meets it, each run on a disposable copy of the project
 * (tests/start/sandbox.ts) with a HOME of its own, so no download cache of this machine helps:
 * - offline on a fresh install: stops at the Electron download with one paragraph, node_modules intact;
 * - offline with Electron there: the native rebuild for Electron fails (its headers are a download), and
 *   the very Node build that was there before is put back;
 * - with a fake Electron dist (ELECTRON_OVERRIDE_DIST_PATH, as Electron's own index.js reads it) whose ABI
 *   is this Node's: every step passes and the app built into out/ is what Electron is asked to open.
 * "Offline" is an empty network namespace (`unshare --net`), as real as it gets without unplugging.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, createSandbox, fakeElectronDist, netnsUnavailable, type Sandbox } from './sandbox.js';

const ELECTRON_VERSION = JSON.parse(readFileSync(join(ROOT, 'node_modules/electron/package.json'), 'utf8'))
  .version as string;

/** The lines the script printed that start with `prefix`. */
const linesOf = (output: string, prefix: string): string[] =>
  output.split('\n').filter((line) => line.startsWith(prefix));

/** The failure paragraph: the text after "start failed: ", on one line. */
function failureParagraph(stderr: string): string {
  const paragraphs = linesOf(stderr, 'start failed: ');
  expect(paragraphs, stderr).toHaveLength(1);
  return paragraphs[0]!.slice('start failed: '.length);
}

let sandbox: Sandbox | undefined;
afterEach(() => {
  sandbox?.remove();
  sandbox = undefined;
});

describe('npm start without network', () => {
  beforeAll(() => {
    const problem = netnsUnavailable();
    if (problem) throw new Error(`These tests cut the network with an empty namespace, but ${problem}.`);
  });

  it('on a fresh install, stops at the Electron download with one paragraph and leaves the Node build loading', async () => {
    sandbox = createSandbox();
    const before = sandbox.addonDigests();

    const { status, stderr } = await sandbox.run('unshare', ['--net', process.execPath, 'scripts/start.mjs']);

    expect(status).toBe(1);
    expect(linesOf(stderr, 'start: 1/4')).toEqual([
      expect.stringContaining(`downloading Electron ${ELECTRON_VERSION}`),
    ]);
    expect(linesOf(stderr, 'start: 2/4'), 'no later step runs').toEqual([]);
    const paragraph = failureParagraph(stderr);
    expect(paragraph).toMatch(
      new RegExp(
        `^Electron ${ELECTRON_VERSION.replaceAll('.', '\\.')} is not installed yet and could not be downloaded, because the network is unreachable: github\\.com cannot be resolved \\((EAI_AGAIN|ENOTFOUND)\\)\\.`,
      ),
    );
    expect(paragraph).toContain('The native modules and the rest of node_modules were not touched.');
    expect(paragraph).toMatch(/then run: npm start$/);
    // The installer's own words are kept in the log it names.
    const log = /The full output is in (\S+)\./.exec(paragraph)?.[1];
    expect(log).toBeDefined();
    expect(readFileSync(join(sandbox.root, log!), 'utf8')).toContain('fetch failed');

    expect(existsSync(join(sandbox.root, 'node_modules/electron/path.txt')), 'no half install').toBe(false);
    expect(sandbox.addonDigests()).toEqual(before);
    expect(sandbox.nodeBuildLoads()).toMatchObject({ status: 0, stdout: 'node build loads\n' });
  });

  it('with Electron present, fails the native rebuild for lack of headers and puts the Node build back', async () => {
    sandbox = createSandbox({ sources: true });
    const electron = fakeElectronDist(sandbox.root);
    const before = sandbox.addonDigests();

    const { status, stderr } = await sandbox.run(
      'unshare',
      ['--net', process.execPath, 'scripts/start.mjs'],
      {
        ELECTRON_OVERRIDE_DIST_PATH: electron.dir,
      },
    );

    expect(status).toBe(1);
    expect(linesOf(stderr, 'start: 1/4')).toEqual([
      `start: 1/4 Electron ${ELECTRON_VERSION} from ELECTRON_OVERRIDE_DIST_PATH (fake-electron-dist/electron)`,
    ]);
    expect(linesOf(stderr, 'start: 2/4')).toEqual([
      expect.stringMatching(/^start: 2\/4 rebuilding better-sqlite3, keytar for Electron [\d.]+ \(ABI \d+\)/),
    ]);
    expect(linesOf(stderr, 'start: 3/4'), 'the build does not start').toEqual([]);
    const paragraph = failureParagraph(stderr);
    expect(paragraph).toMatch(
      /^better-sqlite3 and keytar could not be rebuilt for Electron [\d.]+, because the network is unreachable: www\.electronjs\.org cannot be resolved \((EAI_AGAIN|ENOTFOUND)\)/,
    );
    expect(paragraph).toContain(
      'The previous build of better-sqlite3 and keytar was put back, so npm test, npm run chat and npm run relay still work.',
    );
    expect(paragraph).toMatch(/Connect to the internet, then run: npm start$/);
    // The rebuild really ran (and removed what it was rebuilding) before failing.
    const log = readFileSync(join(sandbox.root, 'node_modules/.cache/sealed/native-electron.log'), 'utf8');
    expect(log).toMatch(/(EAI_AGAIN|ENOTFOUND) www\.electronjs\.org/);
    expect(log).toMatch(/failed to rebuild .*better-sqlite3/);

    expect(sandbox.addonDigests(), 'the very same Node build').toEqual(before);
    const chat = await sandbox.run('npm', ['run', '--silent', 'chat', '--', '--help']);
    expect(chat.stderr, 'nothing to repair first').not.toContain('native-abi');
    expect(chat).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage: npm run chat/) });
    expect(sandbox.nodeBuildLoads()).toMatchObject({ status: 0, stdout: 'node build loads\n' });
    expect(existsSync(join(sandbox.root, 'node_modules/better-sqlite3/build.sealed-previous'))).toBe(false);
    expect(electron.record && existsSync(electron.record), 'Electron is never started').toBe(false);
  });
});

describe('npm start with Electron installed', () => {
  it('builds the app and launches Electron on it (a fake Electron dist with this Node ABI)', async () => {
    sandbox = createSandbox({ electronAbi: process.versions.modules, sources: true });
    const electron = fakeElectronDist(sandbox.root);

    const { status, stderr } = await sandbox.run(process.execPath, ['scripts/start.mjs'], {
      ELECTRON_OVERRIDE_DIST_PATH: electron.dir,
    });

    expect(status, stderr).toBe(0);
    expect(linesOf(stderr, 'start: ').filter((line) => !line.startsWith('start: note: '))).toEqual([
      `start: 1/4 Electron ${ELECTRON_VERSION} from ELECTRON_OVERRIDE_DIST_PATH (fake-electron-dist/electron)`,
      `start: 2/4 better-sqlite3 and keytar already load in Electron ${ELECTRON_VERSION} (ABI ${process.versions.modules})`,
      'start: 3/4 building the app into out/ with electron-vite (output in node_modules/.cache/sealed/build.log)',
      'start: 4/4 opening the app: fake-electron-dist/electron with out/main/index.js',
    ]);
    const launch = JSON.parse(readFileSync(electron.record, 'utf8'));
    expect(launch).toEqual({
      argv: ['.'],
      cwd: sandbox.root,
      rendererUrl: null,
      main: join(sandbox.root, 'out/main/index.js'),
      mainExists: true,
    });
    for (const built of ['out/main/index.js', 'out/preload/index.cjs', 'out/renderer/index.html']) {
      expect(existsSync(join(sandbox.root, built)), built).toBe(true);
    }
  });

  it('npm run dev: the same first steps, then the dev server and Electron on it', async () => {
    sandbox = createSandbox({ electronAbi: process.versions.modules, sources: true });
    const electron = fakeElectronDist(sandbox.root);

    const { status, stderr } = await sandbox.run(process.execPath, ['scripts/start.mjs', '--dev'], {
      ELECTRON_OVERRIDE_DIST_PATH: electron.dir,
    });

    expect(status, stderr).toBe(0);
    expect(linesOf(stderr, 'start: ').filter((line) => !line.startsWith('start: note: '))).toEqual([
      `start: 1/3 Electron ${ELECTRON_VERSION} from ELECTRON_OVERRIDE_DIST_PATH (fake-electron-dist/electron)`,
      `start: 2/3 better-sqlite3 and keytar already load in Electron ${ELECTRON_VERSION} (ABI ${process.versions.modules})`,
      'start: 3/3 starting the dev server and fake-electron-dist/electron (electron-vite dev, reloads on change)',
    ]);
    const launch = JSON.parse(readFileSync(electron.record, 'utf8'));
    expect(launch).toMatchObject({
      argv: ['.'],
      cwd: sandbox.root,
      rendererUrl: expect.stringMatching(/^http:\/\/localhost:\d+\/?$/),
      mainExists: true,
    });
  });
});
