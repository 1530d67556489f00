// DOM helpers shared by the pages: an element builder, number formats, the banner, keyed tables
// that update in place, and buttons that run an admin action and report its outcome.

// h('a', {href: '#/', class: 'x'}, 'text', child, ...): attributes, then children (strings,
// nodes, arrays; null and false are skipped). `on*` attributes take functions.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

export function fmtNum(v, digits = 0) {
  if (!isNum(v)) return '–';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtRate(v) {
  if (!isNum(v)) return '–';
  return v >= 100 ? fmtNum(v, 0) : fmtNum(v, 2);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function fmtBytes(v) {
  if (!isNum(v)) return '–';
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < UNITS.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${i === 0 ? fmtNum(x) : fmtNum(x, 1)} ${UNITS[i]}`;
}

export function fmtTime(v) {
  if (v === null || v === undefined || v === '') return '–';
  const d = typeof v === 'number' ? new Date(v) : new Date(String(v));
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtAny(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// The banner under the header: an action's outcome or a refusal.
let bannerTimer = null;

export function banner(text, kind = 'info') {
  const b = document.getElementById('banner');
  clearTimeout(bannerTimer);
  b.className = `banner ${kind}`;
  b.replaceChildren(h('span', { class: 'text' }, text), h('button', { class: 'close', onclick: () => { b.hidden = true; } }, '×'));
  b.hidden = false;
  if (kind === 'ok') bannerTimer = setTimeout(() => { b.hidden = true; }, 6000);
}

export function clearBanner() {
  const b = document.getElementById('banner');
  if (b) b.hidden = true;
}

function describe(e) {
  return typeof e.describe === 'function' ? e.describe() : String(e.message || e);
}

// An inline error block (a section that could not load), marked as a refusal on 401/403.
export function errorBox(e) {
  const refused = e && (e.status === 401 || e.status === 403);
  return h('div', { class: refused ? 'error refusal' : 'error', role: 'alert', dataset: { status: String(e.status ?? '') } }, describe(e));
}

// A button that runs `f` (an admin call); success shows `done`, a failure the API's reason.
export function actionButton(label, f, opts = {}) {
  const btn = h('button', { class: opts.danger ? 'danger' : '', type: 'button', ...(opts.attrs || {}) }, label);
  btn.addEventListener('click', async () => {
    if (opts.confirm && !window.confirm(opts.confirm)) return;
    btn.disabled = true;
    try {
      await f();
      if (opts.done) banner(opts.done, 'ok');
      if (opts.after) await opts.after();
    } catch (e) {
      if (e.name !== 'AbortError') banner(`${opts.what || label} failed — ${describe(e)}`, e.status === 401 || e.status === 403 ? 'error refusal' : 'error');
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), ...children);
}

// A table whose rows are keyed and updated in place (so a row's buttons survive a refresh).
// columns: [{label, value: (row) => text|Node, cls}]; actions: (key, row) => [nodes], made once.
export class KeyedTable {
  constructor(columns, actions, attrs = {}) {
    this.columns = columns;
    this.actions = actions;
    this.rows = new Map();
    this.body = h('tbody');
    const head = columns.map((c) => h('th', { class: c.cls }, c.label));
    if (actions) head.push(h('th', { class: 'actions' }, ''));
    this.empty = h('p', { class: 'muted empty' }, attrs.emptyText || 'None.');
    this.table = h('table', { class: 'grid', ...attrs.table }, h('thead', null, h('tr', null, head)), this.body);
    this.el = h('div', { class: 'table-wrap' }, this.table, this.empty);
  }

  update(entries) {
    const seen = new Set();
    for (const [key, row] of entries) {
      seen.add(key);
      let tr = this.rows.get(key);
      if (!tr) {
        const cells = this.columns.map((c) => h('td', { class: c.cls }));
        tr = h('tr', { dataset: { key } }, cells);
        if (this.actions) tr.append(h('td', { class: 'actions' }, this.actions(key, row)));
        this.rows.set(key, tr);
        this.body.append(tr);
      }
      this.columns.forEach((c, i) => {
        const v = c.value(row, key);
        const td = tr.children[i];
        if (v instanceof Node) td.replaceChildren(v);
        else if (td.textContent !== String(v)) td.textContent = String(v);
      });
    }
    for (const [key, tr] of this.rows) {
      if (!seen.has(key)) {
        tr.remove();
        this.rows.delete(key);
      }
    }
    this.empty.hidden = this.rows.size > 0;
    this.table.hidden = this.rows.size === 0;
  }
}

// Key/value pairs as a definition grid: [[label, text, id?], ...].
export function kvGrid(pairs) {
  return h('dl', { class: 'kv' }, pairs.map(([k, v, id]) => [h('dt', null, k), h('dd', { id }, v)]));
}
