// Audit Log: who changed what through the site server, newest first.

import { get, list } from '../api.js';
import { h, clear, table, when, errorPanel, statusBadge } from '../ui.js';

export function render(main) {
  const area = h('div', { id: 'audit-list', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', id: 'audit-search', placeholder: 'Account, action or target' });
  let rows = [];
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const shown = needle ? rows.filter((r) => JSON.stringify(r).toLowerCase().includes(needle)) : rows;
    clear(area, table({
      caption: 'Changes made through the site server',
      rows: shown,
      empty: 'No change recorded.',
      columns: [
        { title: 'When', value: (r) => when(r.at ?? r.time ?? r.created_at ?? r.when) },
        { title: 'Account', value: (r) => r.who ?? r.user ?? r.account ?? '' },
        { title: 'Action', value: (r) => r.action ?? r.what ?? r.operation ?? '' },
        { title: 'Target', value: (r) => r.target ?? r.object ?? '' },
        { title: 'Result', value: (r) => {
          const res = r.result ?? r.outcome ?? r.status;
          if (res === undefined || res === null) return '';
          const ok = res === true || /^(ok|success|successful|succeeded|0)$/i.test(String(res));
          return statusBadge(ok ? 'Successful' : (res === false ? 'Failed' : String(res)));
        } },
        { title: 'Details', value: (r) => r.detail ?? r.details ?? r.message ?? r.error ?? '' },
      ],
    }));
  };
  search.addEventListener('input', draw);
  clear(main, h('h1', { tabindex: '-1' }, 'Audit Log'),
    h('div', { class: 'filters' }, h('div', { class: 'field inline' }, h('label', { for: 'audit-search' }, 'Find'), search)), area);
  get('/audit').then((doc) => { rows = list(doc, 'entries', 'audit'); draw(); })
    .catch((e) => clear(area, errorPanel(e, 'Cannot read the audit log')));
}
