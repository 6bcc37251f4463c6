/**
 * Electron main-process entry: single instance, hardened defaults, one window, the messenger service
 * behind one IPC channel, and the desktop around it (tray, notifications, badge, title, theme).
 * The messenger itself lives in `services/` and `core/` (plain Node); this file only wires the shell.
 */
import { app, BrowserWindow, clipboard, dialog, ipcMain, nativeTheme, session, shell } from 'electron';

import { UNTRUSTED_SENDER_RESULT } from './security-policy.js';
import { createIpcDispatcher, isAppUrl } from './services/ipc.js';
import { MessengerService } from './services/messenger-service.js';
import { IPC_CALL, IPC_EVENT, type MessengerEvent } from './shared/messenger-api.js';
import { registerAppScheme, serveRenderer } from './shell/app-protocol.js';
import { createNotifier, type NotificationText } from './shell/notifications.js';
import { createTray, type AppTray } from './shell/tray.js';
import { UnreadCounter, windowTitle } from './shell/unread.js';
import {
  createMainWindow,
  hardenSession,
  hardenWebContents,
  isMainFrameOf,
  rendererRootUrl,
  rendererRoot,
} from './window.js';

/** How long quitting waits for the service to close its database and sockets. */
const CLOSE_TIMEOUT_MS = 5_000;

let mainWindow: BrowserWindow | undefined;
let tray: AppTray | undefined;
const unread = new UnreadCounter();

function liveWindow(): BrowserWindow | undefined {
  return mainWindow && !mainWindow.isDestroyed() ? mainWindow : undefined;
}

function isWindowFocused(): boolean {
  return liveWindow()?.isFocused() ?? false;
}

/** Shows and focuses the window, opening it again if it was closed (macOS keeps the app running). */
function showWindow(): void {
  const win = liveWindow();
  if (!win) {
    openWindow();
    return;
  }
  if (win.isMinimized()) win.restore();
  win.show();
  win.focus();
}

function openWindow(): void {
  if (liveWindow()) return;
  mainWindow = createMainWindow((error: unknown) => {
    console.error('Failed to load the main window', error);
    app.exit(1);
  });
  mainWindow.setTitle(windowTitle(unread.total));
}

/** Unread count everywhere the desktop shows it: window title, tray, dock/launcher badge. */
function showUnread(count: number): void {
  liveWindow()?.setTitle(windowTitle(count));
  tray?.setUnread(count);
  // macOS dock and Linux Unity launchers; a no-op (false) where the platform has no badge.
  app.setBadgeCount(count);
}

/** Sends a service event to the renderer, if a window is there to receive it. */
function forwardToRenderer(event: MessengerEvent): void {
  const win = liveWindow();
  if (win && !win.webContents.isDestroyed()) win.webContents.send(IPC_EVENT, event);
}

async function start(): Promise<void> {
  hardenSession(session.defaultSession);
  serveRenderer(session.defaultSession, rendererRoot());

  const notifier = createNotifier(showWindow);
  const service = new MessengerService({
    dataDir: app.getPath('userData'),
    log: (line) => console.log(`sealed: ${line}`),
    // The service picks the text by the privacy setting and only asks while the window is unfocused;
    // checking focus again here covers a focus change in between.
    notify: (text: NotificationText) => {
      if (!isWindowFocused()) notifier.show(text);
    },
    isFocused: isWindowFocused,
    // Invite links are copied here: the sandboxed renderer is refused every permission, the clipboard too.
    writeClipboard: (text) => clipboard.writeText(text),
    // "Open the folder" of a damaged database: the service passes the file's own path (never the renderer's).
    showItemInFolder: (file) => shell.showItemInFolder(file),
  });

  const refreshUnread = (): void => {
    service
      .listConversations()
      .then((summaries) => {
        if (unread.reset(summaries)) showUnread(unread.total);
      })
      // No profile yet, or locked: nothing to count until a status event says otherwise.
      .catch(() => undefined);
  };

  service.subscribe((event) => {
    forwardToRenderer(event);
    if (unread.apply(event)) showUnread(unread.total);
    if (event.type === 'status' && event.status.profile && !event.status.locked) refreshUnread();
    if (event.type === 'settings') nativeTheme.themeSource = event.settings.theme;
  });

  // Only the main frame of our window, showing a page of our own origin, may call the service.
  const appRoot = rendererRootUrl();
  const dispatch = createIpcDispatcher(service, {
    isTrustedSender: (url) => isAppUrl(url, appRoot),
    onInternalError: (method, error) => console.error(`sealed: ${method} failed`, error),
  });
  ipcMain.handle(IPC_CALL, (event, method: unknown, args: unknown) => {
    const win = liveWindow();
    if (!win || event.sender !== win.webContents || !isMainFrameOf(win, event.senderFrame)) {
      return UNTRUSTED_SENDER_RESULT;
    }
    return dispatch(event.senderFrame.url, method, args);
  });

  // Quitting waits (briefly) for the service to close its database and sockets, then quits for real.
  let shutdown: 'running' | 'closing' | 'closed' = 'running';
  app.on('before-quit', (event) => {
    if (shutdown === 'closed') return;
    event.preventDefault();
    if (shutdown === 'closing') return;
    shutdown = 'closing';
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref());
    void Promise.race([service.close(), timeout])
      .catch((error: unknown) => console.error('Failed to close the messenger service', error))
      .finally(() => {
        notifier.close();
        tray?.destroy();
        shutdown = 'closed';
        app.quit();
      });
  });

  await service.start();
  service
    .getSettings()
    .then((settings) => {
      nativeTheme.themeSource = settings.theme;
    })
    .catch(() => undefined);
  refreshUnread();

  tray = createTray({ onOpen: showWindow, onQuit: () => app.quit() });
  openWindow();
}

function main(): void {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  // Sandbox every renderer, whatever a window's options say.
  app.enableSandbox();
  // Must happen before `ready`: the renderer is served from app://sealed/ (see security-policy.ts).
  registerAppScheme();
  if (process.platform === 'win32') app.setAppUserModelId('org.sealed.messenger');

  app.on('second-instance', showWindow);
  app.on('web-contents-created', (_event, contents) => hardenWebContents(contents));
  app.on('session-created', hardenSession);
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) openWindow();
  });

  void app
    .whenReady()
    .then(start)
    .catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      dialog.showErrorBox('Sealed could not start', message);
      app.exit(1);
    });
}

main();
