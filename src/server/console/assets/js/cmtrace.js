// A log viewer in the manner of CMTrace: one row per entry, rows coloured by severity (yellow
// warnings, red errors), a severity filter and a text search that highlights matching rows.

import { h, clear, uid } from './ui.js';

const LINE = /<!\[LOG\[([\s\S]*?)\]LOG\]!><time="([^"]*)" date="([^"]*)" component="([^"]*)"[^>]*?type="(\d)"[^>]*?thread="([^"]*)"[^>]*?>/g;
const SEVERITY = { 1: 'Information', 2: 'Warning', 3: 'Error' };

/** Entries from CMTrace text, or from the server's parsed lines ({severity, time, component, message}). */
export function entries(doc) {
  if (typeof doc === 'string') {
    const out = [];
    for (const mt of doc.matchAll(LINE)) {
      out.push({ message: mt[1], time: mt[2].replace(/[+-]\d+$/, ''), date: mt[3], component: mt[4], severity: Number(mt[5]), thread: mt[6] });
    }
    if (!out.length && doc.trim()) {
      for (const line of doc.split('\n')) if (line.trim()) out.push({ message: line, severity: 1 });
    }
    return out;
  }
  const rows = Array.isArray(doc) ? doc : (doc && (doc.lines || doc.entries || doc.items)) || [];
  return rows.map((r) => ({
    message: r.message ?? r.text ?? '',
    // CMTrace's time carries the bias in minutes (`+000`); the table shows the wall time.
    time: String(r.time ?? '').replace(/[+-]\d+$/, ''),
    date: r.date ?? '',
    component: r.component ?? '',
    thread: r.thread ?? '',
    severity: severityNumber(r.severity ?? r.type ?? r.level),
  }));
}

function severityNumber(s) {
  if (typeof s === 'number') return s;
  const v = String(s || '').toLowerCase();
  if (v.startsWith('err') || v === '3') return 3;
  if (v.startsWith('warn') || v === '2') return 2;
  return 1;
}

export function logViewer(doc) {
  const all = entries(doc);
  const search = h('input', { type: 'search', id: uid('log-search'), placeholder: 'Find in the log' });
  const level = h('select', { id: uid('log-level') },
    h('option', { value: '1' }, 'All entries'),
    h('option', { value: '2' }, 'Warnings and errors'),
    h('option', { value: '3' }, 'Errors only'));
  const onlyMatches = h('input', { type: 'checkbox', id: uid('log-only') });
  const counts = h('p', { class: 'count', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const draw = () => {
    const min = Number(level.value);
    const needle = search.value.trim().toLowerCase();
    const rows = [];
    let matched = 0;
    for (const e of all) {
      if (e.severity < min) continue;
      const hit = needle && `${e.message} ${e.component}`.toLowerCase().includes(needle);
      if (hit) matched += 1;
      if (onlyMatches.checked && needle && !hit) continue;
      rows.push(h('tr', { class: `sev-${e.severity}${hit ? ' match' : ''}` },
        h('td', { class: 'log-message' }, e.message),
        h('td', {}, e.component),
        h('td', { class: 'nowrap' }, [e.date, e.time].filter(Boolean).join(' ')),
        h('td', { class: 'num' }, e.thread),
        h('td', { class: 'nowrap' }, SEVERITY[e.severity] || e.severity)));
    }
    clear(tbody, rows.length ? rows : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No entry matches.')));
    const errors = all.filter((e) => e.severity === 3).length;
    const warnings = all.filter((e) => e.severity === 2).length;
    counts.textContent = `${rows.length} of ${all.length} entries shown · ${errors} error(s), ${warnings} warning(s)${needle ? ` · ${matched} match(es) for “${search.value.trim()}”` : ''}`;
  };
  search.addEventListener('input', draw);
  level.addEventListener('change', draw);
  onlyMatches.addEventListener('change', draw);
  const view = h('div', { class: 'cmtrace' },
    h('div', { class: 'filters' },
      h('div', { class: 'field inline' }, h('label', { for: search.id }, 'Find'), search),
      h('div', { class: 'field inline' }, h('label', { for: level.id }, 'Severity'), level),
      h('label', { class: 'check', for: onlyMatches.id }, onlyMatches, 'Show only matching entries')),
    counts,
    h('div', { class: 'table-wrap log-wrap' }, h('table', { class: 'grid log' },
      h('caption', { class: 'sr-only' }, 'Log entries'),
      h('thead', {}, h('tr', {}, ['Log Text', 'Component', 'Date/Time', 'Thread', 'Severity'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)));
  draw();
  return view;
}
