// The /ws connection: authenticates with the session cookie at upgrade, subscribes to every
// readable room, reconnects with back-off and resumes from the last (epoch, seq) it saw, so a
// reconnect delivers each missed event exactly once.

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;
/** Events of history asked for on the first connection, so the page is not empty on load. */
const INITIAL_BACKLOG = 200;
/** Event ids remembered to drop duplicates (a replay overlapping live delivery). */
const SEEN_IDS = 5000;

export class Connection {
  /**
   * handlers: onStatus(state, text), onWelcome(welcome), onEvent(event, replayed),
   * onRecovered(message), onLagged(message), onError(message), onSignedOut().
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.position = null;
    this.seen = new Set();
    this.seenOrder = [];
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.stopped = true;
    this.pending = new Map();
    this.nextId = 1;
    this.replaying = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, 'signed out');
    this.socket = null;
    this.position = null;
    this.status('off', 'not connected');
  }

  status(state, text) {
    this.handlers.onStatus?.(state, text);
  }

  open() {
    clearTimeout(this.retryTimer);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    this.status('connecting', 'connecting…');
    socket.addEventListener('message', (message) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.receive(frame);
    });
    socket.addEventListener('close', (close) => {
      if (socket !== this.socket) return;
      this.socket = null;
      for (const { reject } of this.pending.values()) reject(new Error('the connection closed'));
      this.pending.clear();
      if (this.stopped) return;
      if (close.code === 4001) {
        this.stopped = true;
        this.status('off', 'signed out');
        this.handlers.onSignedOut?.();
        return;
      }
      this.scheduleRetry(close.code);
    });
  }

  scheduleRetry(code) {
    const delay = this.retryMs + Math.floor(Math.random() * this.retryMs * 0.5);
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    const why = code === 1001 ? 'server restarting' : code === 4008 ? 'too slow' : 'connection lost';
    this.status('retrying', `${why}: reconnecting in ${Math.round(delay / 1000)} s`);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  send(frame) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  /** Sends a request and resolves with its `ack` (rejects with its `error`). */
  request(frame) {
    const id = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (this.socket?.readyState !== WebSocket.OPEN) {
        reject(new Error('not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('no answer within 10 s'));
      }, 10000);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send({ ...frame, id });
    });
  }

  publish(kind, room, data) {
    return this.request({ type: 'publish', kind, room, data });
  }

  receive(frame) {
    switch (frame.type) {
      case 'welcome': {
        this.retryMs = FIRST_RETRY_MS;
        this.status('live', 'live');
        this.handlers.onWelcome?.(frame);
        const rooms = (frame.rooms ?? []).filter((r) => r.subscribe).map((r) => r.name);
        const since = this.position ?? {
          epoch: frame.epoch,
          seq: Math.max(0, Number(frame.head ?? 0) - INITIAL_BACKLOG),
        };
        this.replaying = true;
        this.send({ type: 'subscribe', id: 'sub', rooms, since });
        break;
      }
      case 'event': {
        const event = frame.event;
        if (!event || typeof event !== 'object') return;
        if (this.isDuplicate(event)) return;
        this.position = { epoch: event.epoch, seq: event.seq };
        this.handlers.onEvent?.(event, this.replaying);
        break;
      }
      case 'recovered':
        this.replaying = false;
        if (frame.epoch && (!this.position || this.position.epoch !== frame.epoch)) {
          // A new epoch (the server restarted): positions of the old one mean nothing.
          this.position = { epoch: frame.epoch, seq: Number(frame.head ?? 0) };
          this.forget();
        } else if (this.position && Number(frame.head) > this.position.seq && frame.recovered) {
          // Events we may not read advanced the head: resume from it next time.
          this.position = { epoch: frame.epoch, seq: Number(frame.head) };
        }
        this.handlers.onRecovered?.(frame);
        break;
      case 'lagged':
        this.handlers.onLagged?.(frame);
        break;
      case 'ack': {
        if (frame.of === 'subscribe') this.replaying = false;
        const waiter = this.pending.get(frame.id);
        if (waiter) {
          this.pending.delete(frame.id);
          waiter.resolve(frame);
        }
        break;
      }
      case 'error': {
        const waiter = this.pending.get(frame.id);
        if (waiter) {
          this.pending.delete(frame.id);
          waiter.reject(new Error(String(frame.message ?? frame.code)));
        } else {
          this.handlers.onError?.(frame);
        }
        break;
      }
      default:
        break;
    }
  }

  isDuplicate(event) {
    const p = this.position;
    if (p && event.epoch === p.epoch && Number(event.seq) <= p.seq) return true;
    if (this.seen.has(event.id)) return true;
    this.seen.add(event.id);
    this.seenOrder.push(event.id);
    if (this.seenOrder.length > SEEN_IDS) this.seen.delete(this.seenOrder.shift());
    return false;
  }

  forget() {
    this.seen.clear();
    this.seenOrder = [];
  }
}
