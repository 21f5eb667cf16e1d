// The one door to the site server's JSON API: every request goes through `api()`, which adds
// the CSRF header to state-changing requests (the session cookie alone must not be enough to
// change the site) and turns application/problem+json answers into ApiError.

const BASE = '/api/v1';
let csrfToken = null;

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** A refused request, carrying the server's problem document (title, detail, hint, status). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
  get title() {
    return this.problem.title || `HTTP ${this.status}`;
  }
  get detail() {
    return this.problem.detail || '';
  }
  get hint() {
    return this.problem.hint || '';
  }
}

async function problemOf(res) {
  const text = await res.text();
  try {
    const doc = JSON.parse(text);
    if (doc && typeof doc === 'object') return doc;
  } catch {
    // Not JSON: a proxy or a crash answered. Show what it said.
  }
  return { title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 500), status: res.status };
}

/**
 * Calls `method path` under /api/v1. `body` is sent as JSON, or as is when it is FormData or a
 * Blob (uploads). Resolves to the parsed JSON (or text), null for 204.
 */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json, application/problem+json, text/plain' };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body instanceof Blob) {
    // Uploads go as the raw request body, as the server's import takes them.
    headers['Content-Type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, {
      title: 'The site server cannot be reached',
      detail: String(e && e.message ? e.message : e),
      hint: 'Check that `ois serve` is running, then reload the page.',
    });
  }
  if (!res.ok) {
    const err = new ApiError(res.status, await problemOf(res));
    // A session that ended (expired, or signed out in another tab): back to the sign-in page.
    if (res.status === 401 && path !== '/whoami' && path !== '/session') {
      window.dispatchEvent(new CustomEvent('ois-signed-out', { detail: err }));
    }
    throw err;
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  if (type.includes('json')) return res.json();
  return res.text();
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const put = (path, body) => api('PUT', path, body === undefined ? {} : body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

/** `?a=1&b=2` from the entries of `params` that are set. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Lists come bare or wrapped (`{items: [...]}`, `{value: [...]}`): the console takes both. */
export function list(doc, ...keys) {
  if (Array.isArray(doc)) return doc;
  if (doc && typeof doc === 'object') {
    for (const k of [...keys, 'items', 'value', 'data']) {
      if (Array.isArray(doc[k])) return doc[k];
    }
  }
  return [];
}
