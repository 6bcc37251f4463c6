/**
 * Import graph helpers for the architecture tests: every module specifier of a source file (TypeScript,
 * JavaScript or the `<script>` blocks of a Svelte component), resolved through local files the way
 * TypeScript's NodeNext/Bundler resolution finds a source file.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SOURCE = /\.(?:[cm]?ts|[cm]?js|svelte)$/;
export const ELECTRON = /^electron(?:\/|$)/;

const NODE_BUILTINS = new Set(builtinModules.filter((name) => !name.startsWith('_')));

/** True for `fs`, `node:fs`, `fs/promises`, `node:test`…: modules only Node (or Electron's main) has. */
export function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || NODE_BUILTINS.has(specifier.split('/')[0] ?? specifier);
}

/** Source files below `dir` (recursive), without declaration files, sorted. */
export function sourceFilesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => SOURCE.test(path) && !path.endsWith('.d.ts') && statSync(path).isFile())
    .sort();
}

/** The code of a file: the whole file, or the concatenated `<script>` blocks of a `.svelte` component. */
function codeOf(file: string): string {
  const text = readFileSync(file, 'utf8');
  if (!file.endsWith('.svelte')) return text;
  return [...text.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)].map((match) => match[1]).join('\n');
}

/** Every module specifier of a file: imports, exports, `import type`, `require()` and `import()`. */
export function specifiersOf(file: string): string[] {
  const info = ts.preProcessFile(codeOf(file), true, true);
  return info.importedFiles.map((ref) => ref.fileName);
}

/** Resolves a relative specifier to a source file, or undefined when nothing matches. */
export function resolveLocal(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier);
  const candidates = [
    base,
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    base.replace(/\.cjs$/, '.cts'),
    `${base}.ts`,
    `${base}.js`,
    join(base, 'index.ts'),
  ];
  return candidates.find((path) => existsSync(path) && statSync(path).isFile());
}

/** One import: the importing file (relative to the root), what it wrote, and the local file it reaches. */
export interface ImportEdge {
  readonly from: string;
  readonly specifier: string;
  /** Relative to the root; undefined for packages and built-ins (and unresolvable paths). */
  readonly local: string | undefined;
  /** `a.ts -> b.ts -> specifier`, from the entry the walk started at. */
  readonly chain: string;
}

/** Every import reachable from `entries`, following local (non-node_modules) files transitively. */
export function importsReachableFrom(entries: readonly string[]): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const seen = new Set<string>();
  const visit = (file: string, path: readonly string[]): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const from = relative(ROOT, file);
    const here = [...path, from];
    for (const specifier of specifiersOf(file)) {
      const target = specifier.startsWith('.') ? resolveLocal(file, specifier) : undefined;
      const local = target && !target.includes('node_modules') ? target : undefined;
      edges.push({
        from,
        specifier,
        local: local && relative(ROOT, local),
        chain: [...here, specifier].join(' -> '),
      });
      if (local) visit(local, here);
    }
  };
  for (const entry of entries) visit(entry, []);
  return edges;
}
