/**
 * Architecture guard: src-main/core and src-main/relay run under plain Node (CLI, relay server, tests),
 * so neither they nor any local module they import may load `electron` — `require('electron')` outside
 * Electron would even try to download its binary. ESLint enforces the direct case; this test also
 * follows relative imports, so `core/x.ts -> ../window.ts -> electron` fails too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

import { ELECTRON, importsReachableFrom, ROOT, sourceFilesUnder } from './imports.js';

const GUARDED_DIRS = ['src-main/core', 'src-main/relay'];

/** Import chains (`a.ts -> b.ts -> electron`) from `entry` to electron, following local modules. */
function electronChains(entry: string): string[] {
  return importsReachableFrom([entry])
    .filter((edge) => ELECTRON.test(edge.specifier))
    .map((edge) => edge.chain);
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
