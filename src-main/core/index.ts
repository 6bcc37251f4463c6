/**
 * The Electron-free messenger core: cryptography, wire protocol and the E2EE client.
 * Used by the desktop app's main process, the command-line chat, bots and tests.
 */
export { E2EEClient, type E2EEClientOptions, type E2EEClientEvents } from './client/client.js';
export type { RelayTlsOptions } from './client/connection.js';
export { MemoryKeyStore, MemoryStateStore, type KeyStore, type StateStore } from './client/stores.js';
export {
  E2EEError,
  CryptoError,
  ProtocolError,
  StorageError,
  UsageError,
  RelayError,
  ErrorCode,
} from './errors.js';
export { safetyNumber, decodePublicIdentity, type PublicIdentity } from './crypto/identity.js';
