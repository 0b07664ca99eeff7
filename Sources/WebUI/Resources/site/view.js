// DOM helpers. Nothing here ever parses markup: every node is made with createElement and every
// piece of text is set with textContent (or a text node), so text from the network stays text.

/**
 * el('li', {class: 'entry', dataset: {entryKind: 'message'}}, 'text', childNode, ...)
 * Attributes: class, text, dataset (object), on (object of event handlers), hidden, disabled,
 * checked, value, and any other attribute name, set with setAttribute.
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'on') {
        for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
      } else if (key === 'hidden' || key === 'disabled' || key === 'checked' || key === 'readOnly'
                 || key === 'required') {
        node[key] = Boolean(value);
      } else if (key === 'value') node.value = String(value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** Replaces the children of node with the given children. */
export function fill(node, ...children) {
  clear(node);
  append(node, children);
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error('missing element #' + id);
  return node;
}

export function show(node, visible) {
  node.hidden = !visible;
}

/** Sets a message in a live region; an empty message hides it. */
export function say(node, message) {
  node.textContent = message || '';
  node.hidden = !message;
}

// Times: the server gives seconds since 1970.

function pad(n) {
  return n < 10 ? '0' + n : String(n);
}

export function clock(seconds) {
  const d = new Date(seconds * 1000);
  return pad(d.getHours()) + ':' + pad(d.getMinutes());
}

export function dayKey(seconds) {
  const d = new Date(seconds * 1000);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
}

export function dayLabel(seconds) {
  const d = new Date(seconds * 1000);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(seconds) === dayKey(today.getTime() / 1000)) return 'Today';
  if (dayKey(seconds) === dayKey(yesterday.getTime() / 1000)) return 'Yesterday';
  return d.toLocaleDateString(undefined,
    {weekday: 'long', year: 'numeric', month: 'long', day: 'numeric'});
}

/** "14:03" today, else "3 Mar 14:03" (for last sync times and the like). */
export function when(seconds) {
  if (seconds === null || seconds === undefined) return 'never';
  if (dayKey(seconds) === dayKey(Date.now() / 1000)) return clock(seconds);
  const d = new Date(seconds * 1000);
  return d.toLocaleDateString(undefined, {day: 'numeric', month: 'short', year: 'numeric'})
    + ' ' + clock(seconds);
}

export function isoTime(seconds) {
  return new Date(seconds * 1000).toISOString();
}

export function shortId(hex) {
  return hex ? hex.slice(0, 8) : '';
}

export function plural(n, one, many) {
  return n + ' ' + (n === 1 ? one : many);
}

const lastKeys = new WeakMap();

/**
 * True when the data a node was last built from differs from `data` (compared as JSON), and
 * remembers it: lists are rebuilt only when what they show changed, so a push that changed
 * something else never replaces the element under the pointer or the keyboard focus.
 */
export function changed(node, data) {
  const key = JSON.stringify(data);
  if (lastKeys.get(node) === key) return false;
  lastKeys.set(node, key);
  return true;
}
