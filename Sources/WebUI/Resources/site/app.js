// Entry module: the token, the connection, the shared state and the refresh loop. Each panel lives
// in its own module and gets the same context object (ctx).

import {Api} from './api.js';
import {byId, say, show} from './view.js';
import * as chat from './chat.js';
import * as contacts from './contacts.js';
import * as members from './members.js';
import * as transports from './transports.js';

const TOKEN_KEY = 'dcgka-ui-token';

function takeToken() {
  const match = /(?:^#|&)token=([0-9a-fA-F]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1].toLowerCase());
    history.replaceState(null, '', location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const state = {
  overview: null,
  openGroup: null,      // group ID (hex) shown in the chat
  panel: null,          // 'contacts' | 'new-group' | 'members' | 'transports' | null
  connection: 'connecting',
  justInitialized: false,
  overviewsAsked: 0,    // overview requests sent so far
  overviewShown: 0,     // the number of the request whose answer is in overview
  openedAfter: 0,       // overviewsAsked when the open group was chosen
};

const panels = {
  'contacts': {section: 'contacts-panel', opener: 'nav-contacts'},
  'transports': {section: 'transports-panel', opener: 'nav-transports'},
  'new-group': {section: 'new-group-panel', opener: 'new-group-button'},
  'members': {section: 'members-panel', opener: 'members-button'},
};

const ctx = {
  state,
  api: null,
  refresh,
  render,
  openPanel,
  closePanel,
  showError,
  groupInfo(id) {
    if (!state.overview || !id) return null;
    return state.overview.groups.find((g) => g.id === id) || null;
  },
  contactName(id) {
    if (!state.overview) return null;
    const contact = state.overview.contacts.find((c) => c.id === id);
    return contact ? contact.name : null;
  },
};

// The refresh loop: one at a time; a push during a refresh runs one more round after it.
let refreshing = false;
let refreshAgain = false;

async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      try {
        const asked = ++state.overviewsAsked;
        const overview = await ctx.api.request('overview');
        state.overview = overview;
        state.overviewShown = asked;
        render();
        if (state.overview.me) {
          await chat.loadHistory(ctx);
          if (state.panel === 'members') await members.load(ctx);
        }
      } catch (error) {
        // A lost connection refreshes again when it comes back; anything else is shown.
        if (state.connection === 'open') showError(error.message);
      }
    } while (refreshAgain);
  } finally {
    refreshing = false;
  }
}

function render() {
  const overview = state.overview;
  show(byId('loading'), !overview);
  if (!overview) return;
  const first = overview.me === null;
  show(byId('first-start'), first);
  show(byId('app'), !first);
  show(byId('topnav'), !first);
  const meName = byId('me-name');
  meName.textContent = first ? '' : overview.me.name;
  show(meName, !first);
  show(byId('offline-banner'), !first && overview.online === false);
  if (first) {
    if (!render.askedName) {
      render.askedName = true;
      byId('name-input').focus();
    }
    return;
  }
  if (state.justInitialized) {
    // First start done: show the new contact code at once.
    state.justInitialized = false;
    openPanel('contacts');
  }
  // The open group is gone (refused, or wiped elsewhere): only an overview asked for after it was
  // opened can say so (a group just created is not in an older one).
  if (state.openGroup && !ctx.groupInfo(state.openGroup)
      && state.overviewShown > state.openedAfter) {
    chat.openGroup(ctx, null);
  }
  const open = ctx.groupInfo(state.openGroup);
  if (state.panel === 'members' && (!state.openGroup || (open && open.pending_invitation))) {
    closePanel();
  }
  chat.render(ctx);
  contacts.render(ctx);
  transports.render(ctx);
  if (state.panel === 'members') members.render(ctx);
  const unread = overview.groups.reduce((sum, g) => sum + (g.unread || 0), 0);
  document.title = unread > 0 ? '(' + unread + ') dcgka' : 'dcgka';
}

function openPanel(name, {focus = true} = {}) {
  state.panel = name;
  for (const [key, panel] of Object.entries(panels)) {
    show(byId(panel.section), key === name);
    const opener = byId(panel.opener);
    if (opener.hasAttribute('aria-pressed')) opener.setAttribute('aria-pressed', String(key === name));
  }
  show(byId('side'), true);
  byId('app').classList.add('with-side');
  if (name === 'members') {
    members.render(ctx);
    members.load(ctx).catch((error) => showError(error.message));
  }
  if (name === 'new-group') contacts.renderNewGroup(ctx);
  if (focus) {
    const heading = byId(panels[name].section).querySelector('h2');
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}

function closePanel() {
  const previous = state.panel;
  state.panel = null;
  for (const panel of Object.values(panels)) {
    show(byId(panel.section), false);
    const opener = byId(panel.opener);
    if (opener.hasAttribute('aria-pressed')) opener.setAttribute('aria-pressed', 'false');
  }
  show(byId('side'), false);
  byId('app').classList.remove('with-side');
  return previous;
}

function togglePanel(name) {
  if (state.panel === name) {
    closePanel();
    byId(panels[name].opener).focus();
  } else {
    openPanel(name);
  }
}

function showError(message) {
  say(byId('error-text'), message);
  show(byId('error-banner'), Boolean(message));
}

function setConnection(status, failures) {
  state.connection = status;
  const banner = byId('connection-banner');
  if (status === 'open') {
    say(banner, '');
    clearTimeout(setConnection.slowTimer);
    setConnection.slowTimer = null;
  } else if (status === 'lost') {
    // Several failures in a row: dcgka ui may have been started again, with a new token.
    say(banner, failures >= 5
      ? 'Connection to dcgka lost, retrying… If dcgka ui was started again, open the new address it printed.'
      : 'Connection to dcgka lost, retrying…');
  } else if (status === 'connecting' && !setConnection.slowTimer && !state.overview) {
    setConnection.slowTimer = setTimeout(() => {
      if (state.connection !== 'open') {
        say(banner, 'Cannot reach dcgka, retrying… If dcgka ui was started again, open the new address it printed.');
      }
    }, 4000);
  }
}

function wireFirstStart() {
  byId('init-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = byId('name-input');
    const name = input.value.trim();
    const error = byId('init-error');
    if (!name) {
      say(error, 'Choose a name first.');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    const button = byId('init-button');
    button.disabled = true;
    try {
      await ctx.api.request('init', {name});
      say(error, '');
      input.removeAttribute('aria-invalid');
      state.justInitialized = true;
      refresh();
    } catch (failure) {
      say(error, failure.message);
      input.setAttribute('aria-invalid', 'true');
    } finally {
      button.disabled = false;
    }
  });
}

function wirePanels() {
  byId('nav-contacts').addEventListener('click', () => togglePanel('contacts'));
  byId('nav-transports').addEventListener('click', () => togglePanel('transports'));
  byId('new-group-button').addEventListener('click', () => togglePanel('new-group'));
  byId('members-button').addEventListener('click', () => togglePanel('members'));
  for (const button of document.querySelectorAll('[data-close-panel]')) {
    button.addEventListener('click', () => {
      const previous = closePanel();
      if (previous) byId(panels[previous].opener).focus();
    });
  }
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || !state.panel) return;
    if (!byId('side').contains(document.activeElement)) return;
    if (members.cancelConfirm(ctx)) return;
    const previous = closePanel();
    if (previous) byId(panels[previous].opener).focus();
  });
  byId('error-dismiss').addEventListener('click', () => showError(''));
}

function start() {
  const token = takeToken();
  if (!token) {
    byId('loading-text').textContent = 'This page needs the address that dcgka ui printed, '
      + 'with its #token=… part. Open that address again (or start dcgka ui again).';
    return;
  }
  ctx.api = new Api(token, {
    onChanged: () => refresh(),
    onStatus: setConnection,
  });
  wireFirstStart();
  wirePanels();
  chat.wire(ctx);
  contacts.wire(ctx);
  members.wire(ctx);
  transports.wire(ctx);
  ctx.api.connect();
}

start();
