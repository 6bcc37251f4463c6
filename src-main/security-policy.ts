/**
 * Security policy of the Electron shell, as plain data and pure functions.
 *
 * This module must not import `electron` (not even types): Node-side tests import it to assert the
 * policy, and `require('electron')` there would try to download the Electron binary. The shell
 * (`window.ts`, `shell/app-protocol.ts`, `index.ts`) applies it; TypeScript checks there that these
 * shapes fit Electron's types. See https://www.electronjs.org/docs/latest/tutorial/security for the
 * checklist it follows.
 */
import { extname, isAbsolute, relative, resolve } from 'node:path';

import type { CallResult } from './shared/messenger-api.js';

/** Content-Security-Policy of the packaged renderer: same header and meta tag (`src-renderer/index.html`). */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'none'; " +
  "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The same policy for the `<meta>` tag of `src-renderer/index.html`: browsers ignore (and log an
 * error for) `frame-ancestors` in a meta tag, so it lives in the header only.
 */
export const META_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", '');

/**
 * Policy while the renderer is served by the Vite dev server (`electron-vite dev` only): Vite injects
 * `<style>` elements and talks to its server over a WebSocket for hot reload.
 */
export function devContentSecurityPolicy(devServerUrl: string): string {
  const http = new URL(devServerUrl);
  const ws = `${http.protocol === 'https:' ? 'wss:' : 'ws:'}//${http.host}`;
  return CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "connect-src 'none'",
    `connect-src 'self' ${ws}`,
  );
}

/** `webPreferences` of every window: the renderer is untrusted and gets nothing but the preload bridge. */
export const webPreferences = Object.freeze({
  sandbox: true,
  contextIsolation: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  experimentalFeatures: false,
  webviewTag: false,
  navigateOnDragDrop: false,
  safeDialogs: true,
  spellcheck: false,
});

/** Options of the main window except the preload path, which depends on where the app is installed. */
export const windowOptions = Object.freeze({
  width: 1100,
  height: 760,
  minWidth: 720,
  minHeight: 480,
  title: 'Sealed',
  show: false,
  autoHideMenuBar: true,
  backgroundColor: '#101418',
  webPreferences,
});

/** Decides a `will-navigate` / `will-redirect` / `will-frame-navigate`: the app is one page, so never. */
export function isNavigationAllowed(_url: string): boolean {
  return false;
}

/** `setWindowOpenHandler` handler: no `window.open`, no `target="_blank"` windows. */
export function windowOpenHandler(): { action: 'deny' } {
  return { action: 'deny' };
}

/** `session.setPermissionRequestHandler` handler: every permission request (camera, notifications…) is refused. */
export function permissionRequestHandler(
  _webContents: unknown,
  _permission: string,
  callback: (permissionGranted: boolean) => void,
): void {
  callback(false);
}

/** `session.setPermissionCheckHandler` / `setDevicePermissionHandler` handler: every check fails. */
export function permissionCheckHandler(): boolean {
  return false;
}

/**
 * The renderer is served from `app://sealed/` rather than `file://` (security checklist item 18): a
 * `file://` page's `'self'` is the whole file system, while this origin can only reach the files
 * `resolveAppFile` maps into the built renderer. It is also a real, stable origin the IPC layer can
 * check senders against (`APP_ORIGIN`).
 */
export const APP_SCHEME = 'app';
export const APP_HOST = 'sealed';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
/** The root every app page lies under: what the IPC sender check (`isAppUrl`) compares against. */
export const APP_ROOT_URL = `${APP_ORIGIN}/`;
/** What the main window loads in a built app. */
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

/**
 * `protocol.registerSchemesAsPrivileged` privileges of `app:`. `standard` gives it an origin (relative
 * URLs, `'self'` in the CSP), `secure` makes it a secure context like https. `supportFetchAPI` lets
 * Chromium's fetch layer (module scripts carry Vite's `crossorigin`) accept the scheme; the page itself
 * still cannot `fetch()` anything because the CSP says `connect-src 'none'`. Everything else stays off.
 */
export const appSchemePrivileges = Object.freeze({
  standard: true,
  secure: true,
  supportFetchAPI: true,
  bypassCSP: false,
  allowServiceWorkers: false,
  corsEnabled: false,
  stream: false,
});

/** The only files `app://` serves, by extension; anything else is a 404. */
const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
});

/** MIME type of a file `app://` may serve, or undefined when its extension is not served at all. */
export function contentTypeFor(file: string): string | undefined {
  return CONTENT_TYPES[extname(file).toLowerCase()];
}

/** True when `file` lies strictly below `root` (both resolved: no `..` escape, no other drive). */
export function isInside(root: string, file: string): boolean {
  const rel = relative(resolve(root), resolve(file));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/**
 * Maps an `app://sealed/...` request URL to a file under `rootDir` (the built renderer), or undefined.
 * Refuses other schemes and hosts, credentials, empty / `.` / `..` / hidden segments, and segments that
 * decode to a separator, a NUL or a drive colon (`%2F`, `%5C`, `%00`, `C:`), so percent-encoding cannot
 * smuggle a traversal past URL normalisation; the result must still lie inside `rootDir` and have a
 * served extension. `/` means `/index.html`. Query and fragment are ignored.
 */
export function resolveAppFile(requestUrl: string, rootDir: string): string | undefined {
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch {
    return undefined;
  }
  if (url.protocol !== `${APP_SCHEME}:` || url.host !== APP_HOST || url.username || url.password) {
    return undefined;
  }
  const path = url.pathname === '/' || url.pathname === '' ? '/index.html' : url.pathname;
  const segments: string[] = [];
  for (const raw of path.slice(1).split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (segment === '' || segment.startsWith('.') || /[/\\:]/.test(segment) || segment.includes('\0')) {
      return undefined;
    }
    segments.push(segment);
  }
  const file = resolve(rootDir, ...segments);
  if (!isInside(rootDir, file) || contentTypeFor(file) === undefined) return undefined;
  return file;
}

/** Response headers of a file served over `app://`: its type, the CSP, no sniffing, no referrer. */
export function appResponseHeaders(file: string): Record<string, string> {
  return {
    'Content-Type': contentTypeFor(file) ?? 'application/octet-stream',
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  };
}

/**
 * The answer to an IPC call from anything but the main frame of the app window (a subframe, another
 * window, a frame that navigated away). Same code as the dispatcher's own sender check (services/errors.ts).
 */
export const UNTRUSTED_SENDER_RESULT: CallResult<never> = Object.freeze({
  ok: false,
  error: Object.freeze({
    code: 'UNTRUSTED_SENDER',
    message: 'This request did not come from the app window.',
  }),
});
