/**
 * Electron adapter: the tray icon, its tooltip (with the unread count) and its menu.
 * What the tooltip says is computed in `unread.ts`.
 */
import { Menu, Tray } from 'electron';

import { appIcon } from './icon.js';
import { trayTooltip } from './unread.js';

export interface AppTray {
  /** Shows the unread count: tooltip everywhere, and the title beside the icon on macOS. */
  setUnread(count: number): void;
  destroy(): void;
}

export interface TrayOptions {
  /** Show and focus the window (tray click, "Open Sealed"). */
  onOpen(): void;
  onQuit(): void;
}

/** Creates the tray icon; call after the app is ready. */
export function createTray(options: TrayOptions): AppTray {
  // Windows trays are 16 px; Linux panels and the macOS menu bar draw larger icons.
  const tray = new Tray(appIcon(process.platform === 'win32' ? 16 : 32));
  tray.setToolTip(trayTooltip(0));
  tray.setContextMenu(
    Menu.buildFromTemplate([
      { label: 'Open Sealed', click: () => options.onOpen() },
      { type: 'separator' },
      { label: 'Quit Sealed', click: () => options.onQuit() },
    ]),
  );
  tray.on('click', () => options.onOpen());
  return {
    setUnread(count) {
      if (tray.isDestroyed()) return;
      tray.setToolTip(trayTooltip(count));
      if (process.platform === 'darwin') tray.setTitle(count > 0 ? String(count) : '');
    },
    destroy() {
      if (!tray.isDestroyed()) tray.destroy();
    },
  };
}
