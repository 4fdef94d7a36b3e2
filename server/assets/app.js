// The dashboard's entry point: sign-in (a `#token=` fragment or the form, traded for an HttpOnly
// session cookie; the token is never stored), then the live panels. A `#token=` link never
// replaces a session that is already signed in without asking: a link from someone else could
// otherwise sign this browser in as them.

import { api, ApiError } from './api.js';
import { byId, say } from './dom.js';
import { Connection } from './connection.js';
import { EventStream } from './stream.js';
import { Metrics } from './metrics.js';
import { Agents, Opportunities, Scans, Threats } from './operations.js';
import { MapPanel } from './map.js';
import { Chat } from './chat.js';
import { Admin } from './admin.js';

const noticeLine = byId('notice');
function notice(text) {
  noticeLine.textContent = text;
  noticeLine.hidden = !text;
}

const stream = new EventStream();
const metrics = new Metrics(notice);
const opportunities = new Opportunities();
const agents = new Agents();
const scans = new Scans();
const threats = new Threats();
const mapPanel = new MapPanel();
const admin = new Admin();
let connected = false;
let reconnects = 0;
let entered = false;

const connection = new Connection({
  onStatus(state, text) {
    const box = byId('connection');
    box.className = `conn conn-${state}`;
    byId('connection-text').textContent = text;
  },
  onWelcome(welcome) {
    const rooms = (welcome.rooms ?? []).filter((r) => r.subscribe).map((r) => String(r.name));
    stream.setRooms(rooms);
    const chatRoom = (welcome.rooms ?? []).find((r) => r.name === 'chat');
    chat.setRights(Boolean(chatRoom?.subscribe), Boolean(chatRoom?.publish));
    if (connected) reconnects += 1;
    connected = true;
  },
  onEvent(event, replayed) {
    stream.add(event);
    metrics.count(!replayed);
    if (event.kind === 'opportunity_discovered') opportunities.add(event);
    if (event.room === 'scans' || String(event.kind).startsWith('scan_') || event.kind === 'task_progress') scans.onEvent(event);
    if (event.room === 'alerts') threats.onEvent(event, replayed);
    if (String(event.kind).startsWith('agent_')) agents.onEvent(event);
    chat.onEvent(event);
    mapPanel.onEvent(event);
  },
  onRecovered(message) {
    if (reconnects === 0) return;
    if (message.recovered) {
      notice(`Reconnected: ${Number(message.replayed) || 0} missed event(s) replayed.`);
    } else {
      notice('Reconnected, but some events were missed: the server restarted or its history no longer reaches back.');
    }
  },
  onLagged(message) {
    notice(`${Number(message.missed) || 0} event(s) were dropped because this page fell behind.`);
  },
  onError(message) {
    notice(`Server: ${String(message.message ?? message.code)}`);
  },
  onSignedOut() {
    showLogin('Your session has ended. Sign in again.');
  },
});
const chat = new Chat(connection);

/** Stops everything the signed-in page runs. */
function leave() {
  connection.stop();
  metrics.stop();
  connected = false;
  reconnects = 0;
  entered = false;
}

function showLogin(error = '') {
  leave();
  byId('dashboard').hidden = true;
  byId('whoami').hidden = true;
  byId('login').hidden = false;
  say(byId('login-error'), error, error ? 'error' : '');
  byId('login-token').focus();
}

async function enter(session) {
  entered = true;
  notice('');
  byId('login').hidden = true;
  byId('dashboard').hidden = false;
  byId('whoami').hidden = false;
  byId('role').textContent = String(session.role);
  scans.setRole(session.role);
  connection.start();
  metrics.start();
  agents.load();
  mapPanel.start();
  admin.show(session.role === 'admin');
}

async function signIn(token) {
  try {
    const session = await api('POST', '/api/session', { token });
    await enter(session);
  } catch (err) {
    showLogin(err instanceof ApiError && err.status === 401 ? 'That token is not valid.' : `Sign-in failed: ${err.message}`);
  }
}

byId('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = byId('login-token');
  const token = input.value.trim();
  input.value = '';
  if (token) signIn(token);
});

byId('logout').addEventListener('click', async () => {
  try {
    await api('DELETE', '/api/session');
  } finally {
    showLogin();
  }
});

/**
 * The token of a `#token=` fragment (from `vigil serve`'s printed URL), or null. Any fragment is
 * wiped from the address bar and history before anything else happens; fragments never reach
 * the server.
 */
function takeLinkToken() {
  if (!location.hash) return null;
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  history.replaceState(null, '', location.pathname + location.search);
  return token?.trim() || null;
}

const replaceDialog = byId('replace-session');
byId('replace-keep').addEventListener('click', () => replaceDialog.close('keep'));
byId('replace-accept').addEventListener('click', () => replaceDialog.close('replace'));

/** Asks whether the link's token may replace `session`; true only on an explicit yes (Escape keeps it). */
function askToReplace(session) {
  // A second link while the first is asked about: the first is answered "keep".
  if (replaceDialog.open) replaceDialog.close('keep');
  byId('replace-who').textContent = `${String(session.role)} (${String(session.label || `token ${session.token_id}`)})`;
  replaceDialog.returnValue = '';
  return new Promise((resolve) => {
    replaceDialog.addEventListener('close', () => resolve(replaceDialog.returnValue === 'replace'), { once: true });
    replaceDialog.showModal();
    byId('replace-keep').focus();
  });
}

/** Signs in with a link's token, asking first when this browser already has a session. */
async function linkSignIn(token) {
  let session = null;
  try {
    session = await api('GET', '/api/session');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      // Whether a session exists is unknown: the link's token is not used.
      showLogin(`The server could not be reached: ${err.message}`);
      return;
    }
  }
  if (session) {
    if (!(await askToReplace(session))) {
      if (!entered) await enter(session);
      return;
    }
    // The old session ends on the server too, not only in this browser's cookie jar.
    leave();
    try {
      await api('DELETE', '/api/session');
    } catch {
      // The new session's cookie replaces the old one either way.
    }
  }
  await signIn(token);
}

// A link opened in a tab that already shows the dashboard changes only the fragment.
window.addEventListener('hashchange', () => {
  const token = takeLinkToken();
  if (token) linkSignIn(token);
});

async function boot() {
  const token = takeLinkToken();
  if (token) {
    await linkSignIn(token);
    return;
  }
  try {
    await enter(await api('GET', '/api/session'));
  } catch (err) {
    showLogin(err instanceof ApiError && err.status === 401 ? '' : `The server could not be reached: ${err.message}`);
  }
}

// For operators poking at the page in devtools, and for the browser test: read-only state.
window.vigil = Object.freeze({ connection, stream });

boot();
