/**
 * Architecture guard: each runtime imports only what it has (shared STYLE.md, "Every file knows where it
 * runs"). The sandboxed preload gets `electron` and the shared contract, nothing else; the renderer gets
 * no Node built-in, no `electron` and no main-process module; the main process's plain-Node parts
 * (services, storage, the shell's policy and data modules) never reach `electron`, so Node tests can
 * import them. Imports are followed through local files, so an indirect path fails too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ELECTRON, importsReachableFrom, isNodeBuiltin, ROOT, sourceFilesUnder } from './imports.js';

const CONTRACT = 'src-main/shared/messenger-api.ts';

/** Packages that exist only for the main process (native, sockets, mDNS): never in preload or renderer. */
const MAIN_ONLY_PACKAGES = ['keytar', 'better-sqlite3', 'ws', 'multicast-dns', 'ipaddr.js'];

const isMainOnlyPackage = (specifier: string): boolean =>
  MAIN_ONLY_PACKAGES.some((name) => specifier === name || specifier.startsWith(`${name}/`));

/** Main-process code that must stay loadable by plain Node (tests, CLI): no `electron` on any path. */
const PLAIN_NODE = [
  'src-main/shared',
  'src-main/services',
  'src-main/storage',
  'src-main/cli',
  'src-main/security-policy.ts',
  'src-main/shell/unread.ts',
  'src-main/shell/icon-png.ts',
];

const filesOf = (path: string): string[] =>
  path.endsWith('.ts') ? [join(ROOT, path)] : sourceFilesUnder(join(ROOT, path));

describe('architecture: the preload bridges and nothing else', () => {
  const edges = importsReachableFrom(sourceFilesUnder(join(ROOT, 'src-preload')));

  it('has imports to check', () => {
    expect(edges.some((edge) => edge.specifier === 'electron')).toBe(true);
    expect(edges.some((edge) => edge.local === CONTRACT)).toBe(true);
  });

  it("imports only 'electron', its own files and the shared contract", () => {
    const stray = edges.filter((edge) => {
      if (edge.specifier === 'electron') return false;
      if (!edge.local) return true;
      return !(edge.local.startsWith('src-preload/') || edge.local === CONTRACT);
    });
    expect(stray.map((edge) => edge.chain)).toEqual([]);
  });

  it("only the entry file imports 'electron' (the bridge stays testable under Node)", () => {
    const electronImports = edges.filter((edge) => ELECTRON.test(edge.specifier));
    expect(electronImports.map((edge) => edge.from)).toEqual(['src-preload/index.ts']);
  });
});

describe('architecture: the renderer only displays', () => {
  const files = sourceFilesUnder(join(ROOT, 'src-renderer'));
  const edges = importsReachableFrom(files);

  it('finds renderer sources, Svelte components included', () => {
    expect(files.some((file) => file.endsWith('.svelte'))).toBe(true);
    expect(edges.length).toBeGreaterThan(0);
  });

  it('imports no Node built-in, no electron and no main-process package', () => {
    const forbidden = edges.filter(
      (edge) =>
        isNodeBuiltin(edge.specifier) || ELECTRON.test(edge.specifier) || isMainOnlyPackage(edge.specifier),
    );
    expect(forbidden.map((edge) => edge.chain)).toEqual([]);
  });

  it('reaches no main-process module but the shared contract', () => {
    const outside = edges.filter(
      (edge) =>
        edge.local && !edge.local.startsWith('src-renderer/') && !edge.local.startsWith('src-main/shared/'),
    );
    expect(outside.map((edge) => edge.chain)).toEqual([]);
  });
});

describe('architecture: plain-Node parts of the main process never reach electron', () => {
  it('the guarded paths exist', () => {
    for (const path of PLAIN_NODE) expect(existsSync(join(ROOT, path)), path).toBe(true);
  });

  it('no guarded module reaches electron, directly or through local imports', () => {
    const chains = importsReachableFrom(PLAIN_NODE.flatMap(filesOf))
      .filter((edge) => ELECTRON.test(edge.specifier))
      .map((edge) => edge.chain);
    expect(chains).toEqual([]);
  });
});

describe('architecture: the scanner', () => {
  it('recognises Node built-ins in every spelling', () => {
    for (const name of ['fs', 'node:fs', 'fs/promises', 'node:test', 'path', 'crypto', 'child_process']) {
      expect(isNodeBuiltin(name), name).toBe(true);
    }
    for (const name of ['svelte', 'qrcode', '@noble/ciphers', './fs', 'valibot']) {
      expect(isNodeBuiltin(name), name).toBe(false);
    }
  });
});
