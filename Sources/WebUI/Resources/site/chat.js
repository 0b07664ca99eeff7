// The group list, the open group's messages, the invitation card and the composer.

import {byId, changed, clear, clock, dayKey, el, fill, isoTime, plural, say, shortId, show, when}
  from './view.js';
import {keepFocus} from './focus.js';

const history = {
  group: null,
  lastId: 0,        // the last entry shown
  lastDay: null,    // the day of the last entry shown, for day separators
  generation: 0,    // bumped when another group opens: late answers for the old one are dropped
  contacts: null,   // the contacts the shown entries were drawn with (names come from them)
  lastMarked: new Map(),
};
const drafts = new Map();
let sending = false;

export function openGroup(ctx, id) {
  const composer = byId('composer');
  if (history.group) drafts.set(history.group, composer.value);
  ctx.state.openGroup = id;
  ctx.state.openedAfter = ctx.state.overviewsAsked;
  history.group = id;
  history.lastId = 0;
  history.lastDay = null;
  history.generation += 1;
  clear(byId('messages'));
  composer.value = (id && drafts.get(id)) || '';
  say(byId('composer-error'), '');
  say(byId('invitation-error'), '');
  render(ctx);
  if (id) ctx.refresh();
}

/** Fetches the open group's entries after the last one shown and appends them. */
export async function loadHistory(ctx) {
  const id = ctx.state.openGroup;
  if (!id) return;
  const info = ctx.groupInfo(id);
  if (!info || info.pending_invitation) return;
  // Names are this device's names for its contacts: when they change (a contact added or
  // renamed), the shown entries are drawn again from the start.
  const contacts = JSON.stringify(ctx.state.overview.contacts);
  if (history.contacts !== contacts) {
    if (history.lastId > 0) {
      history.generation += 1;
      history.lastId = 0;
      history.lastDay = null;
      clear(byId('messages'));
    }
    history.contacts = contacts;
  }
  const generation = history.generation;
  const result = await ctx.api.request('history', {group: id, after: history.lastId});
  if (generation !== history.generation) return;
  const entries = (result.entries || [])
    .filter((entry) => entry.id > history.lastId)
    .sort((a, b) => a.id - b.id);
  if (entries.length > 0) {
    appendEntries(entries, new Set(ctx.state.overview.contacts.map((c) => c.id)));
  }
  markRead(ctx);
}

function appendEntries(entries, contactIds) {
  const list = byId('messages');
  const first = history.lastId === 0;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  if (first) list.setAttribute('aria-busy', 'true');
  let mine = false;
  for (const entry of entries) {
    const day = dayKey(entry.time);
    if (day !== history.lastDay) {
      list.appendChild(daySeparator(entry.time, day));
      history.lastDay = day;
    }
    list.appendChild(renderEntry(entry, contactIds));
    history.lastId = entry.id;
    if (entry.mine) mine = true;
  }
  if (first) list.removeAttribute('aria-busy');
  if (first || nearBottom || mine) list.scrollTop = list.scrollHeight;
}

function daySeparator(seconds, key) {
  const label = new Date(seconds * 1000).toLocaleDateString(undefined,
    {weekday: 'long', year: 'numeric', month: 'long', day: 'numeric'});
  return el('li', {class: 'day-separator', dataset: {day: key}},
    el('span', {class: 'day-label', text: label}));
}

function timeElement(seconds) {
  return el('time', {
    class: 'entry-time',
    datetime: isoTime(seconds),
    title: new Date(seconds * 1000).toLocaleString(),
    text: clock(seconds),
  });
}

function senderName(entry) {
  if (entry.mine) return 'You';
  if (entry.from) return entry.from;
  if (entry.from_id) return shortId(entry.from_id);
  return 'Someone';
}

function strangerTag(entry, contactIds) {
  if (entry.mine || !entry.from_id || contactIds.has(entry.from_id)) return null;
  return el('span', {class: 'tag tag-stranger', title: entry.from_id, text: 'not a contact'});
}

function renderEntry(entry, contactIds) {
  const data = {
    entryKind: entry.kind,
    entryId: String(entry.id),
    mine: String(Boolean(entry.mine)),
    problem: String(Boolean(entry.problem)),
  };
  if (entry.event) data.event = entry.event;
  if (entry.from_id) data.fromId = entry.from_id;

  if (entry.problem) {
    return el('li', {class: 'entry entry-problem', dataset: data},
      el('span', {class: 'problem-icon', 'aria-hidden': 'true', text: '⚠'}),
      el('span', {class: 'problem-body'},
        el('span', {class: 'visually-hidden', text: 'Warning: '}),
        entry.kind === 'message' && (entry.from || entry.from_id)
          ? el('span', {class: 'entry-sender', text: senderName(entry) + ': '}) : null,
        el('span', {class: 'entry-text', text: entry.text || 'Something could not be read.'}),
        ' ',
        timeElement(entry.time)));
  }
  if (entry.kind === 'event') {
    return el('li', {class: 'entry entry-event', dataset: data},
      el('span', {class: 'entry-text', text: entry.text || ''}),
      ' ',
      timeElement(entry.time));
  }
  return el('li', {class: 'entry entry-message' + (entry.mine ? ' mine' : ''), dataset: data},
    el('div', {class: 'bubble'},
      el('p', {class: 'entry-meta'},
        el('span', {class: 'entry-sender', text: senderName(entry)}),
        strangerTag(entry, contactIds),
        el('span', {class: 'visually-hidden', text: ' at '}),
        ' ',
        timeElement(entry.time)),
      el('p', {class: 'entry-text', text: entry.text || ''})));
}

function markRead(ctx) {
  if (document.visibilityState !== 'visible') return;
  const id = ctx.state.openGroup;
  if (!id || history.lastId === 0) return;
  const info = ctx.groupInfo(id);
  if (!info || info.pending_invitation) return;
  if ((history.lastMarked.get(id) || 0) >= history.lastId) return;
  const upto = history.lastId;
  history.lastMarked.set(id, upto);
  ctx.api.request('mark_read', {group: id, upto}).catch(() => {
    if (history.lastMarked.get(id) === upto) history.lastMarked.delete(id);
  });
}

/**
 * Who invited me, in words. The server gives a contact's name, or for someone who is not a
 * contact a short hex ID: that is said plainly, since it matters whom one joins a group from.
 */
function inviter(ctx, info) {
  const by = info.invited_by;
  if (!by) return null;
  const isContact = ctx.state.overview.contacts.some((c) => c.name === by);
  if (!isContact && /^[0-9a-f]{8,64}$/.test(by)) {
    return {short: 'someone not in your contacts',
      long: 'Someone who is not in your contacts (ID ' + by + ')'};
  }
  return {short: by, long: by};
}

function sortedGroups(groups) {
  return groups.slice().sort((a, b) => {
    if (a.pending_invitation !== b.pending_invitation) return a.pending_invitation ? -1 : 1;
    const at = a.last_time || 0;
    const bt = b.last_time || 0;
    if (at !== bt) return bt - at;
    return (a.title || '').localeCompare(b.title || '');
  });
}

function renderGroupList(ctx) {
  const {overview, openGroup: open} = ctx.state;
  const list = byId('group-list');
  show(byId('no-groups'), overview.groups.length === 0);
  if (!changed(list, [overview.groups, open, overview.contacts])) return;
  keepFocus(list, () => {
    fill(list, sortedGroups(overview.groups).map((group) => {
      const removed = group.member === false && !group.pending_invitation;
      let sub;
      if (group.pending_invitation) {
        const who = inviter(ctx, group);
        sub = who ? 'Invitation from ' + who.short : 'Invitation';
      } else if (removed) {
        sub = 'You were removed';
      } else {
        sub = plural(group.members, 'member', 'members')
          + (group.last_time ? ' · ' + when(group.last_time) : '');
      }
      return el('li', {},
        el('button', {
          type: 'button',
          class: 'group-item' + (group.id === open ? ' current' : '')
            + (group.pending_invitation ? ' pending' : '') + (removed ? ' removed' : ''),
          dataset: {groupId: group.id, focusKey: 'group-' + group.id,
            pending: String(Boolean(group.pending_invitation))},
          'aria-current': group.id === open ? 'true' : null,
          on: {click: () => openGroup(ctx, group.id)},
        },
        el('span', {class: 'group-line'},
          el('span', {class: 'group-title', text: group.title || 'Untitled group'}),
          group.pending_invitation
            ? el('span', {class: 'badge badge-invite', text: 'Invitation'}) : null,
          group.unread > 0
            ? el('span', {class: 'badge badge-unread', dataset: {unread: String(group.unread)}},
              String(group.unread), el('span', {class: 'visually-hidden', text: ' unread'}))
            : null),
        el('span', {class: 'group-sub', text: sub})));
    }));
  });
}

export function render(ctx) {
  renderGroupList(ctx);
  const id = ctx.state.openGroup;
  const info = ctx.groupInfo(id);
  show(byId('chat-empty'), !info);
  show(byId('chat-open'), Boolean(info));
  if (!info) return;

  const pending = Boolean(info.pending_invitation);
  const removed = info.member === false && !pending;
  byId('chat-title').textContent = info.title || 'Untitled group';
  let subtitle;
  const who = pending ? inviter(ctx, info) : null;
  if (pending) subtitle = who ? 'Invitation from ' + who.short : 'Invitation';
  else if (removed) subtitle = 'You are no longer a member';
  else subtitle = plural(info.members, 'member', 'members');
  byId('chat-subtitle').textContent = subtitle;

  show(byId('invitation-card'), pending);
  if (pending) {
    const title = '“' + (info.title || 'Untitled group') + '”';
    byId('invitation-text').textContent = who
      ? who.long + ' invited you to ' + title + '.'
      : 'You were invited to ' + title + '.';
  }
  show(byId('members-button'), !pending);
  show(byId('removed-notice'), removed);
  show(byId('messages'), !pending);
  show(byId('composer-form'), !pending);
  const composer = byId('composer');
  composer.disabled = removed;
  byId('send-button').disabled = removed;
  composer.placeholder = removed
    ? 'You can no longer send to this group.'
    : 'Write a message (Enter sends, Shift+Enter for a new line)';
}

async function send(ctx) {
  const id = ctx.state.openGroup;
  const composer = byId('composer');
  const text = composer.value.trim();
  if (!id || !text || sending || composer.disabled) return;
  sending = true;
  const error = byId('composer-error');
  composer.value = '';
  drafts.delete(id);
  try {
    await ctx.api.request('send', {group: id, text});
    say(error, '');
    ctx.refresh();
  } catch (failure) {
    if (!composer.value && ctx.state.openGroup === id) composer.value = text;
    say(error, failure.message);
  } finally {
    sending = false;
  }
}

export function wire(ctx) {
  const composer = byId('composer');
  composer.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing
        && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      send(ctx);
    }
  });
  byId('composer-form').addEventListener('submit', (event) => {
    event.preventDefault();
    send(ctx);
  });
  byId('accept-invitation').addEventListener('click', async () => {
    const id = ctx.state.openGroup;
    const button = byId('accept-invitation');
    button.disabled = true;
    try {
      await ctx.api.request('accept_invitation', {group: id});
      say(byId('invitation-error'), '');
      await ctx.refresh();
      if (ctx.state.openGroup === id) byId('composer').focus();
    } catch (failure) {
      say(byId('invitation-error'), failure.message);
    } finally {
      button.disabled = false;
    }
  });
  byId('refuse-invitation').addEventListener('click', async () => {
    const id = ctx.state.openGroup;
    const button = byId('refuse-invitation');
    button.disabled = true;
    try {
      await ctx.api.request('refuse_invitation', {group: id});
      say(byId('invitation-error'), '');
      if (ctx.state.openGroup === id) openGroup(ctx, null);
      ctx.refresh();
      byId('new-group-button').focus();
    } catch (failure) {
      say(byId('invitation-error'), failure.message);
    } finally {
      button.disabled = false;
    }
  });
  document.addEventListener('visibilitychange', () => markRead(ctx));
}
