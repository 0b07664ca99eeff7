// The WebSocket client of docs/UI-API.md: requests with ids, answered exactly once; pushed
// {"event": "changed"}; reconnects with backoff when the link to `dcgka ui` drops.

const PROTOCOL = 'dcgka-ui.v1';
const REQUEST_TIMEOUT_MS = 120000;

export class Api {
  /**
   * handlers.onChanged(): the server pushed {"event":"changed"}; also called whenever the socket
   *   opens (first time and after a reconnect), so the page fetches everything then.
   * handlers.onStatus(state, failures): 'connecting' | 'open' | 'lost' ('lost': retrying), and
   *   how many attempts failed in a row.
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map();   // id -> {resolve, reject, timer}
    this.queue = [];            // frames waiting for the socket to open
    this.backoff = 500;
    this.everOpened = false;
    this.retryTimer = null;
    this.failures = 0;          // connection attempts that failed since the last success
  }

  connect() {
    this.retryTimer = null;
    this.handlers.onStatus(this.everOpened ? 'lost' : 'connecting', this.failures);
    let socket;
    try {
      socket = new WebSocket('ws://' + location.host + '/api/socket',
        [PROTOCOL, 'token.' + this.token]);
    } catch (error) {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (socket.protocol && socket.protocol !== PROTOCOL) {
        socket.close();
        return;
      }
      this.everOpened = true;
      this.backoff = 500;
      this.failures = 0;
      this.handlers.onStatus('open', 0);
      const queued = this.queue;
      this.queue = [];
      for (const frame of queued) socket.send(frame);
      // Anything may have changed while the link was down (or before it first came up).
      this.handlers.onChanged();
    });
    socket.addEventListener('message', (event) => this.receive(event.data));
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      for (const [id, request] of this.pending) {
        clearTimeout(request.timer);
        request.reject(new Error('The connection to dcgka was lost before it answered; try again.'));
        this.pending.delete(id);
      }
      this.queue = [];
      this.failures += 1;
      this.handlers.onStatus(this.everOpened ? 'lost' : 'connecting', this.failures);
      this.scheduleRetry();
    });
    // 'error' is always followed by 'close'.
  }

  scheduleRetry() {
    if (this.retryTimer !== null) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    this.retryTimer = setTimeout(() => this.connect(), delay + Math.random() * 250);
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (error) {
      return;
    }
    if (frame === null || typeof frame !== 'object') return;
    if (frame.event === 'changed') {
      this.handlers.onChanged();
      return;
    }
    const request = this.pending.get(frame.id);
    if (!request) return;
    this.pending.delete(frame.id);
    clearTimeout(request.timer);
    if (frame.ok) request.resolve(frame.result || {});
    else request.reject(new Error(frame.error || 'dcgka refused this without saying why.'));
  }

  /** Sends {"id", "op", ...args}; resolves with the result, rejects with the server's sentence. */
  request(op, args) {
    const id = this.nextId++;
    const frame = JSON.stringify(Object.assign({}, args || {}, {id, op}));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('dcgka did not answer in time; try again.'));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, {resolve, reject, timer});
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
      else this.queue.push(frame);
    });
  }

  // HTTP: export and import carry the token in the Authorization header.

  /** POST, so that a passphrase never travels in a URL. */
  async exportFile(group, protection, passphrase) {
    const body = {group: group || null, protection: protection || 'participants'};
    if (protection === 'passphrase') body.passphrase = passphrase;
    const response = await fetch('/api/export', {
      method: 'POST',
      headers: {Authorization: 'Bearer ' + this.token, 'Content-Type': 'application/json'},
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    if (!response.ok) throw new Error(await errorSentence(response));
    const blob = await response.blob();
    return {blob, filename: filenameFrom(response) || 'dcgka.dcgka'};
  }

  async importFile(file, passphrase) {
    const headers = {Authorization: 'Bearer ' + this.token, 'Content-Type': 'application/octet-stream'};
    if (passphrase) {
      // Header values carry ASCII safely: the passphrase travels percent-encoded (UTF-8).
      headers['X-DCGKA-File-Passphrase'] = encodeURIComponent(passphrase);
    }
    const response = await fetch('/api/import', {
      method: 'POST',
      headers,
      body: file,
      cache: 'no-store',
    });
    if (!response.ok) throw new Error(await errorSentence(response));
    return response.json();
  }
}

async function errorSentence(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') return body.error;
  } catch (error) {
    // not JSON
  }
  return 'dcgka refused the request (HTTP ' + response.status + ').';
}

function filenameFrom(response) {
  const header = response.headers.get('Content-Disposition') || '';
  const match = /filename="([^"]+)"/.exec(header);
  if (!match) return null;
  // Keep it a plain file name.
  return match[1].replace(/[\/\\]/g, '_');
}
