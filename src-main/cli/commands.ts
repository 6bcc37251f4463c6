/**
 * The chat's commands as one table: name, parameters, help, when it runs (at once, or once the relay
 * answers) and what it does. Parsing, usage errors and /help are derived from it, so a new command (group invitations,
 * say) is one more row and one more action.
 *
 * Message text is taken verbatim after the separating blanks: inner spaces, tabs and trailing
 * blanks are part of the message (issue 7: they used to be collapsed to single spaces).
 */
import * as v from 'valibot';
import { UsageError } from '../core/errors.js';
import { Name } from '../core/protocol/wire.js';

/** What the commands act on (implemented by ChatSession). */
export interface ChatActions {
  sendDirect(to: string, text: string): Promise<void>;
  sendGroup(group: string, text: string): Promise<void>;
  createGroup(group: string, policy: 'invite-only' | 'open'): Promise<void>;
  invite(group: string, userId: string): Promise<void>;
  accept(group: string): Promise<void>;
  decline(group: string): Promise<void>;
  /** By name (an open group) or with an invite link. */
  joinGroup(groupOrLink: string): Promise<void>;
  makeLink(group: string, approval: boolean): Promise<void>;
  setPolicy(group: string, policy: 'invite-only' | 'open'): Promise<void>;
  approve(group: string, userId: string): Promise<void>;
  remove(group: string, userId: string): Promise<void>;
  setRole(group: string, userId: string, role: 'admin' | 'member'): Promise<void>;
  leaveGroup(group: string): Promise<void>;
  deleteGroup(group: string): Promise<void>;
  members(group: string): Promise<void>;
  groupInfo(group: string): Promise<void>;
  listGroups(): Promise<void>;
  safety(userId: string): Promise<void>;
  acceptKey(userId: string, safetyNumber: string): Promise<void>;
  rejectKey(userId: string): Promise<void>;
  help(): void;
  quit(): Promise<void>;
}

/**
 * A parameter: a user id or a group name (both the wire's Name rule), a group name or an invite link,
 * one word of a fixed set (`optional`: it may be left out, and the action gets ''), or the rest of the line.
 */
export type ParamSpec =
  | { readonly name: string; readonly kind: 'user' | 'group' | 'groupOrLink' | 'text' }
  | {
      readonly name: string;
      readonly kind: 'choice';
      readonly choices: readonly string[];
      readonly optional?: boolean;
    };

/** One command of the table. */
export interface CommandSpec {
  /** Typed with a leading slash. */
  readonly name: string;
  /** In order; a `text` parameter can only be last, and optional ones come after the others. */
  readonly params: readonly ParamSpec[];
  readonly help: string;
  /**
   * When it runs: `relay` once connected, in order with the other relay commands; `local` at once,
   * connected or not, in order with the other local commands; `now` at once, ahead of anything queued.
   */
  readonly runs: 'relay' | 'local' | 'now';
  readonly run: (chat: ChatActions, args: readonly string[]) => Promise<void> | void;
}

const USER = { name: 'USER', kind: 'user' } as const;
const GROUP = { name: 'G', kind: 'group' } as const;
const TEXT = { name: 'TEXT', kind: 'text' } as const;
/** The 60 digits /safety shows, typed with or without the spaces between groups. */
const NUMBER = { name: 'SAFETYNUMBER', kind: 'text' } as const;

/** Every command, in the order /help lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: '/dm',
    params: [USER, TEXT],
    help: 'send an encrypted direct message',
    runs: 'relay',
    run: (c, [to, text]) => c.sendDirect(to!, text!),
  },
  {
    name: '/send',
    params: [GROUP, TEXT],
    help: 'send an encrypted message to group G',
    runs: 'relay',
    run: (c, [group, text]) => c.sendGroup(group!, text!),
  },
  {
    name: '/create',
    params: [GROUP, { name: 'open', kind: 'choice', choices: ['open'], optional: true }],
    help: 'create group G, you its admin; open: anyone who knows G may join',
    runs: 'relay',
    run: (c, [group, open]) => c.createGroup(group!, open === 'open' ? 'open' : 'invite-only'),
  },
  {
    name: '/invite',
    params: [GROUP, USER],
    help: 'invite USER to group G (admins); they /accept or /decline',
    runs: 'relay',
    run: (c, [g, u]) => c.invite(g!, u!),
  },
  {
    name: '/accept',
    params: [GROUP],
    help: 'accept your invitation to group G',
    runs: 'relay',
    run: (c, [g]) => c.accept(g!),
  },
  {
    name: '/decline',
    params: [GROUP],
    help: 'decline your invitation to group G',
    runs: 'relay',
    run: (c, [g]) => c.decline(g!),
  },
  {
    name: '/join',
    params: [{ name: 'G|LINK', kind: 'groupOrLink' }],
    help: 'join an open group by its name, or any group with its invite link',
    runs: 'relay',
    run: (c, [g]) => c.joinGroup(g!),
  },
  {
    name: '/link',
    params: [GROUP, { name: 'approval', kind: 'choice', choices: ['approval'], optional: true }],
    help: 'print a new invite link to G; with approval, an admin lets each in',
    runs: 'relay',
    run: (c, [g, approval]) => c.makeLink(g!, approval === 'approval'),
  },
  {
    name: '/policy',
    params: [GROUP, { name: 'invite-only|open', kind: 'choice', choices: ['invite-only', 'open'] }],
    help: 'who may join G: only those invited, or anyone who knows its name',
    runs: 'relay',
    run: (c, [g, policy]) => c.setPolicy(g!, policy === 'open' ? 'open' : 'invite-only'),
  },
  {
    name: '/approve',
    params: [GROUP, USER],
    help: 'let USER, who asked with the invite link, into group G',
    runs: 'relay',
    run: (c, [g, u]) => c.approve(g!, u!),
  },
  {
    name: '/remove',
    params: [GROUP, USER],
    help: 'remove USER from G: a member, an invitation or a join request',
    runs: 'relay',
    run: (c, [g, u]) => c.remove(g!, u!),
  },
  {
    name: '/promote',
    params: [GROUP, USER],
    help: 'make member USER an admin of group G',
    runs: 'relay',
    run: (c, [g, u]) => c.setRole(g!, u!, 'admin'),
  },
  {
    name: '/demote',
    params: [GROUP, USER],
    help: 'make admin USER a plain member of group G',
    runs: 'relay',
    run: (c, [g, u]) => c.setRole(g!, u!, 'member'),
  },
  {
    name: '/leave',
    params: [GROUP],
    help: 'leave group G',
    runs: 'relay',
    run: (c, [g]) => c.leaveGroup(g!),
  },
  {
    name: '/delete',
    params: [GROUP],
    help: 'delete group G for everyone (admins)',
    runs: 'relay',
    run: (c, [g]) => c.deleteGroup(g!),
  },
  {
    name: '/members',
    params: [GROUP],
    help: "list group G's people: roles, invitations, requests to join",
    runs: 'local',
    run: (c, [g]) => c.members(g!),
  },
  {
    name: '/group',
    params: [GROUP],
    help: 'group G: who may join, its safety number, sync warnings',
    runs: 'local',
    run: (c, [g]) => c.groupInfo(g!),
  },
  {
    name: '/groups',
    params: [],
    help: 'list your groups and invitations',
    runs: 'local',
    run: (c) => c.listGroups(),
  },
  {
    name: '/safety',
    params: [USER],
    help: 'show the safety number to compare with USER',
    runs: 'local',
    run: (c, [u]) => c.safety(u!),
  },
  {
    name: '/accept-key',
    params: [USER, NUMBER],
    help: "accept USER's new security key: give the safety number you compared (/safety USER shows it)",
    runs: 'local',
    run: (c, [u, n]) => c.acceptKey(u!, n!),
  },
  {
    name: '/reject-key',
    params: [USER],
    help: "reject USER's new security key: keep the old one, delete what the new one sent",
    runs: 'local',
    run: (c, [u]) => c.rejectKey(u!),
  },
  { name: '/help', params: [], help: 'list the commands', runs: 'local', run: (c) => c.help() },
  {
    name: '/quit',
    params: [],
    help: 'leave (also Ctrl-D or Ctrl-C)',
    runs: 'now',
    run: (c) => c.quit(),
  },
];

/** `/dm USER TEXT`: how a command is typed. */
export function commandUsage(spec: CommandSpec): string {
  return [
    spec.name,
    ...spec.params.map((p) => (p.kind === 'choice' && p.optional ? `[${p.name}]` : p.name)),
  ].join(' ');
}

/** The command list /help prints, one aligned line per command. */
export function commandHelp(commands: readonly CommandSpec[] = COMMANDS): string {
  const width = Math.max(...commands.map((c) => commandUsage(c).length)) + 2;
  return commands.map((c) => `${commandUsage(c).padEnd(width)}${c.help}`).join('\n');
}

/** A command line, parsed: the command and its arguments (text verbatim). */
export interface ParsedCommand {
  readonly spec: CommandSpec;
  readonly args: readonly string[];
}

const WHAT = { user: 'user id', group: 'group name' } as const;
const NAME_RULE = 'use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit';

/** True for what looks like an invite link (`sealed://join?...`): its checks are the client's. */
export const isInviteLink = (value: string): boolean => /^sealed:\/\//i.test(value);

/**
 * Parses what the user typed; undefined for a blank line. Throws UsageError with one sentence for an
 * unknown command, a missing, extra or invalid argument, or empty message text.
 */
export function parseCommand(
  line: string,
  commands: readonly CommandSpec[] = COMMANDS,
): ParsedCommand | undefined {
  let rest = line.replace(/^\s+/, '');
  if (rest === '') return undefined;
  const name = /^\S+/.exec(rest)![0];
  rest = rest.slice(name.length);
  if (!name.startsWith('/'))
    throw new UsageError('Commands start with a slash, e.g. /dm bob hello; /help lists them.');
  const spec = commands.find((c) => c.name === name.toLowerCase());
  if (!spec) throw new UsageError(`There is no command ${name}; /help lists them.`);
  const usage = `Usage: ${commandUsage(spec)}`;
  const args: string[] = [];
  for (const param of spec.params) {
    if (param.kind === 'text') {
      // Only the blanks separating the text from the arguments go; the text stays as typed.
      const text = rest.replace(/^[ \t]+/, '');
      if (text.trim() === '') throw new UsageError(`The message is empty. ${usage}`);
      args.push(text);
      rest = '';
      continue;
    }
    const m = /^\s+(\S+)/.exec(rest);
    if (!m) {
      if (param.kind === 'choice' && param.optional) {
        args.push('');
        continue;
      }
      throw new UsageError(`${usage}`);
    }
    const value = m[1]!;
    args.push(checkArgument(param, value, usage));
    rest = rest.slice(m[0].length);
  }
  if (rest.trim() !== '') throw new UsageError(`Too many arguments. ${usage}`);
  return { spec, args };
}

/** One argument as the action gets it (a choice in lower case), or UsageError with a sentence. */
function checkArgument(param: ParamSpec, value: string, usage: string): string {
  switch (param.kind) {
    case 'choice': {
      const choice = param.choices.find((c) => c === value.toLowerCase());
      if (choice === undefined) {
        const words = param.choices.map((c) => `"${c}"`).join(' or ');
        throw new UsageError(
          `"${value}" is not ${param.optional ? `${words}, or nothing` : words} here. ${usage}`,
        );
      }
      return choice;
    }
    case 'groupOrLink':
      if (isInviteLink(value)) return value;
      if (!v.is(Name, value))
        throw new UsageError(
          `"${value}" is neither a group name (${NAME_RULE}) nor an invite link (sealed://join?...).`,
        );
      return value;
    case 'user':
    case 'group':
      if (!v.is(Name, value))
        throw new UsageError(`"${value}" is not a valid ${WHAT[param.kind]}: ${NAME_RULE}.`);
      return value;
    case 'text':
      return value;
  }
}
