// DOM helpers. Every string goes in through textContent or a DOM property, never as HTML:
// event text comes from agents and scripts and must never run in this page.

/** The element with `id`; throws if the page lacks it (a bug in the page, not in the data). */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing element #${id}`);
  return node;
}

/**
 * Creates an element. `props`: `class`, `text`, `title`, `href` (http/https only), `dataset`,
 * `attrs` (plain attributes), and any other DOM property (`type`, `value`, `hidden`...).
 * `children`: nodes or strings (strings become text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'href') {
      const safe = safeUrl(value);
      if (safe) node.href = safe;
    } else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'attrs') for (const [a, v] of Object.entries(value)) node.setAttribute(a, String(v));
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `url` when it is an absolute http(s) URL or a same-origin path, else null. */
export function safeUrl(url) {
  if (typeof url !== 'string' || url === '') return null;
  try {
    const parsed = new URL(url, location.origin);
    if (parsed.protocol === 'https:' || parsed.protocol === 'http:') return parsed.href;
  } catch {
    // not a URL
  }
  return null;
}

/** An external link that leaks no referrer and no opener; plain text when the URL is unsafe. */
export function link(url, text) {
  // Links to elsewhere must be absolute http(s): a relative string is data, not a place.
  const safe = /^https?:\/\//i.test(String(url)) ? safeUrl(url) : null;
  if (!safe) return el('span', { text });
  return el('a', { href: safe, text, target: '_blank', rel: 'noopener noreferrer' });
}

/** Sets a status line: `kind` is '', 'ok', 'error' or 'unavailable'. */
export function say(node, text, kind = '') {
  node.textContent = text;
  node.dataset.kind = kind;
}

export const SEVERITIES = ['info', 'success', 'warning', 'error', 'critical'];

/** A severity from untrusted data, or 'info' when it is not one of the five. */
export function severityOf(value) {
  return SEVERITIES.includes(value) ? value : 'info';
}

/** A string for display from any JSON value (objects become compact JSON). */
export function str(value, fallback = '') {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** HH:MM:SS of an RFC 3339 time, or the text as is. */
export function clock(time) {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? str(time) : date.toLocaleTimeString([], { hour12: false });
}
