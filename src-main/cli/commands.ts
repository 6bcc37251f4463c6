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
  createGroup(group: string): Promise<void>;
  joinGroup(group: string): Promise<void>;
  leaveGroup(group: string): Promise<void>;
  deleteGroup(group: string): Promise<void>;
  members(group: string): Promise<void>;
  listGroups(): Promise<void>;
  safety(userId: string): Promise<void>;
  accept(userId: string, safetyNumber: string): Promise<void>;
  reject(userId: string): Promise<void>;
  help(): void;
  quit(): Promise<void>;
}

/** A parameter: a user id, a group name (both the wire's Name rule), or the rest of the line. */
export interface ParamSpec {
  readonly name: string;
  readonly kind: 'user' | 'group' | 'text';
}

/** One command of the table. */
export interface CommandSpec {
  /** Typed with a leading slash. */
  readonly name: string;
  /** In order; a `text` parameter can only be last. */
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
    params: [GROUP],
    help: 'create group G (you are its first member)',
    runs: 'relay',
    run: (c, [group]) => c.createGroup(group!),
  },
  {
    name: '/join',
    params: [GROUP],
    help: 'join group G',
    runs: 'relay',
    run: (c, [g]) => c.joinGroup(g!),
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
    help: 'delete group G (its creator only)',
    runs: 'relay',
    run: (c, [g]) => c.deleteGroup(g!),
  },
  {
    name: '/members',
    params: [GROUP],
    help: 'list the members of group G',
    runs: 'relay',
    run: (c, [g]) => c.members(g!),
  },
  { name: '/groups', params: [], help: 'list your groups', runs: 'local', run: (c) => c.listGroups() },
  {
    name: '/safety',
    params: [USER],
    help: 'show the safety number to compare with USER',
    runs: 'local',
    run: (c, [u]) => c.safety(u!),
  },
  {
    name: '/accept',
    params: [USER, NUMBER],
    help: "accept USER's new security key: give the safety number you compared (/safety USER shows it)",
    runs: 'local',
    run: (c, [u, n]) => c.accept(u!, n!),
  },
  {
    name: '/reject',
    params: [USER],
    help: "reject USER's new security key: keep the old one, delete what the new one sent",
    runs: 'local',
    run: (c, [u]) => c.reject(u!),
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
  return [spec.name, ...spec.params.map((p) => p.name)].join(' ');
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
    if (!m) throw new UsageError(`${usage}`);
    const value = m[1]!;
    if (!v.is(Name, value))
      throw new UsageError(
        `"${value}" is not a valid ${WHAT[param.kind]}: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.`,
      );
    args.push(value);
    rest = rest.slice(m[0].length);
  }
  if (rest.trim() !== '') throw new UsageError(`Too many arguments. ${usage}`);
  return { spec, args };
}
