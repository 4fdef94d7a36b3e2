// The admin panel (shown to admins only): tokens and agent commands.

import { api, explain } from './api.js';
import { byId, el, say, str } from './dom.js';

export class Admin {
  constructor() {
    this.panel = byId('admin');
    this.body = byId('tokens');
    this.message = byId('tokens-message');
    byId('token-form').addEventListener('submit', (e) => { e.preventDefault(); this.create(); });
    byId('command-form').addEventListener('submit', (e) => { e.preventDefault(); this.command(); });
  }

  async show(isAdmin) {
    this.panel.hidden = !isAdmin;
    if (isAdmin) await this.load();
  }

  async load() {
    try {
      const tokens = await api('GET', '/api/tokens');
      const all = Array.isArray(tokens) ? tokens : (tokens?.tokens ?? []);
      const list = all.filter((t) => t?.active !== false);
      this.body.replaceChildren(...list.map((t) => el('tr', {},
        el('td', {}, el('code', { text: str(t.id) })),
        el('td', { text: str(t.role) }),
        el('td', { text: str(t.label) }),
        el('td', {}, el('button', {
          type: 'button', text: 'Revoke', attrs: { 'aria-label': `revoke token ${str(t.id)}` },
          onclick: () => this.revoke(str(t.id)),
        })))));
      say(this.message, list.length ? '' : 'No token.');
      this.body.closest('table').hidden = list.length === 0;
    } catch (err) {
      this.body.closest('table').hidden = true;
      say(this.message, explain(err, 'Token management'), err.unavailable ? 'unavailable' : 'error');
    }
  }

  async create() {
    const out = byId('token-created');
    try {
      const answer = await api('POST', '/api/tokens', { role: byId('token-role').value, label: byId('token-label').value.trim() });
      // Shown once, as text; this page keeps no copy.
      say(out, `New token (shown once): ${str(answer?.token)}`, 'ok');
      await this.load();
    } catch (err) {
      say(out, explain(err, 'Creating a token'), err.unavailable ? 'unavailable' : 'error');
    }
  }

  async revoke(id) {
    try {
      await api('DELETE', `/api/tokens/${encodeURIComponent(id)}`);
      await this.load();
    } catch (err) {
      say(this.message, explain(err, 'Revoking a token'), err.unavailable ? 'unavailable' : 'error');
    }
  }

  async command() {
    const out = byId('command-message');
    const agent = byId('command-agent').value.trim();
    const command = byId('command-name').value;
    if (!agent) return;
    try {
      await api('POST', `/api/agents/${encodeURIComponent(agent)}/command`, { command });
      say(out, `Sent ${command} to ${agent}.`, 'ok');
    } catch (err) {
      say(out, explain(err, 'Agent commands'), err.unavailable ? 'unavailable' : 'error');
    }
  }
}
