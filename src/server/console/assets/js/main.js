// The console's shell: sign-in, the navigation pane and the hash router that draws one page
// into <main>. Pages are modules exporting `render(main, params) -> cleanup | undefined`.

import { del, post } from './api.js';
import { h, clear, errorPanel, field, clearMessages } from './ui.js';
import { whoami, account, isReadOnly, startEvents, stopEvents } from './session.js';
import * as images from './pages/images.js';
import * as imageDetails from './pages/image.js';
import * as updates from './pages/updates.js';
import * as dps from './pages/dps.js';
import * as dashboard from './pages/dashboard.js';
import * as audit from './pages/audit.js';

const ROUTES = [
  { re: /^\/?$/, page: images, params: () => ({ kind: 'os-image' }), nav: 'images' },
  { re: /^\/images$/, page: images, params: () => ({ kind: 'os-image' }), nav: 'images' },
  { re: /^\/upgrade-packages$/, page: images, params: () => ({ kind: 'os-upgrade-package' }), nav: 'upgrade-packages' },
  { re: /^\/images\/([^/]+)(?:\/([a-z-]+))?$/, page: imageDetails, params: (m) => ({ id: decodeURIComponent(m[1]), tab: m[2] }), nav: 'images' },
  { re: /^\/updates$/, page: updates, params: () => ({}), nav: 'updates' },
  { re: /^\/dps$/, page: dps, params: () => ({}), nav: 'dps' },
  { re: /^\/dps\/(.+)$/, page: dps, params: (m) => ({ id: decodeURIComponent(m[1]) }), nav: 'dps' },
  { re: /^\/dashboard$/, page: dashboard, params: () => ({}), nav: 'dashboard' },
  { re: /^\/audit$/, page: audit, params: () => ({}), nav: 'audit' },
];

const NAV = [
  { group: 'Software Library', items: [
    { id: 'images', label: 'Operating System Images', href: '#/images' },
    { id: 'upgrade-packages', label: 'Operating System Upgrade Packages', href: '#/upgrade-packages' },
    { id: 'updates', label: 'Content Library', href: '#/updates' },
  ] },
  { group: 'Administration', items: [
    { id: 'dps', label: 'Distribution Points', href: '#/dps' },
    { id: 'audit', label: 'Audit Log', href: '#/audit' },
  ] },
  { group: 'Monitoring', items: [
    { id: 'dashboard', label: 'Dashboard', href: '#/dashboard' },
  ] },
];

let cleanup = null;

function drawNav(active) {
  const nav = document.getElementById('nav');
  clear(nav, ...NAV.map((g) => h('div', { class: 'nav-group' },
    h('h2', { class: 'nav-heading' }, g.group),
    h('ul', {}, g.items.map((i) => h('li', {},
      h('a', { href: i.href, 'aria-current': i.id === active ? 'page' : null }, i.label)))))));
}

function drawWho() {
  const who = document.getElementById('who');
  const a = account();
  if (!a) {
    clear(who);
    return;
  }
  const role = isReadOnly() ? 'Read-only analyst' : (a.role === 'admin' ? 'Full administrator' : a.role);
  clear(who,
    h('span', { class: 'who-name', id: 'who-name' }, a.name || 'local admin'),
    h('span', { class: `who-role ${isReadOnly() ? 'readonly' : ''}`, id: 'who-role' }, role),
    a.via === 'local' ? null : h('button', { type: 'button', class: 'link-button', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try {
    await del('/session');
  } catch {
    // Signed out or not, the page goes back to the sign-in form.
  }
  stopEvents();
  await boot();
}

function route() {
  if (!account()) return;
  const path = (location.hash || '#/').slice(1).split('?')[0];
  const found = ROUTES.find((r) => r.re.test(path));
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page that fails to clean up must not stop the next one from drawing.
    }
  }
  cleanup = null;
  clearMessages();
  const main = document.getElementById('main');
  clear(main);
  if (!found) {
    drawNav('');
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'This page does not exist. '), h('a', { href: '#/images' }, 'Operating System Images'));
    return;
  }
  drawNav(found.nav);
  const params = found.params(path.match(found.re));
  const result = found.page.render(main, params);
  Promise.resolve(result).then((c) => { cleanup = typeof c === 'function' ? c : null; }).catch((e) => {
    main.append(errorPanel(e));
  });
}

function loginPage(problem) {
  const main = document.getElementById('main');
  clear(document.getElementById('nav'));
  clearMessages();
  const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('div', { 'aria-live': 'polite' }, problem ? errorPanel(problem) : null);
  const form = h('form', { class: 'login', id: 'login-form' },
    h('h1', {}, 'Sign in to the site'),
    h('p', {}, 'Paste the API token that `ois site user add NAME --role admin|read-only` printed for you.'),
    field('API token', token, 'The token is sent once to open a session; the console does not keep it.'),
    h('div', { class: 'dialog-buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(status);
    try {
      await post('/session', { token: token.value.trim() });
      token.value = '';
      await boot();
    } catch (err) {
      clear(status, errorPanel(err, 'Sign-in refused'));
      token.focus();
    }
  });
  clear(main, form);
  token.focus();
}

async function boot() {
  let who;
  try {
    who = await whoami();
  } catch (e) {
    loginPage(e);
    drawWho();
    return;
  }
  drawWho();
  if (!who) {
    loginPage();
    return;
  }
  startEvents();
  route();
}

window.addEventListener('hashchange', route);
window.addEventListener('ois-signed-out', () => {
  stopEvents();
  boot();
});
// Skip link target: move focus to the page content without changing the route.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a.skip');
  if (!a) return;
  e.preventDefault();
  document.getElementById('main').focus();
});
boot();
