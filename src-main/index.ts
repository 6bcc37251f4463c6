/**
 * Electron main-process entry: single instance, hardened defaults, one window.
 * The messenger itself lives in `core/` (plain Node); this file only wires the shell.
 */
import { app, BrowserWindow, session } from 'electron';

import { createMainWindow, hardenSession, hardenWebContents } from './window.js';

function focusExistingWindow(): void {
  const [win] = BrowserWindow.getAllWindows();
  if (!win) return;
  if (win.isMinimized()) win.restore();
  win.focus();
}

function openWindow(): void {
  createMainWindow().catch((error: unknown) => {
    console.error('Failed to open the main window', error);
    app.exit(1);
  });
}

function main(): void {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  // Sandbox every renderer, whatever a window's options say.
  app.enableSandbox();
  app.on('second-instance', focusExistingWindow);
  app.on('web-contents-created', (_event, contents) => hardenWebContents(contents));
  app.on('session-created', hardenSession);
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) openWindow();
  });

  void app.whenReady().then(() => {
    hardenSession(session.defaultSession);
    openWindow();
  });
}

main();
