/**
 * The renderer's whole state, fed by `window.messenger`: the app status (profile, lock, connection,
 * hosted relay), conversations, contacts, groups, discovered relays, settings, the open conversation
 * and the open panel. It subscribes to `onEvent` once (`start`) and applies each event; components
 * read its fields and call its actions. Lists are `$state.raw` and replaced on every change.
 *
 * Actions that belong to a form return the plain sentence to show inline (or null on success);
 * the others report failures as notices.
 */
import type {
  AppStatus,
  ConnectionState,
  Contact,
  ConversationId,
  ConversationSummary,
  DiscoveredRelay,
  GroupInfo,
  GroupPolicy,
  GroupRole,
  GroupSafetyNumber,
  HistoryItem,
  MessengerApi,
  MessengerEvent,
  SafetyNumber,
  Settings,
} from '../../../src-main/shared/messenger-api';
import { SvelteMap } from 'svelte/reactivity';

import { conversationTarget, errorMessage, validateName, validateRelayUrl } from './format';
import { ConversationHistory } from './history.svelte';
import { Notices } from './notices.svelte';

export type Phase =
  | 'loading'
  | 'failed'
  | 'locked'
  /** A profile exists but its keys could not be read (status.profileProblem says why). */
  | 'profile-problem'
  | 'first-run'
  | 'relay-setup'
  | 'main';

/** The one panel or dialog open over the main screen. */
export type Panel =
  | { readonly kind: 'contact'; readonly userId: string }
  | { readonly kind: 'group'; readonly group: string }
  | { readonly kind: 'new-chat' }
  | { readonly kind: 'new-group' }
  | { readonly kind: 'settings' }
  | { readonly kind: 'relay' };

/** Used until the service answers `getSettings` (and before a profile exists). */
export const DEFAULT_SETTINGS: Settings = { notifications: 'sender', theme: 'system', relayPort: 8787 };

/** The topic of the connection error's notice (see Notices). */
export const CONNECTION_TOPIC = 'connection';

/** Conversations whose histories stay in memory (and up to date) after being left. */
const CACHED_HISTORIES = 8;
/** Delay that coalesces bursts of read receipts and list refreshes. */
const COALESCE_MS = 250;

export class AppState {
  status = $state.raw<AppStatus | null>(null);
  /** Why the first `getStatus` failed (the app cannot start). */
  startError = $state<string | null>(null);
  settings = $state.raw<Settings>(DEFAULT_SETTINGS);
  /** Sorted by last activity, newest first. */
  conversations = $state.raw<readonly ConversationSummary[]>([]);
  /** Contacts by user id (a small reactive map, updated in place). */
  readonly contacts = new SvelteMap<string, Contact>();
  /** Groups the user is on the roster of, by name (from listGroups, then 'group' events). */
  readonly groups = new SvelteMap<string, GroupInfo>();
  /** The first listGroups answered: a group conversation without a group is one the user is not in. */
  groupsLoaded = $state(false);
  /** The group safety number shown in the group panel. */
  groupSafety = $state.raw<GroupSafetyNumber | null>(null);
  relays = $state.raw<readonly DiscoveredRelay[]>([]);
  /** The last connection error, until the connection succeeds. */
  connectionError = $state<string | null>(null);
  currentId = $state<ConversationId | null>(null);
  current = $state.raw<ConversationHistory | null>(null);
  panel = $state.raw<Panel | null>(null);
  /** The safety number shown in the contact panel. */
  safety = $state.raw<SafetyNumber | null>(null);
  safetyError = $state<string | null>(null);
  /**
   * The relay setup screen is showing: set when a profile that never used a relay becomes usable,
   * cleared once the user connects (or continues after hosting, or skips).
   */
  relaySetup = $state(false);
  /** A call of the relay screen is under way (buttons show it and stay disabled). */
  relayBusy = $state(false);
  readonly notices = new Notices();

  readonly phase: Phase = $derived.by(() => {
    const status = this.status;
    if (!status) return this.startError ? 'failed' : 'loading';
    if (status.locked) return 'locked';
    if (status.profileProblem) return 'profile-problem';
    if (!status.profile) return 'first-run';
    return this.relaySetup ? 'relay-setup' : 'main';
  });
  readonly me = $derived(this.status?.profile?.userId ?? '');
  /** The relay's key changed: nothing is sent there until the user decides (RelayKeyWarning). */
  readonly relayKeyChange = $derived(this.status?.relayKeyChange ?? null);
  readonly connection = $derived(this.status?.connection ?? 'offline');
  readonly currentSummary = $derived(this.conversations.find((c) => c.id === this.currentId) ?? null);
  /** What the conversation list says of a group instead of its last message: invited, waiting, differs. */
  readonly groupNotes: Readonly<Record<ConversationId, { text: string; warn: boolean }>> = $derived(
    Object.fromEntries(
      [...this.groups.values()].flatMap((info): [ConversationId, { text: string; warn: boolean }][] => {
        const id: ConversationId = `group:${info.group}`;
        if (info.outOfSync) return [[id, { text: 'Member lists differ', warn: true }]];
        if (info.me.standing === 'invited') return [[id, { text: 'You are invited', warn: false }]];
        if (info.me.standing === 'requested') return [[id, { text: 'Waiting for approval', warn: false }]];
        return [];
      }),
    ),
  );

  readonly #api: MessengerApi;
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- bookkeeping the UI never reads
  readonly #histories = new Map<ConversationId, ConversationHistory>();
  /** When a conversation without messages was opened or created here: its place in the list. */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- bookkeeping the UI never reads
  readonly #touched = new Map<ConversationId, number>();
  #unsubscribe: (() => void) | null = null;
  #markReadTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #loadedData = false;

  constructor(api: MessengerApi) {
    this.#api = api;
  }

  /** Subscribes to events and loads the status; call once. */
  async start(): Promise<void> {
    if (this.#unsubscribe) throw new Error('AppState already started');
    this.#unsubscribe = this.#api.onEvent((event) => this.#apply(event));
    this.startError = null;
    void this.#api.getSettings().then(
      (settings) => (this.settings = settings),
      () => {}, // no profile yet: the defaults hold until one exists
    );
    void this.#api.listDiscoveredRelays().then(
      (relays) => (this.relays = relays),
      () => {},
    );
    try {
      this.#setStatus(await this.#api.getStatus());
    } catch (error) {
      this.startError = errorMessage(error);
    }
  }

  /** Unsubscribes and clears every timer. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    clearTimeout(this.#markReadTimer);
    clearTimeout(this.#refreshTimer);
    this.notices.close();
  }

  /** Tries `start` again after it failed. */
  async retryStart(): Promise<void> {
    this.stop();
    await this.start();
  }

  // ---- Events -------------------------------------------------------------------------------

  #apply(event: MessengerEvent): void {
    switch (event.type) {
      case 'status':
        this.#setStatus(event.status);
        break;
      case 'connection':
        this.#setConnection(event.state, event.error);
        break;
      case 'item':
        this.#onItem(event.item);
        break;
      case 'itemStatus':
        this.#histories.get(event.conversationId)?.setStatus(event.id, event.status);
        break;
      case 'conversation':
        this.#upsertConversation(event.summary);
        break;
      case 'conversationRemoved':
        this.#removeConversation(event.id);
        break;
      case 'contact':
        this.#setContact(event.contact);
        break;
      case 'relays':
        this.relays = event.relays;
        break;
      case 'settings':
        this.settings = event.settings;
        break;
      case 'group':
        this.#setGroup(event.info);
        break;
      case 'groupRemoved':
        this.groups.delete(event.group);
        break;
      case 'error':
        this.notices.show(event.message);
        break;
    }
  }

  /**
   * A connection error is shown once as a notice of the topic CONNECTION_TOPIC (a newer one replaces
   * it; the relay panel, which says it itself, hides it), and taken down when the connection is back.
   */
  #setConnection(state: ConnectionState, error: string | undefined): void {
    if (this.status) this.status = { ...this.status, connection: state };
    if (error) {
      if (error !== this.connectionError) this.notices.show(error, { topic: CONNECTION_TOPIC });
      this.connectionError = error;
    } else if (state === 'connected') {
      this.connectionError = null;
      this.notices.dismissTopic(CONNECTION_TOPIC);
    }
  }

  #setStatus(next: AppStatus): void {
    this.status = next;
    if (next.profile && !next.locked && !next.profileProblem && !this.#loadedData) {
      this.#loadedData = true;
      this.relaySetup = !next.profile.relayUrl && !next.hostedRelay && next.connection === 'offline';
      void this.#loadData();
    }
  }

  async #loadData(): Promise<void> {
    const report = (error: unknown) => this.notices.show(errorMessage(error));
    await Promise.all([
      this.#api.listConversations().then((list) => this.#setConversations(list), report),
      this.#api.listContacts().then((list) => {
        this.contacts.clear();
        for (const contact of list) this.contacts.set(contact.userId, contact);
      }, report),
      this.#api.getSettings().then((settings) => (this.settings = settings), report),
      this.#api.listDiscoveredRelays().then((relays) => (this.relays = relays), report),
      this.#api.listGroups().then((list) => {
        for (const info of list) this.groups.set(info.group, info);
        this.groupsLoaded = true;
      }, report),
    ]);
  }

  #onItem(item: HistoryItem): void {
    this.#histories.get(item.conversationId)?.add(item);
    const summary = this.conversations.find((c) => c.id === item.conversationId);
    if (!summary) {
      this.#scheduleRefresh();
      return;
    }
    if (item.kind === 'message' && (!summary.last || summary.last.at <= item.at)) {
      this.#upsertConversation({ ...summary, last: { from: item.from, text: item.text, at: item.at } });
    }
  }

  /** Coalesced `listConversations` for an item of a conversation the list does not have yet. */
  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => {
      this.#api.listConversations().then(
        (list) => this.#setConversations(list),
        (error: unknown) => this.notices.show(errorMessage(error)),
      );
    }, COALESCE_MS);
  }

  #activity(summary: ConversationSummary): number {
    return Math.max(summary.last?.at ?? 0, this.#touched.get(summary.id) ?? 0);
  }

  #setConversations(list: readonly ConversationSummary[]): void {
    this.conversations = [...list].sort((a, b) => this.#activity(b) - this.#activity(a));
    this.#maybeMarkRead();
  }

  #upsertConversation(summary: ConversationSummary): void {
    const others = this.conversations.filter((c) => c.id !== summary.id);
    this.#setConversations([...others, summary]);
  }

  #removeConversation(id: ConversationId): void {
    this.conversations = this.conversations.filter((c) => c.id !== id);
    this.#histories.delete(id);
    if (this.currentId === id) this.closeConversation();
    const panel = this.panel;
    if (panel?.kind === 'group' && `group:${panel.group}` === id) this.closePanel();
  }

  #setContact(contact: Contact): void {
    this.contacts.set(contact.userId, contact);
    const panel = this.panel;
    if (panel?.kind === 'contact' && panel.userId === contact.userId)
      void this.#loadSafetyNumber(contact.userId);
  }

  // ---- First run, unlock, relay -------------------------------------------------------------

  /** First run: creates the profile (with a passphrase when there is no keychain). */
  async createProfile(userId: string, passphrase?: string): Promise<string | null> {
    const invalid = validateName(userId, 'user id');
    if (invalid) return invalid;
    return this.#answer(async () => {
      await this.#api.createProfile(passphrase === undefined ? { userId } : { userId, passphrase });
      this.#setStatus(await this.#api.getStatus());
    });
  }

  async unlock(passphrase: string): Promise<string | null> {
    if (!passphrase) return 'Enter your passphrase.';
    return this.#answer(async () => {
      await this.#api.unlock({ passphrase });
      this.#setStatus(await this.#api.getStatus());
    });
  }

  /** Tries again to open a profile whose keys could not be read (after the keychain is back). */
  async reopenProfile(): Promise<string | null> {
    return this.#answer(async () => {
      await this.#api.reopenProfile();
      this.#setStatus(await this.#api.getStatus());
    });
  }

  /**
   * Deletes the profile whose keys are lost (or whose database is damaged), so a new one can be created
   * (first run).
   */
  async discardProfile(): Promise<string | null> {
    const userId = this.status?.profile?.userId ?? this.status?.profileProblem?.profileName;
    if (!userId) return null;
    return this.#answer(async () => {
      await this.#api.discardProfile({ userId });
      this.#setStatus(await this.#api.getStatus());
    });
  }

  /** Shows the profile's database file in the file manager (the damaged-database screen). */
  async openProfileFolder(): Promise<string | null> {
    return this.#answer(() => this.#api.openProfileFolder());
  }

  /** "Try again" on the storage banner: the database is checked now (the service also checks by itself). */
  async retryStorage(): Promise<string | null> {
    return this.#answer(async () => {
      await this.#api.retryStorage();
      this.#setStatus(await this.#api.getStatus());
    });
  }

  /** Connects to a relay by address (typed or discovered). */
  async connect(relayUrl: string): Promise<string | null> {
    const url = relayUrl.trim();
    const invalid = validateRelayUrl(url);
    if (invalid) return invalid;
    return this.#relayCall(async () => {
      await this.#api.connect({ relayUrl: url });
      this.relaySetup = false;
      this.connectionError = null;
      await this.#refreshStatus();
    });
  }

  /** The user compared the relay's new key with its operator and accepts it: it is pinned and used. */
  async acceptRelayKey(): Promise<string | null> {
    const change = this.relayKeyChange;
    if (!change) return null;
    return this.#relayCall(async () => {
      await this.#api.acceptRelayKey({
        relayUrl: change.relayUrl,
        fingerprint: change.presentedFingerprint,
      });
      this.relaySetup = false;
      this.connectionError = null;
      this.notices.dismissTopic(CONNECTION_TOPIC);
      await this.#refreshStatus();
    });
  }

  async disconnect(): Promise<void> {
    await this.#attempt(() => this.#api.disconnect());
    await this.#refreshStatus();
  }

  /** Hosts the bundled relay on the LAN; the service connects this profile to it. */
  async hostRelay(): Promise<string | null> {
    return this.#relayCall(async () => {
      const hosted = await this.#api.hostRelay({ port: this.settings.relayPort });
      if (this.status) this.status = { ...this.status, hostedRelay: hosted };
      // The service connected us to the relay we host (over loopback).
      this.connectionError = null;
      await this.#refreshStatus();
    });
  }

  async stopHostingRelay(): Promise<string | null> {
    return this.#relayCall(async () => {
      await this.#api.stopHostingRelay();
      if (this.status) this.status = { ...this.status, hostedRelay: null };
      await this.#refreshStatus();
    });
  }

  /** A form action of the relay screen: `relayBusy` while it runs. */
  async #relayCall(call: () => Promise<void>): Promise<string | null> {
    this.relayBusy = true;
    try {
      return await this.#answer(call);
    } finally {
      this.relayBusy = false;
    }
  }

  /** Leaves the relay setup screen (after hosting, or without a relay: the status then says "Offline"). */
  finishRelaySetup(): void {
    this.relaySetup = false;
  }

  async #refreshStatus(): Promise<void> {
    try {
      this.#setStatus(await this.#api.getStatus());
    } catch (error) {
      this.notices.show(errorMessage(error));
    }
  }

  // ---- Conversations ------------------------------------------------------------------------

  /** Shows a conversation: its history (cached or loaded) and marks it read. */
  openConversation(id: ConversationId): void {
    if (this.currentId === id && this.current) return;
    let history = this.#histories.get(id);
    if (history?.error) history = undefined; // a failed first page is tried again
    if (history) {
      this.#histories.delete(id); // re-inserted below as the most recently used
      history.jumpToLatest();
    } else {
      history = new ConversationHistory(this.#api, id);
      void history.load();
    }
    this.#histories.set(id, history);
    for (const key of this.#histories.keys()) {
      if (this.#histories.size <= CACHED_HISTORIES) break;
      this.#histories.delete(key);
    }
    this.currentId = id;
    this.current = history;
    this.#maybeMarkRead(true);
  }

  closeConversation(): void {
    this.currentId = null;
    this.current = null;
  }

  /**
   * Marks the open conversation read when it has unread items and the window has focus: at once when
   * it was just opened, else after a short pause that coalesces a burst of incoming messages.
   */
  #maybeMarkRead(now = false): void {
    const summary = this.currentSummary;
    if (!summary || summary.unread === 0 || !this.#windowAttended()) return;
    clearTimeout(this.#markReadTimer);
    this.#markReadTimer = setTimeout(
      () => {
        const id = summary.id;
        const latest = this.conversations.find((c) => c.id === id);
        if (latest && latest.unread > 0) this.#upsertConversation({ ...latest, unread: 0 });
        this.#api
          .markRead({ conversationId: id })
          .catch((error: unknown) => this.notices.show(errorMessage(error)));
      },
      now ? 0 : COALESCE_MS,
    );
  }

  /** The window became visible and focused: the open conversation is being read. */
  windowAttended(): void {
    this.#maybeMarkRead();
  }

  #windowAttended(): boolean {
    return typeof document === 'undefined' || (document.visibilityState === 'visible' && document.hasFocus());
  }

  /** Sends text to the open conversation; false when it failed (the composer keeps the text). */
  async send(text: string): Promise<boolean> {
    const history = this.current;
    if (!history) return false;
    const target = conversationTarget(history.id);
    try {
      const item =
        target.kind === 'direct'
          ? await this.#api.sendDirect({ to: target.name, text })
          : await this.#api.sendGroup({ group: target.name, text });
      this.#onItem(item);
      return true;
    } catch (error) {
      this.notices.show(errorMessage(error));
      return false;
    }
  }

  /** Opens (or creates) a direct conversation with a user and shows it. */
  async openDirect(userId: string): Promise<string | null> {
    const id = userId.trim();
    const invalid = validateName(id, 'user id');
    if (invalid) return invalid;
    // User ids are case-insensitive (the service uses them in lower case).
    if (id.toLowerCase() === this.me)
      return 'That is your own user id. Enter the user id of the person to write to.';
    return this.#answer(async () => {
      const summary = await this.#api.openDirect({ userId: id });
      if (!this.#touched.has(summary.id)) this.#touched.set(summary.id, Date.now());
      this.#upsertConversation(summary);
      this.closePanel();
      this.openConversation(summary.id);
    });
  }

  /** Creates a group (invite-only unless 'open' was chosen) and shows its conversation. */
  async createGroup(name: string, policy: 'invite-only' | 'open'): Promise<string | null> {
    const group = name.trim();
    const invalid = validateName(group, 'group name');
    if (invalid) return invalid;
    return this.#answer(async () => this.#enterGroup(await this.#api.createGroup({ group, policy })));
  }

  /** Joins an open group by its name and shows its conversation. */
  async joinGroup(name: string): Promise<string | null> {
    const group = name.trim();
    const invalid = validateName(group, 'group name');
    if (invalid) return invalid;
    return this.#answer(async () => this.#enterGroup(await this.#api.joinGroup({ group })));
  }

  /** Joins with an invite link (or asks to, when an admin approves) and shows the conversation. */
  async joinGroupWithLink(text: string): Promise<string | null> {
    const link = text.trim();
    if (!link) return 'Paste the invite link someone sent you.';
    if (!link.startsWith('sealed://join?'))
      return 'This is not a Sealed invite link. It starts with sealed://join.';
    return this.#answer(async () => this.#enterGroup(await this.#api.joinGroupWithLink({ link })));
  }

  async #enterGroup(info: GroupInfo): Promise<void> {
    this.#setGroup(info);
    const id: ConversationId = `group:${info.group}`;
    this.#touched.set(id, Date.now());
    this.#setConversations(await this.#api.listConversations());
    this.closePanel();
    this.openConversation(id);
  }

  async loadGroup(group: string): Promise<void> {
    try {
      this.#setGroup(await this.#api.getGroup({ group }));
    } catch (error) {
      this.notices.show(errorMessage(error));
    }
  }

  #setGroup(info: GroupInfo): void {
    const before = this.groups.get(info.group);
    this.groups.set(info.group, info);
    // The panel's safety number follows the verified log: a new roster, a new number.
    const panel = this.panel;
    if (panel?.kind === 'group' && panel.group === info.group && before?.safetyNumber !== info.safetyNumber)
      void this.#loadGroupSafety(info.group);
  }

  async #loadGroupSafety(group: string): Promise<void> {
    try {
      const safety = await this.#api.getGroupSafetyNumber({ group });
      const panel = this.panel;
      if (panel?.kind === 'group' && panel.group === group) this.groupSafety = safety;
    } catch {
      this.groupSafety = null; // not (or no longer) on the roster: the panel says so itself
    }
  }

  /** An admin invites a user; the answer is the form's sentence. */
  async inviteToGroup(group: string, name: string): Promise<string | null> {
    const userId = name.trim();
    const invalid = validateName(userId, 'user id');
    if (invalid) return invalid;
    if (userId === this.me) return 'That is your own user id. Enter the user id of the person to invite.';
    return this.#answer(async () => this.#setGroup(await this.#api.inviteToGroup({ group, userId })));
  }

  /** Accepts an invitation: the user becomes a member. */
  acceptInvitation(group: string): Promise<string | null> {
    return this.#answer(async () => this.#setGroup(await this.#api.acceptGroupInvitation({ group })));
  }

  /** Declines an invitation (the conversation and its lines stay). */
  declineInvitation(group: string): Promise<string | null> {
    return this.#answer(async () => {
      await this.#api.declineGroupInvitation({ group });
      this.groups.delete(group);
    });
  }

  /** An admin's change about one person: approve, remove (or decline), make admin or member. */
  changeMember(
    group: string,
    userId: string,
    change: 'approve' | 'remove' | GroupRole,
  ): Promise<string | null> {
    return this.#answer(async () => {
      const info =
        change === 'approve'
          ? await this.#api.approveJoinRequest({ group, userId })
          : change === 'remove'
            ? await this.#api.removeFromGroup({ group, userId })
            : await this.#api.setGroupRole({ group, userId, role: change });
      this.#setGroup(info);
    });
  }

  /** An admin sets who may join; 'link' makes a new invite link. */
  setGroupPolicy(group: string, policy: GroupPolicy, approval: boolean): Promise<string | null> {
    return this.#answer(async () => {
      const info = await this.#api.setGroupPolicy(
        policy === 'link' ? { group, policy, approval } : { group, policy },
      );
      this.#setGroup(info);
    });
  }

  /** Copies the invite link (the main process writes the clipboard) and says so. */
  copyGroupLink(group: string): Promise<string | null> {
    return this.#answer(async () => {
      await this.#api.copyGroupLink({ group });
      this.notices.show('Invite link copied.', { tone: 'info' });
    });
  }

  /** Leaves or deletes (admins only) a group; its conversation and history stay. */
  async exitGroup(mode: 'leave' | 'delete', group: string): Promise<string | null> {
    return this.#answer(async () => {
      if (mode === 'leave') await this.#api.leaveGroup({ group });
      else await this.#api.deleteGroup({ group });
      this.groups.delete(group);
      // The conversation goes first, so focus does not return to a button about to disappear.
      this.#setConversations(await this.#api.listConversations());
      if (!this.conversations.some((c) => c.id === `group:${group}`)) {
        this.#removeConversation(`group:${group}`);
      }
      this.closePanel();
    });
  }

  // ---- Trust --------------------------------------------------------------------------------

  async #loadSafetyNumber(userId: string): Promise<void> {
    try {
      const safety = await this.#api.getSafetyNumber({ userId });
      const panel = this.panel;
      if (panel?.kind === 'contact' && panel.userId === userId) {
        this.safety = safety;
        this.safetyError = null;
      }
    } catch (error) {
      this.safetyError = errorMessage(error);
    }
  }

  async setVerified(userId: string, verified: boolean): Promise<void> {
    const ok = await this.#attempt(() => this.#api.setVerified({ userId, verified }));
    if (!ok) return;
    const contact = this.contacts.get(userId);
    this.#setContact({ userId, keyChanged: contact?.keyChanged ?? false, verified });
  }

  /**
   * The user accepts a contact's new key, the one whose safety number they were shown: sending resumes.
   * If another key replaced it meanwhile, the service refuses (a notice says so) and its 'contact' event
   * brings the new number.
   */
  async acceptKeyChange(userId: string, safetyNumber: string): Promise<void> {
    const ok = await this.#attempt(() => this.#api.acceptKeyChange({ userId, safetyNumber }));
    if (ok) this.#keyDecided(userId);
  }

  /** The user rejects a contact's new key: the old key stays, sending resumes on it. */
  async rejectKeyChange(userId: string): Promise<void> {
    const ok = await this.#attempt(() => this.#api.rejectKeyChange({ userId }));
    if (ok) this.#keyDecided(userId);
  }

  #keyDecided(userId: string): void {
    const contact = this.contacts.get(userId);
    // A decision drops an earlier verification (the service says so by a 'contact' event).
    this.#setContact({ userId, verified: contact?.verified ?? false, keyChanged: false });
    const summary = this.conversations.find((c) => c.id === `dm:${userId}`);
    if (summary?.keyChanged) this.#upsertConversation({ ...summary, keyChanged: false });
  }

  // ---- Settings and panels ------------------------------------------------------------------

  async updateSettings(change: Partial<Settings>): Promise<string | null> {
    return this.#answer(async () => {
      this.settings = await this.#api.updateSettings(change);
    });
  }

  openPanel(panel: Panel): void {
    this.panel = panel;
    if (panel.kind === 'contact') {
      this.safety = null;
      this.safetyError = null;
      void this.#loadSafetyNumber(panel.userId);
    } else if (panel.kind === 'group') {
      this.groupSafety = null;
      void this.loadGroup(panel.group);
      void this.#loadGroupSafety(panel.group);
    } else if (panel.kind === 'relay') {
      void this.#api.listDiscoveredRelays().then(
        (relays) => (this.relays = relays),
        () => {},
      );
    }
  }

  closePanel(): void {
    this.panel = null;
  }

  /** Runs a form's call: null when it succeeded, else the sentence the form shows inline. */
  async #answer(call: () => Promise<void>): Promise<string | null> {
    try {
      await call();
      return null;
    } catch (error) {
      return errorMessage(error);
    }
  }

  /** Runs a call, shows its failure as a notice; true when it succeeded. */
  async #attempt(call: () => Promise<unknown>): Promise<boolean> {
    try {
      await call();
      return true;
    } catch (error) {
      this.notices.show(errorMessage(error));
      return false;
    }
  }
}
