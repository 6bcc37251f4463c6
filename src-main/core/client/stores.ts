/**
 * Where the client keeps its secrets and state. The app supplies the OS keychain (KeyStore) and an
 * encrypted on-disk database (StateStore); tests and bots use the in-memory defaults.
 */

/** Holds private identity key material (the app: the OS keychain). */
export interface KeyStore {
  /** The stored bytes for `name`, or undefined. */
  get(name: string): Promise<Uint8Array | undefined>;
  set(name: string, value: Uint8Array): Promise<void>;
  delete(name: string): Promise<void>;
}

/** Holds protocol state (sessions, prekeys, groups, dedup ids); written in atomic batches. */
export interface StateStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Keys starting with `prefix`. */
  keys(prefix: string): Promise<string[]>;
  /** Applies every change atomically: a value is written, `null` deletes the key. */
  write(changes: ReadonlyMap<string, Uint8Array | null>): Promise<void>;
}

/**
 * Pins of relay keys: the public key each relay address presented on first use (issue 8). Addresses are
 * normalised (login.ts normaliseRelayUrl). The default keeps them in the client's StateStore, so the app
 * has them in its encrypted database and the terminal chat in its state file.
 */
export interface RelayKeyStore {
  /** The 65-byte public key pinned for `relayUrl`, or undefined before the first login there. */
  get(relayUrl: string): Promise<Uint8Array | undefined>;
  set(relayUrl: string, publicKey: Uint8Array): Promise<void>;
}

/** The StateStore key of the pin for a relay address. */
export const relayKeyStateKey = (relayUrl: string): string => `relay-key/${relayUrl}`;

/** A RelayKeyStore inside a StateStore (the client's default). */
export function stateRelayKeyStore(state: StateStore): RelayKeyStore {
  return {
    get: (relayUrl) => state.get(relayKeyStateKey(relayUrl)),
    set: (relayUrl, publicKey) => state.write(new Map([[relayKeyStateKey(relayUrl), publicKey]])),
  };
}

/** KeyStore in memory (default when none is given). */
export class MemoryKeyStore implements KeyStore {
  private readonly map = new Map<string, Uint8Array>();
  async get(name: string): Promise<Uint8Array | undefined> {
    const v = this.map.get(name);
    return v && new Uint8Array(v);
  }
  async set(name: string, value: Uint8Array): Promise<void> {
    this.map.set(name, new Uint8Array(value));
  }
  async delete(name: string): Promise<void> {
    this.map.delete(name);
  }
}

/** StateStore in memory (default when none is given). */
export class MemoryStateStore implements StateStore {
  private readonly map = new Map<string, Uint8Array>();
  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.map.get(key);
    return v && new Uint8Array(v);
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix));
  }
  async write(changes: ReadonlyMap<string, Uint8Array | null>): Promise<void> {
    for (const [k, v] of changes) {
      if (v === null) this.map.delete(k);
      else this.map.set(k, new Uint8Array(v));
    }
  }
}
