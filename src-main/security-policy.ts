/**
 * Security policy of the Electron shell, as plain data and pure functions.
 *
 * This module must not import `electron` (not even types): Node-side tests import it to assert the
 * policy, and `require('electron')` there would try to download the Electron binary. The shell
 * (`window.ts`) applies it; TypeScript checks there that these shapes fit Electron's types.
 * See https://www.electronjs.org/docs/latest/tutorial/security for the checklist it follows.
 */

/** Content-Security-Policy of the packaged renderer: same header and meta tag (`src-renderer/index.html`). */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'none'; " +
  "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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
