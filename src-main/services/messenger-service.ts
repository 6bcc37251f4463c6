/**
 * MessengerService: the main-process implementation of the `window.messenger` contract. It finds,
 * creates and unlocks the profile (vault + LocalStore), runs its ProfileSession (the E2EEClient),
 * hosts the LAN relay, listens to LAN discovery, and reports every change as a MessengerEvent.
 * Adapters (keychain, discovery, relay, clock, notifications) are injected, so it runs and is tested
 * under plain Node; the Electron shell only forwards IPC to it (see ipc.ts).
 */
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import type { E2EEClientOptions } from '../core/client/client.js';
import { Identity } from '../core/crypto/identity.js';
import { Name } from '../core/protocol/wire.js';
import { startRelay, type Relay, type RelayOptions } from '../relay/index.js';
import type {
  AppStatus,
  Contact,
  ConversationId,
  ConversationSummary,
  DiscoveredRelay,
  GroupInfo,
  GroupPolicy,
  GroupRole,
  GroupSafetyNumber,
  HistoryItem,
  HistoryPage,
  HostedRelay,
  MessengerApi,
  MessengerEvent,
  Profile,
  ProfileProblem,
  SafetyNumber,
  Settings,
  StorageProblem,
  StorageProblemReason,
} from '../shared/messenger-api.js';
import type { Notification } from './client-bridge.js';
import { ServiceCode, ServiceError, toServiceError } from './errors.js';
import {
  createMdnsDiscovery,
  hostLanRelay,
  reachableUrl,
  type HostedLanRelay,
  type RelayDiscovery,
} from './lan.js';
import { LocalStore } from './local-store.js';
import * as messaging from './messaging.js';
import { Secrets, newSecrets, type OpenVault } from './secrets.js';
import { ProfileSession } from './session.js';
import {
  StorageProblemError,
  sendingPausedSentence,
  storageFaultReason,
  storageProblem,
} from './storage-fault.js';

/** What the start screen says of a profile database that could not be opened. */
function databaseSentence(reason: StorageProblemReason): string {
  switch (reason) {
    case 'damaged':
      return 'Your profile’s database is damaged: Sealed cannot read it. Your messages on the relay wait there until the profile opens again.';
    case 'readOnly':
      return 'Sealed cannot write to your profile’s folder: it is read-only. Make it writable, then try again.';
    case 'full':
      return 'Your disk is full: Sealed cannot open your profile. Free some space, then try again.';
    case 'io':
      return 'The disk reported an error while Sealed opened your profile. Check the disk, then try again.';
  }
}

/** Adapters and limits of a MessengerService; everything but dataDir has a production default. */
export interface MessengerServiceDeps {
  /** Where profiles live: <dataDir>/profiles/<profile>/ (sealed.db, keys.sealed, relay/). */
  dataDir: string;
  /** Profile name = keychain account (default: the existing profile, or the user id chosen). */
  profile?: string | undefined;
  /** Keychain / key-file access (default: keytar with service "Sealed"). */
  secrets?: Secrets | undefined;
  /** LAN discovery (default: mDNS on every LAN interface); null turns discovery and advertising off. */
  discovery?: RelayDiscovery | null | undefined;
  /** Starts a relay (default: the bundled relay's startRelay). */
  relayFactory?: ((options: RelayOptions) => Promise<Relay>) | undefined;
  /** Clock in ms for history timestamps (default Date.now). */
  now?: (() => number) | undefined;
  /** Shows a desktop notification (default: none). */
  notify?: ((n: Notification) => void) | undefined;
  /** Writes text to the system clipboard (default: none, and copying an invite link is refused). */
  writeClipboard?: ((text: string) => void) | undefined;
  /** While it returns true no notification is shown (the user is looking at the window). */
  isFocused?: (() => boolean) | undefined;
  /** Diagnostics; never receives message text or keys (default: none). */
  log?: ((line: string) => void) | undefined;
  /** How long connect() waits for the relay before it reports it unreachable (default 10 s). */
  connectTimeoutMs?: number | undefined;
  /** How long a send waits for the relay's ack before returning the item as 'sending' (default 3 s). */
  sendWaitMs?: number | undefined;
  /** Extra E2EEClient options (tests: faster reconnects). */
  clientOptions?:
    Partial<Pick<E2EEClientOptions, 'reconnectDelayMs' | 'requestTimeoutMs' | 'rotation'>> | undefined;
  /** Machine name in the advertised relay name and mDNS host name (default os.hostname()). */
  hostname?: string | undefined;
  /** Shows a file in the system's file manager (the Electron shell: shell.showItemInFolder; default none). */
  showItemInFolder?: ((file: string) => void) | undefined;
  /** While the database cannot be written, how often it is checked again (default 10 s). */
  storageProbeMs?: number | undefined;
  /** Free bytes the data folder needs before a full disk counts as fixed (default 1 MiB). */
  storageMinFreeBytes?: number | undefined;
}

const DB_FILE = 'sealed.db';
const KEY_FILE = 'keys.sealed';
/** Meta key of the port of the relay this profile hosts (absent when it does not host one). */
const HOSTING_META = 'hostingPort';

/** The loopback address of a relay this computer hosts: how its own user connects to it. */
export function loopbackUrl(port: number): string {
  return `ws://127.0.0.1:${port}`;
}

/** The messenger behind `window.messenger`: emits 'event' with every MessengerEvent. */
export class MessengerService
  extends EventEmitter<{ event: [MessengerEvent] }>
  implements Omit<MessengerApi, 'onEvent'>
{
  private readonly deps: MessengerServiceDeps;
  private readonly secrets: Secrets;
  private readonly discovery: RelayDiscovery | null;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  private started: Promise<void> | undefined;
  private closed = false;
  private keychainAvailable = false;
  private profileName: string | undefined;
  /** The profile's database, open (and readable for meta and settings) even while locked. */
  private store: LocalStore | undefined;
  private session: ProfileSession | undefined;
  /** Why an existing profile cannot be opened (e.g. its keys are missing from the keychain). */
  private profileError: ServiceError | undefined;
  /** Why the existing profile's database could not be opened at start (a profileProblem of its own). */
  private databaseProblem: { kind: 'database-damaged' | 'database-unavailable'; file: string } | undefined;
  /** The database cannot be written now: delivery and sending are paused (issue 11). */
  private storageNow: StorageProblem | undefined;
  private storageTimer: NodeJS.Timeout | undefined;
  private hosted: HostedLanRelay | undefined;
  private discovered: readonly DiscoveredRelay[] = [];
  private discoveryProblem: string | null = null;
  private stopBrowsing: (() => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(deps: MessengerServiceDeps) {
    super();
    if (!deps || typeof deps.dataDir !== 'string' || deps.dataDir === '')
      throw new TypeError('dataDir is required');
    if (deps.profile !== undefined && !v.is(Name, deps.profile))
      throw new TypeError('profile must be 1-64 of A-Z a-z 0-9 . _ -');
    this.deps = deps;
    this.secrets = deps.secrets ?? new Secrets();
    this.log = deps.log ?? (() => undefined);
    this.discovery = deps.discovery === undefined ? createMdnsDiscovery({ log: this.log }) : deps.discovery;
    this.now = deps.now ?? Date.now;
  }

  /** Subscribes to every event; returns the unsubscribe function. A throwing listener is contained. */
  subscribe(listener: (event: MessengerEvent) => void): () => void {
    const safe = (e: MessengerEvent): void => {
      try {
        listener(e);
      } catch (err) {
        this.log(`event listener failed: ${String(err)}`);
      }
    };
    this.on('event', safe);
    return () => this.off('event', safe);
  }

  /** Opens the existing profile (unless it needs a passphrase), reconnects its relay, starts discovery. */
  start(): Promise<void> {
    if (this.started) throw new Error('MessengerService already started');
    this.started = this.serial(async () => {
      this.keychainAvailable = await this.secrets.keychainAvailable();
      const name = this.deps.profile ?? this.findProfile();
      if (name && existsSync(this.file(name, DB_FILE))) await this.openProfile(name);
      if (this.discovery) {
        this.stopBrowsing = this.discovery.browse(({ relays, problem }) => {
          if (JSON.stringify(relays) !== JSON.stringify(this.discovered)) {
            this.discovered = relays;
            this.emitEvent({ type: 'relays', relays });
          }
          if (problem !== this.discoveryProblem) {
            if (problem) this.log(`LAN discovery: ${problem}`);
            this.discoveryProblem = problem;
            this.emitStatus();
          }
        });
      }
      this.emitStatus();
    });
    return this.started;
  }

  /**
   * Opens the profile `name`'s database. Any failure is kept as the status's profileProblem, which the UI
   * explains on a screen of its own: missing keys, or a database that is damaged or cannot be written
   * (never deleted or started afresh: the user decides, see discardProfile).
   */
  private async openProfile(name: string): Promise<void> {
    const file = this.file(name, DB_FILE);
    let store: LocalStore;
    try {
      store = LocalStore.open(file);
      this.databaseProblem = undefined;
    } catch (e) {
      const reason = storageFaultReason(e);
      if (!reason) throw e;
      this.log(`profile database could not be opened (${reason}): ${String(e)}`);
      this.profileName = name;
      this.databaseProblem = {
        kind: reason === 'damaged' ? 'database-damaged' : 'database-unavailable',
        file,
      };
      this.profileError = new ServiceError(ServiceCode.DATABASE_DAMAGED, databaseSentence(reason));
      return;
    }
    if (store.getMeta('userId') === undefined) {
      store.close(); // creation never finished
      this.profileName = undefined;
      this.profileError = undefined;
      return;
    }
    this.profileName = name;
    this.store = store;
    this.profileError = undefined;
    if (store.getMeta('keyStorage') === 'keychain') await this.openFromKeychain();
  }

  /** Disconnects, stops hosting and discovery, closes the database and forgets the keys; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.storageTimer);
    await this.queue.catch(() => undefined);
    this.stopBrowsing?.();
    await this.session?.close();
    await this.hosted?.stop().catch(() => undefined);
    this.hosted = undefined;
    await this.discovery?.close().catch(() => undefined);
    this.store?.close();
    this.removeAllListeners();
  }

  // -------------------------------------------------------------------------------------------
  // Profile

  async getStatus(): Promise<AppStatus> {
    await this.ready();
    return this.status();
  }

  async createProfile(args: { userId: string; passphrase?: string }): Promise<Profile> {
    await this.ready();
    return this.serial(async () => {
      if (this.store || this.databaseProblem)
        throw new ServiceError(ServiceCode.PROFILE_EXISTS, 'A profile already exists on this computer.');
      const { userId, passphrase } = args;
      if (!v.is(Name, userId))
        throw messaging.invalid('The user id must be 1-64 letters, digits, dots, dashes or underscores.');
      const name = this.deps.profile ?? userId;
      this.keychainAvailable = await this.secrets.keychainAvailable();
      // Never a key in plaintext: without a keychain, only with a passphrase.
      if (passphrase === undefined && !this.keychainAvailable)
        throw new ServiceError(
          ServiceCode.PASSPHRASE_REQUIRED,
          'This computer has no keychain. Choose a passphrase to protect your keys.',
        );
      const secrets = newSecrets(Identity.generate().serialize());
      const vault =
        passphrase === undefined
          ? await this.secrets.createInKeychain(name, secrets)
          : await this.secrets.createKeyFile(this.file(name, KEY_FILE), passphrase, secrets);
      // A database left by an unfinished creation belongs to keys that no longer exist.
      for (const suffix of ['', '-wal', '-shm']) rmSync(this.file(name, DB_FILE) + suffix, { force: true });
      const store = LocalStore.open(this.file(name, DB_FILE));
      store.unlock(secrets.databaseKey);
      store.setMeta('keyStorage', vault.storage);
      store.setMeta('userId', userId); // last: from here on the profile exists
      this.profileName = name;
      this.store = store;
      this.openSession(vault);
      this.emitStatus();
      return this.profile()!;
    });
  }

  async reopenProfile(): Promise<Profile> {
    await this.ready();
    return this.serial(async () => {
      if (this.databaseProblem) {
        await this.openProfile(this.profileName!);
        this.emitStatus();
        if (this.profileError) throw this.profileError;
        if (!this.store) throw new ServiceError(ServiceCode.NO_PROFILE, 'Create a profile first.');
        return this.profile()!;
      }
      this.requireStore();
      if (this.profileError) {
        await this.openFromKeychain();
        this.emitStatus();
        if (this.profileError) throw this.profileError;
      }
      return this.profile()!;
    });
  }

  async discardProfile(args: { userId: string }): Promise<void> {
    await this.ready();
    await this.serial(async () => {
      if (this.databaseProblem) return this.discardDamaged(args.userId);
      const store = this.requireStore();
      const problem = this.problem();
      if (!problem || problem.kind === 'keychain-unavailable')
        throw new ServiceError(
          ServiceCode.PROFILE_IN_USE,
          'Only a profile whose keys are lost can be deleted this way.',
        );
      if (args.userId.toLowerCase() !== store.getMeta('userId')?.toLowerCase())
        throw messaging.invalid('That is not the user id of the profile on this computer.');
      const name = this.profileName!;
      store.close();
      this.store = undefined;
      this.profileName = undefined;
      this.profileError = undefined;
      // The database and any hosted relay's data: nothing in them can be read without the lost keys.
      rmSync(path.dirname(this.file(name, DB_FILE)), { recursive: true, force: true });
      this.log(`discarded profile ${name} (its keys were lost)`);
      this.emitStatus();
    });
  }

  /**
   * Deletes a profile whose database is damaged (or cannot be opened), and its keys: its history,
   * contacts, groups and sessions are in that database, and keys without them would leave contacts'
   * sessions broken. A new profile (new keys) can then be created. A hosted relay's data stays.
   */
  private async discardDamaged(userId: string): Promise<void> {
    const name = this.profileName!;
    if (userId.toLowerCase() !== name.toLowerCase())
      throw messaging.invalid('That is not the name of the profile on this computer.');
    await this.secrets.remove(name, this.file(name, KEY_FILE)).catch((e: unknown) => {
      this.log(`keys of ${name} could not be removed: ${String(e)}`);
    });
    // The database files only: the data of a relay this computer hosts (relay/) holds other people's
    // queued messages and the relay's own key, which a damaged profile database does not touch.
    for (const suffix of ['', '-wal', '-shm']) rmSync(this.file(name, DB_FILE) + suffix, { force: true });
    const dir = path.dirname(this.file(name, DB_FILE));
    if (existsSync(dir) && readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    this.databaseProblem = undefined;
    this.profileName = undefined;
    this.profileError = undefined;
    this.log(`discarded profile ${name} (its database was damaged)`);
    this.emitStatus();
  }

  async retryStorage(): Promise<void> {
    await this.ready();
    await this.serial(async () => {
      this.checkStorage();
      if (this.storageNow) throw new StorageProblemError(this.storageNow);
    });
  }

  async openProfileFolder(): Promise<void> {
    await this.ready();
    const name = this.profileName;
    if (!name) throw new ServiceError(ServiceCode.NO_PROFILE, 'Create a profile first.');
    if (!this.deps.showItemInFolder)
      throw new ServiceError(ServiceCode.SHELL_UNAVAILABLE, 'Sealed cannot open folders here.');
    const file = this.file(name, DB_FILE);
    // The database file itself when it is there (the file manager selects it), else its folder.
    this.deps.showItemInFolder(existsSync(file) ? file : path.dirname(file));
  }

  // -------------------------------------------------------------------------------------------
  // Storage problems (issue 11)

  /**
   * Told of an error; if it is a storage fault, enters the storage problem (once): the status says what
   * is wrong, delivery and sending pause, and the database is checked again every storageProbeMs.
   */
  private storageFault(e: unknown): boolean {
    const reason = storageFaultReason(e);
    if (!reason) return false;
    if (this.storageNow || this.closed || !this.store) return true;
    this.storageNow = storageProblem(reason, this.store.file);
    this.log(`storage problem (${reason}): ${e instanceof Error ? e.message : String(e)}`);
    this.session?.pauseDelivery();
    clearInterval(this.storageTimer);
    this.storageTimer = setInterval(() => {
      void this.serial(async () => this.checkStorage()).catch(() => undefined);
    }, this.deps.storageProbeMs ?? 10_000);
    this.storageTimer.unref();
    this.emitStatus();
    return true;
  }

  /** Checks a storage problem again; ends it (and resumes) when the database can be written. */
  private checkStorage(): void {
    const problem = this.storageNow;
    const store = this.store;
    if (!problem || !store || this.closed) return;
    let reason: StorageProblemReason | undefined;
    try {
      const { bavail, bsize } = statfsSync(path.dirname(store.file));
      if (bavail * bsize < (this.deps.storageMinFreeBytes ?? 1024 * 1024)) reason = 'full';
      else store.probeWrite();
    } catch (e) {
      reason = storageFaultReason(e) ?? 'io';
    }
    if (reason) {
      if (reason !== problem.reason) {
        this.storageNow = storageProblem(reason, store.file);
        this.emitStatus();
      }
      return;
    }
    this.log('storage problem resolved');
    this.storageNow = undefined;
    clearInterval(this.storageTimer);
    this.storageTimer = undefined;
    this.session?.resumeDelivery();
    this.emitStatus();
  }

  /** Runs a call; a storage fault in it becomes the storage problem and a STORAGE_PROBLEM error. */
  private async storageGuard<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ServiceError) && this.storageFault(e))
        throw new StorageProblemError(this.storageNow!);
      throw e;
    }
  }

  /** Refuses a send while the database cannot be written (the draft stays with the caller). */
  private checkSendable(): void {
    if (this.storageNow)
      throw new StorageProblemError(this.storageNow, sendingPausedSentence(this.storageNow));
  }

  /** Opens the keychain profile's session; a failure is kept in `profileError` (the status's problem). */
  private async openFromKeychain(): Promise<void> {
    try {
      this.openSession(await this.secrets.openKeychain(this.profileName!));
      this.profileError = undefined;
    } catch (e) {
      this.profileError = toServiceError(e);
      this.log(`profile could not be opened: ${this.profileError.code}`);
    }
  }

  async unlock(args: { passphrase: string }): Promise<Profile> {
    await this.ready();
    return this.serial(async () => {
      this.requireStore();
      if (!this.session) {
        this.openSession(
          await this.secrets.openKeyFile(this.file(this.profileName!, KEY_FILE), args.passphrase),
        );
        this.emitStatus();
      }
      return this.profile()!;
    });
  }

  /** Unlocks the database with the vault's key and starts the profile's session. */
  private openSession(vault: OpenVault): void {
    const store = this.requireStore();
    try {
      store.unlock(vault.secrets.databaseKey);
    } catch (e) {
      vault.lock();
      throw e;
    }
    this.session = new ProfileSession(store, vault, {
      now: this.now,
      emit: (e) => this.emitEvent(e),
      notify: (n) => {
        if (!this.deps.isFocused?.()) this.deps.notify?.(n);
      },
      log: this.log,
      onProfileChanged: () => this.emitStatus(),
      clientOptions: this.deps.clientOptions,
      connectTimeoutMs: this.deps.connectTimeoutMs ?? 10_000,
      sendWaitMs: this.deps.sendWaitMs ?? 3_000,
      storageFault: (e) => this.storageFault(e),
    });
    const hostingPort = Number(store.getMeta(HOSTING_META));
    if (Number.isInteger(hostingPort) && hostingPort > 0) {
      // Hosting goes on where it was left: the relay first, then (when it was the one in use) the
      // connection to it, which could not succeed before it listens.
      void this.serial(() => this.resumeHosting(hostingPort));
    } else this.session.resume();
  }

  /** Starts hosting again at start; a failure is reported, and the remembered relay is tried anyway. */
  private async resumeHosting(port: number): Promise<void> {
    const session = this.session;
    if (!session || this.closed) return;
    try {
      await this.startHosting(session, port);
      this.emitStatus();
    } catch (e) {
      this.emitEvent({ type: 'error', message: `${toServiceError(e).message} Hosting is off.` });
      session.store.setMeta(HOSTING_META, null);
    }
    session.resume();
  }

  // -------------------------------------------------------------------------------------------
  // Relay connection, hosting and discovery

  async connect(args: { relayUrl: string }): Promise<void> {
    await this.ready();
    if (typeof args.relayUrl !== 'string' || !/^wss?:\/\/[^\s/]+/.test(args.relayUrl))
      throw messaging.invalid('The relay address must start with ws:// or wss://.');
    const session = this.requireSession();
    // A discovered relay's other addresses are tried when the one chosen does not answer.
    await session.connect(await reachableUrl(args.relayUrl, this.discovered));
  }

  async acceptRelayKey(args: { relayUrl: string; fingerprint: string }): Promise<void> {
    await this.ready();
    await this.requireSession().acceptRelayKey(args.relayUrl, args.fingerprint);
  }

  async disconnect(): Promise<void> {
    await this.ready();
    await this.requireSession().disconnect();
  }

  async hostRelay(args: { port?: number }): Promise<HostedRelay> {
    await this.ready();
    const hosted = await this.serial(async () => {
      const session = this.requireSession();
      if (this.hosted) return { info: this.hosted.info, session };
      const info = await this.startHosting(session, args?.port ?? session.store.getSettings().relayPort);
      this.emitStatus();
      return { info, session };
    });
    // The host chats on the relay it hosts (outside the queue: connecting waits for the relay's answer).
    await hosted.session.connect(loopbackUrl(hosted.info.port));
    return hosted.info;
  }

  /** Starts the LAN relay and remembers it (it starts again with the app); plain errors. */
  private async startHosting(session: ProfileSession, port: number): Promise<HostedRelay> {
    try {
      this.hosted = await hostLanRelay({
        port,
        dataDir: this.file(this.profileName!, 'relay'),
        userId: session.userId,
        discovery: this.discovery,
        startRelay: this.deps.relayFactory ?? startRelay,
        hostname: this.deps.hostname,
        log: this.log,
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new ServiceError(
          ServiceCode.PORT_IN_USE,
          `Port ${port} is already in use. Choose another port.`,
        );
      this.log(`hosting failed: ${String(e)}`);
      throw new ServiceError(
        ServiceCode.HOSTING_FAILED,
        'Sealed could not start the relay on this computer.',
      );
    }
    session.store.setMeta(HOSTING_META, String(this.hosted.info.port));
    return this.hosted.info;
  }

  async stopHostingRelay(): Promise<void> {
    await this.ready();
    await this.serial(async () => {
      const hosted = this.hosted;
      this.hosted = undefined;
      this.store?.setMeta(HOSTING_META, null);
      if (!hosted) return;
      await hosted.stop();
      this.emitStatus();
    });
  }

  async listDiscoveredRelays(): Promise<readonly DiscoveredRelay[]> {
    await this.ready();
    return this.discovered;
  }

  // -------------------------------------------------------------------------------------------
  // Contacts, conversations, messages, groups (see messaging.ts)

  async listContacts(): Promise<readonly Contact[]> {
    await this.ready();
    return messaging.listContacts(this.requireSession());
  }

  async getSafetyNumber(args: { userId: string }): Promise<SafetyNumber> {
    await this.ready();
    return messaging.safetyNumber(this.requireSession(), args.userId);
  }

  async setVerified(args: { userId: string; verified: boolean }): Promise<void> {
    await this.ready();
    await this.storageGuard(() => messaging.setVerified(this.requireSession(), args.userId, args.verified));
  }

  async acceptKeyChange(args: { userId: string; safetyNumber: string }): Promise<void> {
    await this.ready();
    await this.storageGuard(() =>
      messaging.acceptKeyChange(this.requireSession(), args.userId, args.safetyNumber),
    );
  }

  async rejectKeyChange(args: { userId: string }): Promise<void> {
    await this.ready();
    await this.storageGuard(() => messaging.rejectKeyChange(this.requireSession(), args.userId));
  }

  async listConversations(): Promise<readonly ConversationSummary[]> {
    await this.ready();
    return this.requireSession().store.listConversations();
  }

  async getHistory(args: {
    conversationId: ConversationId;
    before?: string;
    limit?: number;
  }): Promise<HistoryPage> {
    await this.ready();
    const { store } = this.requireSession();
    if (!store.conversation(args.conversationId))
      throw new ServiceError(ServiceCode.NOT_FOUND, 'There is no such conversation.');
    return store.getHistory(args.conversationId, args.before, args.limit);
  }

  async markRead(args: { conversationId: ConversationId }): Promise<void> {
    await this.ready();
    const session = this.requireSession();
    const summary = await this.storageGuard(() => session.store.markRead(args.conversationId));
    if (summary) this.emitEvent({ type: 'conversation', summary });
  }

  async openDirect(args: { userId: string }): Promise<ConversationSummary> {
    await this.ready();
    return this.storageGuard(() => messaging.openDirect(this.requireSession(), args.userId));
  }

  async sendDirect(args: { to: string; text: string }): Promise<HistoryItem> {
    await this.ready();
    const session = this.requireSession();
    this.checkSendable();
    return this.storageGuard(() => messaging.sendDirect(session, args.to, args.text));
  }

  async sendGroup(args: { group: string; text: string }): Promise<HistoryItem> {
    await this.ready();
    const session = this.requireSession();
    this.checkSendable();
    return this.storageGuard(() => messaging.sendGroup(session, args.group, args.text));
  }

  async createGroup(args: { group: string; policy?: 'invite-only' | 'open' }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() => messaging.createGroup(this.requireSession(), args.group, args.policy));
  }

  async joinGroup(args: { group: string }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() => messaging.joinGroup(this.requireSession(), args.group));
  }

  async joinGroupWithLink(args: { link: string }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() => messaging.joinGroupWithLink(this.requireSession(), args.link));
  }

  async inviteToGroup(args: { group: string; userId: string }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() => messaging.inviteToGroup(this.requireSession(), args.group, args.userId));
  }

  async acceptGroupInvitation(args: { group: string }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() => messaging.acceptGroupInvitation(this.requireSession(), args.group));
  }

  async declineGroupInvitation(args: { group: string }): Promise<void> {
    await this.ready();
    await this.storageGuard(() => messaging.declineGroupInvitation(this.requireSession(), args.group));
  }

  async approveJoinRequest(args: { group: string; userId: string }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() =>
      messaging.approveJoinRequest(this.requireSession(), args.group, args.userId),
    );
  }

  async removeFromGroup(args: { group: string; userId: string }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() => messaging.removeFromGroup(this.requireSession(), args.group, args.userId));
  }

  async setGroupRole(args: { group: string; userId: string; role: GroupRole }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() =>
      messaging.setGroupRole(this.requireSession(), args.group, args.userId, args.role),
    );
  }

  async setGroupPolicy(args: { group: string; policy: GroupPolicy; approval?: boolean }): Promise<GroupInfo> {
    await this.ready();
    return this.storageGuard(() =>
      messaging.setGroupPolicy(this.requireSession(), args.group, args.policy, args.approval),
    );
  }

  async copyGroupLink(args: { group: string }): Promise<void> {
    await this.ready();
    await this.storageGuard(() =>
      messaging.copyGroupLink(this.requireSession(), args.group, this.deps.writeClipboard),
    );
  }

  async leaveGroup(args: { group: string }): Promise<void> {
    await this.ready();
    await this.storageGuard(() => messaging.leaveGroup(this.requireSession(), args.group));
  }

  async deleteGroup(args: { group: string }): Promise<void> {
    await this.ready();
    await this.storageGuard(() => messaging.deleteGroup(this.requireSession(), args.group));
  }

  async getGroup(args: { group: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.getGroup(this.requireSession(), args.group);
  }

  async listGroups(): Promise<readonly GroupInfo[]> {
    await this.ready();
    return messaging.listGroups(this.requireSession());
  }

  async getGroupSafetyNumber(args: { group: string }): Promise<GroupSafetyNumber> {
    await this.ready();
    return messaging.groupSafetyNumber(this.requireSession(), args.group);
  }

  // -------------------------------------------------------------------------------------------
  // Settings (plain, readable while locked)

  async getSettings(): Promise<Settings> {
    await this.ready();
    return this.requireStore().getSettings();
  }

  async updateSettings(args: Partial<Settings>): Promise<Settings> {
    await this.ready();
    const store = this.requireStore();
    let settings: Settings;
    try {
      settings = store.updateSettings(args);
    } catch {
      throw messaging.invalid('These settings are not valid.');
    }
    this.emitEvent({ type: 'settings', settings });
    return settings;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private async ready(): Promise<void> {
    if (this.closed) throw new ServiceError(ServiceCode.CLOSED, 'Sealed is shutting down.');
    if (!this.started) throw new ServiceError(ServiceCode.CLOSED, 'Sealed has not started yet.');
    await this.started;
  }

  /** Runs lifecycle changes one at a time (two createProfile calls must not both create). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private file(profile: string, name: string): string {
    return path.join(this.deps.dataDir, 'profiles', profile, name);
  }

  /** The existing profile: the first profile directory (by name) holding a database. */
  private findProfile(): string | undefined {
    const dir = path.join(this.deps.dataDir, 'profiles');
    if (!existsSync(dir)) return undefined;
    return readdirSync(dir)
      .filter((n) => v.is(Name, n) && existsSync(this.file(n, DB_FILE)))
      .sort()[0];
  }

  private profile(): Profile | null {
    const userId = this.store?.getMeta('userId');
    if (!this.store || !userId) return null;
    return {
      userId: userId.toLowerCase(), // as the client uses it (ids are case-insensitive)
      relayUrl: this.store.getMeta('relayUrl') ?? null,
      keyStorage: this.store.getMeta('keyStorage') === 'keychain' ? 'keychain' : 'passphrase-file',
    };
  }

  private status(): AppStatus {
    const profile = this.profile();
    const keyChange = this.session?.relayKeyChange;
    const fingerprint = this.session?.relayFingerprint;
    return {
      profile,
      keychainAvailable: this.keychainAvailable,
      locked: profile?.keyStorage === 'passphrase-file' && !this.session,
      connection: this.session?.connection ?? 'offline',
      hostedRelay: this.hosted?.info ?? null,
      profileProblem: this.problem(),
      ...(this.storageNow ? { storageProblem: this.storageNow } : {}),
      ...(this.discoveryProblem ? { discoveryProblem: this.discoveryProblem } : {}),
      ...(keyChange ? { relayKeyChange: keyChange } : {}),
      ...(fingerprint ? { relayFingerprint: fingerprint } : {}),
    };
  }

  /** The status's account of `profileError`. */
  private problem(): ProfileProblem | null {
    const e = this.profileError;
    if (!e) return null;
    if (this.databaseProblem)
      return {
        kind: this.databaseProblem.kind,
        message: e.message,
        profileName: this.profileName!,
        path: this.databaseProblem.file,
      };
    const kind: ProfileProblem['kind'] =
      e.code === ServiceCode.KEYS_MISSING
        ? 'keys-missing'
        : e.code === ServiceCode.KEYCHAIN_FAILED || e.code === ServiceCode.KEYCHAIN_UNAVAILABLE
          ? 'keychain-unavailable'
          : 'keys-unusable';
    return { kind, message: e.message };
  }

  private emitStatus(): void {
    this.emitEvent({ type: 'status', status: this.status() });
  }

  private emitEvent(event: MessengerEvent): void {
    if (!this.closed) this.emit('event', event);
  }

  private requireStore(): LocalStore {
    if (!this.store && this.databaseProblem) throw this.profileError!;
    if (!this.store) throw new ServiceError(ServiceCode.NO_PROFILE, 'Create a profile first.');
    return this.store;
  }

  private requireSession(): ProfileSession {
    this.requireStore();
    if (this.profileError) throw this.profileError;
    if (!this.session) throw new ServiceError(ServiceCode.LOCKED, 'Unlock your profile first.');
    return this.session;
  }
}
