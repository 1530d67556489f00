// The console's entry: hash routes → pages, the token login, the header, and the timing marks the
// browser tests read (window.strataConsole.timings).

import * as api from './api.js';
import * as cluster from './cluster.js';
import * as namespace from './namespace.js';
import * as topic from './topic.js';
import { banner, clearBanner, h, section } from './ui.js';

const NEXT_KEY = 'strata.console.next';

const ROUTES = [
  [/^\/?$/, cluster.overview],
  [/^\/tenants$/, cluster.tenants],
  [/^\/tenant\/([^/]+)$/, cluster.tenant],
  [/^\/ns\/([^/]+)\/([^/]+)$/, namespace.page],
  [/^\/topic\/([^/]+)\/([^/]+)\/([^/]+)$/, topic.page],
  [/^\/login$/, login],
];

window.strataConsole = { timings: [] };

// What a page may use: an abort signal and timers that end when the user leaves the page, and
// `rendered(name)`, which records how long the page took to show.
class PageContext {
  constructor(seq, route) {
    this.seq = seq;
    this.route = route;
    this.abort = new AbortController();
    this.signal = this.abort.signal;
    this.timers = [];
    this.start = performance.now();
  }

  every(ms, f) {
    let busy = false;
    const id = setInterval(async () => {
      if (busy) return;
      busy = true;
      try { await f(); } finally { busy = false; }
    }, ms);
    this.timers.push(id);
  }

  rendered(name) {
    if (this.signal.aborted) return;
    const end = performance.now();
    window.strataConsole.timings.push({ name, route: this.route, ms: end - this.start, sinceNavigation: end });
    document.body.dataset.rendered = `${name}:${this.seq}`;
  }

  stop() {
    this.timers.forEach(clearInterval);
    this.abort.abort();
  }
}

let current = null;
let seq = 0;

function whoAmI() {
  const who = document.getElementById('who');
  const role = api.tokenSubject();
  if (api.token()) {
    who.replaceChildren(`Signed in${role ? ` as ${role}` : ''} `,
      h('button', { type: 'button', id: 'logout', onclick: () => { api.setToken(''); whoAmI(); route(); } }, 'Log out'));
  } else {
    who.replaceChildren(h('a', { href: '#/login', id: 'login-link' }, 'Log in'));
  }
}

async function route() {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const [path] = hash.split('?');
  if (current) current.stop();
  seq += 1;
  const ctx = new PageContext(seq, path);
  current = ctx;
  // Each page renders into its own element: a page left while it still loads (a 401 sends the
  // user to the login form mid-load) keeps drawing into a detached element, never over the next.
  const main = document.createElement('div');
  main.className = 'page';
  document.getElementById('main').replaceChildren(main);
  if (path !== '/login') sessionStorage.setItem(NEXT_KEY, `#${hash}`);
  for (const [re, view] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    let params;
    try {
      params = m.slice(1).map(decodeURIComponent);
    } catch {
      break;
    }
    try {
      await view(main, ctx, params);
    } catch (e) {
      if (e.name !== 'AbortError' && !ctx.signal.aborted) banner(e.describe ? e.describe() : String(e), 'error');
    }
    return;
  }
  main.replaceChildren(h('h1', null, 'Not found'), h('p', null, h('a', { href: '#/' }, 'Back to the cluster')));
}

function login(main, ctx) {
  const input = h('textarea', { id: 'token', rows: '4', placeholder: 'eyJhbGciOi…', 'aria-label': 'token', autocomplete: 'off', spellcheck: 'false' });
  const form = h('form', { id: 'login-form', class: 'login' },
    h('p', null, 'This broker requires authentication. Paste a token (as made by ', h('code', null, 'strata tokens create'),
      '); it stays in this browser tab only (session storage) and is sent as ', h('code', null, 'Authorization: Bearer'), ' with every admin request.'),
    input,
    h('div', null, h('button', { type: 'submit', id: 'login-submit' }, 'Log in')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    api.setToken(input.value);
    whoAmI();
    clearBanner();
    const next = sessionStorage.getItem(NEXT_KEY) || '#/';
    if (window.location.hash === next) route();
    else window.location.hash = next;
  });
  main.replaceChildren(h('h1', null, 'Log in'), section('Token', form));
  input.focus();
  ctx.rendered('login');
}

// A 401: the token is missing, expired or invalid. Show why and offer the login form.
api.onUnauthenticated((err) => {
  banner(`${err.describe()} — log in with a valid token.`, 'error refusal');
  if (window.location.hash !== '#/login') window.location.hash = '#/login';
});

document.getElementById('goto').addEventListener('submit', (e) => {
  e.preventDefault();
  const parts = document.getElementById('goto-input').value.trim().replace(/^persistent:\/\//, '').split('/').filter(Boolean);
  if (parts.length === 1) window.location.hash = api.routes.tenant(parts[0]);
  else if (parts.length === 2) window.location.hash = api.routes.namespace(parts[0], parts[1]);
  else if (parts.length >= 3) window.location.hash = api.routes.topic(parts[0], parts[1], parts.slice(2).join('/'));
});

window.addEventListener('hashchange', route);
whoAmI();
route();
