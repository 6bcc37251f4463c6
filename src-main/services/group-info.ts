/**
 * The renderer's view of a group (GroupInfo) from the client's verified details, and the sentences of
 * group timeline lines. Shared by the API calls (messaging.ts) and the client's events (client-bridge.ts).
 */
import type { E2EEClient, GroupDetails } from '../core/client/client.js';
import type { GroupInfo, GroupPolicy, GroupStanding } from '../shared/messenger-api.js';

/** GroupInfo from the client's details of a group. */
export function toGroupInfo(details: GroupDetails, me: string): GroupInfo {
  const roster = details.roster.map((m) => ({ userId: m.userId, role: m.role, standing: m.standing }));
  return {
    group: details.group,
    creator: details.creator,
    members: roster.filter((m) => m.standing === 'member').map((m) => m.userId),
    roster,
    me: roster.find((m) => m.userId === me) ?? { userId: me, role: 'member', standing: 'member' },
    policy: details.policy,
    approval: details.approval,
    link: details.link,
    safetyNumber: details.safetyNumber,
    outOfSync: details.outOfSync?.message ?? null,
  };
}

/** A group's info as the client holds it now, or undefined when we are not on its roster. */
export function groupInfoOf(client: E2EEClient, group: string, me: string): GroupInfo | undefined {
  const details = client.groupDetails(group);
  return details && toGroupInfo(details, me);
}

/** What a policy means, as a sentence. */
export function policyLine(policy: GroupPolicy, approval = false): string {
  switch (policy) {
    case 'invite-only':
      return 'Only people an admin invites can join.';
    case 'open':
      return 'Anyone who knows its name can join and read later messages.';
    case 'link':
      return approval
        ? 'Anyone with the invite link can ask to join; an admin approves each request.'
        : 'Anyone with the invite link can join.';
  }
}

/** The line for someone leaving the roster: left, declined, withdrew, or removed by an admin. */
export function leaveLine(
  userId: string,
  e: { removedBy?: string | undefined; standing?: GroupStanding | undefined },
  me: string,
): string {
  const self = userId === me;
  const by = e.removedBy === me ? 'You' : e.removedBy;
  switch (e.standing) {
    case 'invited':
      if (by) return self ? `${by} withdrew your invitation.` : `${by} withdrew ${userId}'s invitation.`;
      return self ? 'You declined the invitation.' : `${userId} declined the invitation.`;
    case 'requested':
      if (by)
        return self ? `${by} declined your request to join.` : `${by} declined ${userId}'s request to join.`;
      return self ? 'You withdrew your request to join.' : `${userId} withdrew the request to join.`;
    default:
      if (by)
        return self
          ? `${by} removed you from the group. You no longer receive its messages.`
          : `${by} removed ${userId}.`;
      return self ? 'You left the group.' : `${userId} left the group.`;
  }
}
