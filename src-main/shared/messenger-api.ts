/**
 * The one contract between the main process and the renderer: `window.messenger`.
 *
 * Runs everywhere (main, preload, renderer): types and plain constants only, no imports. The main
 * process implements it (src-main/services), the preload forwards each method over IPC
 * (src-preload), the renderer only calls it and displays what comes back. The renderer never sees a
 * key, a ciphertext or a session: only ids, display text and states.
 */

export type ConversationId = `dm:${string}` | `group:${string}`;

export type ConnectionState = 'offline' | 'connecting' | 'connected' | 'reconnecting';

/** Where the identity keys live. 'passphrase-file' only when no OS keychain is available. */
export type KeyStorage = 'keychain' | 'passphrase-file';

export interface Profile {
  readonly userId: string;
  /** The relay last used (reconnected at start), if any. */
  readonly relayUrl: string | null;
  readonly keyStorage: KeyStorage;
}

/** What the app knows at start: a profile, or what the first-run screen needs. */
export interface AppStatus {
  readonly profile: Profile | null;
  /** False on Linux without a Secret Service: the UI offers the passphrase-protected key file. */
  readonly keychainAvailable: boolean;
  /** A passphrase-file profile exists and must be unlocked before anything else. */
  readonly locked: boolean;
  readonly connection: ConnectionState;
  readonly hostedRelay: HostedRelay | null;
  /**
   * Why relays on the network cannot be found (multicast cannot be sent or received here), as a
   * sentence for the "Relays on your network" section; absent (or null) while discovery works.
   */
  readonly discoveryProblem?: string | null;
  /**
   * Why the profile on this computer could not be opened at start (its keys are missing from the
   * keychain, or the keychain did not answer), or null. While set, only `reopenProfile` and (when the
   * keys are gone) `discardProfile` can help; every other call fails with the same sentence.
   */
  readonly profileProblem: ProfileProblem | null;
  /**
   * The profile's database cannot be written now (full disk, read-only folder, damaged file, disk error):
   * delivery and sending are paused until it can (see StorageProblem). Absent (or null) otherwise.
   */
  readonly storageProblem?: StorageProblem | null;
  /**
   * The relay the app tried to log in to presented another key than the one it showed the first time
   * (issue 8): Sealed did not log in and sends nothing there until the user accepts the new key
   * (`acceptRelayKey`) or connects elsewhere. Absent (or null) otherwise.
   */
  readonly relayKeyChange?: RelayKeyChange | null;
  /** The fingerprint (30 digits) of the key of the relay in use, once it was seen; to compare with its operator. */
  readonly relayFingerprint?: string | null;
}

/** A relay's key differs from the one pinned for its address. Fingerprints are 30 digits. */
export interface RelayKeyChange {
  /** The address as the app dialled it. */
  readonly relayUrl: string;
  /** The key first seen there. */
  readonly pinnedFingerprint: string;
  /** The key it presents now (and proved it holds). */
  readonly presentedFingerprint: string;
}

/**
 * A profile that exists but cannot be opened. 'keys-missing': the keychain answered but holds no keys
 * for it (history and identity cannot be read without them); 'keychain-unavailable': the keychain did
 * not answer (locked, or its service is not running), the keys may still be there; 'keys-unusable':
 * keys were found but do not open the profile's database.
 */
export interface ProfileProblem {
  readonly kind:
    | 'keys-missing'
    | 'keychain-unavailable'
    | 'keys-unusable'
    /** The profile's database file is damaged (not a database, truncated, fails its integrity check). */
    | 'database-damaged'
    /** The profile's database could not be opened for writing: read-only folder, full disk, disk error. */
    | 'database-unavailable';
  /** The plain sentence of what went wrong. */
  readonly message: string;
  /** The database kinds: the profile's name on this computer (what `discardProfile` must name). */
  readonly profileName?: string;
  /** The database kinds: the database file, as the user finds it in their file manager. */
  readonly path?: string;
}

/** Why the profile's database cannot be written now. */
export type StorageProblemReason = 'full' | 'readOnly' | 'damaged' | 'io';

/**
 * The profile's database cannot be written (issue 11). Nothing is lost: Sealed stops acknowledging
 * messages to the relay, which keeps them; sending is paused. Sealed checks again by itself and goes
 * on once the cause is gone (or at once with `retryStorage`).
 */
export interface StorageProblem {
  readonly reason: StorageProblemReason;
  /** What is wrong and what happens to messages, as a sentence. */
  readonly message: string;
  /** The database file. */
  readonly path: string;
}

export interface HostedRelay {
  readonly port: number;
  /**
   * URLs other machines can use: one per LAN or VPN address (IPv4 first, then IPv6); never loopback,
   * and container/VM bridges only when nothing else exists. May be empty (no network).
   */
  readonly urls: readonly string[];
  /** The URL this computer itself uses (loopback). */
  readonly localUrl?: string;
  /** The hosted relay's key fingerprint (30 digits), for others to compare with what their app shows. */
  readonly fingerprint?: string;
}

export interface DiscoveredRelay {
  /** mDNS instance name (the hosting user's id and machine). */
  readonly name: string;
  /** The address to use: the one the announcement came from, on a network this computer shares. */
  readonly url: string;
  /** Every advertised address, best first (url first); connect() tries them in turn. */
  readonly urls?: readonly string[];
  /** The relay's machine as mDNS names it, e.g. `machine-a.local.`. */
  readonly host?: string;
  /** This computer's network interface it was found on (e.g. `eth0`, `wlan0`). */
  readonly interface?: string;
  /** That network, e.g. `192.168.1.0/24`. */
  readonly subnet?: string;
}

export type MessageStatus = 'sending' | 'sent' | 'delivered' | 'failed';

/** One line of a conversation: a message or an event (joined, left, keys rotated, key changed...). */
export interface HistoryItem {
  readonly id: string;
  readonly conversationId: ConversationId;
  readonly kind: 'message' | 'event';
  /** Sender user id (messages) or the subject of the event. */
  readonly from: string;
  readonly text: string;
  /** ms since epoch. */
  readonly at: number;
  readonly direction: 'in' | 'out';
  /** Outgoing messages only. */
  readonly status?: MessageStatus;
}

export interface ConversationSummary {
  readonly id: ConversationId;
  readonly kind: 'direct' | 'group';
  /** The other user's id, or the group name. */
  readonly title: string;
  readonly unread: number;
  /** The last message (event lines are not previewed), or null when there is none yet. */
  readonly last: { readonly from: string; readonly text: string; readonly at: number } | null;
  /** Direct only: the contact's key changed and the user has not confirmed it yet. */
  readonly keyChanged: boolean;
}

export interface HistoryPage {
  readonly items: readonly HistoryItem[];
  /** Pass as `before` to get the previous page; null when this page reaches the start. */
  readonly nextBefore: string | null;
}

export interface Contact {
  readonly userId: string;
  readonly verified: boolean;
  readonly keyChanged: boolean;
  /**
   * Contacts added before this one whose ids look like this one's (`a1ice` and `alice`, `rn` and `m`,
   * `0` and `o`): the UI warns that this may not be who it seems. Absent or empty when there are none.
   */
  readonly looksLike?: readonly string[];
  /** Present while keyChanged: the new key the user decides on. */
  readonly pendingKey?: PendingKey;
}

/** A contact's new security key, waiting for the user to accept or reject it. */
export interface PendingKey {
  /** The 60-digit safety number with the new key: what acceptKeyChange must carry. */
  readonly safetyNumber: string;
  /** Messages sent under the new key, held (not shown) until the user decides. */
  readonly held: number;
}

export interface SafetyNumber {
  readonly userId: string;
  /** 60 digits, shown in 12 groups of 5. */
  readonly digits: string;
  /** QR code of the digits as an SVG document (rendered as an <img> data: URL). */
  readonly qrSvg: string;
  readonly verified: boolean;
  readonly keyChanged: boolean;
}

/** Who may join a group without an admin's invitation. */
export type GroupPolicy =
  /** Only people an admin invites (the default). */
  | 'invite-only'
  /** Anyone on the relay who knows the name: they can join and read later messages. */
  | 'open'
  /** Anyone holding the invite link an admin made (with `approval`, an admin approves each one). */
  | 'link';

export type GroupRole = 'admin' | 'member';

/** A person's place on a roster: a full member, invited by an admin, or asking to join with the link. */
export type GroupStanding = 'member' | 'invited' | 'requested';

export interface GroupMember {
  readonly userId: string;
  readonly role: GroupRole;
  readonly standing: GroupStanding;
}

/**
 * A group as this device verified it from its signed membership log: the relay cannot add, drop or
 * change anyone here without it showing.
 */
export interface GroupInfo {
  readonly group: string;
  readonly creator: string;
  /** Full members, sorted. */
  readonly members: readonly string[];
  /** Everyone on the roster (members, invitations, join requests), sorted by user id. */
  readonly roster: readonly GroupMember[];
  /** The user's own place on the roster. */
  readonly me: GroupMember;
  readonly policy: GroupPolicy;
  /** With the 'link' policy: an admin approves each person who uses the link. */
  readonly approval: boolean;
  /** The current invite link, when this device made it (only admins make links); else null. */
  readonly link: string | null;
  /** The group safety number (60 digits): members who see the same number have the same member list. */
  readonly safetyNumber: string;
  /**
   * Why this device's member list may differ from the other members' (a plain sentence), or null.
   * While set, sending to the group is refused with this sentence.
   */
  readonly outOfSync: string | null;
}

/** A group's safety number with its QR code (like a contact's SafetyNumber). */
export interface GroupSafetyNumber {
  readonly group: string;
  /** 60 digits, shown in 12 groups of 5. */
  readonly digits: string;
  /** QR code of the digits as an SVG document. */
  readonly qrSvg: string;
}

export type NotificationPrivacy = 'none' | 'sender' | 'sender-and-text';
export type Theme = 'system' | 'light' | 'dark';

export interface Settings {
  readonly notifications: NotificationPrivacy;
  readonly theme: Theme;
  /** Port for hosting a LAN relay. */
  readonly relayPort: number;
}

/** The single event stream of `onEvent`. */
export type MessengerEvent =
  | { readonly type: 'status'; readonly status: AppStatus }
  | { readonly type: 'connection'; readonly state: ConnectionState; readonly error?: string }
  | { readonly type: 'item'; readonly item: HistoryItem }
  | {
      readonly type: 'itemStatus';
      readonly conversationId: ConversationId;
      readonly id: string;
      readonly status: MessageStatus;
    }
  | { readonly type: 'conversation'; readonly summary: ConversationSummary }
  | { readonly type: 'conversationRemoved'; readonly id: ConversationId }
  | { readonly type: 'contact'; readonly contact: Contact }
  | { readonly type: 'relays'; readonly relays: readonly DiscoveredRelay[] }
  | { readonly type: 'settings'; readonly settings: Settings }
  /** A group's roster, policy, safety number or sync state changed (or we joined or were invited). */
  | { readonly type: 'group'; readonly info: GroupInfo }
  /** We are no longer on a group's roster (left, declined, removed, deleted); its conversation stays. */
  | { readonly type: 'groupRemoved'; readonly group: string }
  /** A failure the user should read: always a plain sentence. */
  | { readonly type: 'error'; readonly message: string };

/** Every call's failure is an error whose message is a plain sentence (and a stable `code`). */
export interface MessengerApi {
  getStatus(): Promise<AppStatus>;
  /** First run: choose a user id; `passphrase` only when no keychain is available. */
  createProfile(args: { userId: string; passphrase?: string }): Promise<Profile>;
  /** Unlocks a passphrase-file profile. */
  unlock(args: { passphrase: string }): Promise<Profile>;
  /** Tries again to open a profile with a `profileProblem` (after the user unlocked or restored the keychain). */
  reopenProfile(): Promise<Profile>;
  /**
   * Deletes a profile whose keys are gone ('keys-missing' or 'keys-unusable'), with its unreadable
   * history, so a new one can be created; `userId` must name it. Refused for any other profile.
   */
  discardProfile(args: { userId: string }): Promise<void>;
  /**
   * Checks the database again now ("Try again" on the storage banner): resolves once it can be written
   * (delivery and sending resume), or fails with STORAGE_PROBLEM and the sentence of what is still wrong.
   */
  retryStorage(): Promise<void>;
  /** Shows the profile's database file in the system's file manager (the desktop app only). */
  openProfileFolder(): Promise<void>;

  /** Connects; for an address of a discovered relay, its other addresses are tried if it does not answer. */
  connect(args: { relayUrl: string }): Promise<void>;
  /**
   * The user compared the relay's new key with its operator and accepts it: `fingerprint` is the one they
   * were shown (`status.relayKeyChange.presentedFingerprint`); refused if the relay presented yet another
   * key since. Pins it and connects.
   */
  acceptRelayKey(args: { relayUrl: string; fingerprint: string }): Promise<void>;
  disconnect(): Promise<void>;

  /**
   * Starts the bundled relay on all interfaces, advertises it on the LAN (mDNS) and connects this
   * profile to it (over loopback). Hosting is remembered: it starts again with the app.
   */
  hostRelay(args: { port?: number }): Promise<HostedRelay>;
  stopHostingRelay(): Promise<void>;
  listDiscoveredRelays(): Promise<readonly DiscoveredRelay[]>;

  listContacts(): Promise<readonly Contact[]>;
  getSafetyNumber(args: { userId: string }): Promise<SafetyNumber>;
  setVerified(args: { userId: string; verified: boolean }): Promise<void>;
  /**
   * The user compared `safetyNumber` (the pending key's, as shown) and accepts that key: sending
   * resumes and the held messages are shown. Refused (KEY_CHANGED_AGAIN) if another key arrived since.
   */
  acceptKeyChange(args: { userId: string; safetyNumber: string }): Promise<void>;
  /** The user rejects a contact's new key: the old key stays, what the new key sent is deleted. */
  rejectKeyChange(args: { userId: string }): Promise<void>;

  listConversations(): Promise<readonly ConversationSummary[]>;
  /** Newest last; `before` from a previous page's nextBefore. */
  getHistory(args: { conversationId: ConversationId; before?: string; limit?: number }): Promise<HistoryPage>;
  markRead(args: { conversationId: ConversationId }): Promise<void>;
  /** Opens (or returns) a direct conversation with a user. */
  openDirect(args: { userId: string }): Promise<ConversationSummary>;

  sendDirect(args: { to: string; text: string }): Promise<HistoryItem>;
  sendGroup(args: { group: string; text: string }): Promise<HistoryItem>;

  /**
   * Creates a group with the user as its first admin: invite-only unless `policy` is 'open' (anyone
   * who knows the name can join and read later messages), which must be chosen explicitly.
   */
  createGroup(args: { group: string; policy?: 'invite-only' | 'open' }): Promise<GroupInfo>;
  /** Joins an open group by its name; any other group refuses with a sentence saying how to get in. */
  joinGroup(args: { group: string }): Promise<GroupInfo>;
  /** Joins with an invite link: a member at once, or (`me.standing` 'requested') once an admin approves. */
  joinGroupWithLink(args: { link: string }): Promise<GroupInfo>;
  /** Admins: invites a user, who then accepts or declines. */
  inviteToGroup(args: { group: string; userId: string }): Promise<GroupInfo>;
  acceptGroupInvitation(args: { group: string }): Promise<GroupInfo>;
  declineGroupInvitation(args: { group: string }): Promise<void>;
  /** Admins: approves a join request made with the invite link. */
  approveJoinRequest(args: { group: string; userId: string }): Promise<GroupInfo>;
  /** Admins: removes a member, withdraws an invitation or declines a join request. */
  removeFromGroup(args: { group: string; userId: string }): Promise<GroupInfo>;
  /** Admins: makes a member an admin, or an admin a member (a group keeps at least one admin). */
  setGroupRole(args: { group: string; userId: string; role: GroupRole }): Promise<GroupInfo>;
  /**
   * Admins: sets who may join. 'link' makes a new invite link (an earlier one stops working), shown
   * in the returned `link`; `approval` (link only) makes an admin approve each person who uses it.
   */
  setGroupPolicy(args: { group: string; policy: GroupPolicy; approval?: boolean }): Promise<GroupInfo>;
  /** Admins: puts the current invite link on the system clipboard. */
  copyGroupLink(args: { group: string }): Promise<void>;
  leaveGroup(args: { group: string }): Promise<void>;
  /** Admins: deletes the group for everyone. */
  deleteGroup(args: { group: string }): Promise<void>;
  /** A group the user is on the roster of (a member, invited, or asking to join). */
  getGroup(args: { group: string }): Promise<GroupInfo>;
  /** Every group the user is on the roster of. */
  listGroups(): Promise<readonly GroupInfo[]>;
  getGroupSafetyNumber(args: { group: string }): Promise<GroupSafetyNumber>;

  getSettings(): Promise<Settings>;
  updateSettings(args: Partial<Settings>): Promise<Settings>;

  /** Subscribes to every event; returns the unsubscribe function. */
  onEvent(listener: (event: MessengerEvent) => void): () => void;
}

/** The request/response methods (everything but onEvent), in one list the preload and IPC share. */
export const API_METHODS = [
  'getStatus',
  'createProfile',
  'unlock',
  'reopenProfile',
  'discardProfile',
  'retryStorage',
  'openProfileFolder',
  'connect',
  'acceptRelayKey',
  'disconnect',
  'hostRelay',
  'stopHostingRelay',
  'listDiscoveredRelays',
  'listContacts',
  'getSafetyNumber',
  'setVerified',
  'acceptKeyChange',
  'rejectKeyChange',
  'listConversations',
  'getHistory',
  'markRead',
  'openDirect',
  'sendDirect',
  'sendGroup',
  'createGroup',
  'joinGroup',
  'joinGroupWithLink',
  'inviteToGroup',
  'acceptGroupInvitation',
  'declineGroupInvitation',
  'approveJoinRequest',
  'removeFromGroup',
  'setGroupRole',
  'setGroupPolicy',
  'copyGroupLink',
  'leaveGroup',
  'deleteGroup',
  'getGroup',
  'listGroups',
  'getGroupSafetyNumber',
  'getSettings',
  'updateSettings',
] as const satisfies readonly (keyof MessengerApi)[];

export type ApiMethod = (typeof API_METHODS)[number];

/** IPC channels: one for calls (invoke), one for events (main → renderer). */
export const IPC_CALL = 'messenger:call';
export const IPC_EVENT = 'messenger:event';

/** What an IPC call resolves to: errors travel as data so their plain-sentence message survives. */
export type CallResult<T = unknown> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };
