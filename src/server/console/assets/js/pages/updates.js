// Content Library: the updates on the site server, with the filter and System architecture
// choice, and import by upload.

import { get, post, list, query } from '../api.js';
import { h, clear, table, field, bytes, when, errorPanel, showNotice, showError } from '../ui.js';
import { canChange } from '../session.js';
import * as m from '../model.js';

export function render(main) {
  let filter = '';
  let arch = 'all';
  const listArea = h('div', { id: 'update-list', 'aria-live': 'polite' });
  const count = h('p', { class: 'count' });

  async function refresh() {
    listArea.setAttribute('aria-busy', 'true');
    try {
      const rows = list(await get(`/updates${query({ filter: filter.trim(), arch })}`), 'updates');
      count.textContent = `${rows.length} update(s)`;
      clear(listArea, table({
        caption: 'Updates in the content library',
        rows,
        empty: 'No update matches.',
        columns: [
          { title: 'Article ID', value: (u) => m.updateId(u) },
          { title: 'Title', value: (u) => m.updateTitle(u) },
          { title: 'Classification', value: (u) => u.classification || '' },
          { title: 'Architecture', value: (u) => m.archName(u.architecture) },
          { title: 'Kind', value: (u) => ({ file: 'File-level', cbs: 'Windows package' }[u.kind] || u.kind || '') },
          { title: 'Size', className: 'num', value: (u) => bytes(u.size_bytes) },
          { title: 'Supersedes', value: (u) => (u.supersedes || []).join(', ') },
          { title: 'Requires', value: (u) => (u.requires || []).join(', ') },
          { title: 'Imported', value: (u) => when(u.imported_at) },
        ],
      }));
    } catch (e) {
      clear(listArea, errorPanel(e, 'Cannot list the content library'));
    }
    listArea.setAttribute('aria-busy', 'false');
  }

  const filterInput = h('input', { type: 'search', placeholder: 'KB number, title, classification…' });
  let timer = null;
  filterInput.addEventListener('input', () => { filter = filterInput.value; clearTimeout(timer); timer = setTimeout(refresh, 250); });
  const archSelect = h('select', {}, [['all', 'All'], ['x86', 'X86'], ['x64', 'X64'], ['arm64', 'ARM64']].map(([v, t]) => h('option', { value: v }, t)));
  archSelect.addEventListener('change', () => { arch = archSelect.value; refresh(); });

  // Import by upload: each chosen file is sent as a request body of its own (the server
  // stores it in the site and runs the same validation as `ois update import`).
  const allowed = canChange();
  const files = h('input', { type: 'file', multiple: true, accept: '.cab,.msu,.zip', id: 'import-files', disabled: allowed !== true });
  const importButton = h('button', { type: 'submit', class: 'primary', id: 'import-button', disabled: allowed !== true, title: allowed === true ? null : allowed }, 'Import');
  const importStatus = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'import-form', id: 'import-form' },
    h('h2', {}, 'Import updates'),
    allowed === true ? null : h('p', { class: 'readonly-note' }, allowed),
    field('Update packages', files, 'CAB files holding an update.toml, or Windows .msu/.cab files. Every file is validated before any is stored.'),
    h('div', { class: 'buttons' }, importButton), importStatus);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!files.files.length) {
      clear(importStatus, h('p', { class: 'error-text', role: 'alert' }, 'Choose at least one file to import.'));
      return;
    }
    importButton.disabled = true;
    const ids = [];
    try {
      for (const f of files.files) {
        clear(importStatus, h('p', {}, `Importing ${f.name}…`));
        const out = await post(`/updates${query({ name: f.name })}`, f);
        ids.push(...list(out, 'imported', 'updates').map((u) => (typeof u === 'string' ? u : m.updateId(u))).filter(Boolean));
      }
      clear(importStatus, h('p', { class: 'notice', role: 'status' }, ids.length ? `Imported ${ids.join(', ')}.` : 'Import finished.'));
      showNotice(ids.length ? `Imported ${ids.join(', ')}.` : 'Import finished.');
      files.value = '';
      refresh();
    } catch (err) {
      clear(importStatus);
      showError(err, 'Import refused');
    }
    importButton.disabled = false;
  });

  clear(main,
    h('h1', { tabindex: '-1' }, 'Content Library'),
    h('div', { class: 'filters' }, field('Filter', filterInput, 'Matches text in the update metadata.'), field('System architecture', archSelect)),
    count, listArea, form);
  refresh();
}
