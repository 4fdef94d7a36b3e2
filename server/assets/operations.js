// Opportunities, agents, scans and threats: each panel is rebuilt from events (and, for agents,
// from GET /api/agents). Missing routes are said plainly; nothing is invented.

import { api, explain } from './api.js';
import { byId, el, link, say, severityOf, str, clock } from './dom.js';

const MAX_CARDS = 100;
/** Threat severities, lowest first (a threat's own `severity`). */
const THREAT_RANK = ['info', 'low', 'medium', 'high', 'critical'];
/** Event severities mapped onto the same scale, for cards without a threat severity. */
const SEVERITY_RANK = ['info', 'success', 'warning', 'error', 'critical'];

/** Opportunity cards as the seed dashboard shows them. */
export class Opportunities {
  constructor() {
    this.list = byId('opportunities');
    this.empty = byId('opportunities-empty');
  }

  add(event) {
    const d = event.data && typeof event.data === 'object' ? event.data : {};
    const score = Number(d.confidence_score ?? d.confidence);
    // Confidence is 0–100; a 0–1 value from an older agent is scaled.
    const percent = Number.isFinite(score) ? (score <= 1 ? score * 100 : score) : null;
    const level = percent === null ? 'unknown' : percent >= 80 ? 'high' : percent >= 50 ? 'medium' : 'low';
    const card = el('article', { class: 'card opportunity', dataset: { id: str(event.id) } },
      el('header', {},
        el('h3', { text: str(d.title, 'Untitled opportunity') }),
        el('span', { class: 'badge category', text: str(d.category, 'uncategorised') })),
      el('p', { class: 'description', text: str(d.description) }),
      el('dl', {},
        el('dt', { text: 'Confidence' }),
        el('dd', { class: `confidence confidence-${level}`, text: percent === null ? 'unknown' : `${percent.toFixed(0)}%` }),
        el('dt', { text: 'Revenue potential' }),
        el('dd', { class: 'revenue', text: str(d.revenue_potential, 'not estimated') }),
        el('dt', { text: 'Found' }),
        el('dd', { text: clock(event.time) })));
    this.list.prepend(card);
    while (this.list.children.length > MAX_CARDS) this.list.lastElementChild.remove();
    this.empty.hidden = true;
  }
}

/** Agents from GET /api/agents, kept current by agent events in `monitoring`. */
export class Agents {
  constructor() {
    this.body = byId('agents');
    this.message = byId('agents-message');
    this.agents = new Map();
  }

  async load() {
    try {
      const list = await api('GET', '/api/agents');
      for (const agent of Array.isArray(list) ? list : []) this.upsert(str(agent.id), agent);
      say(this.message, this.agents.size ? '' : 'No agent registered.');
    } catch (err) {
      say(this.message, explain(err, 'The agent list'), err.unavailable ? 'unavailable' : 'error');
    }
    this.draw();
  }

  onEvent(event) {
    const d = event.data && typeof event.data === 'object' ? event.data : {};
    const id = str(d.agent_id ?? d.id ?? event.source, '');
    if (!id) return;
    const status = {
      agent_registered: 'online', agent_online: 'online', agent_offline: 'offline',
      agent_execution_started: 'busy', agent_execution_completed: 'online',
    }[event.kind];
    if (!status) return;
    this.upsert(id, { ...d, id, status: d.status ?? status, last_heartbeat: event.time });
    if (this.message.dataset.kind !== 'unavailable') say(this.message, '');
    this.draw();
  }

  upsert(id, fields) {
    const known = this.agents.get(id) ?? { id };
    this.agents.set(id, { ...known, ...fields });
  }

  draw() {
    const rows = [...this.agents.values()].map((a) => {
      const status = ['online', 'busy', 'offline', 'idle', 'stopped'].includes(a.status) ? a.status : 'unknown';
      const load = a.max_concurrent !== undefined ? `${str(a.running, '0')} / ${str(a.max_concurrent)}` : '–';
      const caps = Array.isArray(a.capabilities) ? a.capabilities.map((c) => str(c)).join(', ') : str(a.capabilities, '–');
      return el('tr', { dataset: { agent: str(a.id) } },
        el('td', {}, el('span', { class: 'agent-name', text: str(a.name ?? a.agent_name, str(a.id)) }),
          el('br'), el('code', { text: str(a.id) })),
        el('td', {}, el('span', { class: `badge status-${status}`, text: str(a.status, 'unknown') })),
        el('td', { text: caps }),
        el('td', { text: load }),
        el('td', { text: a.last_heartbeat ? clock(a.last_heartbeat) : '–' }));
    });
    this.body.replaceChildren(...rows);
  }
}

/** Scans and their tasks from room `scans`; the start-scan form posts to /api/scans. */
export class Scans {
  constructor() {
    this.list = byId('scans');
    this.empty = byId('scans-empty');
    this.message = byId('scan-message');
    this.form = byId('scan-form');
    this.scans = new Map();
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.start();
    });
  }

  setRole(role) {
    const canScan = role === 'operator' || role === 'admin';
    for (const control of this.form.elements) control.disabled = !canScan;
    say(this.message, canScan ? '' : 'Starting scans needs the operator role.');
  }

  async start() {
    const targets = byId('scan-targets').value.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean);
    const scanTypes = [...this.form.querySelectorAll('input[name="scan-type"]:checked')].map((c) => c.value);
    const priority = Number(byId('scan-priority').value);
    if (targets.length === 0) return say(this.message, 'Give at least one target.', 'error');
    if (scanTypes.length === 0) return say(this.message, 'Choose at least one scan type.', 'error');
    if (!Number.isInteger(priority) || priority < 1 || priority > 10) {
      return say(this.message, 'Priority is a whole number from 1 to 10.', 'error');
    }
    say(this.message, 'Scheduling…');
    try {
      const answer = await api('POST', '/api/scans', {
        targets, scan_types: scanTypes, ports: byId('scan-ports').value.trim(), priority,
      });
      const id = str(answer?.scan_id);
      const tasks = Array.isArray(answer?.tasks) ? answer.tasks : [];
      say(this.message, `Scan ${id} scheduled: ${tasks.length} task${tasks.length === 1 ? '' : 's'}.`, 'ok');
      const scan = this.scan(id);
      scan.targets = targets;
      for (const t of tasks) this.task(scan, str(t.task_id), { kind: t.kind, target: t.target, status: t.status });
      this.draw(scan);
    } catch (err) {
      say(this.message, explain(err, 'Starting a scan'), err.unavailable ? 'unavailable' : 'error');
    }
  }

  scan(id) {
    if (!this.scans.has(id)) this.scans.set(id, { id, targets: [], status: 'scheduled', tasks: new Map(), findings: [] });
    return this.scans.get(id);
  }

  task(scan, id, fields) {
    const known = scan.tasks.get(id) ?? { id, progress: 0 };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) known[k] = v;
    scan.tasks.set(id, known);
    return known;
  }

  onEvent(event) {
    const d = event.data && typeof event.data === 'object' ? event.data : {};
    const id = str(d.scan_id, '');
    if (!id) return;
    const scan = this.scan(id);
    if (Array.isArray(d.targets)) scan.targets = d.targets.map((t) => str(t));
    else if (d.target !== undefined && !scan.targets.includes(str(d.target))) scan.targets.push(str(d.target));
    if (Array.isArray(d.findings)) scan.findings.push(...d.findings.map((f) => str(f)));
    const taskId = d.task_id === undefined ? null : str(d.task_id);
    switch (event.kind) {
      case 'scan_scheduled': scan.status = 'scheduled'; break;
      case 'scan_started':
        if (scan.status === 'scheduled') scan.status = 'running';
        if (taskId) this.task(scan, taskId, { kind: d.kind, target: d.target, status: 'running' });
        break;
      case 'task_progress':
        if (scan.status === 'scheduled') scan.status = 'running';
        if (taskId && typeof d.progress === 'number') {
          // Agents report 0–1; percentages are accepted too.
          this.task(scan, taskId, { progress: d.progress > 1 ? d.progress / 100 : d.progress, target: d.target });
        }
        break;
      case 'scan_update':
        if (taskId) {
          this.task(scan, taskId, {
            kind: d.kind, target: d.target, status: d.status, findings: typeof d.findings === 'number' ? d.findings : undefined,
            error: d.error, progress: 1,
          });
        }
        break;
      case 'scan_completed':
        scan.status = str(d.status, 'completed');
        scan.done = true;
        break;
      default:
        if (d.status !== undefined) scan.status = str(d.status);
    }
    this.draw(scan);
  }

  draw(scan) {
    const node = this.render(scan);
    const old = this.list.querySelector(`li[data-scan="${CSS.escape(scan.id)}"]`);
    if (old) old.replaceWith(node);
    else this.list.prepend(node);
    this.empty.hidden = true;
  }

  render(scan) {
    const tasks = [...scan.tasks.values()];
    const percent = scan.done ? 100
      : tasks.length ? (tasks.reduce((sum, t) => sum + Math.min(1, Math.max(0, Number(t.progress) || 0)), 0) / tasks.length) * 100
        : 0;
    const known = ['completed', 'running', 'scheduled', 'failed', 'partial', 'cancelled'];
    const findings = tasks.reduce((n, t) => n + (Number(t.findings) || 0), 0) + scan.findings.length;
    return el('li', { class: 'scan', dataset: { scan: scan.id } },
      el('div', { class: 'scan-head' },
        el('span', { class: 'scan-target', text: scan.targets.length ? scan.targets.join(', ') : '(target unknown)' }),
        el('span', { class: `badge status-${known.includes(scan.status) ? scan.status : 'unknown'}`, text: scan.status })),
      el('progress', { max: 100, value: Math.round(percent), attrs: { 'aria-label': `progress of scan ${scan.id}` } }),
      el('div', { class: 'muted', text: `scan ${scan.id} · ${tasks.length} task${tasks.length === 1 ? '' : 's'} · ${findings} finding${findings === 1 ? '' : 's'}` }),
      tasks.length ? el('ul', { class: 'tasks' }, ...tasks.map((t) => el('li', {
        text: `${str(t.kind, 'task')} ${str(t.target, '')} · ${str(t.status, 'queued')}`
          + `${t.findings !== undefined ? ` · ${t.findings} finding${Number(t.findings) === 1 ? '' : 's'}` : ''}`
          + `${t.error ? ` · ${str(t.error)}` : ''}`,
      }))) : null,
      scan.findings.length ? el('ul', { class: 'findings' }, ...scan.findings.slice(0, 20).map((f) => el('li', { text: f }))) : null);
  }
}

/** Threats from room `alerts`, with a browser notification for critical ones. */
export class Threats {
  constructor() {
    this.list = byId('threats');
    this.empty = byId('threats-empty');
    const button = byId('notify-enable');
    // Permission is asked only on this click, never on load.
    if (!('Notification' in window)) button.hidden = true;
    else if (Notification.permission !== 'default') button.hidden = true;
    button.addEventListener('click', async () => {
      await Notification.requestPermission();
      button.hidden = Notification.permission !== 'default';
    });
  }

  onEvent(event, replayed) {
    if (!['threat_detected', 'alert_created', 'critical_alert'].includes(event.kind)) return;
    const d = event.data && typeof event.data === 'object' ? event.data : {};
    const severity = event.kind === 'critical_alert' ? 'critical' : severityOf(event.severity);
    // The server follows a critical threat_detected with a critical_alert about the same threat:
    // one card per threat, raised to the highest severity seen.
    const key = d.signature_id !== undefined
      ? JSON.stringify([str(d.scan_id), str(d.task_id), str(d.target), str(d.signature_id)])
      : str(event.id);
    const old = [...this.list.children].find((li) => li.dataset.key === key);
    if (old) {
      if (severity === 'critical' && !old.classList.contains('sev-critical')) {
        old.remove();
        this.insert(this.render(event, d, severity, key));
      }
      if (severity === 'critical' && !replayed) this.notify(d);
      return;
    }
    this.insert(this.render(event, d, severity, key));
    while (this.list.children.length > MAX_CARDS) this.list.lastElementChild.remove();
    this.empty.hidden = true;
    if (severity === 'critical' && !replayed) this.notify(d);
  }

  /** Places a card by severity, then KEV listing, then EPSS score; newest first among equals. */
  insert(card) {
    const rank = (li) => [Number(li.dataset.sev), Number(li.dataset.kev), Number(li.dataset.epss)];
    const mine = rank(card);
    const before = [...this.list.children].find((li) => {
      const theirs = rank(li);
      for (let i = 0; i < 3; i += 1) {
        if (mine[i] !== theirs[i]) return mine[i] > theirs[i];
      }
      return true;
    });
    this.list.insertBefore(card, before ?? null);
  }

  render(event, d, severity, key) {
    const refs = Array.isArray(d.references) ? d.references : [];
    const label = typeof d.severity === 'string' && d.severity !== severity ? `${severity} (${d.severity})` : severity;
    const cve = d.cve && typeof d.cve === 'object' ? d.cve : null;
    const kev = cve && cve.kev && typeof cve.kev === 'object' ? cve.kev : null;
    const epss = cve && cve.epss && typeof cve.epss === 'object' ? cve.epss : null;
    const epssScore = epss && Number.isFinite(Number(epss.score)) ? Number(epss.score) : 0;
    const rank = THREAT_RANK.indexOf(typeof d.severity === 'string' ? d.severity : '');
    const cveId = cve && /^CVE-\d{4}-\d{4,}$/.test(str(cve.id)) ? str(cve.id) : null;
    return el('li', {
      class: `threat sev-${severity}`,
      dataset: { id: str(event.id), key, sev: String(rank >= 0 ? rank : SEVERITY_RANK.indexOf(severity)), kev: kev ? '1' : '0', epss: String(epssScore) },
    },
      el('div', { class: 'threat-head' },
        el('span', { class: `badge sev-${severity}`, text: label }),
        cveId ? link(`https://nvd.nist.gov/vuln/detail/${cveId}`, cveId) : null,
        el('strong', { class: 'threat-name', text: str(d.name ?? d.signature_id ?? event.kind) }),
        el('span', { class: 'muted', text: ` on ${str(d.target, 'unknown target')}${d.port ? `:${str(d.port)}` : ''} · ${clock(event.time)}` })),
      cve ? el('div', { class: 'threat-badges' },
        cve.cvss && typeof cve.cvss === 'object'
          ? el('span', { class: 'badge cvss', title: str(cve.cvss.vector), text: `CVSS ${str(cve.cvss.version)} ${str(cve.cvss.score)}` })
          : null,
        kev ? el('span', { class: 'badge kev', title: `added ${str(kev.date_added)}, due ${str(kev.due_date)}`, text: `KEV${kev.ransomware ? ' · ransomware' : ''}` }) : null,
        epss ? el('span', { class: 'badge epss', text: `EPSS ${(epssScore * 100).toFixed(1)}% · p${(Number(epss.percentile) * 100).toFixed(0)}` }) : null,
        d.confidence ? el('span', { class: `badge confidence-${str(d.confidence)}`, text: str(d.confidence) }) : null)
        : null,
      d.remediation ? el('p', { class: 'remediation' }, el('strong', { text: 'Remediation: ' }), str(d.remediation)) : null,
      d.evidence ? el('p', { class: 'muted evidence', text: `Evidence: ${str(d.evidence)}` }) : null,
      refs.length ? el('ul', { class: 'refs' }, ...refs.slice(0, 10).map((r) => el('li', {}, link(str(r), str(r))))) : null);
  }

  notify(d) {
    const key = JSON.stringify([str(d.scan_id), str(d.task_id), str(d.target), str(d.signature_id ?? d.name)]);
    this.notified ??= new Set();
    if (this.notified.has(key)) return;
    this.notified.add(key);
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    // The notification body is plain text by definition.
    new Notification(`Critical: ${str(d.name ?? d.signature_id, 'threat')}`, {
      body: `${str(d.target, '')} ${str(d.remediation, '')}`.trim().slice(0, 200),
      tag: str(d.signature_id ?? d.name, 'vigil-critical'),
    });
  }
}
