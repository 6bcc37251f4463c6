/**
 * `npm run dist`'s configuration (build/electron-builder.yml, package.json, the release workflow):
 * - as data, without building: electron-builder's own schema accepts it, one installer format per
 *   system, hardened fuses, every native module of `dependencies` unpacked, only the build shipped;
 * - packaged for real, offline, for Linux's unpacked `dir` target with a fake Electron dist that carries a
 *   fuse wire as Electron's binary does: electron-builder flips the fuses in it, writes app.asar with only
 *   the build, and unpacks the native addons beside it. The installers themselves (AppImage, deb, NSIS,
 *   DMG) need Electron's real zip and tools downloaded from GitHub: only the release workflow makes them.
 */
import { listPackage, statFile, extractFile } from '@electron/asar';
import { Ajv } from 'ajv';
import type { Configuration } from 'electron-builder';
import { load } from 'js-yaml';
import { minimatch } from 'minimatch';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, createSandbox, type Sandbox } from './sandbox.js';

const readYaml = (path: string): unknown => load(readFileSync(join(ROOT, path), 'utf8'));
const config = readYaml('build/electron-builder.yml') as Configuration;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  main: string;
  author?: string;
  homepage?: string;
  dependencies: Record<string, string>;
  scripts: Record<string, string>;
};

/** The package folder `name` resolves to from `fromDir`, as Node's resolution walks up node_modules. */
function packageDir(name: string, fromDir: string): string {
  for (let dir = fromDir; dir.startsWith(resolve(ROOT)); dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
  }
  throw new Error(`${name} is not installed (from ${fromDir})`);
}

/** Every package of the production dependency tree that compiles an addon (has a binding.gyp). */
function nativeProductionModules(): string[] {
  const native = new Set<string>();
  const seen = new Set<string>();
  const visit = (name: string, fromDir: string): void => {
    const dir = packageDir(name, fromDir);
    if (seen.has(dir)) return;
    seen.add(dir);
    if (existsSync(join(dir, 'binding.gyp'))) native.add(name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dependency of Object.keys(manifest.dependencies ?? {})) visit(dependency, dir);
  };
  for (const name of Object.keys(pkg.dependencies)) visit(name, ROOT);
  return [...native].sort();
}

/** Whether electron-builder's `files` patterns ship `path`: the last pattern that matches decides. */
function shipped(path: string): boolean {
  let included = false;
  for (const pattern of (config.files ?? []) as string[]) {
    const negated = pattern.startsWith('!');
    if (minimatch(path, negated ? pattern.slice(1) : pattern, { dot: true })) included = !negated;
  }
  return included;
}

const asarUnpack = (config.asarUnpack ?? []) as string[];
const unpacked = (path: string): boolean =>
  asarUnpack.some((pattern) => minimatch(path, pattern, { dot: true }));

describe('electron-builder configuration, as data', () => {
  it("is valid against electron-builder's own schema", () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'node_modules/app-builder-lib/scheme.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate(config), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('makes AppImage and deb on Linux, NSIS on Windows, DMG on macOS', () => {
    expect(config.linux?.target).toEqual(['AppImage', 'deb']);
    expect(config.win?.target).toEqual(['nsis']);
    expect(config.mac?.target).toEqual(['dmg']);
  });

  it('hardens the Electron fuses', () => {
    expect(config.electronFuses).toEqual({
      runAsNode: false,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      grantFileProtocolExtraPrivileges: false,
    });
  });

  it('rebuilds and unpacks every native module of the production dependencies', () => {
    const native = nativeProductionModules();
    expect(native).toEqual(['better-sqlite3', 'keytar']);
    expect(config.npmRebuild).toBe(true);
    for (const name of native) {
      for (const file of ['package.json', 'lib/index.js', 'build/Release/addon.node']) {
        expect(unpacked(`node_modules/${name}/${file}`), `${name}/${file} unpacked`).toBe(true);
      }
    }
    expect(unpacked('node_modules/ws/index.js'), 'plain JavaScript stays in the archive').toBe(false);
  });

  it('ships the build output and nothing of the sources, tests or tooling', () => {
    expect(shipped(pkg.main.replace(/^\.\//, '')), 'package.json main').toBe(true);
    for (const path of ['out/main/index.js', 'out/preload/index.cjs', 'out/renderer/index.html']) {
      expect(shipped(path), path).toBe(true);
    }
    for (const path of [
      'src-main/index.ts',
      'src-renderer/App.svelte',
      'tests/start/start.test.ts',
      'scripts/start.mjs',
      'bench/run.ts',
      'docs/PROTOCOL.md',
      '.ci/run',
      'out/main/index.js.map',
      'node_modules/better-sqlite3/deps/sqlite3/sqlite3.c',
      'node_modules/better-sqlite3/build/Release/obj.target/better_sqlite3.o',
    ]) {
      expect(shipped(path), path).toBe(false);
    }
  });

  it('names an author and a homepage, which the deb and the About box show', () => {
    expect(pkg.author).toBeTruthy();
    expect(pkg.homepage).toMatch(/^https:\/\//);
  });

  it('has a release workflow building the installers on Linux, Windows and macOS', () => {
    const workflow = readYaml('.github/workflows/release.yml') as {
      on: Record<string, unknown>;
      jobs: Record<
        string,
        { strategy?: { matrix: { os: string[] } }; steps: { run?: string; uses?: string }[] }
      >;
    };
    expect(Object.keys(workflow.on)).toContain('push');
    const build = workflow.jobs['installers']!;
    expect(build.strategy?.matrix.os).toEqual(['ubuntu-latest', 'windows-latest', 'macos-latest']);
    const runs = build.steps.map((step) => step.run).filter(Boolean);
    expect(runs).toContain('npm ci');
    expect(runs).toContain('npm run dist');
    expect(pkg.scripts['dist']).toBe(
      'node scripts/native-abi.mjs electron && electron-vite build && electron-builder --config build/electron-builder.yml --publish never',
    );
  });
});

/** Electron's fuse wire marker (@electron/fuses' SENTINEL): the wire's version, length and states follow. */
const FUSE_SENTINEL = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
/** Fuse positions in wire version 1 (electron/fuses config.ts, FuseV1Options). */
const FUSE = {
  runAsNode: 0,
  enableCookieEncryption: 1,
  enableNodeOptionsEnvironmentVariable: 2,
  enableNodeCliInspectArguments: 3,
  enableEmbeddedAsarIntegrityValidation: 4,
  onlyLoadAppFromAsar: 5,
  loadBrowserProcessSpecificV8Snapshot: 6,
  grantFileProtocolExtraPrivileges: 7,
};
/** Electron's defaults for those eight fuses ('1' on, '0' off): what an unhardened app ships. */
const ELECTRON_DEFAULT_WIRE = '10110001';

/** A fake Electron dist: an executable carrying a fuse wire with Electron's default states. */
function fakeElectronWithFuses(dir: string): void {
  mkdirSync(dir);
  const wire = Buffer.concat([
    Buffer.from('#!/bin/sh\nexit 0\n'),
    Buffer.from(FUSE_SENTINEL),
    Buffer.from([1, ELECTRON_DEFAULT_WIRE.length]),
    Buffer.from(ELECTRON_DEFAULT_WIRE),
    Buffer.from('\n'),
  ]);
  writeFileSync(join(dir, 'electron'), wire, { mode: 0o755 });
  writeFileSync(join(dir, 'LICENSE'), 'fake Electron for tests/start/installers.test.ts\n');
}

/** The fuse states in a packaged executable, by name: '1' on, '0' off. */
function fusesOf(executable: string): Record<string, string> {
  const binary = readFileSync(executable);
  const at = binary.indexOf(FUSE_SENTINEL);
  expect(at, 'fuse sentinel').toBeGreaterThanOrEqual(0);
  const wire = at + FUSE_SENTINEL.length;
  expect(binary[wire], 'fuse wire version').toBe(1);
  return Object.fromEntries(
    Object.entries(FUSE).map(([name, index]) => [name, String.fromCharCode(binary[wire + 2 + index]!)]),
  );
}

describe('electron-builder packaging (Linux dir target, fake Electron dist, offline)', () => {
  let sandbox: Sandbox;
  let appDir: string;

  beforeAll(async () => {
    sandbox = createSandbox({ sources: true });
    const cp = (path: string) => sandbox.run('cp', ['-r', join(ROOT, path), join(sandbox.root, path)]);
    await cp('build');
    const electronDist = join(sandbox.root, 'fake-electron-dist');
    fakeElectronWithFuses(electronDist);
    const vite = await sandbox.run(process.execPath, [
      'node_modules/electron-vite/bin/electron-vite.js',
      'build',
    ]);
    expect(vite.status, vite.stderr).toBe(0);
    const builder = await sandbox.run(process.execPath, [
      'node_modules/electron-builder/cli.js',
      '--config',
      'build/electron-builder.yml',
      '--linux',
      'dir',
      '--publish',
      'never',
      `-c.electronDist=${electronDist}`,
      // The rebuild for Electron downloads its headers: proven by `npm start`'s tests, not here.
      '-c.npmRebuild=false',
    ]);
    expect(builder.status, `${builder.stdout}\n${builder.stderr}`).toBe(0);
    appDir = join(sandbox.root, 'dist/linux-unpacked');
  }, 180_000);

  afterAll(() => sandbox?.remove());

  it('flips the fuses of the packaged executable', () => {
    expect(
      fusesOf(join(sandbox.root, 'fake-electron-dist/electron')),
      'the source is untouched',
    ).toMatchObject({
      runAsNode: '1',
      onlyLoadAppFromAsar: '0',
    });
    expect(fusesOf(join(appDir, 'sealed'))).toEqual({
      runAsNode: '0',
      enableCookieEncryption: '0',
      enableNodeOptionsEnvironmentVariable: '0',
      enableNodeCliInspectArguments: '0',
      enableEmbeddedAsarIntegrityValidation: '1',
      onlyLoadAppFromAsar: '1',
      loadBrowserProcessSpecificV8Snapshot: '0',
      grantFileProtocolExtraPrivileges: '0',
    });
  });

  it('puts only the build and package.json in app.asar, beside the production node_modules', () => {
    const archive = join(appDir, 'resources/app.asar');
    const entries = listPackage(archive, { isPack: false });
    const own = entries.filter((entry) => !entry.startsWith('/node_modules'));
    expect(own).toContain('/out/main/index.js');
    expect(own).toContain('/out/preload/index.cjs');
    expect(own).toContain('/out/renderer/index.html');
    expect(
      own.filter((entry) => entry !== '/package.json' && entry !== '/out' && !entry.startsWith('/out/')),
    ).toEqual([]);
    expect(entries.filter((entry) => entry.endsWith('.map'))).toEqual([]);
    expect(
      entries.some((entry) => entry.startsWith('/node_modules/electron/')),
      'devDependencies stay out',
    ).toBe(false);
    const manifest = JSON.parse(extractFile(archive, 'package.json').toString('utf8'));
    expect(manifest).toMatchObject({ main: pkg.main, author: pkg.author, homepage: pkg.homepage });
  });

  it('unpacks the native addons next to the archive', () => {
    const archive = join(appDir, 'resources/app.asar');
    for (const addon of [
      'better-sqlite3/build/Release/better_sqlite3.node',
      'keytar/build/Release/keytar.node',
    ]) {
      expect(statFile(archive, `node_modules/${addon}`)).toMatchObject({ unpacked: true });
      expect(existsSync(join(appDir, 'resources/app.asar.unpacked/node_modules', addon)), addon).toBe(true);
    }
    expect(existsSync(join(appDir, 'resources/app.asar.unpacked/node_modules/better-sqlite3/deps'))).toBe(
      false,
    );
  });
});
