// Who is signed in, what they may do, and the live event stream every page listens to.

import { get, setCsrfToken } from './api.js';

let current = null;

/** The signed-in account ({name, role, csrf_token}), or null when the server wants a sign-in. */
export async function whoami() {
  try {
    current = await get('/whoami');
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      current = null;
      setCsrfToken(null);
      return null;
    }
    throw e;
  }
  setCsrfToken(current.csrf_token || current.csrf || null);
  return current;
}

export function account() {
  return current;
}

export function isReadOnly() {
  const role = String(current?.role || '').toLowerCase().replace(/[_\s]/g, '-');
  return role === 'read-only' || role === 'readonly' || role === 'reader';
}

/**
 * `true` when the account may change the site, else the reason to show on the disabled
 * control (the server refuses with 403 anyway).
 */
export function canChange() {
  if (!current) return 'Sign in to change the site';
  if (isReadOnly()) return `Read-only account ${current.name || ''}: you can see everything and change nothing`.replace('  ', ' ');
  return true;
}

// ---- events ---------------------------------------------------------------------------------

const listeners = new Set();
let source = null;

/** Calls `fn(event)` for each server-sent event ({type, data}); returns the unsubscribe. */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function dispatch(type, raw) {
  let data = raw;
  try {
    data = JSON.parse(raw);
  } catch {
    // Plain-text event: pass it on as is.
  }
  const ev = { type: (data && (data.event || data.type)) || type, data };
  for (const fn of [...listeners]) {
    try {
      fn(ev);
    } catch (e) {
      console.error('event listener', e);
    }
  }
}

// Named SSE events the server may send beside unnamed `message` ones.
const NAMED = ['run_started', 'run_step', 'run_progress', 'run_finished', 'distribution_started',
  'transfer_progress', 'distribution_finished', 'validation_finished', 'repaired', 'error'];

export function startEvents() {
  if (source || typeof EventSource === 'undefined') return;
  source = new EventSource('/api/v1/events', { withCredentials: true });
  source.onmessage = (e) => dispatch('message', e.data);
  for (const name of NAMED) source.addEventListener(name, (e) => dispatch(name, e.data));
  source.onopen = () => document.body.setAttribute('data-events', 'open');
  source.onerror = () => document.body.setAttribute('data-events', 'reconnecting');
}

export function stopEvents() {
  if (source) source.close();
  source = null;
}
