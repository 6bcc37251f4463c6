/**
 * Renderer globals: the preload exposes the whole world as `window.messenger` (see the contract in
 * src-main/shared/messenger-api.ts); the renderer has no other way out (CSP connect-src 'none').
 */
/// <reference types="vite/client" />
import type { MessengerApi } from '../../src-main/shared/messenger-api';

declare global {
  interface Window {
    messenger: MessengerApi;
  }
}

export {};
