// The admin REST API client: every read and every action of the console goes through here, with
// the operator's token, so the broker's own authorization decides.

const TOKEN_KEY = 'strata.console.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t && t.trim()) sessionStorage.setItem(TOKEN_KEY, t.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
}

// The role a token claims (its `sub`), for display only: the broker verifies the token.
export function tokenSubject() {
  const parts = token().split('.');
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(json).sub || null;
  } catch {
    return null;
  }
}

const STATUS_WORDS = {
  0: 'Broker unreachable',
  400: 'Bad request',
  401: 'Not authenticated',
  403: 'Not allowed',
  404: 'Not found',
  405: 'Not supported',
  409: 'Conflict',
  412: 'Precondition failed',
  501: 'Not implemented',
  503: 'Unavailable',
};

// A refused or failed request, with the API's own `reason`. The broker answers 401 both
// without valid credentials (with `WWW-Authenticate`: `challenge`) and to a role not allowed
// (as Pulsar); only the first asks for a login.
export class ApiError extends Error {
  constructor(method, path, status, reason, challenge = false) {
    super(reason);
    this.method = method;
    this.path = path;
    this.status = status;
    this.reason = reason;
    this.challenge = challenge;
  }

  get refused() {
    return this.status === 401 || this.status === 403;
  }

  describe() {
    const word = this.status === 401 && !this.challenge
      ? STATUS_WORDS[403]
      : STATUS_WORDS[this.status] || 'HTTP error';
    const code = this.status ? ` (${this.status})` : '';
    return `${word}${code}: ${this.reason}`;
  }
}

let unauthenticated = () => {};

// Called with the error of every 401 answer asking for credentials (the app shows the login form).
export function onUnauthenticated(f) {
  unauthenticated = f;
}

async function reasonOf(resp) {
  const text = await resp.text().catch(() => '');
  try {
    const j = JSON.parse(text);
    if (j && typeof j.reason === 'string') return j.reason;
  } catch {
    // not JSON: the text itself
  }
  return text || resp.statusText || 'no reason given';
}

// One request; resolves with the parsed JSON (or text, or null), or the Response with `raw`.
export async function call(method, path, body, opts = {}) {
  // Topics served by another broker: this broker forwards the call (a browser would drop the
  // token on the cross-origin redirect).
  const headers = { 'X-Strata-Follow-Owner': 'true' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (body !== undefined && body !== null) {
    headers['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, signal: opts.signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(method, path, 0, e.message);
  }
  if (!resp.ok) {
    const challenge = resp.headers.has('WWW-Authenticate');
    const err = new ApiError(method, path, resp.status, await reasonOf(resp), challenge);
    // A late answer to a page already left, or to a token since replaced, changes nothing.
    if (err.status === 401 && challenge && token() === t && !opts.signal?.aborted) unauthenticated(err);
    throw err;
  }
  if (opts.raw) return resp;
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const put = (path, body, opts) => call('PUT', path, body, opts);
export const post = (path, body, opts) => call('POST', path, body, opts);
export const del = (path, opts) => call('DELETE', path, undefined, opts);

const enc = encodeURIComponent;

export const paths = {
  tenant: (t) => `/admin/v2/tenants/${enc(t)}`,
  namespaces: (t) => `/admin/v2/namespaces/${enc(t)}`,
  namespace: (t, ns) => `/admin/v2/namespaces/${enc(t)}/${enc(ns)}`,
  topics: (t, ns) => `/admin/v2/persistent/${enc(t)}/${enc(ns)}`,
  topic: (t, ns, topic) => `/admin/v2/persistent/${enc(t)}/${enc(ns)}/${enc(topic)}`,
  subscription: (t, ns, topic, sub) =>
    `/admin/v2/persistent/${enc(t)}/${enc(ns)}/${enc(topic)}/subscription/${enc(sub)}`,
};

// Console routes (the part after `#`).
export const routes = {
  tenant: (t) => `#/tenant/${enc(t)}`,
  namespace: (t, ns) => `#/ns/${enc(t)}/${enc(ns)}`,
  topic: (t, ns, topic) => `#/topic/${enc(t)}/${enc(ns)}/${enc(topic)}`,
};
