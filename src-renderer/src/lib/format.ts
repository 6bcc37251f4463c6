/**
 * Pure helpers of the renderer: input validation with plain-sentence errors, and display formatting.
 * The service validates again (the renderer is untrusted); these only give early, friendly feedback.
 */
import type { HTMLInputAttributes } from 'svelte/elements';

import type {
  ConversationId,
  GroupInfo,
  GroupPolicy,
  HistoryItem,
  MessageStatus,
} from '../../../src-main/shared/messenger-api';

/** User and group ids (the wire protocol's `Name`): 1-64 of A-Z a-z 0-9 . _ - starting alphanumeric. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The longest user id or group name (NAME_PATTERN's limit). */
export const MAX_NAME_LENGTH = 64;
/** Attributes of a field that takes a user id or group name: typed as is, at most MAX_NAME_LENGTH long. */
export const NAME_INPUT = {
  spellcheck: 'false',
  autocapitalize: 'off',
  maxlength: MAX_NAME_LENGTH,
} as const satisfies HTMLInputAttributes;

/** Minimum passphrase length the first-run screen asks for (the key file is only as strong as it). */
export const MIN_PASSPHRASE_LENGTH = 8;

/** Checks a user id or group name; returns a sentence saying what is wrong, or null when it is fine. */
export function validateName(value: string, what: 'user id' | 'group name'): string | null {
  const article = what === 'user id' ? 'A user id' : 'A group name';
  if (value.length === 0) return `Enter a ${what}.`;
  if (value.length > MAX_NAME_LENGTH) return `${article} can be at most ${MAX_NAME_LENGTH} characters long.`;
  if (!/^[A-Za-z0-9]/.test(value)) return `${article} must start with a letter or a digit.`;
  if (!NAME_PATTERN.test(value)) {
    return `${article} can only contain letters, digits, dots, underscores and hyphens (no spaces).`;
  }
  return null;
}

/** Checks a relay address typed by the user: a ws:// or wss:// URL. */
export function validateRelayUrl(value: string): string | null {
  if (value.length === 0) return 'Enter the address of a relay.';
  if (!/^wss?:\/\//i.test(value)) {
    return 'A relay address starts with ws:// or wss://, like wss://relay.example.org:8787.';
  }
  try {
    const url = new URL(value);
    if (!url.hostname) return 'That relay address has no host name. Check it for typos.';
  } catch {
    return 'That relay address is not valid. Check it for typos.';
  }
  return null;
}

/** Checks a new passphrase and its confirmation. */
export function validateNewPassphrase(passphrase: string, confirmation: string): string | null {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
    return `Choose a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters.`;
  }
  if (passphrase !== confirmation) return 'The two passphrases do not match. Type the same one twice.';
  return null;
}

/** Checks a relay port typed in the settings. */
export function validatePort(value: number): string | null {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    return 'Choose a port number between 1 and 65535.';
  }
  return null;
}

const FALLBACK_ERROR = 'Something went wrong. Please try again.';

/**
 * The plain sentence of a rejected call. The contract promises one in `message`; IPC layers may add a
 * technical prefix ("Error invoking remote method ...: Error: "), which is stripped.
 */
export function errorMessage(error: unknown): string {
  const raw = error instanceof Error ? error.message : typeof error === 'string' ? error : '';
  const message = raw.replace(/^Error invoking remote method '[^']*': (?:\w*Error: )?/, '').trim();
  return message || FALLBACK_ERROR;
}

/** The items of `items` whose id is not among `known`'s (merging pages with items from events). */
export function withoutIds(items: readonly HistoryItem[], known: readonly HistoryItem[]): HistoryItem[] {
  const ids = new Set(known.map((item) => item.id));
  return items.filter((item) => !ids.has(item.id));
}

/** The other user of a direct conversation, or the group of a group conversation. */
export function conversationTarget(id: ConversationId): { kind: 'direct' | 'group'; name: string } {
  return id.startsWith('dm:') ? { kind: 'direct', name: id.slice(3) } : { kind: 'group', name: id.slice(6) };
}

/** Splits the 60 safety-number digits into the 12 groups of 5 people compare aloud. */
export function safetyNumberGroups(digits: string): string[] {
  const clean = digits.replace(/\D/g, '');
  const groups: string[] = [];
  for (let i = 0; i < clean.length; i += 5) groups.push(clean.slice(i, i + 5));
  return groups;
}

/** A relay key fingerprint (30 digits) as people read it out: six groups of five. */
export function formatFingerprint(digits: string): string {
  return safetyNumberGroups(digits).join(' ');
}

/** Base64 of a UTF-8 string (for the QR code's data: URL). */
export function utf8ToBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekdayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
  year: 'numeric',
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** True when both times fall on the same local calendar day. */
export function sameDay(a: number, b: number): boolean {
  return startOfDay(a) === startOfDay(b);
}

/** Clock time of a message ("14:05"). */
export function formatTime(at: number): string {
  return timeFormat.format(at);
}

/** Full date and time, for tooltips and screen readers. */
export function formatFull(at: number): string {
  return fullFormat.format(at);
}

/** Short time for the conversation list: clock time today, weekday this week, else the date. */
export function formatListTime(at: number, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(at)) / 86_400_000);
  if (days <= 0) return timeFormat.format(at);
  if (days === 1) return 'Yesterday';
  if (days < 7) return weekdayFormat.format(at);
  return dateFormat.format(at);
}

/** Heading of a day in the message list ("Today", "Yesterday", "Monday, 3 March 2025"). */
export function formatDay(at: number, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(at)) / 86_400_000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return longDateFormat.format(at);
}

/** Words for a delivery state, used as the accessible label of its icon. */
export const STATUS_LABEL: Record<MessageStatus, string> = {
  sending: 'Sending',
  sent: 'Sent',
  delivered: 'Delivered',
  failed: 'Not sent',
};

/**
 * The letters standing for a name in an avatar: one per word, for the first two words ("book-club"
 * gives "BC", "bob" gives "B"). Words are separated by dots, underscores and hyphens, as in user ids.
 */
export function initials(name: string): string {
  const words = name.split(/[._-]+/).filter(Boolean);
  const letters = words.slice(0, 2).map((word) => String.fromCodePoint(word.codePointAt(0) ?? 0x3f));
  return (letters.join('') || name.charAt(0)).toUpperCase();
}

/** A stable hue (0-359) for a name, so each contact keeps the same avatar colour. */
export function nameHue(name: string): number {
  let hash = 2166136261;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return (hash >>> 0) % 360;
}

/** What a group's join policy means, as a sentence (the group panel and the new-group dialog). */
export function policySentence(policy: GroupPolicy, approval: boolean): string {
  switch (policy) {
    case 'invite-only':
      return 'Only people an admin invites can join; each one accepts or declines.';
    case 'open':
      return 'Anyone on this relay who knows the name can join and read later messages.';
    case 'link':
      return approval
        ? 'Anyone with the invite link can ask to join; an admin approves each request.'
        : 'Anyone with the invite link can join and read later messages.';
  }
}

/**
 * Why the user cannot write in a group conversation now, or null: not (or no longer) a member, an
 * invitation not accepted yet, a request an admin has not approved, or a member list that differs.
 */
export function groupSendBlock(info: GroupInfo | undefined, groupsLoaded: boolean): string | null {
  if (!info) return groupsLoaded ? 'You are not a member of this group. Its history stays here.' : null;
  if (info.me.standing === 'invited') return 'Accept the invitation to write in this group.';
  if (info.me.standing === 'requested')
    return 'You can write here once an admin approves your request to join.';
  if (info.outOfSync) return "Sending is paused: your member list differs from the other members'.";
  return null;
}
