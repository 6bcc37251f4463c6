/**
 * Electron adapter: hardens sessions and web contents with `security-policy.ts` and opens the main window.
 * Like index.ts it touches `electron`, so plain-Node code (core, relay, services, tests) must never import it.
 */
import {
  app,
  BrowserWindow,
  type BrowserWindowConstructorOptions,
  type Session,
  type WebContents,
  type WebFrameMain,
} from 'electron';
import { fileURLToPath } from 'node:url';

import {
  APP_ENTRY_URL,
  APP_ROOT_URL,
  CONTENT_SECURITY_POLICY,
  devContentSecurityPolicy,
  isNavigationAllowed,
  permissionCheckHandler,
  permissionRequestHandler,
  windowOpenHandler,
  windowOptions,
} from './security-policy.js';
import { appIcon } from './shell/icon.js';

/** Dev server of `electron-vite dev`; never honoured in a packaged app. */
export function devServerUrl(): string | undefined {
  const url = process.env['ELECTRON_RENDERER_URL'];
  return !app.isPackaged && url ? url : undefined;
}

/** Root URL of the renderer's pages: `app://sealed/` when built, the Vite dev server under `electron-vite dev`. */
export function rendererRootUrl(): string {
  const devUrl = devServerUrl();
  return devUrl ? `${new URL(devUrl).origin}/` : APP_ROOT_URL;
}

/** The built renderer folder (`out/renderer`), which `app://sealed/` serves. */
export function rendererRoot(): string {
  return fileURLToPath(new URL('../renderer/', import.meta.url));
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

/**
 * True when `frame` is the live main frame of `win`: IPC from a subframe, another window or a frame that
 * has since navigated away is refused before it reaches the dispatcher. Electron hands out one
 * WebFrameMain per frame, so identity is the check; the (process, frame token) pair says the same when
 * the wrapper differs.
 */
export function isMainFrameOf(win: BrowserWindow, frame: WebFrameMain | null): frame is WebFrameMain {
  if (!frame || win.isDestroyed() || frame.detached || frame.parent !== null) return false;
  const main = win.webContents.mainFrame;
  return frame === main || (frame.processId === main.processId && frame.frameToken === main.frameToken);
}

/**
 * Opens the main window on the renderer (`app://sealed/`, or the dev server under `electron-vite dev`).
 * Returns at once, before the page loads, so the caller knows the window by the time the page's first
 * IPC call arrives; a failed load goes to `onLoadError`.
 */
export function createMainWindow(onLoadError: (error: unknown) => void): BrowserWindow {
  const options: BrowserWindowConstructorOptions = {
    ...windowOptions,
    // Linux shows this in the task switcher; Windows and macOS take the icon of the packaged app.
    ...(process.platform === 'linux' ? { icon: appIcon(32) } : {}),
    webPreferences: {
      ...windowOptions.webPreferences,
      preload: fileURLToPath(new URL('../preload/index.cjs', import.meta.url)),
    },
  };
  const win = new BrowserWindow(options);
  // The shell owns the title ("Sealed (3)"); the page's <title> must not overwrite it.
  win.on('page-title-updated', (event) => event.preventDefault());
  win.once('ready-to-show', () => win.show());
  win.loadURL(devServerUrl() ?? APP_ENTRY_URL).catch(onLoadError);
  return win;
}
