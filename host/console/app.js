// The Gatehouse console: plain DOM, no framework, no build step. Every view
// reads the admin API as the signed-in person (the session cookie); writes
// carry X-Gatehouse-Console: 1. All text is set with textContent, never
// parsed as HTML.
'use strict';

const main = document.getElementById('main');
const statusLine = document.getElementById('status');

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function say(message, kind = '') {
  statusLine.textContent = message;
  statusLine.className = 'status ' + kind;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

async function api(path, options = {}) {
  const init = { credentials: 'same-origin', headers: { Accept: 'application/json' }, ...options };
  if (options.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-Gatehouse-Console'] = '1';
    init.body = JSON.stringify(options.body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (r.status === 401) {
    // The token behind the session expired: start over at the sign-in page.
    window.location.assign('/console/');
    throw new ApiError(r.status, body);
  }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function show(title, ...content) {
  const parts = content.flat().filter((c) => c !== null && c !== undefined);
  main.replaceChildren(el('h1', {}, title), ...parts);
  document.title = `${title} · Gatehouse console`;
  main.focus();
}

function failed(e) {
  show('Something went wrong', el('p', { class: 'error', role: 'alert' }, e.message));
}

// ---- approvals -------------------------------------------------------------

function describeRequest(a) {
  const r = a.request || {};
  if (r.sql !== undefined) return r.sql;
  if (r.method !== undefined) return `${r.method} ${r.path || r.uri || ''}`;
  return JSON.stringify(r);
}

function approvalCard(a, me) {
  const reasonId = `reason-${a.id}`;
  const reason = el('textarea', { id: reasonId, rows: 2, 'aria-describedby': `hint-${a.id}` });
  const own = me && a.requester && (a.requester.subject === me.subject || a.requester.acting_for === me.subject);
  const decide = async (action) => {
    const text = reason.value.trim();
    if (action === 'deny' && !text) {
      say('A denial needs a reason.', 'bad');
      reason.focus();
      return;
    }
    for (const b of card.querySelectorAll('button')) b.disabled = true;
    try {
      const body = text ? { reason: text } : {};
      const res = await api(`/v1/approvals/${encodeURIComponent(a.id)}/${action}`, { method: 'POST', body });
      say(`Approval ${a.id}: ${res.status || action + 'd'}.`, 'ok');
      route();
    } catch (e) {
      say(`Approval ${a.id}: ${e.message}`, 'bad');
      for (const b of card.querySelectorAll('button')) b.disabled = false;
    }
  };
  const scope = a.scope && a.scope.grant
    ? `grant "${a.scope.grant.key}" for ${a.scope.grant.duration_secs} s`
    : 'this request only';
  const card = el('article', { class: 'card', 'aria-labelledby': `title-${a.id}` },
    el('h2', { id: `title-${a.id}` }, `${a.policy}: ${a.reason}`),
    el('dl', {},
      el('dt', {}, 'Requested by'), el('dd', {}, a.requester ? a.requester.subject : '?',
        a.requester && a.requester.acting_for ? ` (acting for ${a.requester.acting_for})` : ''),
      el('dt', {}, 'Groups'), el('dd', {}, a.requester ? (a.requester.groups || []).join(', ') : ''),
      el('dt', {}, 'Connection'), el('dd', {}, `${a.connection} (${a.protocol})`),
      el('dt', {}, 'Approvers'), el('dd', {}, (a.approver_groups || []).join(', ')),
      el('dt', {}, 'Scope'), el('dd', {}, scope),
      el('dt', {}, 'Asked'), el('dd', {}, when(a.created_at_ms)),
      el('dt', {}, 'Times out'), el('dd', {}, a.expires_at_ms ? when(a.expires_at_ms) : `${a.timeout_secs} s after asking`),
      el('dt', {}, 'Status'), el('dd', {}, a.status || 'waiting'),
      el('dt', {}, 'Session'), el('dd', {}, el('a', { href: `#/sessions/${encodeURIComponent(a.session_id)}` }, a.session_id)),
    ),
    el('h3', {}, 'Request'),
    el('pre', {}, describeRequest(a)),
    el('details', {}, el('summary', {}, 'Full request'), el('pre', {}, JSON.stringify(a.request, null, 2))),
  );
  if (!a.status || a.status === 'waiting') {
    card.append(el('div', { class: 'actions' },
      el('div', {},
        el('label', { for: reasonId }, 'Reason (required to deny)'),
        reason,
        el('div', { id: `hint-${a.id}`, class: 'muted' }, own ? 'You made this request; someone else must decide it.' : ''),
      ),
      el('button', { type: 'button', class: 'approve', disabled: own, onclick: () => decide('approve') }, 'Approve'),
      el('button', { type: 'button', class: 'deny', disabled: own, onclick: () => decide('deny') }, 'Deny'),
    ));
  } else if (a.decisions && a.decisions.length) {
    card.append(el('ul', {}, a.decisions.map((d) =>
      el('li', {}, `${d.decision} by ${d.approver.subject} at ${when(d.at_ms)}${d.reason ? ': ' + d.reason : ''}`))));
  }
  return card;
}

async function approvals(params) {
  const which = params.get('status') || 'waiting';
  const [list, me] = await Promise.all([
    api(`/v1/approvals?status=${encodeURIComponent(which)}`),
    api('/console/me').catch(() => null),
  ]);
  const picker = el('form', { class: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    window.location.hash = `#/approvals?status=${encodeURIComponent(select.value)}`;
  } });
  const select = el('select', { id: 'approval-status', name: 'status' },
    ['waiting', 'approved', 'denied', 'timed_out', 'abandoned', 'all'].map((s) =>
      el('option', { value: s, selected: s === which }, s.replace('_', ' '))));
  picker.append(el('div', {}, el('label', { for: 'approval-status' }, 'Status'), select), el('button', { type: 'submit' }, 'Show'));
  const items = list.approvals || [];
  show(which === 'waiting' ? 'Pending approvals' : 'Approvals', picker,
    items.length ? items.map((a) => approvalCard(a, me)) : el('p', { class: 'muted' }, 'Nothing here.'));
}

// One approval, as webhook links open it; `action` only moves the focus to
// that button: a link never decides.
async function oneApproval(id, params) {
  const [a, me] = await Promise.all([
    api(`/v1/approvals/${encodeURIComponent(id)}`),
    api('/console/me').catch(() => null),
  ]);
  show('Approval', approvalCard(a, me), el('p', {}, el('a', { href: '#/approvals' }, 'All pending approvals')));
  const action = params.get('action');
  if (action === 'approve' || action === 'deny') {
    const target = action === 'approve' ? main.querySelector('button.approve') : main.querySelector('textarea');
    if (target) target.focus();
  }
}

// ---- sessions --------------------------------------------------------------

const SESSION_FILTERS = [
  ['principal', 'Principal'], ['connection', 'Connection'], ['protocol', 'Protocol'],
  ['verdict', 'Decision'], ['q', 'Text'], ['from', 'From (RFC 3339)'], ['to', 'To (RFC 3339)'],
];

async function sessions(params) {
  const form = el('form', { class: 'filters', role: 'search', onsubmit: (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [name] of SESSION_FILTERS) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    window.location.hash = `#/sessions?${q}`;
  } });
  for (const [name, label] of SESSION_FILTERS) {
    form.append(el('div', {}, el('label', { for: `f-${name}` }, label),
      el('input', { id: `f-${name}`, name, value: params.get(name) || '', size: name === 'q' ? 24 : 14 })));
  }
  form.append(el('button', { type: 'submit' }, 'Search'));
  const query = new URLSearchParams(params);
  query.set('limit', '50');
  const page = await api(`/v1/sessions?${query}`);
  const rows = (page.sessions || []).map((s) => el('tr', {},
    el('td', {}, el('a', { href: `#/sessions/${encodeURIComponent(s.id)}` }, when(s.started_at_ms))),
    el('td', {}, s.principal_subject || ''),
    el('td', {}, s.connection), el('td', {}, s.protocol),
    el('td', {}, s.client_addr), el('td', {}, String(s.event_count)),
    el('td', {}, s.ended_at_ms ? when(s.ended_at_ms) : 'open')));
  const table = el('table', {},
    el('caption', { class: 'muted' }, `${rows.length} session(s), newest first`),
    el('thead', {}, el('tr', {}, ['Started', 'Principal', 'Connection', 'Protocol', 'Client', 'Events', 'Ended'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
  const more = page.next_cursor
    ? el('p', {}, el('a', { href: `#/sessions?${new URLSearchParams({ ...Object.fromEntries(params), cursor: page.next_cursor })}` }, 'Older sessions'))
    : null;
  show('Sessions', form, table, more);
}

async function replay(id) {
  const t = await api(`/v1/sessions/${encodeURIComponent(id)}/replay`);
  const steps = t.steps || [];
  let current = 0;
  const counter = el('span', { 'aria-live': 'polite' });
  const detail = el('div', { class: 'step-detail' });
  const list = el('ol', { class: 'steps' });
  const items = steps.map((s, i) => {
    const li = el('li', {},
      el('button', { type: 'button', class: 'link', onclick: () => go(i) }, `#${s.seq} +${(s.offset_ms / 1000).toFixed(3)} s`),
      ' ', el('span', { class: `verdict-${s.verdict}` }, s.verdict), ' ', s.kind, ': ',
      (s.text || '').split('\n')[0]);
    list.append(li);
    return li;
  });
  const prev = el('button', { type: 'button', onclick: () => go(current - 1) }, '◀ Previous');
  const next = el('button', { type: 'button', onclick: () => go(current + 1) }, 'Next ▶');
  function go(i) {
    if (!steps.length) return;
    current = Math.max(0, Math.min(steps.length - 1, i));
    items.forEach((li, j) => {
      li.classList.toggle('current', j === current);
      if (j === current) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
    });
    const s = steps[current];
    counter.textContent = `Step ${current + 1} of ${steps.length}`;
    detail.replaceChildren(
      el('h2', {}, `${s.kind} · `, el('span', { class: `verdict-${s.verdict}` }, s.verdict), ` · ${when(s.at_ms)}`),
      el('pre', { class: 'step-text' }, s.text || ''),
      (s.notes && s.notes.length) ? el('ul', {}, s.notes.map((n) => el('li', {}, n))) : null);
    prev.disabled = current === 0;
    next.disabled = current === steps.length - 1;
  }
  const s = t.session || {};
  show(`Session replay`,
    el('dl', { class: 'card' },
      el('dt', {}, 'Session'), el('dd', {}, s.id || id),
      el('dt', {}, 'Principal'), el('dd', {}, s.principal_subject || ''),
      el('dt', {}, 'Connection'), el('dd', {}, `${s.connection || ''} (${s.protocol || ''}) from ${s.client_addr || ''}`),
      el('dt', {}, 'Started'), el('dd', {}, when(s.started_at_ms)),
      el('dt', {}, 'End'), el('dd', {}, t.end || '')),
    el('div', { class: 'stepper' }, prev, next, counter),
    detail, list);
  main.addEventListener('keydown', (ev) => {
    if (ev.target.closest('input, textarea, select')) return;
    if (ev.key === 'ArrowRight') go(current + 1);
    if (ev.key === 'ArrowLeft') go(current - 1);
  });
  if (steps.length) go(0); else detail.replaceChildren(el('p', { class: 'muted' }, 'This session recorded no steps.'));
}

// ---- policies --------------------------------------------------------------

async function policies() {
  const p = await api('/v1/policies');
  const rows = (p.policies || []).map((x) => el('tr', {},
    el('td', {}, x.name),
    el('td', { class: x.loaded ? 'verdict-allow' : 'verdict-error' }, x.loaded ? 'loaded' : 'not loaded'),
    el('td', {}, x.version || ''),
    el('td', {}, x.digest ? x.digest.slice(0, 19) + '…' : ''),
    el('td', {}, (x.hooks || []).join(', ')),
    el('td', {}, when(x.loaded_at_ms)),
    el('td', { class: x.last_error ? 'error' : '' }, x.last_error ? `${x.last_error} (${when(x.last_error_at_ms)})` : '')));
  show('Policies', el('table', {},
    el('thead', {}, el('tr', {}, ['Name', 'State', 'Version', 'Digest', 'Hooks', 'Loaded', 'Last error'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows)));
}

// ---- routing ---------------------------------------------------------------

async function route() {
  const hash = window.location.hash.replace(/^#\/?/, '') || 'approvals';
  const [path, qs] = hash.split('?');
  const params = new URLSearchParams(qs || '');
  const parts = path.split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === parts[0]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  try {
    if (parts[0] === 'sessions' && parts[1]) await replay(parts[1]);
    else if (parts[0] === 'sessions') await sessions(params);
    else if (parts[0] === 'policies') await policies();
    else if (parts[0] === 'approvals' && parts[1]) await oneApproval(parts[1], params);
    else await approvals(params);
  } catch (e) {
    if (e.status !== 401) failed(e);
  }
}

async function start() {
  try {
    const me = await api('/console/me');
    document.getElementById('who').textContent = `Signed in as ${me.subject}`;
  } catch (_) {
    return;
  }
  window.addEventListener('hashchange', () => { say(''); route(); });
  route();
}

start();
