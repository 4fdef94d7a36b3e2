// The `chat` room: everyone who may read it sees messages; operators and admins may post.
// A message is shown under the sender the server knows (the envelope's `source`, which the
// server sets from the publishing token), never under a name inside the message itself.

import { byId, el, say, str, clock } from './dom.js';

const MAX_MESSAGES = 200;

export class Chat {
  constructor(connection) {
    this.connection = connection;
    this.list = byId('chat');
    this.form = byId('chat-form');
    this.input = byId('chat-input');
    this.message = byId('chat-message');
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
  }

  setRights(canRead, canPublish) {
    for (const control of this.form.elements) control.disabled = !canPublish;
    if (!canRead) say(this.message, 'Your role may not read the chat room.');
    else if (!canPublish) say(this.message, 'Posting needs the operator role.');
    else say(this.message, '');
  }

  async send() {
    const text = this.input.value.trim();
    if (!text) return;
    try {
      await this.connection.publish('chat_message', 'chat', { message: text });
      this.input.value = '';
      say(this.message, '');
    } catch (err) {
      say(this.message, `Not sent: ${err.message}`, 'error');
    }
  }

  onEvent(event) {
    if (event.room !== 'chat') return;
    const d = event.data && typeof event.data === 'object' ? event.data : {};
    // `data.user` and the like are whatever the publisher wrote: never shown as the sender.
    const who = str(event.source, 'unknown sender');
    this.list.append(el('li', {},
      el('time', { class: 'time', text: clock(event.time) }), ' ',
      el('strong', { text: who }), ': ', str(d.message ?? d.text ?? event.data)));
    while (this.list.children.length > MAX_MESSAGES) this.list.firstElementChild.remove();
    this.list.scrollTop = this.list.scrollHeight;
  }
}
