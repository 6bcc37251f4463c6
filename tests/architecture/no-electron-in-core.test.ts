/**
 * Architecture guard: src-main/core and src-main/relay run under plain Node (CLI, relay server, tests),
 * so neither they nor any local module they import may load `electron` — `require('electron')` outside
 * Electron would even try to download its binary. ESLint enforces the direct case; this test also
 * follows relative imports, so `core/x.ts -> ../window.ts -> electron` fails too.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GUARDED_DIRS = ['src-main/core', 'src-main/relay'];
const SOURCE = /\.(?:[cm]?ts|[cm]?js)$/;
const ELECTRON = /^electron(?:\/|$)/;

function sourceFilesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => SOURCE.test(path) && !path.endsWith('.d.ts') && statSync(path).isFile())
    .sort();
}

/** Every module specifier of a file: imports, exports, `import type`, `require()` and `import()`. */
function specifiersOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((ref) => ref.fileName);
}

/** Resolves a relative specifier the way TypeScript's NodeNext/Bundler resolution would find a source file. */
function resolveLocal(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier);
  const candidates = [
    base,
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    base.replace(/\.cjs$/, '.cts'),
    `${base}.ts`,
    join(base, 'index.ts'),
  ];
  return candidates.find((path) => existsSync(path) && statSync(path).isFile());
}

/** Import chains (`a.ts -> b.ts -> electron`) from `entry` to electron, following local modules. */
function electronChains(entry: string): string[] {
  const chains: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string, path: string[]): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const here = [...path, relative(ROOT, file)];
    for (const specifier of specifiersOf(file)) {
      if (ELECTRON.test(specifier)) chains.push([...here, specifier].join(' -> '));
      else if (specifier.startsWith('.')) {
        const target = resolveLocal(file, specifier);
        if (target && !target.includes('node_modules')) visit(target, here);
      }
    }
  };
  visit(entry, []);
  return chains;
}

describe('architecture: no electron in core or relay', () => {
  it('guarded directories exist', () => {
    for (const dir of GUARDED_DIRS) expect(existsSync(join(ROOT, dir)), dir).toBe(true);
  });

  it('finds source files to scan', () => {
    const files = GUARDED_DIRS.flatMap((dir) => sourceFilesUnder(join(ROOT, dir)));
    expect(files.length).toBeGreaterThan(0);
  });

  it('no module in core or relay reaches electron, directly or through local imports', () => {
    const files = GUARDED_DIRS.flatMap((dir) => sourceFilesUnder(join(ROOT, dir)));
    const chains = files.flatMap(electronChains);
    expect(chains).toEqual([]);
  });

  it('the scanner itself sees electron imports in every syntax', () => {
    const samples = [
      "import { app } from 'electron';",
      "import type { Session } from 'electron';",
      "export { ipcMain } from 'electron/main';",
      "import 'electron';",
      "const { app } = require('electron');",
      "const e = await import('electron');",
      "import e = require('electron');",
    ];
    for (const sample of samples) {
      const found = ts.preProcessFile(sample, true, true).importedFiles.map((ref) => ref.fileName);
      expect(
        found.some((name) => ELECTRON.test(name)),
        sample,
      ).toBe(true);
    }
    const comment = ts.preProcessFile("// never require('electron') here\nexport {};", true, true);
    expect(comment.importedFiles).toEqual([]);
  });
});
