/**
 * MessengerService: the main-process implementation of the `window.messenger` contract. It finds,
 * creates and unlocks the profile (vault + LocalStore), runs its ProfileSession (the E2EEClient),
 * hosts the LAN relay, listens to LAN discovery, and reports every change as a MessengerEvent.
 * Adapters (keychain, discovery, relay, clock, notifications) are injected, so it runs and is tested
 * under plain Node; the Electron shell only forwards IPC to it (see ipc.ts).
 */
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, rmSync } from 'node:fs';
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
      if (name && existsSync(this.file(name, DB_FILE))) {
        const store = LocalStore.open(this.file(name, DB_FILE));
        if (store.getMeta('userId') === undefined)
          store.close(); // creation never finished
        else {
          this.profileName = name;
          this.store = store;
          // Any failure is kept as the status's profileProblem, which the UI explains on a screen of its own.
          if (store.getMeta('keyStorage') === 'keychain') await this.openFromKeychain();
        }
      }
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

  /** Disconnects, stops hosting and discovery, closes the database and forgets the keys; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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
      if (this.store)
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
    messaging.setVerified(this.requireSession(), args.userId, args.verified);
  }

  async acceptKeyChange(args: { userId: string; safetyNumber: string }): Promise<void> {
    await this.ready();
    await messaging.acceptKeyChange(this.requireSession(), args.userId, args.safetyNumber);
  }

  async rejectKeyChange(args: { userId: string }): Promise<void> {
    await this.ready();
    await messaging.rejectKeyChange(this.requireSession(), args.userId);
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
    const summary = this.requireSession().store.markRead(args.conversationId);
    if (summary) this.emitEvent({ type: 'conversation', summary });
  }

  async openDirect(args: { userId: string }): Promise<ConversationSummary> {
    await this.ready();
    return messaging.openDirect(this.requireSession(), args.userId);
  }

  async sendDirect(args: { to: string; text: string }): Promise<HistoryItem> {
    await this.ready();
    return messaging.sendDirect(this.requireSession(), args.to, args.text);
  }

  async sendGroup(args: { group: string; text: string }): Promise<HistoryItem> {
    await this.ready();
    return messaging.sendGroup(this.requireSession(), args.group, args.text);
  }

  async createGroup(args: { group: string; policy?: 'invite-only' | 'open' }): Promise<GroupInfo> {
    await this.ready();
    return messaging.createGroup(this.requireSession(), args.group, args.policy);
  }

  async joinGroup(args: { group: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.joinGroup(this.requireSession(), args.group);
  }

  async joinGroupWithLink(args: { link: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.joinGroupWithLink(this.requireSession(), args.link);
  }

  async inviteToGroup(args: { group: string; userId: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.inviteToGroup(this.requireSession(), args.group, args.userId);
  }

  async acceptGroupInvitation(args: { group: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.acceptGroupInvitation(this.requireSession(), args.group);
  }

  async declineGroupInvitation(args: { group: string }): Promise<void> {
    await this.ready();
    await messaging.declineGroupInvitation(this.requireSession(), args.group);
  }

  async approveJoinRequest(args: { group: string; userId: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.approveJoinRequest(this.requireSession(), args.group, args.userId);
  }

  async removeFromGroup(args: { group: string; userId: string }): Promise<GroupInfo> {
    await this.ready();
    return messaging.removeFromGroup(this.requireSession(), args.group, args.userId);
  }

  async setGroupRole(args: { group: string; userId: string; role: GroupRole }): Promise<GroupInfo> {
    await this.ready();
    return messaging.setGroupRole(this.requireSession(), args.group, args.userId, args.role);
  }

  async setGroupPolicy(args: { group: string; policy: GroupPolicy; approval?: boolean }): Promise<GroupInfo> {
    await this.ready();
    return messaging.setGroupPolicy(this.requireSession(), args.group, args.policy, args.approval);
  }

  async copyGroupLink(args: { group: string }): Promise<void> {
    await this.ready();
    await messaging.copyGroupLink(this.requireSession(), args.group, this.deps.writeClipboard);
  }

  async leaveGroup(args: { group: string }): Promise<void> {
    await this.ready();
    await messaging.leaveGroup(this.requireSession(), args.group);
  }

  async deleteGroup(args: { group: string }): Promise<void> {
    await this.ready();
    await messaging.deleteGroup(this.requireSession(), args.group);
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
      ...(this.discoveryProblem ? { discoveryProblem: this.discoveryProblem } : {}),
      ...(keyChange ? { relayKeyChange: keyChange } : {}),
      ...(fingerprint ? { relayFingerprint: fingerprint } : {}),
    };
  }

  /** The status's account of `profileError`. */
  private problem(): ProfileProblem | null {
    const e = this.profileError;
    if (!e) return null;
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
