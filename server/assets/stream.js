// The live event stream: newest first, a bounded list, filters by room, kind and severity,
// pause and resume, and the full JSON of an event on click.

import { byId, el, severityOf, SEVERITIES, str, clock } from './dom.js';

/** A one-line, human summary of an event's data: the fields people look for first. */
export function describe(event) {
  const d = event.data && typeof event.data === 'object' ? event.data : {};
  const first = [
    'title', 'name', 'message', 'description', 'task_description', 'target', 'status', 'agent_name',
    'agent_id', 'subject',
  ];
  const parts = [];
  for (const key of first) {
    if (d[key] !== undefined && d[key] !== null && parts.length < 3) parts.push(`${key}: ${str(d[key])}`);
  }
  if (parts.length === 0 && event.data !== null && event.data !== undefined) parts.push(str(event.data));
  const text = parts.join(' · ');
  return text.length > 240 ? `${text.slice(0, 239)}…` : text;
}

export class EventStream {
  constructor() {
    this.list = byId('events');
    this.room = byId('filter-room');
    this.kind = byId('filter-kind');
    this.severity = byId('filter-severity');
    this.keep = byId('filter-keep');
    this.pauseButton = byId('stream-pause');
    this.pausedBadge = byId('stream-paused');
    this.paused = false;
    this.held = [];
    this.all = [];
    for (const control of [this.room, this.kind, this.severity, this.keep]) {
      control.addEventListener('input', () => this.redraw());
    }
    byId('stream-filters').addEventListener('submit', (e) => e.preventDefault());
    this.pauseButton.addEventListener('click', () => this.setPaused(!this.paused));
  }

  setRooms(rooms) {
    const current = this.room.value;
    this.room.replaceChildren(el('option', { value: '', text: 'all' }));
    for (const room of rooms) this.room.append(el('option', { value: room, text: room }));
    this.room.value = rooms.includes(current) ? current : '';
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.textContent = paused ? 'Resume' : 'Pause';
    this.pauseButton.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      const held = this.held;
      this.held = [];
      for (const event of held) this.add(event);
    }
    this.updateBadge();
  }

  updateBadge() {
    this.pausedBadge.hidden = !this.paused;
    this.pausedBadge.textContent = `paused · ${this.held.length} waiting`;
  }

  get limit() {
    return Number(this.keep.value) || 100;
  }

  add(event) {
    if (this.paused) {
      this.held.push(event);
      if (this.held.length > 1000) this.held.shift();
      this.updateBadge();
      return;
    }
    this.all.unshift(event);
    if (this.all.length > 500) this.all.length = 500;
    if (this.matches(event)) {
      this.list.prepend(this.render(event));
      while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
    }
  }

  matches(event) {
    const room = this.room.value;
    const kind = this.kind.value.trim();
    const min = SEVERITIES.indexOf(this.severity.value);
    return (!room || event.room === room)
      && (!kind || String(event.kind).includes(kind))
      && SEVERITIES.indexOf(severityOf(event.severity)) >= min;
  }

  redraw() {
    const shown = this.all.filter((e) => this.matches(e)).slice(0, this.limit);
    this.list.replaceChildren(...shown.map((e) => this.render(e)));
  }

  render(event) {
    const severity = severityOf(event.severity);
    const json = el('pre', { class: 'json', text: JSON.stringify(event, null, 2) });
    const summary = el('summary', {},
      el('span', { class: `badge sev-${severity}`, text: severity }),
      el('span', { class: 'kind', text: str(event.kind) }),
      el('span', { class: 'room', text: `#${str(event.room)}` }),
      el('time', { class: 'time', text: clock(event.time), dateTime: str(event.time) }),
      el('span', { class: 'desc', text: describe(event) }),
    );
    return el('li', { class: `event sev-${severity}`, dataset: { seq: str(event.seq), id: str(event.id) } },
      el('details', {}, summary, json));
  }
}
