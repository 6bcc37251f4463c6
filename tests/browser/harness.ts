/**
 * The browser end-to-end harness around the bridge (bridge-server.ts, bridge-client.ts): builds the
 * renderer, bundles the page half of the bridge, serves out/renderer on 127.0.0.1:0, launches Debian's
 * Chromium with playwright-core and opens app pages that record every console error, page error and
 * CSP violation. Adapted from the renderer check script (tests/renderer/screens.ts).
 */
import { build } from 'esbuild';
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

import { CONTENT_SECURITY_POLICY } from '../../src-main/security-policy.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RENDERER = join(ROOT, 'out/renderer');

/** Builds out/renderer (and the main and preload bundles) with electron-vite: a few seconds. */
export async function buildRenderer(): Promise<void> {
  await promisify(execFile)(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['electron-vite', 'build'], {
    cwd: ROOT,
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  statSync(join(RENDERER, 'index.html'));
}

/** Bundles an in-page entry (TypeScript source importing files beside `dir`) into one classic script. */
export async function bundleForPage(contents: string, dir: URL): Promise<string> {
  const result = await build({
    stdin: { contents, resolveDir: fileURLToPath(dir), loader: 'ts' },
    bundle: true,
    format: 'iife',
    target: 'es2022',
    write: false,
  });
  const text = result.outputFiles[0]?.text;
  if (!text) throw new Error('esbuild produced no bundle');
  return text;
}

/** bridge-client.ts as one classic script (with src-preload/bridge.ts and the contract in it). */
export function bundleBridgeClient(): Promise<string> {
  return bundleForPage(
    "import { installBridge } from './bridge-client.ts'; globalThis.__sealedInstallBridge = installBridge;",
    new URL('.', import.meta.url),
  );
}

const CONNECT_NONE = "connect-src 'none'";

/**
 * The app's policy with one change: `connect-src` allows the bridge's socket and nothing else.
 *
 * TEST HARNESS ONLY. In Electron the page reaches the main process through the preload's IPC, which
 * no CSP governs, so the app ships `connect-src 'none'`. Here the bridge replaces the preload and
 * talks over a WebSocket to 127.0.0.1:<bridgePort>, which `connect-src 'none'` would block. The
 * served page (header and meta tag) therefore allows exactly that socket; every other directive stays
 * as the app ships it. The app's files on disk are never changed.
 */
export function testPolicy(policy: string, bridgePort: number): string {
  if (policy.split(CONNECT_NONE).length !== 2) throw new Error(`the CSP has no single "${CONNECT_NONE}"`);
  return policy.replace(CONNECT_NONE, `connect-src ws://127.0.0.1:${bridgePort}`);
}

const CSP_META = /(<meta\s+http-equiv="Content-Security-Policy"\s+content=")([^"]*)(")/i;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Serves out/renderer on 127.0.0.1:0 with the test policy (see testPolicy) as header and meta tag. */
export async function serveRenderer(bridgePort: number): Promise<{ url: string; close(): Promise<void> }> {
  const header = testPolicy(CONTENT_SECURITY_POLICY, bridgePort);
  const html = readFileSync(join(RENDERER, 'index.html'), 'utf8');
  const meta = CSP_META.exec(html);
  if (!meta) throw new Error('out/renderer/index.html has no Content-Security-Policy meta tag');
  const index = html.replace(CSP_META, `$1${testPolicy(meta[2]!, bridgePort)}$3`);

  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (path === '/favicon.ico') {
      res.writeHead(204).end(); // Electron asks for none; Chromium does
      return;
    }
    const headers = (file: string) => ({
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-security-policy': header,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    });
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, headers('index.html')).end(index);
      return;
    }
    const file = join(RENDERER, path);
    try {
      if (!file.startsWith(RENDERER + sep) || !statSync(file).isFile()) throw new Error('not served');
      res.writeHead(200, headers(file)).end(readFileSync(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Debian's Chromium, headless; Playwright gives every launch a fresh temporary profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Collects CSP violations inside the page (they are not always console messages). */
export const CSP_LISTENER = `document.addEventListener('securitypolicyviolation', (e) => {
  (globalThis.__csp ||= []).push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});`;

/** Chromium's note about a meta-tag policy; the app's meta tag leaves frame-ancestors to the header. */
const TOLERATED = /'frame-ancestors' is ignored when delivered via a <meta> element/;

/** Everything that went wrong in the pages: console errors and warnings, page errors, CSP violations. */
export class PageProblems {
  readonly all: string[] = [];

  watch(page: Page, label: string): void {
    page.on('console', (message) => {
      if (TOLERATED.test(message.text())) return;
      if (message.type() === 'error' || message.type() === 'warning') {
        this.all.push(`${label} console ${message.type()}: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => this.all.push(`${label} pageerror: ${error.message}`));
  }

  /** Adds the CSP violations the page recorded (call before the page closes). */
  async collectCsp(page: Page, label: string): Promise<void> {
    if (page.isClosed()) return;
    const csp = await page.evaluate<string[]>('globalThis.__csp || []');
    for (const violation of csp) this.all.push(`${label} CSP violation: ${violation}`);
  }
}

/**
 * Opens the app in a new page of `context` as `profile`: the bridge is installed (before the app's
 * scripts) only in documents of the app's origin.
 */
export async function openApp(
  context: BrowserContext,
  appUrl: string,
  bridgeUrl: string,
  bundle: string,
  problems: PageProblems,
  label: string,
  /** Runs right after the bridge is installed, before the app's scripts. */
  afterBridge = '',
): Promise<Page> {
  const page = await context.newPage();
  problems.watch(page, label);
  await page.addInitScript(
    `${CSP_LISTENER}\n${bundle}\nif (location.origin === ${JSON.stringify(new URL(appUrl).origin)}) {\n` +
      `globalThis.__sealedInstallBridge(${JSON.stringify(bridgeUrl)});\n${afterBridge}\n}\n` +
      `delete globalThis.__sealedInstallBridge;`,
  );
  await page.goto(appUrl);
  return page;
}

/** Polls a page expression (page.waitForFunction with a string would need 'unsafe-eval' under the CSP). */
export async function until(page: Page, expression: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate<boolean>(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await page.waitForTimeout(25);
  }
}
