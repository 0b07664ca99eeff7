// The contacts panel (my contact code, adding a contact) and the new-group panel.

import {byId, changed, el, fill, say, shortId, show} from './view.js';
import {keepFocus} from './focus.js';
import {openGroup} from './chat.js';

export function render(ctx) {
  const {overview} = ctx.state;
  const code = byId('my-code');
  if (code.value !== overview.me.contact_code) code.value = overview.me.contact_code;
  const list = byId('contact-list');
  show(byId('no-contacts'), overview.contacts.length === 0);
  if (changed(list, overview.contacts)) {
    fill(list, overview.contacts.map((contact) =>
      el('li', {class: 'contact', dataset: {contactId: contact.id}},
        el('span', {class: 'contact-name', text: contact.name}),
        ' ',
        el('span', {class: 'id-hint', title: contact.id, text: shortId(contact.id)}))));
  }
  if (ctx.state.panel === 'new-group') renderNewGroup(ctx);
}

/** The invite checkboxes; ticks survive a rebuild. */
export function renderNewGroup(ctx) {
  const {overview} = ctx.state;
  const box = byId('new-group-contacts');
  show(byId('new-group-no-contacts'), overview.contacts.length === 0);
  if (!changed(box, overview.contacts)) return;
  const ticked = new Set(Array.from(box.querySelectorAll('input:checked'), (i) => i.value));
  keepFocus(box, () => {
    fill(box, overview.contacts.map((contact) => {
      const id = 'invite-' + contact.id;
      return el('div', {class: 'checkbox'},
        el('input', {type: 'checkbox', id, value: contact.id, checked: ticked.has(contact.id),
          dataset: {contactId: contact.id, focusKey: id}}),
        el('label', {for: id, text: contact.name}));
    }));
  });
}

async function copyCode() {
  const field = byId('my-code');
  const status = byId('copy-status');
  try {
    await navigator.clipboard.writeText(field.value);
    status.textContent = 'Copied.';
  } catch (error) {
    field.focus();
    field.select();
    status.textContent = 'Copying was not allowed here: the code is selected, press Ctrl+C (⌘C).';
  }
  clearTimeout(copyCode.timer);
  copyCode.timer = setTimeout(() => { status.textContent = ''; }, 8000);
}

export function wire(ctx) {
  byId('copy-code').addEventListener('click', copyCode);
  byId('my-code').addEventListener('focus', (event) => event.target.select());

  byId('add-contact-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const codeInput = byId('contact-code-input');
    const nameInput = byId('contact-name-input');
    const error = byId('contact-error');
    const status = byId('contact-status');
    say(status, '');
    // A code read out or pasted across lines may carry spaces and line breaks.
    const code = codeInput.value.replace(/\s+/g, '');
    const name = nameInput.value.trim();
    codeInput.removeAttribute('aria-invalid');
    nameInput.removeAttribute('aria-invalid');
    if (!code) {
      say(error, 'Paste their contact code first.');
      codeInput.setAttribute('aria-invalid', 'true');
      codeInput.focus();
      return;
    }
    if (!name) {
      say(error, 'Give them a name: it is how they appear on this device.');
      nameInput.setAttribute('aria-invalid', 'true');
      nameInput.focus();
      return;
    }
    const button = byId('add-contact-button');
    button.disabled = true;
    try {
      const result = await ctx.api.request('add_contact', {code, name});
      say(error, '');
      codeInput.value = '';
      nameInput.value = '';
      say(status, 'Added ' + (result.name || name) + '.');
      ctx.refresh();
    } catch (failure) {
      say(error, failure.message);
      codeInput.setAttribute('aria-invalid', 'true');
    } finally {
      button.disabled = false;
    }
  });

  byId('new-group-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const titleInput = byId('group-title-input');
    const error = byId('create-group-error');
    const title = titleInput.value.trim();
    if (!title) {
      say(error, 'Give the group a title.');
      titleInput.setAttribute('aria-invalid', 'true');
      titleInput.focus();
      return;
    }
    titleInput.removeAttribute('aria-invalid');
    const members = Array.from(byId('new-group-contacts').querySelectorAll('input:checked'),
      (input) => input.value);
    const button = byId('create-group-button');
    button.disabled = true;
    try {
      const result = await ctx.api.request('create_group', {title, members});
      say(error, '');
      titleInput.value = '';
      for (const input of byId('new-group-contacts').querySelectorAll('input')) input.checked = false;
      ctx.closePanel();
      openGroup(ctx, result.group);
      byId('composer').focus();
    } catch (failure) {
      say(error, failure.message);
    } finally {
      button.disabled = false;
    }
  });
}
