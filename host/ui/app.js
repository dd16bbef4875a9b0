// mtp serve's page: plain JavaScript, no build step, no external requests. Text from the server is
// always set as text (never as HTML): paths, names and messages come from files and services.
'use strict';

// ---- helpers ---------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch('/api' + path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || ('HTTP ' + response.status));
    error.details = data;
    throw error;
  }
  return data;
}

// The banner: a message in plain words, the next step as buttons, and a close button. `actions` are
// [label, handler] pairs.
function flash(message, actions) {
  const box = document.getElementById('flash');
  if (!message) { box.hidden = true; box.replaceChildren(); return; }
  const close = el('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss this message',
    onclick: () => flash('') }, '×');
  box.replaceChildren(el('span', { class: 'flash-text' }, message),
    ...(actions || []).map(([label, handler]) => el('button', { type: 'button', class: 'secondary',
      onclick: () => { flash(''); handler(); } }, label)),
    close);
  box.hidden = false;
}

// What an error of `kind` means for the user, and what to do next.
function plainError(kind, message) {
  switch (kind) {
    case 'transient': return 'Could not reach the service (the network or the service is down). Nothing sent is lost: retry when the connection is back.';
    case 'auth': return 'The service did not accept the login (expired or withdrawn). Log in again, then retry.';
    case 'cancelled': return 'Cancelled. What was sent is kept: resume whenever you like.';
    case 'rejected': return 'The service refused this sequence: ' + message;
    case 'invalid_input': return 'Something in the sequence needs fixing: ' + message;
    default: return message;
  }
}

function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return (h ? h + ' h ' : '') + (h || m ? m + ' min ' : '') + s + ' s';
}

function badge(state) {
  return el('span', { class: 'badge state-' + String(state).replace(/[^a-z_]/g, '') }, String(state).replace('_', ' '));
}

// The provider's pages for what it made, as its outcome names them (`links`: the page builds no
// provider's address), then the keys that have no page, as text.
function keyLinks(keys, links) {
  const out = [];
  for (const link of links || []) {
    out.push(el('a', { class: 'key', href: link.url, target: '_blank', rel: 'noopener noreferrer' }, link.label));
  }
  if (out.length) return out;
  for (const [name, value] of Object.entries(keys || {})) {
    out.push(el('div', { class: 'key' }, el('span', { class: 'muted' }, name + ': '), String(value)));
  }
  return out;
}

const NETWORK_ERROR = /os error|tcp connect|connection (refused|reset)|timed out|error sending request|dns error/i;

// A network error while the plugin retries by itself, in plain words (the raw text helps nobody here).
function plainStep(text) {
  if (NETWORK_ERROR.test(text || '')) return 'the service cannot be reached; retrying by itself (nothing sent is lost)';
  return text;
}

// A stored record's last error: the retries are over, so the next step is the user's.
function plainLastError(text) {
  if (NETWORK_ERROR.test(text || '')) return 'the service could not be reached (nothing sent is lost): resume when the connection is back';
  return text;
}

// ---- pages -----------------------------------------------------------------------------------------

const pages = ['integrations', 'sequences', 'upload'];

function showPage() {
  const wanted = location.hash.replace('#', '');
  const page = pages.includes(wanted) ? wanted : 'upload';
  for (const section of document.querySelectorAll('main > section')) {
    section.hidden = section.dataset.page !== page;
  }
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (page === 'integrations') loadIntegrations();
  if (page === 'sequences') loadSequences();
}

// ---- integrations ----------------------------------------------------------------------------------

let pasting = null;

async function loadIntegrations() {
  const box = document.getElementById('integrations');
  try {
    const [integrations, auth] = await Promise.all([api('GET', '/integrations'), api('GET', '/auth')]);
    const authById = Object.fromEntries(auth.map((a) => [a.integration, a]));
    box.replaceChildren(...integrations.map((i) => integrationCard(i, authById[i.id])));
    if (!integrations.length) box.append(el('p', {}, 'No integration plugins were found.'));
  } catch (error) {
    flash('Cannot load the integrations: ' + error.message);
  }
}

function integrationCard(info, auth) {
  const state = info.enabled ? 'enabled' : (info.loaded ? 'disabled' : 'not_loaded');
  let who = null;
  let button = null;
  let logoutButton = null;
  if (info.enabled && auth) {
    if (auth.error) who = el('p', { class: 'muted' }, 'Login state unknown: ' + auth.error.message);
    else if (!auth.needs_auth) who = el('p', { class: 'muted' }, 'No login needed.');
    else if (auth.authorised && auth.account) who = el('p', { class: 'who' }, 'Logged in as ', el('strong', {}, auth.account));
    else if (auth.authorised) who = el('p', { class: 'who' }, el('strong', {}, 'Logged in'), ' (the service does not say as whom)');
    else who = el('p', { class: 'who' }, 'Not logged in.');
    if (auth.needs_auth) {
      button = el('button', { type: 'button', class: auth.authorised ? 'secondary' : '', dataset: { login: info.id },
        onclick: () => login(info.id) }, auth.authorised ? 'Log in again' : 'Log in');
    }
    if (auth.needs_auth && auth.authorised) {
      logoutButton = el('button', { type: 'button', class: 'secondary', dataset: { logout: info.id },
        'aria-label': 'Log out of ' + (info.name || info.id), onclick: () => logout(info.id) }, 'Log out');
    }
  }
  const after = info.after && info.after.length ? el('p', { class: 'muted' }, 'Runs after ' + info.after.join(', ')) : null;
  return el('article', { class: 'card integration', dataset: { integration: info.id, state } },
    el('div', { class: 'card-head' },
      el('h2', {}, info.loaded ? info.name : info.id),
      badge(state)),
    el('p', { class: 'muted' }, [info.id, info.version].filter(Boolean).join(' · ')),
    info.description ? el('p', {}, info.description) : null,
    info.reason ? el('p', { class: 'reason' }, info.reason) : null,
    after,
    who,
    button ? el('div', { class: 'actions' }, button, logoutButton) : null);
}

// Forgets the integration's tokens (mtp auth logout); the card then offers Log in again.
async function logout(id) {
  flash('');
  try {
    await api('POST', '/auth/' + encodeURIComponent(id) + '/logout');
    loadIntegrations();
    if (inspected) recheckFields();
  } catch (error) {
    flash('Cannot log out of ' + id + ': ' + error.message);
  }
}

async function login(id) {
  flash('');
  try {
    const answer = await api('POST', '/auth/' + encodeURIComponent(id));
    if (answer.authorised) { loadIntegrations(); return; }
    if (answer.landing === 'paste' || answer.landing === 'claim') {
      // The consent page opens in a new tab: this one keeps the page (and its progress).
      window.open(answer.consent_url, '_blank', 'noopener');
      showLoginBox(answer.landing, id, answer);
      if (answer.landing === 'claim') waitForLogin(id);
    } else {
      // The browser comes back to this server (or our listener), which brings it back here.
      location.assign(answer.consent_url);
    }
  } catch (error) {
    flash('Cannot log in with ' + id + ': ' + error.message);
  }
}

function nameOf(id) {
  const card = document.querySelector('article[data-integration="' + id + '"] h2');
  return card ? card.textContent : id;
}

// The paste form (a redirect that cannot come back here) or the claim note (the plugin learns the
// outcome by itself), on the Integrations page.
function showLoginBox(landing, id, answer) {
  if (location.hash !== '#integrations') location.hash = '#integrations';
  const box = document.getElementById(landing === 'paste' ? 'paste' : 'claim');
  document.getElementById(landing + '-name').textContent = nameOf(id);
  document.getElementById(landing + '-open').href = answer.consent_url;
  if (landing === 'paste') {
    pasting = id;
    document.getElementById('paste-target').textContent = answer.redirect_uri;
    document.getElementById('paste-url').value = '';
  }
  box.hidden = false;
  box.scrollIntoView({ block: 'nearest' });
  if (landing === 'paste') document.getElementById('paste-url').focus();
}

function hideLoginBoxes() {
  document.getElementById('paste').hidden = true;
  document.getElementById('claim').hidden = true;
}

// Polls the login state until `id` is logged in (the claim was made in the other tab) or 5 minutes
// pass; the stream's auth event usually says so first.
async function waitForLogin(id) {
  const until = Date.now() + 5 * 60 * 1000;
  while (Date.now() < until && !document.getElementById('claim').hidden) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    try {
      const rows = await api('GET', '/auth');
      if (rows.some((r) => r.integration === id && r.authorised)) {
        hideLoginBoxes();
        loadIntegrations();
        return;
      }
    } catch (error) { /* the server is away: the stream says so */ }
  }
}

document.getElementById('paste').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = document.getElementById('paste-url').value.trim();
  // An address has a scheme (`app.mtp.desktop://...#access_token=...`); anything else is a token.
  const isAddress = /^[a-z][a-z0-9+.-]*:/i.test(text) || text.includes('#') || text.includes('?');
  try {
    if (isAddress) {
      await api('POST', '/auth/' + encodeURIComponent(pasting) + '/redirect', { url: text });
    } else {
      await api('POST', '/auth/' + encodeURIComponent(pasting), { token: text });
      loadIntegrations();
    }
    hideLoginBoxes();
  } catch (error) {
    flash((isAddress ? 'That address was not taken: ' : 'That token was not taken: ') + error.message);
  }
});
document.getElementById('paste-cancel').addEventListener('click', hideLoginBoxes);

// ---- the folder picker (folders under the home directory only; GET /api/folders) -----------------------

async function browse(path) {
  const box = document.getElementById('picker');
  const button = document.getElementById('browse');
  try {
    const listing = await api('GET', '/folders' + (path ? '?path=' + encodeURIComponent(path) : ''));
    const use = el('button', { type: 'button', id: 'picker-use', onclick: () => {
      document.getElementById('path').value = listing.path;
      closePicker();
      document.getElementById('inspect-form').requestSubmit();
    } }, 'Use this folder' + (listing.images ? ' (' + listing.images + ' photos)' : ''));
    const up = listing.parent ? el('button', { type: 'button', class: 'secondary', id: 'picker-up',
      onclick: () => browse(listing.parent) }, 'Up') : null;
    box.replaceChildren(
      el('div', { class: 'picker-head' }, el('span', { class: 'path', id: 'picker-path' }, listing.path), up, use),
      listing.folders.length
        ? el('ul', { class: 'picker-list', 'aria-label': 'Folders in ' + listing.path },
          listing.folders.map((f) => el('li', {}, el('button', { type: 'button', class: 'link', dataset: { folder: f.name },
            onclick: () => browse(f.path) }, f.name))))
        : el('p', { class: 'muted small' }, 'No folders here.'));
    box.hidden = false;
    button.setAttribute('aria-expanded', 'true');
  } catch (error) {
    flash('Cannot open that folder: ' + error.message);
  }
}

function closePicker() {
  document.getElementById('picker').hidden = true;
  document.getElementById('browse').setAttribute('aria-expanded', 'false');
}

document.getElementById('browse').addEventListener('click', () => {
  if (!document.getElementById('picker').hidden) { closePicker(); return; }
  browse(document.getElementById('path').value.trim());
});

// ---- sequences -------------------------------------------------------------------------------------

async function loadSequences() {
  const box = document.getElementById('sequences');
  try {
    const rows = await api('GET', '/sequences');
    const bySequence = new Map();
    for (const row of rows) {
      if (!bySequence.has(row.sequence_id)) bySequence.set(row.sequence_id, []);
      bySequence.get(row.sequence_id).push(row);
    }
    if (!rows.length) {
      box.replaceChildren(el('p', { class: 'muted' }, 'Nothing uploaded yet: start with the Upload page.'));
      return;
    }
    box.replaceChildren(...[...bySequence.values()].map(sequenceCard));
  } catch (error) {
    flash('Cannot load the sequences: ' + error.message);
  }
}

function sequenceCard(rows) {
  const first = rows[0];
  const id = first.sequence_id;
  const recheck = el('button', { type: 'button', class: 'secondary', onclick: async (event) => {
    event.target.disabled = true;
    try { await api('POST', '/recheck', { sequence: id }); } catch (error) { flash('Re-check failed: ' + error.message); }
    event.target.disabled = false;
    loadSequences();
  } }, 'Re-check');
  return el('article', { class: 'card sequence', dataset: { sequence: id } },
    el('div', { class: 'card-head' },
      el('div', {}, el('h2', {}, first.name), el('p', { class: 'muted path' }, first.root + ' · ' + id.slice(0, 8))),
      recheck),
    el('table', {},
      el('thead', {}, el('tr', {}, ['Integration', 'State', 'Progress', 'Keys', 'Details'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows.map((row) => el('tr', { dataset: { integration: row.integration, state: shownState(row) } },
        el('th', { scope: 'row' }, row.integration),
        el('td', { 'data-label': 'State' }, badge(shownState(row)),
          shownState(row) === 'stopped' ? el('button', { type: 'button', class: 'secondary small-button',
            onclick: () => { location.hash = '#upload'; startUpload(first.root, {}); } }, 'Resume') : null),
        el('td', { 'data-label': 'Progress' }, row.progress
          ? (shownState(row) === 'stopped' ? 'stopped at ' : '') + row.progress.files_done + '/' + row.progress.files_total + ' files' : ''),
        el('td', { class: 'keys', 'data-label': 'Keys' }, keyLinks(row.keys, row.links)),
        el('td', { 'data-label': 'Details' },
          row.message ? el('div', {}, row.message) : null,
          row.last_error && /cancelled by the user/.test(row.last_error)
            ? el('div', { class: 'muted' }, 'Cancelled by you.')
            : row.last_error ? el('div', { class: 'error' }, 'Last error: ' + plainLastError(row.last_error)) : null,
          row.next_action ? el('div', { class: 'muted' }, 'Next: ' + row.next_action) : null))))));
}

// A record left "uploading" by a run that is no longer going (cancelled, interrupted) has stopped.
function shownState(row) {
  if (row.state !== 'uploading') return row.state;
  const running = [...uploads.values()].some((u) => (u.status === 'running' || u.status === 'queued')
    && [...u.lanes.values()].some((l) => l.sequence === row.sequence_id));
  return running ? 'uploading' : 'stopped';
}

document.getElementById('recheck-all').addEventListener('click', async (event) => {
  event.target.disabled = true;
  try { await api('POST', '/recheck'); } catch (error) { flash('Re-check failed: ' + error.message); }
  event.target.disabled = false;
  loadSequences();
});

// ---- upload ----------------------------------------------------------------------------------------

let inspected = null;

const TRANSPORTS = ['Earth/Walk', 'Earth/Bicycle', 'Earth/Car', 'Earth/Motorcycle', 'Earth/Scooter', 'Earth/Skateboard',
  'Earth/Ski', 'Earth/Horse', 'Water/Boat', 'Water/Kayak', 'Water/Swim', 'Air/Paraglide', 'Air/Plane', 'Air/Drone'];

document.getElementById('inspect-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  flash('');
  const path = document.getElementById('path').value.trim();
  const box = document.getElementById('inspection');
  box.replaceChildren(el('p', { class: 'muted' }, 'Reading ' + path + '…'));
  try {
    const [summary, integrations, auth] = await Promise.all([
      api('POST', '/inspect', { path }), api('GET', '/integrations'), api('GET', '/auth'), configReady]);
    inspected = { path, summary, integrations, auth };
    box.replaceChildren(inspectionCard(inspected));
    renderPlan();
  } catch (error) {
    inspected = null;
    box.replaceChildren(el('p', { class: 'error' }, error.message));
  }
});

// The metadata fields as the API takes them (empty ones left out: the sequence's own values stand).
function metadata() {
  const value = (id) => document.getElementById(id).value.trim();
  const out = {};
  for (const [key, id] of [['name', 'meta-name'], ['description', 'meta-description'], ['transport', 'meta-transport'],
    ['time_offset', 'meta-offset']]) {
    if (value(id)) out[key] = value(id);
  }
  const tags = value('meta-tags').split(',').map((t) => t.trim()).filter(Boolean);
  if (tags.length) out.tags = tags;
  return out;
}

// Checks the fields as the CLI does (the server reads the sequence again with them) and redraws the plan.
async function recheckFields() {
  if (!inspected) return;
  const status = document.getElementById('meta-status');
  status.textContent = 'Checking…';
  status.className = 'muted small';
  try {
    inspected.summary = await api('POST', '/inspect', Object.assign({ path: inspected.path }, metadata()));
    status.textContent = '';
    inspected.fieldError = '';
  } catch (error) {
    status.textContent = error.message;
    status.className = 'error small';
    inspected.fieldError = error.message;
  }
  renderPlan();
}

// Where one integration stands for this sequence: ready, needs login, needs metadata, disabled, not eligible.
function readiness(entry, info) {
  if (entry.enabled === false) {
    return { state: 'disabled', text: (info && info.reason) || entry.reason || 'not enabled' };
  }
  if (!entry.eligible) return { state: 'not_eligible', text: entry.reason || 'does not take this sequence' };
  // The CLI's fixes, said for the page (its buttons and fields do what the commands do).
  const needs = (entry.needs || []).map((n) => n
    .replace(/: run `mtp auth [\w-]+`/, '')
    .replace(/: pass --transport.*$/, ': fill in Transport above')
    .replace(/pass --time-offset.*$/, 'fill in Camera clock offset above'));
  const login = needs.find((n) => /not logged in/.test(n));
  if (login) return { state: 'needs_login', text: needs.join('; ') };
  if (needs.length) return { state: 'needs_metadata', text: needs.join('; ') };
  return { state: 'ready', text: '' };
}

const READINESS_LABEL = { ready: 'Ready', needs_login: 'Needs login', needs_metadata: 'Needs metadata',
  disabled: 'Disabled', not_eligible: 'Not eligible' };

function renderPlan() {
  if (!inspected) return;
  const { summary, integrations } = inspected;
  const infoById = Object.fromEntries(integrations.map((i) => [i.id, i]));
  const box = document.getElementById('plan');
  const previous = new Map([...box.querySelectorAll('input[data-destination]')].map((c) => [c.dataset.destination, c]));
  const rows = summary.integrations.map((entry) => {
    const info = infoById[entry.id];
    const name = (info && info.name) || entry.id;
    const r = readiness(entry, info);
    const sendable = r.state !== 'disabled' && r.state !== 'not_eligible';
    const before = previous.get(entry.id);
    const box = sendable ? el('input', { type: 'checkbox', id: 'dest-' + entry.id, dataset: { destination: entry.id },
      checked: before && before.dataset.state === r.state ? before.checked : r.state === 'ready', onchange: startLabel }) : null;
    if (box) box.dataset.state = r.state;
    let next = null;
    if (r.state === 'needs_login') {
      next = el('button', { type: 'button', class: 'secondary small-button', onclick: () => login(entry.id) }, 'Log in to ' + name);
    } else if (r.state === 'needs_metadata') {
      const field = /transport/i.test(r.text) ? 'meta-transport' : (/offset|time zone/i.test(r.text) ? 'meta-offset' : 'meta-name');
      next = el('button', { type: 'button', class: 'secondary small-button',
        onclick: () => document.getElementById(field).focus() }, 'Fill in ' + document.querySelector('label[for="' + field + '"]').textContent.toLowerCase());
    }
    return el('li', { dataset: { integration: entry.id, readiness: r.state } },
      el('div', { class: 'plan-head' },
        box ? el('label', { class: 'dest', for: 'dest-' + entry.id }, box, ' ', el('strong', {}, name))
          : el('strong', { class: 'dest' }, name),
        el('span', { class: 'badge state-' + r.state }, READINESS_LABEL[r.state])),
      r.text ? el('p', { class: 'muted small' }, r.text) : null,
      next);
  });
  box.replaceChildren(...rows);
  const problems = summary.problems || [];
  document.getElementById('problems').replaceChildren(problems.length
    ? el('ul', { class: 'problems' }, problems.slice(0, 50).map((p) =>
      el('li', {}, (p.file ? p.file.split('/').pop() + ': ' : '') + p.field + ': ' + p.message)))
    : el('p', { class: 'ok' }, 'None.'),
  ...(problems.length > 50 ? [el('p', { class: 'muted' }, (problems.length - 50) + ' more…')] : []));
  startLabel();
}

// Start says what will run.
function startLabel() {
  const start = document.getElementById('start');
  if (!start || !inspected) return;
  const names = Object.fromEntries(inspected.integrations.map((i) => [i.id, i.name]));
  const chosen = [...document.querySelectorAll('input[data-destination]:checked')].map((c) => names[c.dataset.destination] || c.dataset.destination);
  start.disabled = !chosen.length || Boolean(inspected.fieldError);
  start.textContent = chosen.length ? 'Upload to ' + chosen.join(', ') : 'Choose where to upload';
}

// The sequence's track, drawn from the images' positions (a small view of our own: no tiles, nothing
// fetched), images with problems marked.
// The server's settings the page needs (the map tiles), asked once.
let pageConfig = { tiles: null };
const configReady = api('GET', '/config').then((c) => { pageConfig = c; }).catch(() => {});

// Web Mercator at zoom 0 (the world is 256 px wide), as slippy map tiles use it.
function mercator(lat, lon) {
  const s = Math.sin(Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI / 180);
  return [(lon + 180) / 360 * 256, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * 256];
}

// The track on a small map of our own: OpenStreetMap tiles (or the server's --tiles) under it when they
// load, with their attribution; the track alone when they do not (offline) or the server has none.
function trackView(track) {
  if (!track || !track.length) return el('p', { class: 'muted' }, 'No image has a position to show.');
  const NS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };
  const W = 600, H = 220, pad = 14, TILE = 256;
  const tiles = pageConfig.tiles;
  const world = track.map((p) => mercator(p.lat, p.lon));
  const xs = world.map((p) => p[0]), ys = world.map((p) => p[1]);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  let scale = Math.min((W - 2 * pad) / Math.max(maxX - minX, 1e-12), (H - 2 * pad) / Math.max(maxY - minY, 1e-12));
  // Tiles come in whole zoom levels (OpenStreetMap's go to 19).
  const zoom = Math.max(0, Math.min(19, Math.floor(Math.log2(scale))));
  scale = tiles ? 2 ** zoom : Math.min(scale, 2 ** 19);
  const ox = ((minX + maxX) / 2) * scale - W / 2, oy = ((minY + maxY) / 2) * scale - H / 2;
  const xy = (p) => [p[0] * scale - ox, p[1] * scale - oy];
  const bad = track.filter((p) => p.problem).length;
  const view = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'track', role: 'img',
    'aria-label': 'Track of ' + track.length + ' images' + (bad ? ', ' + bad + ' with problems (red)' : '') });
  const caption = el('figcaption', { class: 'muted small' }, 'Track (○ start' + (bad ? ', ● image with a problem' : '') + ')');
  const figure = el('figure', { class: 'track-box', dataset: { tiles: tiles ? 'loading' : 'none' } }, view, caption);
  if (tiles) {
    const n = 2 ** zoom;
    const layer = svg('g', { class: 'tiles' });
    const offline = () => {
      if (figure.dataset.tiles === 'offline') return;
      figure.dataset.tiles = 'offline';
      layer.remove();
      caption.replaceChildren('Track (○ start' + (bad ? ', ● image with a problem' : '') +
        '). The map could not be loaded (offline?): the track alone.');
    };
    for (let tx = Math.floor(ox / TILE); tx <= Math.floor((ox + W) / TILE); tx++) {
      for (let ty = Math.max(0, Math.floor(oy / TILE)); ty <= Math.min(n - 1, Math.floor((oy + H) / TILE)); ty++) {
        const url = tiles.url.replace('{z}', zoom).replace('{x}', ((tx % n) + n) % n).replace('{y}', ty);
        const image = svg('image', { href: url, x: tx * TILE - ox, y: ty * TILE - oy, width: TILE, height: TILE });
        image.addEventListener('load', () => { if (figure.dataset.tiles === 'loading') figure.dataset.tiles = 'online'; });
        image.addEventListener('error', offline);
        layer.append(image);
      }
    }
    view.append(layer);
    const credit = tiles.attribution_url
      ? el('a', { href: tiles.attribution_url, target: '_blank', rel: 'noopener noreferrer' }, tiles.attribution)
      : tiles.attribution;
    caption.append(' Map: ', el('span', { class: 'attribution' }, credit));
  }
  view.append(svg('polyline', { points: track.map((p, i) => xy(world[i]).map((v) => v.toFixed(1)).join(',')).join(' '),
    fill: 'none', stroke: '#1f6f5c', 'stroke-width': 3, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));
  const [sx, sy] = xy(world[0]);
  view.append(svg('circle', { cx: sx, cy: sy, r: 6, fill: '#fff', stroke: '#1f6f5c', 'stroke-width': 3 }));
  track.forEach((p, i) => {
    if (!p.problem) return;
    const [x, y] = xy(world[i]);
    const mark = svg('circle', { cx: x, cy: y, r: 5, fill: '#b3261e', stroke: '#fff', 'stroke-width': 1.5 });
    const title = svg('title', {});
    title.textContent = p.file + ' has a problem';
    mark.append(title);
    view.append(mark);
  });
  return figure;
}

// A few of the sequence's photos, by their embedded EXIF thumbnails (GET /api/thumbnail); a photo
// without one shows its name only.
function thumbnailStrip(path, track) {
  const images = track || [];
  if (!images.length) return null;
  const count = Math.min(8, images.length);
  const picked = [...new Set(Array.from({ length: count }, (_, i) =>
    Math.round((i * (images.length - 1)) / Math.max(1, count - 1))))].map((i) => images[i]);
  return el('ul', { class: 'thumbs', 'aria-label': 'Some of the photos' }, picked.map((p) => {
    const caption = el('span', { class: 'small' }, p.file);
    const img = el('img', { src: '/api/thumbnail?path=' + encodeURIComponent(path) + '&file=' + encodeURIComponent(p.file),
      alt: p.file, loading: 'lazy', width: 120, height: 90 });
    img.addEventListener('error', () => { img.replaceWith(el('span', { class: 'no-thumb small' }, 'no thumbnail')); });
    return el('li', { class: p.problem ? 'problem' : '', dataset: { file: p.file } }, img, caption);
  }));
}

function inspectionCard({ path, summary }) {
  const stats = [
    ['Images', summary.valid_image_count + ' valid of ' + summary.image_count],
    ['Size', bytes(summary.total_bytes)],
    ['Time span', summary.first_capture ? summary.first_capture + ' → ' + summary.last_capture + ' (' + duration(summary.duration_s) + ')' : '–'],
    ['Length', summary.length_km.toFixed(2) + ' km'],
    ['Source', summary.source],
  ];
  const field = (id, label, attrs) => el('div', { class: 'field' }, el('label', { for: id }, label),
    el('input', Object.assign({ id, type: 'text', autocomplete: 'off', onchange: recheckFields }, attrs)));
  const jobs = el('input', { id: 'opt-jobs', type: 'number', min: 1, max: 32, value: 4 });
  const skip = el('input', { id: 'opt-skip', type: 'checkbox' });
  const dry = el('input', { id: 'opt-dry', type: 'checkbox' });
  const noPublish = el('input', { id: 'opt-nopublish', type: 'checkbox' });
  const start = el('button', { id: 'start', type: 'submit' }, 'Start upload');
  return el('form', { class: 'card inspection', dataset: { sequence: summary.id }, onsubmit: (event) => {
    event.preventDefault();
    const destinations = [...document.querySelectorAll('input[data-destination]:checked')].map((c) => c.dataset.destination);
    startUpload(path, Object.assign({ jobs: Number(jobs.value) || 4, skip_invalid: skip.checked, dry_run: dry.checked,
      no_publish: noPublish.checked, destinations }, metadata()));
  } },
  el('div', { class: 'card-head' }, el('h2', {}, summary.name), el('span', { class: 'muted' }, summary.id.slice(0, 8))),
  el('div', { class: 'overview' },
    el('dl', { class: 'stats' }, stats.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    trackView(summary.track)),
  thumbnailStrip(path, summary.track),
  el('h3', {}, 'Problems'),
  el('div', { id: 'problems' }),
  el('fieldset', { class: 'metadata' }, el('legend', {}, 'Sequence details'),
    field('meta-name', 'Name', { value: summary.name || '' }),
    field('meta-transport', 'Transport', { value: summary.transport || '', list: 'transports', placeholder: 'Earth/Walk' }),
    el('datalist', { id: 'transports' }, TRANSPORTS.map((t) => el('option', { value: t }))),
    field('meta-description', 'Description', { value: summary.description || '' }),
    field('meta-tags', 'Tags (comma-separated)', { value: (summary.tags || []).join(', ') }),
    field('meta-offset', 'Camera clock offset', { placeholder: '+02:00 (only for times without one)' }),
    el('p', { id: 'meta-status', class: 'muted small', role: 'status' })),
  el('h3', {}, 'Send to'),
  el('ul', { id: 'plan', class: 'eligibility' }),
  el('fieldset', { class: 'options' }, el('legend', {}, 'Options'),
    el('label', {}, 'Parallel files ', jobs),
    el('label', {}, skip, ' Leave out images with problems'),
    el('label', {}, dry, ' Dry run (send nothing)'),
    el('label', {}, noPublish, ' Upload but do not publish')),
  el('div', { class: 'actions' }, start));
}

// Live progress, per upload → sequence → integration.
const uploads = new Map();

async function startUpload(path, options) {
  flash('');
  try {
    const { id } = await api('POST', '/uploads', { paths: [path], options });
    const upload = ensureUpload(id);
    upload.request = { paths: [path], options };
    if (inspected) upload.sequences = [{ id: inspected.summary.id, name: inspected.summary.name }];
    renderUpload(id);
  } catch (error) {
    const problems = (error.details && error.details.problems) || [];
    flash(error.message + problems.map((p) => '\n' + p.path + ': ' + p.error).join(''));
  }
}

function ensureUpload(id) {
  if (!uploads.has(id)) uploads.set(id, { id, status: 'queued', sequences: [], lanes: new Map() });
  return uploads.get(id);
}

function lane(upload, sequence, integration) {
  const key = sequence + '|' + integration;
  if (!upload.lanes.has(key)) {
    upload.lanes.set(key, { sequence, integration, step: '', state: '', bytesTotal: 0, bytesDone: 0,
      filesTotal: 0, filesDone: 0, samples: [], keys: {}, links: [], message: '', error: '' });
  }
  return upload.lanes.get(key);
}

function rate(l) {
  const s = l.samples;
  if (s.length < 2) return NaN;
  const [t0, b0] = s[0], [t1, b1] = s[s.length - 1];
  return t1 > t0 ? (b1 - b0) / ((t1 - t0) / 1000) : NaN;
}

function sample(l) {
  const now = Date.now();
  l.samples.push([now, l.bytesDone]);
  while (l.samples.length > 2 && now - l.samples[0][0] > 5000) l.samples.shift();
}

// Set through the CSSOM: the page's Content-Security-Policy allows no inline style attributes.
function barFill(pct) {
  const fill = el('span');
  fill.style.width = pct.toFixed(1) + '%';
  return fill;
}

function renderUpload(id) {
  const upload = uploads.get(id);
  let box = document.querySelector('[data-upload="' + id + '"]');
  if (!box) {
    box = el('article', { class: 'card upload', dataset: { upload: id } });
    document.getElementById('uploads').prepend(box);
    if (live) box.scrollIntoView({ block: 'start' });
  }
  const running = upload.status === 'queued' || upload.status === 'running';
  const cancel = running ? el('button', { type: 'button', class: 'danger', onclick: async () => {
    try { await api('POST', '/uploads/' + id + '/cancel'); } catch (error) { flash(error.message); }
  } }, 'Cancel') : null;
  const names = Object.fromEntries(upload.sequences.map((s) => [s.id, s.name]));
  const rows = [...upload.lanes.values()].map((l) => {
    const pct = l.bytesTotal ? Math.min(100, (100 * l.bytesDone) / l.bytesTotal) : (l.state === 'published' ? 100 : 0);
    const r = rate(l);
    const eta = r > 0 && l.bytesTotal > l.bytesDone ? (l.bytesTotal - l.bytesDone) / r : NaN;
    return el('tr', { dataset: { integration: l.integration, sequence: l.sequence, state: l.state || 'running' } },
      el('th', { scope: 'row' }, (names[l.sequence] || l.sequence.slice(0, 8)), el('div', { class: 'muted' }, l.integration)),
      el('td', { class: 'bar-cell' },
        el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(pct),
          'aria-label': l.integration + ' progress' }, barFill(pct)),
        el('div', { class: 'muted small' },
          (l.bytesTotal ? bytes(l.bytesDone) + ' of ' + bytes(l.bytesTotal) : 'nothing to send') +
          (l.filesTotal ? ' · ' + l.filesDone + '/' + l.filesTotal + ' files' : '') +
          (r > 0 ? ' · ' + bytes(r) + '/s · ETA ' + duration(eta) : '') + (l.step ? ' · ' + l.step : ''))),
      el('td', {}, l.state ? badge(l.state) : (running ? el('span', { class: 'muted' }, 'working…') : badge(upload.status === 'cancelled' ? 'cancelled' : 'stopped'))),
      el('td', { class: 'keys' }, keyLinks(l.keys, l.links),
        l.message ? el('div', { class: 'muted small' }, l.message) : null,
        l.error ? el('div', { class: 'error small' }, plainError(l.kind, l.error)) : null,
        l.error && plainError(l.kind, l.error) !== l.error
          ? el('details', { class: 'small' }, el('summary', {}, 'Details'), l.error) : null));
  });
  box.dataset.status = upload.status;
  // The next step, drawn from the results: resume a cancelled upload, retry after an outage, log in.
  const lanes = [...upload.lanes.values()];
  const next = [];
  if (!running && upload.request) {
    if (upload.status === 'cancelled') next.push(['Resume', () => startUpload(upload.request.paths[0], upload.request.options)]);
    else if (lanes.some((l) => l.kind === 'transient')) next.push(['Retry', () => startUpload(upload.request.paths[0], upload.request.options)]);
  }
  for (const l of lanes.filter((l) => l.kind === 'auth')) next.push(['Log in to ' + l.integration, () => login(l.integration)]);
  if (!running && lanes.some((l) => l.state === 'unpublished' || l.state === 'waiting')) {
    next.push(['Re-check', () => api('POST', '/recheck').catch((error) => flash(error.message))]);
  }
  box.replaceChildren(
    el('div', { class: 'card-head' }, el('h2', {}, 'Upload ' + id), badge(upload.status), cancel),
    rows.length ? el('table', {}, el('tbody', {}, rows)) : el('p', { class: 'muted' }, running ? 'Waiting to start…' : 'Nothing was sent.'),
    ...(next.length ? [el('div', { class: 'actions' }, next.map(([label, handler]) =>
      el('button', { type: 'button', class: 'secondary', onclick: handler }, label)))] : []));
}

let renderQueued = new Set();
function scheduleRender(id) {
  if (renderQueued.has(id)) return;
  renderQueued.add(id);
  requestAnimationFrame(() => { renderQueued.delete(id); renderUpload(id); });
}

// ---- the event stream ------------------------------------------------------------------------------

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const page = location.hash.replace('#', '');
    if (page === 'sequences') loadSequences();
    if (page === 'integrations') loadIntegrations();
  }, 300);
}

function applyResult(l, event) {
  const cancelled = event.error_kind === 'cancelled';
  l.state = event.not_eligible ? 'not_eligible'
    : event.skipped ? 'skipped'
      : cancelled ? 'cancelled'
        : (event.error && (!event.state || event.state === 'uploading' || event.state === 'pending')) ? 'failed'
          : (event.state || (event.error ? 'failed' : ''));
  l.kind = event.error_kind || '';
  l.keys = event.keys || {};
  l.links = event.links || [];
  l.message = event.not_eligible || event.skipped || event.message || '';
  l.error = cancelled ? '' : (event.error || '');
  l.step = '';
}

// Events before the stream's `live` marker are history: they set state but raise no banner.
let live = false;
let connectedBefore = false;

function onEvent(event) {
  if (event.type === 'live') {
    live = true;
    if (connectedBefore) { loadUploads(); showPage(); }
    connectedBefore = true;
    return;
  }
  if (event.type === 'auth') {
    if (live && !event.authorised && event.error) {
      flash('Logging in to ' + event.integration + ' did not finish: ' + event.error, [['Try again', () => login(event.integration)]]);
    }
    if (live && (event.authorised || event.error)) hideLoginBoxes();
    if (live && event.authorised) {
      flash('');
      if (inspected) recheckFields();
    }
    refreshSoon();
    return;
  }
  if (event.type === 'error') { if (live) flash(plainError('', event.error)); return; }
  if (!event.upload) {
    // A re-check: it may move on a sequence shown under an earlier upload.
    if (event.type === 'result') {
      for (const upload of uploads.values()) {
        const l = upload.lanes.get(event.sequence + '|' + event.integration);
        if (l && event.state) { applyResult(l, event); scheduleRender(upload.id); }
      }
      refreshSoon();
    }
    return;
  }
  const upload = ensureUpload(event.upload);
  if (event.type === 'upload') {
    upload.status = event.status;
    if (event.status === 'cancelled') {
      for (const l of upload.lanes.values()) if (!l.state || l.state === 'uploading') { l.state = 'cancelled'; l.error = ''; }
    }
    scheduleRender(event.upload);
    refreshSoon();
    return;
  }
  if (!event.sequence || !event.integration) return;
  const l = lane(upload, event.sequence, event.integration);
  if (event.type === 'progress') {
    if (event.event === 'totals') {
      l.bytesTotal = event.bytes_total; l.bytesDone = event.bytes_done;
      l.filesTotal = event.files_total; l.filesDone = event.files_done;
      l.samples = [];
      sample(l);
    } else if (event.event === 'advance') {
      l.bytesDone += event.bytes || 0; l.filesDone += event.files || 0;
      sample(l);
    } else if (event.event === 'step') {
      l.step = plainStep(event.step + (event.message ? ': ' + event.message : ''));
    } else if (event.event === 'note') {
      l.step = plainStep(event.message);
    }
  } else if (event.type === 'result') {
    applyResult(l, event);
    refreshSoon();
  }
  scheduleRender(event.upload);
}

// The stream reconnects by itself while the server is away; when the browser gives up (the server
// answered with an error while restarting) a new stream is opened every few seconds.
function connect() {
  const status = document.getElementById('live');
  live = false;
  const source = new EventSource('/api/events');
  source.onopen = () => { status.textContent = 'live'; status.className = 'live on'; };
  source.onerror = () => {
    status.textContent = 'reconnecting…';
    status.className = 'live off';
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(async () => {
        try {
          const probe = await fetch('/api/integrations', { credentials: 'same-origin' });
          if (probe.status === 401) {
            status.textContent = 'signed out';
            flash('mtp serve was started again with a new access link: open the link it printed.');
          }
        } catch (error) { /* still down: try again below */ }
        connect();
      }, 3000);
    }
  };
  source.onmessage = (message) => {
    try { onEvent(JSON.parse(message.data)); } catch (error) { console.error(error); }
  };
}

async function loadUploads() {
  try {
    const views = await api('GET', '/uploads');
    // After a restart the server's uploads are new: forget the ones it no longer has.
    const known = new Set(views.map((v) => v.id));
    for (const id of [...uploads.keys()].filter((id) => !known.has(id))) {
      uploads.delete(id);
      const box = document.querySelector('[data-upload="' + id + '"]');
      if (box) box.remove();
    }
    for (const view of views) {
      const upload = ensureUpload(view.id);
      upload.status = view.status;
      upload.sequences = view.sequences;
      upload.request = { paths: view.paths, options: view.options };
      scheduleRender(view.id);
    }
  } catch (error) {
    flash('Cannot load the uploads: ' + error.message);
  }
}

window.addEventListener('hashchange', showPage);
showPage();
loadUploads().then(connect);
