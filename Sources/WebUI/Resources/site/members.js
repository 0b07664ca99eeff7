// The members panel of the open group: who is in it, add, remove (with an in-page confirm step),
// key update, and the group's suggested relays.

import {byId, changed, el, fill, plural, say, shortId, show, when} from './view.js';
import {keepFocus} from './focus.js';

let detail = null;        // the `group` answer
let detailFor = null;     // its group ID
let confirming = null;    // the member ID whose removal waits for a confirmation
let relaysPrefilledFor = null;

export async function load(ctx) {
  const id = ctx.state.openGroup;
  if (!id) return;
  const info = ctx.groupInfo(id);
  if (!info || info.pending_invitation) return;
  const result = await ctx.api.request('group', {group: id});
  if (ctx.state.openGroup !== id) return;
  detail = result;
  detailFor = id;
  render(ctx);
}

function memberName(member) {
  return member.name || shortId(member.id);
}

let renderedFor = null;

export function render(ctx) {
  const id = ctx.state.openGroup;
  if (renderedFor !== id) {
    // Another group: what was said about the last one's actions no longer applies.
    renderedFor = id;
    confirming = null;
    for (const note of byId('members-panel').querySelectorAll('.field-error, .status-text')) {
      say(note, '');
    }
  }
  const info = ctx.groupInfo(id);
  const current = detailFor === id ? detail : null;
  byId('members-title').textContent = info
    ? 'Members of “' + (info.title || 'Untitled group') + '”' : 'Members';
  const list = byId('member-list');
  if (!current) {
    if (changed(list, null)) fill(list, el('li', {class: 'hint', text: 'Loading…'}));
    show(byId('member-actions'), false);
    return;
  }
  const amMember = current.member !== false;
  if (confirming && !current.members.some((m) => m.id === confirming)) confirming = null;

  const members = current.members.slice().sort((a, b) => {
    if (a.me !== b.me) return a.me ? -1 : 1;
    return memberName(a).localeCompare(memberName(b));
  });
  if (changed(list, [id, members, amMember, confirming])) {
    keepFocus(list, () => {
      fill(list, members.map((member) => renderMember(ctx, member, amMember)));
    });
  }

  // Add: the contacts who are not members yet.
  show(byId('member-actions'), amMember);
  const memberIds = new Set(current.members.map((m) => m.id));
  const candidates = ctx.state.overview.contacts.filter((c) => !memberIds.has(c.id));
  const select = byId('add-member-select');
  if (changed(select, candidates)) {
    const chosen = select.value;
    fill(select, candidates.map((c) => el('option', {value: c.id, text: c.name})));
    if (candidates.some((c) => c.id === chosen)) select.value = chosen;
  }
  show(byId('add-member-form'), candidates.length > 0);
  show(byId('add-member-none'), candidates.length === 0);

  // The group's suggested relays.
  const relays = current.relays || {list: [], set_by: null, set_at: null};
  const by = byId('group-relays-by');
  if (relays.list.length === 0 && !relays.set_by) {
    by.textContent = 'No relay list was posted in this group.';
  } else {
    by.textContent = 'Posted by ' + (relays.set_by || 'a member')
      + (relays.set_at ? ', ' + when(relays.set_at) : '') + '.';
  }
  const relayList = byId('group-relay-list');
  if (changed(relayList, relays.list)) {
    fill(relayList, relays.list.map((address) =>
      el('li', {class: 'address', dataset: {relayAddress: address}, text: address})));
  }
  const input = byId('group-relays-input');
  if (relaysPrefilledFor !== id && document.activeElement !== input) {
    input.value = relays.list.join('\n');
    relaysPrefilledFor = id;
  }
  show(byId('group-relays-form'), amMember);

  // Who may carry the group: contacts who are not members (members carry it anyway).
  const grantSelect = byId('grant-contact');
  if (changed(grantSelect, candidates)) {
    const chosenGrant = grantSelect.value;
    fill(grantSelect, candidates.map((c) => el('option', {value: c.id, text: c.name})));
    if (candidates.some((c) => c.id === chosenGrant)) grantSelect.value = chosenGrant;
  }
  show(byId('grant-form'), candidates.length > 0);
  show(byId('grant-none'), candidates.length === 0);

  // Disappearing messages, on this device.
  const timer = byId('timer-select');
  const seconds = String(current.disappear_after || 0);
  if (!Array.from(timer.options).some((o) => o.value === seconds)) {
    timer.appendChild(el('option', {value: seconds, dataset: {custom: 'true'},
      text: 'After ' + duration(Number(seconds))}));
  }
  if (timer.value !== seconds) timer.value = seconds;
}

function duration(seconds) {
  if (seconds % 86400 === 0) return plural(seconds / 86400, 'day', 'days');
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour', 'hours');
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute', 'minutes');
  return plural(seconds, 'second', 'seconds');
}

function renderMember(ctx, member, amMember) {
  const name = memberName(member);
  const item = el('li', {class: 'member', dataset: {memberId: member.id, me: String(member.me)}},
    el('span', {class: 'member-name', title: member.id, text: name}),
    member.me ? el('span', {class: 'tag tag-you', text: 'you'}) : null,
    !member.me && !member.contact ? el('span', {class: 'tag', text: 'not a contact'}) : null);
  if (!amMember || member.me) return item;
  if (confirming === member.id) {
    item.classList.add('confirming');
    item.appendChild(el('div', {class: 'confirm', role: 'group', 'aria-label': 'Confirm removal'},
      el('p', {text: 'Remove ' + name + ' from the group? They will not read anything sent after this.'}),
      el('div', {class: 'row'},
        el('button', {type: 'button', id: 'confirm-remove', class: 'danger',
          dataset: {focusKey: 'confirm-' + member.id},
          on: {click: () => removeMember(ctx, member)}}, 'Remove ' + name),
        el('button', {type: 'button', id: 'cancel-remove',
          dataset: {focusKey: 'cancel-' + member.id},
          on: {click: () => cancelConfirm(ctx)}}, 'Cancel'))));
  } else {
    item.appendChild(el('button', {type: 'button', class: 'small remove-member',
      'aria-label': 'Remove ' + name,
      dataset: {memberId: member.id, focusKey: 'remove-' + member.id},
      on: {click: () => {
        confirming = member.id;
        render(ctx);
        byId('cancel-remove').focus();
      }}}, 'Remove'));
  }
  return item;
}

/** Escape or Cancel: returns true if a confirmation was open. */
export function cancelConfirm(ctx) {
  if (!confirming) return false;
  const id = confirming;
  confirming = null;
  render(ctx);
  const button = document.querySelector('.remove-member[data-member-id="' + CSS.escape(id) + '"]');
  if (button) button.focus();
  return true;
}

/** Runs an op; its answer is said next to the control, in `${where}-error` / `${where}-status`. */
async function act(ctx, op, args, done, where = 'members') {
  const error = byId(where + '-error');
  const status = byId(where + '-status');
  say(status, '');
  try {
    await ctx.api.request(op, args);
    say(error, '');
    if (done) say(status, done);
    await load(ctx);
    ctx.refresh();
    return true;
  } catch (failure) {
    say(error, failure.message);
    return false;
  }
}

async function removeMember(ctx, member) {
  const group = ctx.state.openGroup;
  confirming = null;
  const ok = await act(ctx, 'remove_member', {group, member: member.id},
    memberName(member) + ' was removed.');
  if (!ok) render(ctx);
  byId('members-title').focus();
}

export function wire(ctx) {
  byId('add-member-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const contact = byId('add-member-select').value;
    if (!contact) return;
    const name = ctx.contactName(contact) || shortId(contact);
    await act(ctx, 'add_member', {group: ctx.state.openGroup, contact}, name + ' was added.');
  });
  byId('update-keys-button').addEventListener('click', async () => {
    const button = byId('update-keys-button');
    button.disabled = true;
    await act(ctx, 'update_keys', {group: ctx.state.openGroup}, 'The group’s keys were updated.',
      'keys');
    button.disabled = false;
  });
  byId('timer-select').addEventListener('change', async () => {
    const select = byId('timer-select');
    const seconds = Number(select.value);
    const label = select.options[select.selectedIndex].text;
    await act(ctx, 'set_timer', {group: ctx.state.openGroup, seconds},
      seconds === 0 ? 'Messages in this group are no longer deleted on this device.'
        : 'Messages in this group are deleted on this device ' + label.toLowerCase() + '.',
      'timer');
  });
  byId('grant-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const contact = byId('grant-contact').value;
    const daysInput = byId('grant-days');
    const days = Number(daysInput.value);
    if (!contact) return;
    if (!Number.isInteger(days) || days < 1 || days > 365) {
      say(byId('grant-error'), 'Choose a number of days from 1 to 365.');
      daysInput.setAttribute('aria-invalid', 'true');
      daysInput.focus();
      return;
    }
    daysInput.removeAttribute('aria-invalid');
    const name = ctx.contactName(contact) || shortId(contact);
    const error = byId('grant-error');
    const status = byId('grant-status');
    say(status, '');
    try {
      const result = await ctx.api.request('grant', {group: ctx.state.openGroup, contact, days});
      say(error, '');
      const until = result && result.not_after ? ' until ' + when(result.not_after) : '';
      say(status, name + '’s device may carry this group' + until + '; it cannot read it.');
    } catch (failure) {
      say(error, failure.message);
    }
  });
  byId('group-relays-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const relays = byId('group-relays-input').value.split(/\s+/).filter((line) => line.length > 0);
    await act(ctx, 'set_group_relays', {group: ctx.state.openGroup, relays},
      relays.length ? 'The relay list was posted to the group.'
        : 'The group now suggests no relay.', 'group-relays');
  });
}
