/**
 * An unlocked profile at run time: its LocalStore, its vault, and the one E2EEClient for the relay in
 * use, with the connection state the renderer sees. The client's state lives in the profile (not per
 * relay), so switching relays keeps sessions and groups; only one client runs at a time.
 */
import { E2EEClient, type E2EEClientOptions } from '../core/client/client.js';
import { CryptoError, ProtocolError, RelayKeyChangedError } from '../core/errors.js';
import { relayKeyFingerprint } from '../core/protocol/login.js';
import type { ConnectionState, MessengerEvent, RelayKeyChange } from '../shared/messenger-api.js';
import { bridgeClient, type BridgeContext, type Notification } from './client-bridge.js';
import { ServiceCode, ServiceError, relayKeyChanged, relayNotTrusted, toServiceError } from './errors.js';
import type { LocalStore } from './local-store.js';
import { vaultKeyStore, type OpenVault } from './secrets.js';

/** What a session reports through and how long it waits. */
export interface SessionOptions {
  now: () => number;
  emit: (event: MessengerEvent) => void;
  notify: (n: Notification) => void;
  log: (line: string) => void;
  /** Called when something the status shows changed: the remembered relay, a relay key change. */
  onProfileChanged: () => void;
  clientOptions?: Partial<Pick<E2EEClientOptions, 'reconnectDelayMs' | 'requestTimeoutMs' | 'rotation'>>;
  connectTimeoutMs: number;
  sendWaitMs: number;
  /** Told of every error that may be a storage fault; true if it is one (the service pauses). */
  storageFault: (e: unknown) => boolean;
}

/** The runtime of an unlocked profile; `close()` disconnects, closes the database and wipes the keys. */
export class ProfileSession {
  readonly userId: string;
  private clientNow: E2EEClient | undefined;
  private clientUrl: string | undefined;
  private unbind: (() => void) | undefined;
  private state: ConnectionState = 'offline';
  private closed = false;
  /** The relay key change that stopped the last login, with the key presented, until resolved. */
  private keyChange: { readonly change: RelayKeyChange; readonly presentedKey: Uint8Array } | undefined;
  private fingerprint: string | null = null;
  /** Delivery is paused (the database cannot be written): no connection until resumeDelivery(). */
  private paused = false;

  constructor(
    readonly store: LocalStore,
    readonly vault: OpenVault,
    readonly options: SessionOptions,
  ) {
    // Lower case, as the client uses it: a profile from before canonical ids may have stored capitals.
    this.userId = store.getMeta('userId')!.toLowerCase();
  }

  /** The current client, if a relay was ever chosen. */
  get client(): E2EEClient | undefined {
    return this.clientNow;
  }

  /** The connection state shown to the user. */
  get connection(): ConnectionState {
    return this.state;
  }

  /** A relay key change waiting for the user's decision, if any. */
  get relayKeyChange(): RelayKeyChange | null {
    return this.keyChange?.change ?? null;
  }

  /** The fingerprint of the current relay's key, once the client has seen it. */
  get relayFingerprint(): string | null {
    return this.fingerprint;
  }

  /**
   * The user accepts the new key of the relay at `url` after comparing `fingerprint` with its operator:
   * pinned only if it is still the key the relay presented (else the user is warned again), then connects.
   */
  async acceptRelayKey(url: string, fingerprint: string): Promise<void> {
    const pending = this.keyChange;
    if (!pending || pending.change.relayUrl !== url)
      throw new ServiceError(ServiceCode.NOT_FOUND, `There is no new relay key to accept for ${url}.`);
    if (pending.change.presentedFingerprint !== fingerprint)
      throw new ServiceError(
        ServiceCode.RELAY_KEY_CHANGED,
        `The relay at ${url} now presents another key than the one you compared. Compare the new fingerprint first.`,
      );
    const client = this.useClient(url);
    await client.acceptRelayKey(pending.presentedKey);
    this.options.log(`accepted a new relay key for ${url}`);
    this.keyChange = undefined;
    this.options.onProfileChanged();
    await this.connect(url);
  }

  /** The current client, or NOT_CONNECTED when no relay was chosen yet. */
  requireClient(): E2EEClient {
    if (!this.clientNow) throw new ServiceError(ServiceCode.NOT_CONNECTED, 'Connect to a relay first.');
    return this.clientNow;
  }

  /** Where API calls record items and report events (no notifications: the user did it). */
  context(): BridgeContext {
    return {
      store: this.store,
      userId: this.userId,
      now: this.options.now,
      emit: (e) => {
        if (!this.closed) this.options.emit(e);
      },
      notify: () => undefined,
      setConnection: () => undefined,
      log: this.options.log,
      storageFault: this.options.storageFault,
    };
  }

  /**
   * The database cannot be written: the connection closes, so nothing more arrives that could not be
   * stored. What the relay delivered and Sealed did not acknowledge stays there and comes again, in
   * order, once delivery resumes; so do the messages waiting in the outbox.
   */
  pauseDelivery(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    const client = this.clientNow;
    if (!client) return;
    this.setConnection('offline');
    void client.close().catch(() => undefined);
  }

  /** The database can be written again: reconnects the relay in use (if any). */
  resumeDelivery(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    const client = this.clientNow;
    if (!client) return this.resume();
    this.setConnection('connecting');
    client.connect().catch((e: unknown) => this.onConnectFailed(client, e));
  }

  /** Reconnects the remembered relay in the background (at start), unless the user disconnected. */
  resume(): void {
    if (this.paused) return;
    const url = this.store.getMeta('relayUrl');
    if (!url || this.store.getMeta('autoConnect') === '0') return;
    const client = this.useClient(url);
    this.setConnection('connecting');
    client.connect().catch((e: unknown) => this.onConnectFailed(client, e));
  }

  /**
   * Connects to `url` (replacing another relay's client); resolves once authenticated. After the
   * timeout it reports the relay unreachable while the client keeps trying in the background.
   */
  async connect(url: string): Promise<void> {
    if (this.paused) {
      // Remembered: the connection is made when delivery resumes.
      this.useClient(url);
      return;
    }
    const client = this.useClient(url);
    // Already there (hosting again, or connecting twice to the same relay): nothing to wait for.
    if (client.connected) return this.setConnection('connected');
    this.setConnection('connecting');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.connectTimeoutMs);
    });
    try {
      const outcome = await Promise.race([client.connect().then(() => 'ok' as const), timeout]);
      if (outcome === 'timeout')
        throw new ServiceError(
          ServiceCode.RELAY_UNREACHABLE,
          `Could not reach the relay at ${url}. Sealed keeps trying in the background.`,
        );
    } catch (e) {
      if (e instanceof ServiceError) throw e;
      throw this.onConnectFailed(client, e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the connection and stays offline, also at the next start. */
  async disconnect(): Promise<void> {
    this.store.setMeta('autoConnect', '0');
    const client = this.clientNow;
    if (!client) return;
    this.setConnection('offline');
    await client.close();
  }

  /** Disconnects, closes the database and wipes the keys held in memory; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.disposeClient();
    this.store.close();
    this.vault.lock();
  }

  /** The client for `url`: the current one, or a new one replacing it. */
  private useClient(url: string): E2EEClient {
    if (this.clientNow && this.clientUrl === url) return this.clientNow;
    void this.disposeClient();
    const client = new E2EEClient({
      ...this.options.clientOptions,
      url,
      userId: this.userId,
      keyStore: vaultKeyStore(this.vault),
      stateStore: this.store.stateStore(),
      ack: { rcvDirectMessage: true, rcvGroupMessage: true },
      requireApprovalOnIdentityChange: true,
    });
    this.clientNow = client;
    this.clientUrl = url;
    this.fingerprint = null;
    const unbindBridge = bridgeClient(client, this.bridge(client));
    const onError = (e: Error): void => this.onClientError(client, url, e);
    const onConnect = (): void => {
      void client.pinnedRelayKey().then((key) => {
        if (client !== this.clientNow || !key) return;
        this.fingerprint = relayKeyFingerprint(key);
        this.options.onProfileChanged();
      });
    };
    client.on('error', onError);
    client.on('connect', onConnect);
    this.unbind = () => {
      unbindBridge();
      client.off('error', onError);
      client.off('connect', onConnect);
    };
    return client;
  }

  private async disposeClient(): Promise<void> {
    const client = this.clientNow;
    this.unbind?.();
    this.unbind = undefined;
    this.clientNow = undefined;
    this.clientUrl = undefined;
    if (client) {
      this.setConnection('offline');
      await client.close().catch(() => undefined);
    }
  }

  /** The client refused the relay (its key changed, or it proved no key): say so and stay offline. */
  private onClientError(client: E2EEClient, url: string, e: Error): void {
    if (client !== this.clientNow || this.closed) return;
    if (e instanceof RelayKeyChangedError) {
      this.keyChange = {
        change: {
          relayUrl: url,
          pinnedFingerprint: e.pinnedFingerprint,
          presentedFingerprint: e.presentedFingerprint,
        },
        presentedKey: e.presentedKey,
      };
      this.options.log(`relay key changed at ${url}; not logged in`);
      this.setConnection('offline', relayKeyChanged(url).message);
      this.options.onProfileChanged();
    } else if ((e instanceof CryptoError || e instanceof ProtocolError) && !client.connected) {
      this.setConnection('offline', relayNotTrusted(url).message);
    }
  }

  private onConnectFailed(client: E2EEClient, e: unknown): ServiceError {
    const err = toServiceError(e, { relayUrl: this.clientUrl });
    if (client === this.clientNow && !this.closed) {
      this.setConnection('offline', err.message);
      void client.close().catch(() => undefined);
    }
    return err;
  }

  private setConnection(state: ConnectionState, error?: string): void {
    if (this.closed) return;
    if (state === 'connected' && this.keyChange) {
      this.keyChange = undefined; // logged in (elsewhere, or after accepting): nothing waits any more
      this.options.onProfileChanged();
    }
    if (state === 'connected' && this.clientUrl) {
      // Remembered for the next start once the relay has accepted us.
      const changed = this.store.getMeta('relayUrl') !== this.clientUrl;
      this.store.setMeta('relayUrl', this.clientUrl);
      this.store.setMeta('autoConnect', '1');
      if (changed) this.options.onProfileChanged();
    }
    if (state === this.state && error === undefined) return;
    this.state = state;
    this.options.emit(
      error === undefined ? { type: 'connection', state } : { type: 'connection', state, error },
    );
  }

  /** The bridge of one client: its reports count only while it is the current client. */
  private bridge(client: E2EEClient): BridgeContext {
    const current = (): boolean => !this.closed && client === this.clientNow;
    return {
      store: this.store,
      userId: this.userId,
      now: this.options.now,
      emit: (e) => {
        if (current()) this.options.emit(e);
      },
      notify: (n) => {
        if (current()) this.options.notify(n);
      },
      setConnection: (state, error) => {
        if (!current()) return;
        // Our own close() also ends the connection: that is 'offline', not 'reconnecting'.
        if (state === 'reconnecting' && this.state === 'offline') return;
        this.setConnection(state, error);
      },
      log: this.options.log,
      storageFault: this.options.storageFault,
    };
  }
}
