/**
 * Sandboxed preload: bundled into one CommonJS file that may require only `electron`.
 * Exposes the renderer's whole API as `window.messenger`; a placeholder until the IPC contract exists.
 */
import { contextBridge } from 'electron';

contextBridge.exposeInMainWorld('messenger', Object.freeze({ version: '0.1.0' }));
