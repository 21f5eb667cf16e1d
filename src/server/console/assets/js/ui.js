// Small DOM helpers shared by the pages: an element builder (text is always set as text, never
// parsed as HTML, so names and messages from the site cannot inject markup), formatting, error
// panels, modal dialogs, selectable tables, tabs and the ribbon.

import { ApiError } from './api.js';

/** `h('button', {class: 'x', onclick: f}, 'text', child)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'style' && typeof v === 'object') {
      Object.assign(el.style, v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else if (k === 'value' || k === 'checked') {
      el[k] = v;
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let idSeq = 0;
export const uid = (prefix) => `${prefix}-${++idSeq}`;

// ---- formatting ----------------------------------------------------------------------------

export function bytes(n) {
  if (n === undefined || n === null || Number.isNaN(Number(n))) return '';
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A UTC stamp from the site shown in the browser's local time, as the ConfigMgr console does. */
export function when(stamp) {
  if (!stamp) return '';
  const d = new Date(stamp);
  if (Number.isNaN(d.getTime())) return String(stamp);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function seconds(s) {
  if (s === undefined || s === null || Number.isNaN(Number(s))) return '';
  const v = Number(s);
  if (v < 60) return `${v.toFixed(v < 10 ? 1 : 0)} s`;
  const m = Math.floor(v / 60);
  return `${m} min ${Math.round(v - m * 60)} s`;
}

export function duration(start, end) {
  if (!start || !end) return null;
  const ms = new Date(end) - new Date(start);
  return Number.isNaN(ms) ? null : ms / 1000;
}

export const KIND_NAMES = {
  'os-image': 'Operating System Image',
  'os-upgrade-package': 'Operating System Upgrade Package',
};

/** A status as a badge coloured by what it means. */
export function statusBadge(status) {
  const s = status || 'None';
  const tone = {
    Successful: 'ok', Installed: 'ok', 'In progress': 'busy', Scheduled: 'info', Pending: 'info', Failed: 'bad', Canceled: 'warn', None: 'none',
  }[s] || 'none';
  return h('span', { class: `badge ${tone}` }, s);
}

// ---- errors and notices ---------------------------------------------------------------------

/** A panel with what the server said (detail) and what to do (hint). */
export function errorPanel(err, context) {
  const isApi = err instanceof ApiError;
  const title = isApi ? err.title : 'Something went wrong';
  const detail = isApi ? err.detail : String(err && err.message ? err.message : err);
  // Some hints repeat the message before saying what to do: show only the new part.
  let hint = isApi ? err.hint : '';
  if (hint && detail && hint.startsWith(detail)) hint = hint.slice(detail.length).trim();
  return h('div', { class: 'error-panel', role: 'alert' },
    h('strong', {}, context ? `${context}: ${title}` : title),
    detail && detail !== title ? h('p', { class: 'detail' }, detail) : null,
    hint ? h('p', { class: 'hint' }, h('span', { class: 'hint-label' }, 'What to do: '), hint) : null);
}

/** Shows `err` in the page's message area (replacing what was there). */
export function showError(err, context) {
  const area = document.getElementById('messages');
  clear(area, errorPanel(err, context));
  area.querySelector('[role=alert]')?.scrollIntoView({ block: 'nearest' });
}

export function showNotice(text) {
  const area = document.getElementById('messages');
  clear(area, h('div', { class: 'notice', role: 'status' }, text));
}

export function clearMessages() {
  clear(document.getElementById('messages'));
}

// ---- dialogs --------------------------------------------------------------------------------

/**
 * A modal dialog (the native <dialog>: the page behind it is inert, so focus stays inside, and
 * Escape closes it). `build(close)` returns the body; resolves with what `close(value)` got,
 * or undefined on Escape.
 */
export function modal({ title, build, className, labelledBy }) {
  return new Promise((resolve) => {
    const titleId = labelledBy || uid('dlg-title');
    const dlg = h('dialog', { class: `modal ${className || ''}`, 'aria-labelledby': titleId });
    let result;
    const opener = document.activeElement;
    const close = (value) => {
      result = value;
      dlg.close();
    };
    dlg.addEventListener('close', () => {
      dlg.remove();
      // Back to the control that opened the dialog, so keyboard users keep their place.
      if (opener && opener.isConnected && !opener.disabled) opener.focus();
      resolve(result);
    });
    dlg.append(h('h2', { id: titleId, class: 'dialog-title' }, title), build(close, dlg));
    // showModal() makes the page inert, but Tab from the last control would still leave for
    // the browser's own UI: wrap it around so the keyboard stays in the dialog.
    dlg.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const focusable = [...dlg.querySelectorAll('a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])')]
        .filter((el) => !el.disabled && !el.hidden && el.offsetParent !== null && el.tabIndex >= 0);
      if (!focusable.length) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (e.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
        last.focus();
        e.preventDefault();
      } else if (!e.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
        first.focus();
        e.preventDefault();
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector('[autofocus]') || dlg.querySelector(
      'input:not([disabled]), select:not([disabled]), textarea:not([disabled]), button:not([disabled])');
    first?.focus();
  });
}

/** Asks to confirm an action; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel, danger }) {
  return modal({
    title,
    build: (close) => h('div', {},
      ...(Array.isArray(message) ? message : [message]).map((m) => (m instanceof Node ? m : h('p', {}, m))),
      h('div', { class: 'dialog-buttons' },
        h('button', { type: 'button', class: danger ? 'primary danger' : 'primary', onclick: () => close(true) }, confirmLabel || 'OK'),
        h('button', { type: 'button', onclick: () => close(false), autofocus: true }, 'Cancel'))),
  }).then((v) => v === true);
}

// ---- ribbon ---------------------------------------------------------------------------------

/**
 * A ribbon of commands. Each action: {label, icon, run, enabled(): bool | string}. A string
 * from `enabled` is why it is disabled: shown as the tooltip and read by screen readers.
 */
export function ribbon(label, actions) {
  const bar = h('div', { class: 'ribbon', role: 'toolbar', 'aria-label': label });
  const buttons = actions.map((a) => {
    const why = h('span', { class: 'sr-only', id: uid('why') });
    const b = h('button', { type: 'button', class: 'ribbon-button', dataset: { action: a.id || a.label } },
      h('span', { class: 'icon', 'aria-hidden': 'true' }, a.icon || '•'), h('span', { class: 'label' }, a.label), why);
    b.addEventListener('click', () => { if (!b.disabled) a.run(); });
    bar.append(b);
    return { a, b, why };
  });
  bar.refresh = () => {
    for (const { a, b, why } of buttons) {
      const state = a.enabled ? a.enabled() : true;
      const on = state === true;
      b.disabled = !on;
      b.title = on ? (a.title || a.label) : String(state || 'Not available');
      why.textContent = on ? '' : ` (${b.title})`;
    }
  };
  // Arrow keys move between the ribbon's buttons, as in a desktop toolbar; Tab leaves it.
  bar.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const all = [...bar.querySelectorAll('button:not([disabled])')];
    const i = all.indexOf(document.activeElement);
    if (i < 0) return;
    const next = all[(i + (e.key === 'ArrowRight' ? 1 : all.length - 1)) % all.length];
    next.focus();
    e.preventDefault();
  });
  bar.refresh();
  return bar;
}

// ---- tables ---------------------------------------------------------------------------------

/**
 * A table. columns: [{title, value(row) -> node|text, className}]. With `select`, each row gets
 * a radio button (keyboard users select with it) and clicking a row selects it too.
 */
export function table({ caption, columns, rows, select, selectedKey, key, empty, name }) {
  const groupName = name || uid('sel');
  const thead = h('thead', {}, h('tr', {},
    select ? h('th', { scope: 'col', class: 'select-col' }, h('span', { class: 'sr-only' }, 'Select')) : null,
    columns.map((c) => h('th', { scope: 'col', class: c.className }, c.title))));
  const tbody = h('tbody');
  if (!rows.length) {
    tbody.append(h('tr', {}, h('td', { colspan: columns.length + (select ? 1 : 0), class: 'empty' }, empty || 'No items.')));
  }
  for (const row of rows) {
    const k = key ? key(row) : undefined;
    const tr = h('tr', { dataset: { key: k ?? '' } });
    if (select) {
      const label = select.label ? select.label(row) : `Select ${k}`;
      const radio = h('input', { type: 'radio', name: groupName, 'aria-label': label, value: String(k) });
      if (selectedKey !== undefined && String(selectedKey) === String(k)) {
        radio.checked = true;
        tr.classList.add('selected');
      }
      radio.addEventListener('change', () => {
        tbody.querySelectorAll('tr.selected').forEach((r) => r.classList.remove('selected'));
        tr.classList.add('selected');
        select.onSelect(row);
      });
      tr.addEventListener('click', (e) => {
        if (e.target.closest('a, button, input, select, textarea, summary')) return;
        radio.checked = true;
        radio.dispatchEvent(new Event('change'));
      });
      tr.append(h('td', { class: 'select-col' }, radio));
    }
    for (const c of columns) {
      tr.append(h('td', { class: c.className }, c.value(row)));
    }
    tbody.append(tr);
  }
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'grid' }, caption ? h('caption', {}, caption) : null, thead, tbody));
}

// ---- tabs -----------------------------------------------------------------------------------

/**
 * Tabs with the WAI-ARIA keyboard model (arrows, Home, End). tabs: [{id, label, render(panel)}].
 * `onChange(id)` lets the page keep the tab in the address.
 */
export function tabs(label, list, selectedId, onChange) {
  const tablist = h('div', { role: 'tablist', 'aria-label': label, class: 'tabs' });
  const panel = h('div', { role: 'tabpanel', class: 'tab-panel', tabindex: '0' });
  const buttons = list.map((t) => h('button', {
    type: 'button', role: 'tab', id: `tab-${t.id}`, 'aria-controls': 'tab-panel', dataset: { tab: t.id },
  }, t.label));
  panel.id = 'tab-panel';
  const choose = (id, focus) => {
    const t = list.find((x) => x.id === id) || list[0];
    buttons.forEach((b, i) => {
      const on = list[i] === t;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    });
    panel.setAttribute('aria-labelledby', `tab-${t.id}`);
    clear(panel);
    t.render(panel);
    if (onChange) onChange(t.id);
  };
  buttons.forEach((b, i) => {
    b.addEventListener('click', () => choose(list[i].id));
    b.addEventListener('keydown', (e) => {
      const n = list.length;
      const j = { ArrowRight: (i + 1) % n, ArrowLeft: (i + n - 1) % n, Home: 0, End: n - 1 }[e.key];
      if (j === undefined) return;
      e.preventDefault();
      choose(list[j].id, true);
    });
    tablist.append(b);
  });
  const wrap = h('div', { class: 'tabset' }, tablist, panel);
  choose(selectedId);
  wrap.choose = choose;
  return wrap;
}

/** A labelled form field. */
export function field(label, control, help) {
  const id = control.id || uid('f');
  control.id = id;
  const helpId = help ? uid('help') : null;
  if (helpId) control.setAttribute('aria-describedby', helpId);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    help ? h('p', { class: 'help', id: helpId }, help) : null);
}

/** A progress bar with its value spelled out. */
export function progressBar(fraction, label) {
  const pct = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-label': label },
    h('div', { class: 'progress-fill', style: { width: `${pct}%` } }), h('span', { class: 'progress-text' }, `${pct}%`));
}
