/**
 * Sandboxed preload: bundled into one CommonJS file that may require only `electron`.
 * Exposes the renderer's whole API as `window.messenger` (see `bridge.ts`); `ipcRenderer` itself never
 * reaches the page, only the functions built over it.
 */
import { contextBridge, ipcRenderer } from 'electron';

import { createMessengerBridge } from './bridge.js';

contextBridge.exposeInMainWorld('messenger', createMessengerBridge(ipcRenderer));
