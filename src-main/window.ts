/**
 * Electron adapter: hardens sessions and web contents with `security-policy.ts` and opens the main window.
 * Like index.ts it touches `electron`, so plain-Node code (core, relay, tests) must never import it.
 */
import {
  app,
  BrowserWindow,
  type BrowserWindowConstructorOptions,
  type Session,
  type WebContents,
} from 'electron';
import { fileURLToPath } from 'node:url';

import {
  CONTENT_SECURITY_POLICY,
  devContentSecurityPolicy,
  isNavigationAllowed,
  permissionCheckHandler,
  permissionRequestHandler,
  windowOpenHandler,
  windowOptions,
} from './security-policy.js';

/** Dev server of `electron-vite dev`; never honoured in a packaged app. */
function devServerUrl(): string | undefined {
  const url = process.env['ELECTRON_RENDERER_URL'];
  return !app.isPackaged && url ? url : undefined;
}

/** Refuses every permission and sets the Content-Security-Policy header on every response. */
export function hardenSession(session: Session): void {
  const devUrl = devServerUrl();
  const csp = devUrl ? devContentSecurityPolicy(devUrl) : CONTENT_SECURITY_POLICY;
  session.setPermissionRequestHandler(permissionRequestHandler);
  session.setPermissionCheckHandler(permissionCheckHandler);
  session.setDevicePermissionHandler(permissionCheckHandler);
  session.webRequest.onHeadersReceived((details, callback) => {
    const responseHeaders = Object.fromEntries(
      Object.entries(details.responseHeaders ?? {}).filter(
        ([name]) => name.toLowerCase() !== 'content-security-policy',
      ),
    );
    callback({ responseHeaders: { ...responseHeaders, 'Content-Security-Policy': [csp] } });
  });
}

/** Denies new windows, navigation, redirects and `<webview>` for any web contents the app creates. */
export function hardenWebContents(contents: WebContents): void {
  contents.setWindowOpenHandler(windowOpenHandler);
  const guard = (event: { preventDefault(): void }, url: string): void => {
    if (!isNavigationAllowed(url)) event.preventDefault();
  };
  contents.on('will-navigate', (event) => guard(event, event.url));
  contents.on('will-frame-navigate', (event) => guard(event, event.url));
  contents.on('will-redirect', (event) => guard(event, event.url));
  contents.on('will-attach-webview', (event) => event.preventDefault());
}

/** Opens the main window on the renderer (built files, or the dev server under `electron-vite dev`). */
export async function createMainWindow(): Promise<BrowserWindow> {
  const options: BrowserWindowConstructorOptions = {
    ...windowOptions,
    webPreferences: {
      ...windowOptions.webPreferences,
      preload: fileURLToPath(new URL('../preload/index.cjs', import.meta.url)),
    },
  };
  const win = new BrowserWindow(options);
  win.once('ready-to-show', () => win.show());

  const devUrl = devServerUrl();
  if (devUrl) await win.loadURL(devUrl);
  else await win.loadFile(fileURLToPath(new URL('../renderer/index.html', import.meta.url)));
  return win;
}
