// The transports panel: relays, the relay policy, suggested relays, direct links, the LAN, files.

import {byId, changed, el, fill, plural, say, show, when} from './view.js';
import {keepFocus} from './focus.js';

function statusLine(connected, label) {
  return el('span', {class: 'link-state ' + (connected ? 'is-up' : 'is-down'),
    dataset: {connected: String(Boolean(connected))}},
  el('span', {class: 'dot', 'aria-hidden': 'true'}), label);
}

function renderRelays(ctx) {
  const {overview} = ctx.state;
  const groupTitle = (id) => {
    const group = overview.groups.find((g) => g.id === id);
    return group ? group.title : id.slice(0, 8);
  };
  show(byId('no-relays'), overview.relays.length === 0);
  const list = byId('relay-list');
  const titles = overview.groups.map((g) => [g.id, g.title]);
  if (changed(list, [overview.relays, titles])) keepFocus(list, () => {
    fill(list, overview.relays.map((relay) => {
      const facts = [];
      facts.push(relay.last_sync ? 'last sync ' + when(relay.last_sync) : 'not synced yet');
      if (relay.outbox > 0) facts.push(plural(relay.outbox, 'envelope', 'envelopes') + ' waiting to go out');
      if (relay.groups && relay.groups.length > 0) {
        facts.push('for ' + relay.groups.map(groupTitle).join(', '));
      }
      return el('li', {class: 'transport', dataset: {relayAddress: relay.address}},
        el('div', {class: 'transport-head'},
          statusLine(relay.connected, relay.connected ? 'connected' : 'not connected'),
          el('button', {type: 'button', class: 'small remove-relay',
            'aria-label': 'Remove relay ' + relay.address,
            dataset: {focusKey: 'remove-relay-' + relay.address},
            on: {click: () => act(ctx, 'remove_relay', {address: relay.address})}}, 'Remove')),
        el('p', {class: 'address', text: relay.address}),
        el('p', {class: 'transport-facts', text: facts.join(' · ')}),
        relay.last_error ? el('p', {class: 'transport-error', text: relay.last_error}) : null);
    }));
  });

  const radios = document.querySelectorAll('input[name="relay-policy"]');
  for (const radio of radios) radio.checked = radio.value === overview.relay_policy;

  const suggested = overview.suggested_relays || [];
  show(byId('suggested-section'), suggested.length > 0);
  const suggestedList = byId('suggested-relay-list');
  if (changed(suggestedList, [suggested, titles])) keepFocus(suggestedList, () => {
    fill(suggestedList, suggested.map((relay) => {
      const by = relay.suggested_by && relay.suggested_by.length
        ? 'Suggested by ' + relay.suggested_by.join(', ') : 'Suggested';
      const groups = relay.groups && relay.groups.length
        ? ' for ' + relay.groups.map(groupTitle).join(', ') : '';
      return el('li', {class: 'transport', dataset: {suggestedAddress: relay.address}},
        el('p', {class: 'address', text: relay.address}),
        el('p', {class: 'transport-facts', text: by + groups + '.'}),
        el('button', {type: 'button', class: 'small accept-relay',
          'aria-label': 'Use relay ' + relay.address,
          dataset: {focusKey: 'accept-' + relay.address},
          on: {click: () => act(ctx, 'accept_relay', {address: relay.address})}}, 'Use it'));
    }));
  });
}

function renderPeers(ctx) {
  const peers = ctx.state.overview.peers || {listening: null, links: [], lan: false, lan_peers: []};
  byId('listening-text').textContent = peers.listening
    ? 'Other devices can link to this one at ' + peers.listening + '.'
    : 'This device does not accept direct links right now.';
  const list = byId('peer-list');
  if (changed(list, peers.links || [])) keepFocus(list, () => {
    fill(list, (peers.links || []).map((link) =>
      el('li', {class: 'transport', dataset: {peerAddress: link.address}},
        el('div', {class: 'transport-head'},
          statusLine(link.connected, link.connected ? 'connected' : 'not connected'),
          el('button', {type: 'button', class: 'small remove-peer',
            'aria-label': 'Remove link to ' + link.address,
            dataset: {focusKey: 'remove-peer-' + link.address},
            on: {click: () => act(ctx, 'remove_peer', {address: link.address})}}, 'Remove')),
        el('p', {class: 'address', text: link.address}),
        link.error ? el('p', {class: 'transport-error', text: link.error}) : null)));
  });
  const toggle = byId('lan-toggle');
  if (!toggle.disabled) toggle.checked = Boolean(peers.lan);
  const lanList = byId('lan-peer-list');
  if (changed(lanList, [peers.lan, peers.lan_peers || []])) {
    fill(lanList, (peers.lan_peers || []).map((peer) =>
      el('li', {class: 'transport', dataset: {lanAddress: peer.address}},
        el('span', {class: 'contact-name', text: peer.name}), ' ',
        el('span', {class: 'address', text: peer.address}))));
    if (peers.lan && (peers.lan_peers || []).length === 0) {
      lanList.appendChild(el('li', {class: 'hint', text: 'No contact found on the local network yet.'}));
    }
  }
}

function renderExport(ctx) {
  const select = byId('export-group');
  const chosen = select.value;
  const groups = ctx.state.overview.groups.filter((g) => !g.pending_invitation);
  if (!changed(select, groups.map((g) => [g.id, g.title]))) return;
  fill(select,
    el('option', {value: '', text: 'Every group'}),
    groups.map((g) => el('option', {value: g.id, text: g.title || 'Untitled group'})));
  if (groups.some((g) => g.id === chosen)) select.value = chosen;
}

export function render(ctx) {
  renderRelays(ctx);
  renderPeers(ctx);
  renderExport(ctx);
}

async function act(ctx, op, args, errorField) {
  const error = errorField ? byId(errorField) : byId('transports-error');
  try {
    await ctx.api.request(op, args);
    say(error, '');
    ctx.refresh();
    return true;
  } catch (failure) {
    say(error, failure.message);
    return false;
  }
}

function importReport(name, r) {
  const fresh = r.new || 0;
  const duplicate = r.duplicate || 0;
  const rejected = r.rejected || 0;
  const parts = [];
  parts.push('Imported ' + name + ': '
    + (fresh === 0 ? 'nothing new' : plural(fresh, 'new item', 'new items'))
    + (duplicate ? ', ' + duplicate + ' already on this device' : '')
    + (rejected ? ', ' + plural(rejected, 'item', 'items') + ' refused' : '') + '.');
  const messages = r.messages || 0;
  const events = r.events || 0;
  if (messages + events > 0) {
    parts.push(plural(messages, 'new message', 'new messages')
      + (events ? ' and ' + plural(events, 'event', 'events') : '') + ' to read.');
  }
  if (r.joined && r.joined.length) parts.push('Joined ' + plural(r.joined.length, 'group', 'groups') + '.');
  if (r.invitations && r.invitations.length) {
    parts.push(plural(r.invitations.length, 'invitation waits', 'invitations wait') + ' for your answer.');
  }
  if (r.reasons && r.reasons.length) parts.push('Refused because: ' + r.reasons.join('; ') + '.');
  return parts.join(' ');
}

const protectionHints = {
  participants: 'Only the members of the exported groups can open the file.',
  passphrase: 'Anyone with the passphrase can open the file; give it to the others apart from the file.',
  plain: 'The messages stay encrypted, but whoever holds the file sees which groups and people it concerns.',
};

function showProtection() {
  const protection = byId('export-protection').value;
  byId('export-protection-hint').textContent = protectionHints[protection] || '';
  show(byId('export-passphrase-row'), protection === 'passphrase');
}

export function wire(ctx) {
  showProtection();
  byId('export-protection').addEventListener('change', showProtection);

  byId('add-relay-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = byId('relay-address-input');
    const address = input.value.trim();
    if (!address) {
      say(byId('relay-error'), 'Paste the relay’s address (dcgka-relay://HOST:PORT/ID).');
      input.focus();
      return;
    }
    const button = byId('add-relay-button');
    button.disabled = true;
    if (await act(ctx, 'add_relay', {address}, 'relay-error')) {
      input.value = '';
      input.removeAttribute('aria-invalid');
    } else {
      input.setAttribute('aria-invalid', 'true');
    }
    button.disabled = false;
  });

  for (const radio of document.querySelectorAll('input[name="relay-policy"]')) {
    radio.addEventListener('change', () => {
      if (radio.checked) act(ctx, 'set_relay_policy', {policy: radio.value}, 'policy-error');
    });
  }

  byId('add-peer-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = byId('peer-address-input');
    const address = input.value.trim();
    if (!address) {
      say(byId('peer-error'), 'Type the device’s address as HOST:PORT.');
      input.focus();
      return;
    }
    const button = byId('add-peer-button');
    button.disabled = true;
    if (await act(ctx, 'add_peer', {address}, 'peer-error')) {
      input.value = '';
      input.removeAttribute('aria-invalid');
    } else {
      input.setAttribute('aria-invalid', 'true');
    }
    button.disabled = false;
  });

  byId('lan-toggle').addEventListener('change', async () => {
    const toggle = byId('lan-toggle');
    const on = toggle.checked;
    toggle.disabled = true;
    const ok = await act(ctx, 'set_lan', {on}, 'lan-error');
    toggle.disabled = false;
    if (!ok) toggle.checked = !on;
  });

  byId('export-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const protection = byId('export-protection').value;
    const passphraseInput = byId('export-passphrase');
    const passphrase = passphraseInput.value;
    if (protection === 'passphrase' && !passphrase) {
      say(byId('export-error'), 'Choose a passphrase for the file first.');
      passphraseInput.setAttribute('aria-invalid', 'true');
      passphraseInput.focus();
      return;
    }
    passphraseInput.removeAttribute('aria-invalid');
    const button = byId('export-button');
    button.disabled = true;
    const report = byId('export-status');
    try {
      const {blob, filename} = await ctx.api.exportFile(byId('export-group').value || null,
        protection, passphrase);
      const url = URL.createObjectURL(blob);
      const link = el('a', {href: url, download: filename, class: 'visually-hidden'}, filename);
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      say(byId('export-error'), '');
      say(report, 'Saved ' + filename + ' (' + blob.size + ' bytes). Carry it to the others and import it there.');
    } catch (failure) {
      say(report, '');
      say(byId('export-error'), failure.message);
    } finally {
      button.disabled = false;
    }
  });

  byId('import-file').addEventListener('change', async () => {
    const input = byId('import-file');
    const file = input.files && input.files[0];
    if (!file) return;
    const report = byId('import-report');
    say(report, 'Importing ' + file.name + '…');
    try {
      const result = await ctx.api.importFile(file, byId('import-passphrase').value);
      say(report, importReport(file.name, result));
      say(byId('import-error'), '');
      ctx.refresh();
    } catch (failure) {
      say(report, '');
      say(byId('import-error'), 'Could not import ' + file.name + ': ' + failure.message);
    } finally {
      input.value = '';
    }
  });
}
