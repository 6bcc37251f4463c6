/**
 * The Electron-free messenger core: cryptography, wire protocol and the E2EE client.
 * Used by the desktop app's main process, the command-line chat, bots and tests.
 */
export { E2EEClient, type E2EEClientOptions, type E2EEClientEvents } from './client/client.js';
export type { RelayTlsOptions } from './client/connection.js';
export {
  MemoryKeyStore,
  MemoryStateStore,
  stateRelayKeyStore,
  type KeyStore,
  type RelayKeyStore,
  type StateStore,
} from './client/stores.js';
export {
  E2EEError,
  CryptoError,
  ProtocolError,
  StorageError,
  UsageError,
  RelayError,
  RelayKeyChangedError,
  ErrorCode,
} from './errors.js';
export {
  formatFingerprint,
  normaliseRelayUrl,
  parseFingerprint,
  relayKeyFingerprint,
} from './protocol/login.js';
export { canonicalUserId, looksAlike, lookalikesOf, userIdSkeleton } from './user-ids.js';
export { safetyNumber, decodePublicIdentity, type PublicIdentity } from './crypto/identity.js';
