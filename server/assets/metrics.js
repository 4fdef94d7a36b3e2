// The six metric cards (from /stats, the seed dashboard's shape) and an events-per-second
// sparkline over the last two minutes, counted from live events.

import { api, explain } from './api.js';
import { byId } from './dom.js';

const WINDOW_S = 120;

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

export class Metrics {
  constructor(notice) {
    this.notice = notice;
    this.buckets = new Array(WINDOW_S).fill(0);
    this.bucketSecond = Math.floor(Date.now() / 1000);
    this.uptime = null;
    this.uptimeAt = 0;
    this.refreshTimer = null;
    this.ticker = null;
    this.pollTimer = null;
    this.generation = 0;
  }

  start() {
    this.refresh();
    this.tick();
    this.ticker = setInterval(() => this.tick(), 1000);
    this.pollTimer = setInterval(() => this.refresh(), 10000);
  }

  stop() {
    // Answers still in flight belong to the old session: drop them.
    this.generation = (this.generation ?? 0) + 1;
    this.refreshTimer = null;
    clearInterval(this.ticker);
    clearInterval(this.pollTimer);
    clearTimeout(this.refreshTimer);
  }

  /** A live event arrived: count it, and refresh the cards soon (at most about three times a second). */
  count(live) {
    if (live) {
      this.roll();
      this.buckets[this.buckets.length - 1] += 1;
    }
    if (!this.refreshTimer) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = null;
        this.refresh();
      }, 300);
    }
  }

  roll() {
    const now = Math.floor(Date.now() / 1000);
    const shift = Math.min(now - this.bucketSecond, WINDOW_S);
    for (let i = 0; i < shift; i += 1) {
      this.buckets.shift();
      this.buckets.push(0);
    }
    this.bucketSecond = now;
  }

  tick() {
    this.roll();
    this.drawSparkline();
    if (this.uptime !== null) {
      byId('m-uptime').textContent = duration(this.uptime + (Date.now() - this.uptimeAt) / 1000);
    }
  }

  drawSparkline() {
    const max = Math.max(1, ...this.buckets);
    const points = this.buckets.map((n, i) => {
      const x = (i / (WINDOW_S - 1)) * 120;
      const y = 29 - (n / max) * 28;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    byId('sparkline').querySelector('polyline').setAttribute('points', points.join(' '));
    const last = this.buckets.slice(-10).reduce((a, b) => a + b, 0) / 10;
    byId('m-rate').textContent = `· ${last.toFixed(1)}/s (10 s avg)`;
  }

  async refresh() {
    const generation = this.generation;
    let stats;
    try {
      stats = await api('GET', '/stats');
    } catch (err) {
      if (generation === this.generation) this.notice(explain(err, 'Metrics'));
      return;
    }
    if (generation !== this.generation) return;
    const m = stats?.metrics ?? {};
    const number = (v) => (typeof v === 'number' ? v.toLocaleString() : '–');
    byId('m-total-events').textContent = number(m.total_events);
    byId('m-agents-executed').textContent = number(m.total_agents_executed);
    byId('m-opportunities').textContent = number(m.total_opportunities_discovered);
    byId('m-quality').textContent = typeof m.avg_quality_score === 'number' && m.avg_quality_score > 0
      ? `${m.avg_quality_score.toFixed(1)}%` : '–';
    byId('m-active-agents').textContent = number(stats?.active_agents);
    if (typeof stats?.system_uptime_seconds === 'number') {
      this.uptime = stats.system_uptime_seconds;
      this.uptimeAt = Date.now();
      byId('m-uptime').textContent = duration(this.uptime);
    }
  }
}
