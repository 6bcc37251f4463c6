/**
 * Build of the three Electron runtimes (see docs at https://electron-vite.org/config/):
 * - main: `src-main/index.ts` -> `out/main/index.js` (ESM, since package.json has "type": "module"),
 *   and the relay queue's worker thread -> `out/main/relay-queue-worker.js`; every package in
 *   `dependencies` stays external, which keeps the native modules loadable.
 * - preload: `src-preload/index.ts` -> `out/preload/index.cjs`, ONE CommonJS file with its dependencies
 *   bundled in, because a sandboxed preload cannot load ES modules or node_modules.
 * - renderer: root `src-renderer` -> `out/renderer`.
 */
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'electron-vite';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';

import { META_CONTENT_SECURITY_POLICY, devContentSecurityPolicy } from './src-main/security-policy.js';

const fromRoot = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

const CSP_META = /(<meta\s+http-equiv="Content-Security-Policy"\s+content=")([^"]*)(")/i;

/**
 * Keeps index.html's CSP meta tag equal to the policy the main process sends as a header: the build fails
 * on drift, and the dev server swaps in the dev policy (inline styles and the hot-reload socket).
 */
function contentSecurityPolicyMeta(): Plugin {
  let devServerUrl: string | undefined;
  return {
    name: 'sealed:csp-meta',
    configureServer(server) {
      server.httpServer?.once('listening', () => {
        devServerUrl = server.resolvedUrls?.local[0];
      });
    },
    transformIndexHtml: {
      order: 'pre',
      handler(html) {
        const match = CSP_META.exec(html);
        if (!match) throw new Error('src-renderer/index.html has no Content-Security-Policy meta tag');
        if (match[2] !== META_CONTENT_SECURITY_POLICY) {
          throw new Error(
            'index.html CSP meta tag differs from META_CONTENT_SECURITY_POLICY in security-policy.ts',
          );
        }
        if (!devServerUrl) return html;
        return html.replace(CSP_META, `$1${devContentSecurityPolicy(devServerUrl)}$3`);
      },
    },
  };
}

export default defineConfig({
  main: {
    build: {
      // better-sqlite3 and keytar are native: never bundle them (they are in `dependencies` anyway).
      externalizeDeps: { include: ['better-sqlite3', 'keytar'] },
      rolldownOptions: {
        // The relay's delivery queue writes SQLite in a worker thread, which loads its own file:
        // out/main/relay-queue-worker.js, found beside the bundle by src-main/relay/queue/sqlite.ts.
        input: {
          index: fromRoot('src-main/index.ts'),
          'relay-queue-worker': fromRoot('src-main/relay/queue/sqlite-worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      externalizeDeps: false,
      rolldownOptions: {
        input: { index: fromRoot('src-preload/index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: fromRoot('src-renderer'),
    plugins: [contentSecurityPolicyMeta(), svelte({ configFile: fromRoot('svelte.config.js') })],
    build: {
      outDir: fromRoot('out/renderer'),
      rolldownOptions: {
        input: { index: fromRoot('src-renderer/index.html') },
      },
    },
  },
});
