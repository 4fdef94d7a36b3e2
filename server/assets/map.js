// The map (Leaflet, always from this server: the copy embedded in the binary or a `--leaflet-dir`),
// the locate form, and the street-level panel. Without Leaflet the panel says why and the forms
// still work.

import { api, explain } from './api.js';
import { byId, el, link, say, safeUrl, str } from './dom.js';

const LOAD_TIMEOUT_MS = 8000;

function load(tag, attrs) {
  return new Promise((resolve, reject) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (v) node.setAttribute(k, v);
    const timer = setTimeout(() => reject(new Error('timed out')), LOAD_TIMEOUT_MS);
    node.addEventListener('load', () => { clearTimeout(timer); resolve(); });
    node.addEventListener('error', () => { clearTimeout(timer); reject(new Error('could not be loaded')); });
    document.head.append(node);
  });
}

function parseWifi(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const [mac, signal] = line.split(/[\s,;]+/);
    const ap = { macAddress: mac };
    if (signal !== undefined) ap.signalStrength = Number(signal);
    return ap;
  });
}

function parseCells(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const [radio, mcc, mnc, lac, cid, signal] = line.split(/[\s,;]+/);
    const cell = {
      radioType: radio, mobileCountryCode: Number(mcc), mobileNetworkCode: Number(mnc),
      locationAreaCode: Number(lac), cellId: Number(cid),
    };
    if (signal !== undefined) cell.signalStrength = Number(signal);
    return cell;
  });
}

export class MapPanel {
  constructor() {
    this.message = byId('map-message');
    this.container = byId('map');
    this.street = byId('street');
    this.map = null;
    this.position = null;
    // Positions resolved by the server (`location_resolved`), newest last, drawn when the map runs.
    this.resolved = [];
    this.resolvedLayer = null;
    this.config = null;
    byId('locate-form').addEventListener('submit', (e) => { e.preventDefault(); this.locate(); });
    byId('street-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const lat = Number(byId('street-lat').value);
      const lng = Number(byId('street-lng').value);
      if (!Number.isFinite(lat) || !Number.isFinite(lng) || Math.abs(lat) > 90 || Math.abs(lng) > 180) {
        this.street.replaceChildren(el('p', { class: 'message', text: 'Latitude is −90…90 and longitude −180…180.', dataset: { kind: 'error' } }));
        return;
      }
      this.streetLevel(lat, lng);
    });
  }

  async start() {
    // Signing in again (another token, the same page) keeps the map that already runs.
    if (this.map) return;
    try {
      this.config = await api('GET', '/api/dashboard/config');
    } catch (err) {
      say(this.message, explain(err, 'The map'), 'unavailable');
      return;
    }
    const leaflet = this.config?.leaflet;
    if (!leaflet) {
      say(this.message, 'The map is turned off on this server (no Leaflet configured). Locating and street-level views still work.', 'unavailable');
      return;
    }
    say(this.message, 'Loading the map…');
    try {
      if (!window.L) {
        await load('link', { rel: 'stylesheet', href: leaflet.css });
        await load('script', { src: leaflet.js });
      }
    } catch (err) {
      say(this.message, `The map library (Leaflet) ${err.message} from this server, so the map is off. Locating and street-level views still work.`, 'unavailable');
      return;
    }
    // A second start() may have raced this one while Leaflet loaded.
    if (this.map) return;
    if (!window.L) {
      say(this.message, 'The map library loaded but did not start, so the map is off.', 'unavailable');
      return;
    }
    this.container.hidden = false;
    const L = window.L;
    this.map = L.map(this.container, { worldCopyJump: true }).setView([20, 0], 2);
    const tiles = L.tileLayer(this.config.tile_url, { maxZoom: 19, attribution: '' });
    // Attribution as text: Leaflet would insert it as HTML.
    tiles.addTo(this.map);
    this.drawResolved();
    this.map.attributionControl.setPrefix(false);
    this.map.attributionControl.getContainer().textContent = str(this.config.tile_attribution);
    let tileErrors = 0;
    tiles.on('tileerror', () => {
      tileErrors += 1;
      if (tileErrors === 1) say(this.message, `Map tiles cannot be loaded from ${new URL(this.config.tile_url.replaceAll(/[{}]/g, ''), location.href).host}; markers still work. Click the map for street level.`, 'unavailable');
    });
    tiles.on('tileload', () => { if (tileErrors === 0) say(this.message, 'Click the map for the street-level view.'); });
    say(this.message, 'Click the map for the street-level view.');
    this.map.on('click', (e) => this.streetLevel(e.latlng.lat, e.latlng.lng));
  }

  /** Draws each `location_resolved` event as a circle of its accuracy (the last 50 are kept). */
  onEvent(event) {
    if (event?.kind !== 'location_resolved') return;
    const lat = Number(event.data?.latitude);
    const lng = Number(event.data?.longitude);
    const accuracy = Number(event.data?.accuracy_m);
    if (!Number.isFinite(lat) || !Number.isFinite(lng) || Math.abs(lat) > 90 || Math.abs(lng) > 180) return;
    this.resolved.push({ lat, lng, accuracy: Number.isFinite(accuracy) ? accuracy : 0, event });
    if (this.resolved.length > 50) this.resolved.shift();
    this.drawResolved();
  }

  drawResolved() {
    if (!this.map) return;
    const L = window.L;
    this.resolvedLayer?.remove();
    this.resolvedLayer = L.layerGroup(this.resolved.map(({ lat, lng, accuracy, event }) => {
      // A DOM node, never an HTML string: the label carries text from the server.
      const label = el('span', { text: `${str(event.data?.source ?? 'located')} ± ${Math.round(accuracy)} m · ${str(event.time ?? '')}` });
      return L.circle([lat, lng], { radius: accuracy, color: '#3ddc97', weight: 1 }).bindTooltip(label);
    })).addTo(this.map);
  }

  async locate() {
    const out = byId('locate-result');
    let body;
    const raw = byId('locate-raw').value.trim();
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch (err) {
        say(out, `The pasted request is not JSON: ${err.message}`, 'error');
        return;
      }
    } else {
      body = { considerIp: false };
      const wifi = parseWifi(byId('locate-wifi').value);
      const cells = parseCells(byId('locate-cells').value);
      if (wifi.length) body.wifiAccessPoints = wifi;
      if (cells.length) body.cellTowers = cells;
      if (!wifi.length && !cells.length) {
        say(out, 'Give WiFi access points, cells, or a pasted request.', 'error');
        return;
      }
    }
    say(out, 'Locating…');
    try {
      const answer = await api('POST', '/v1/geolocate', body);
      const lat = Number(answer?.location?.lat);
      const lng = Number(answer?.location?.lng);
      const accuracy = Number(answer?.accuracy);
      if (!Number.isFinite(lat) || !Number.isFinite(lng)) throw new Error('the answer has no position');
      say(out, `Position ${lat.toFixed(6)}, ${lng.toFixed(6)} ± ${Math.round(accuracy)} m${answer.fallback ? ` (fallback: ${str(answer.fallback)})` : ''}.`, 'ok');
      byId('street-lat').value = lat.toFixed(6);
      byId('street-lng').value = lng.toFixed(6);
      if (this.map) {
        const L = window.L;
        this.position?.remove();
        this.position = L.layerGroup([
          L.circle([lat, lng], { radius: Number.isFinite(accuracy) ? accuracy : 0, color: '#4ea1ff' }),
          L.circleMarker([lat, lng], { radius: 5, color: '#4ea1ff', fillOpacity: 1 }),
        ]).addTo(this.map);
        this.map.fitBounds(L.latLng(lat, lng).toBounds(Math.max(2 * accuracy, 200)));
      }
    } catch (err) {
      say(out, explain(err, 'Locating'), err.unavailable ? 'unavailable' : 'error');
    }
  }

  async streetLevel(lat, lng) {
    const where = `lat=${lat.toFixed(6)}&lng=${lng.toFixed(6)}`;
    const status = el('p', { class: 'message', text: `Street level at ${lat.toFixed(5)}, ${lng.toFixed(5)}…` });
    const links = el('div', { class: 'street-links' });
    const notes = el('div', { class: 'street-notes' });
    const images = el('div', { class: 'street-images' });
    this.street.replaceChildren(el('h3', { text: `Street level · ${lat.toFixed(5)}, ${lng.toFixed(5)}` }), status, links, notes, images);
    const [view, nearby] = await Promise.allSettled([
      api('GET', `/api/streetview?${where}&heading=0&pitch=0&fov=90`),
      api('GET', `/api/imagery?${where}&radius=200&provider=all&limit=8`),
    ]);
    status.remove();
    if (view.status === 'fulfilled') {
      const v = view.value ?? {};
      links.append(el('p', {}, link(str(v.maps_url), 'Open in Google Street View')));
      if (safeUrl(v.static_url)) {
        links.append(el('img', { class: 'static-preview', src: safeUrl(v.static_url), alt: 'Street View preview', loading: 'lazy' }));
      }
      const embed = safeUrl(v.embed_url) ?? this.embedUrl(lat, lng);
      if (embed) {
        links.append(el('iframe', {
          class: 'panorama', src: embed, title: 'Interactive Street View panorama', loading: 'lazy',
          referrerPolicy: 'strict-origin', attrs: { allowfullscreen: '' },
        }));
      } else {
        links.append(el('p', { class: 'muted', text: 'No interactive panorama: the server has no Maps Embed browser key configured.' }));
      }
    } else {
      links.append(el('p', { class: 'message', text: explain(view.reason, 'Street View'), dataset: { kind: view.reason.unavailable ? 'unavailable' : 'error' } }));
    }
    if (nearby.status === 'fulfilled') {
      const list = Array.isArray(nearby.value?.images) ? nearby.value.images : [];
      for (const e of Array.isArray(nearby.value?.errors) ? nearby.value.errors : []) {
        notes.append(el('p', { class: 'message', dataset: { kind: 'error' }, text: `${str(e.provider)}: ${str(e.message)}` }));
      }
      if (!list.length) notes.append(el('p', { class: 'muted', text: 'No Mapillary or Panoramax image within 200 m.' }));
      for (const img of list) {
        const thumb = safeUrl(img.thumb_url);
        images.append(el('figure', { class: 'nearby' },
          thumb ? el('img', { src: thumb, alt: `${str(img.provider)} image ${str(img.id)}`, loading: 'lazy' }) : null,
          el('figcaption', {},
            link(str(img.viewer_url), `${str(img.provider)} · ${Math.round(Number(img.distance_m) || 0)} m`),
            el('br'), `${str(img.captured_at, 'date unknown')} · ${str(img.licence, 'licence unknown')}`)));
      }
    } else {
      notes.append(el('p', { class: 'message', text: explain(nearby.reason, 'Nearby imagery'), dataset: { kind: nearby.reason.unavailable ? 'unavailable' : 'error' } }));
    }
  }

  /** The Maps Embed API URL, when the server gave the page a browser key. */
  embedUrl(lat, lng) {
    const key = this.config?.embed_key;
    if (!key) return null;
    const q = new URLSearchParams({ key, location: `${lat},${lng}`, heading: '0', pitch: '0', fov: '90' });
    return `https://www.google.com/maps/embed/v1/streetview?${q}`;
  }
}
