// Distribution Points: the list with the Maintenance mode column, the ribbon (Enable / Disable
// maintenance mode, Validate content), and the selected DP's properties — read-only while it is
// in maintenance mode, as the site refuses to change them then — with its distribution status.

import { get, post, put, patch, list } from '../api.js';
import { h, clear, ribbon, table, field, bytes, when, statusBadge, errorPanel, confirmDialog, showError, showNotice } from '../ui.js';
import { canChange, onEvent } from '../session.js';
import * as m from '../model.js';

export function render(main, { id }) {
  let rows = [];
  let selected = id ?? null;
  let detail = null;
  const selectedRow = () => rows.find((r) => m.dpId(r) === String(selected)) || null;
  const listArea = h('div', { id: 'dp-list', 'aria-live': 'polite' });
  const props = h('section', { id: 'dp-properties', class: 'properties', 'aria-label': 'Distribution point properties' });

  const need = (pred, why) => () => {
    const c = canChange();
    if (c !== true) return c;
    const dp = selectedRow();
    if (!dp) return 'Select a distribution point first';
    return pred(dp) ? true : why;
  };

  const bar = ribbon('Distribution Point', [
    { id: 'enable-maintenance', label: 'Enable Maintenance Mode', icon: '⚙', enabled: need((dp) => !m.inMaintenance(dp), 'The distribution point is already in maintenance mode'), run: () => setMode(1) },
    { id: 'disable-maintenance', label: 'Disable Maintenance Mode', icon: '▶', enabled: need((dp) => m.inMaintenance(dp), 'The distribution point is not in maintenance mode'), run: () => setMode(0) },
    { id: 'validate', label: 'Validate Content', icon: '✔', enabled: need(() => true), run: () => validate() },
    { id: 'refresh', label: 'Refresh', icon: '↻', run: () => refresh() },
  ]);

  async function refresh() {
    try {
      rows = list(await get('/dps'), 'dps', 'distribution_points');
    } catch (e) {
      clear(listArea, errorPanel(e, 'Cannot list the distribution points'));
      return;
    }
    if (selectedRow()) selected = m.dpId(selectedRow());
    drawList();
    if (selectedRow()) await loadDetail();
    else clear(props);
    bar.refresh();
  }

  function drawList() {
    clear(listArea, table({
      caption: 'Distribution Points',
      name: 'dp',
      rows,
      key: (r) => m.dpId(r),
      selectedKey: selected ?? undefined,
      select: { label: (r) => `Select ${m.dpName(r)}`, onSelect: (r) => { selected = m.dpId(r); bar.refresh(); loadDetail(); } },
      empty: 'No distribution point. Add one with `ois dp add NALPATH --target PATH|URL`.',
      columns: [
        { title: 'Name', value: (r) => r.server },
        { title: 'Maintenance mode', className: 'maintenance-col', value: (r) => (m.inMaintenance(r) ? h('span', { class: 'badge warn' }, 'On') : 'Off') },
        { title: 'Description', value: (r) => r.description || '' },
        { title: 'Boundary groups', value: (r) => (r.boundary_groups || []).join(', ') },
        { title: 'Site', value: (r) => r.site_code || '' },
        { title: 'NAL path', className: 'path', value: (r) => r.nal_path },
      ],
    }));
  }

  async function loadDetail() {
    const dp = selectedRow();
    if (!dp) return;
    try {
      detail = await get(`/dps/${encodeURIComponent(m.dpId(dp))}`);
    } catch (e) {
      clear(props, errorPanel(e, `Cannot show ${m.dpName(dp)}`));
      return;
    }
    drawProperties();
  }

  function drawProperties() {
    const dp = m.dpOf(detail);
    const maintenance = m.inMaintenance(dp);
    const allowed = canChange();
    const locked = maintenance || allowed !== true;
    const description = h('input', { type: 'text', name: 'description', value: dp.description || '', id: 'dp-description' });
    const target = h('input', { type: 'text', name: 'target', value: dp.target || '', id: 'dp-target', spellcheck: 'false' });
    const groups = h('input', { type: 'text', name: 'boundary_groups', value: (dp.boundary_groups || []).join(', '), id: 'dp-boundary-groups' });
    const settings = h('textarea', { name: 'settings', rows: '3', id: 'dp-settings', spellcheck: 'false' },
      (dp.settings || []).map((s) => (Array.isArray(s) ? `${s[0]}=${s[1]}` : `${s.key}=${s.value}`)).join('\n'));
    const save = h('button', { type: 'submit', class: 'primary', id: 'dp-save' }, 'Apply');
    const why = maintenance
      ? 'This distribution point is in maintenance mode: its properties are read-only. Disable maintenance mode to change them.'
      : (allowed !== true ? allowed : null);
    const fs = h('fieldset', { id: 'dp-fields', disabled: locked },
      h('legend', {}, 'General'),
      field('Description', description),
      field('Content target', target, 'Directory, share or http(s) URL where the site puts the content.'),
      field('Boundary groups', groups, 'Comma-separated.'),
      field('Settings', settings, 'One KEY=VALUE a line. Secrets are set with `ois dp set --secret` and never shown.'),
      h('div', { class: 'buttons' }, save));
    const form = h('form', { id: 'dp-form', dataset: { readonly: String(locked) } },
      h('h2', {}, `Properties — ${dp.server || dp.nal_path}`),
      why ? h('p', { class: 'readonly-note', id: 'dp-readonly-note', role: 'note' }, why) : null,
      h('dl', { class: 'facts' },
        h('dt', {}, 'NAL path'), h('dd', { class: 'path' }, dp.nal_path),
        h('dt', {}, 'Maintenance mode'), h('dd', { id: 'dp-maintenance' }, maintenance ? `On since ${when(dp.maintenance_since)}` : 'Off'),
        h('dt', {}, 'Secrets'), h('dd', {}, (dp.secrets || []).length ? `${dp.secrets.join(', ')} (values hidden)` : 'None'),
        h('dt', {}, 'Added'), h('dd', {}, when(dp.added_at))),
      fs);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const settingsObj = {};
      for (const line of settings.value.split('\n')) {
        const t = line.trim();
        if (!t) continue;
        const i = t.indexOf('=');
        if (i <= 0) {
          showError(new Error(`Setting "${t}" is not KEY=VALUE`), 'Properties not saved');
          return;
        }
        settingsObj[t.slice(0, i).trim()] = t.slice(i + 1).trim();
      }
      try {
        // Only what changed is sent: the server adds and removes boundary groups one by one.
        const before = dp.boundary_groups || [];
        const after = groups.value.split(',').map((g) => g.trim()).filter(Boolean);
        const body = {};
        if (description.value !== (dp.description || '')) body.description = description.value;
        if (target.value.trim() !== (dp.target || '')) body.target = target.value.trim();
        const add = after.filter((g) => !before.includes(g));
        const remove = before.filter((g) => !after.includes(g));
        if (add.length) body.add_boundary_groups = add;
        if (remove.length) body.remove_boundary_groups = remove;
        const oldSettings = Object.fromEntries((dp.settings || []).map((s) => (Array.isArray(s) ? s : [s.key, s.value])));
        if (JSON.stringify(settingsObj) !== JSON.stringify(oldSettings)) body.settings = settingsObj;
        await patch(`/dps/${encodeURIComponent(m.dpId(selectedRow() || dp))}`, body);
        showNotice(`Properties of ${dp.server} saved.`);
      } catch (err) {
        showError(err, 'Properties not saved');
      }
      refresh();
    });
    const dists = list(detail.distributions || detail.status, 'distributions');
    clear(props, form,
      h('h2', {}, 'Content status'),
      table({
        caption: 'Image versions on this distribution point',
        rows: dists,
        empty: 'No content on this distribution point.',
        columns: [
          { title: 'Image', value: (d) => (d.image_id ? h('a', { href: `#/images/${d.image_id}/distribution` }, d.image) : d.image) },
          { title: 'Version (SHA-256)', value: (d) => h('span', { class: 'hash', title: d.sha256 }, `${String(d.sha256 || '').slice(0, 12)}…`) },
          { title: 'Current', value: (d) => (d.current ? 'Yes' : 'No') },
          { title: 'Status', value: (d) => statusBadge(d.status) },
          { title: 'Size', className: 'num', value: (d) => bytes(d.size_bytes) },
          { title: 'Attempts', className: 'num', value: (d) => d.attempts ?? '' },
          { title: 'Validated', value: (d) => when(d.validated_at) },
          { title: 'Error', value: (d) => d.error || '' },
        ],
      }));
  }

  async function setMode(mode) {
    const dp = selectedRow();
    if (!dp) return;
    if (mode === 1) {
      const others = rows.filter((r) => r !== dp && m.inMaintenance(r)).length;
      const ok = await confirmDialog({
        title: 'Enable Maintenance Mode',
        message: [
          `Put ${m.dpName(dp)} in maintenance mode?`,
          'While in maintenance mode the site distributes no content to it, management points do not return its location to clients, and its properties are read-only. Scheduled tasks such as content validation still run.',
          others ? h('p', { class: 'warning' }, `${others} other distribution point(s) are already in maintenance mode. Be careful: depending on the boundary groups, clients may download for longer or not at all.`) : null,
        ].filter(Boolean),
        confirmLabel: 'Enable Maintenance Mode',
      });
      if (!ok) return;
    }
    try {
      const out = await put(`/dps/${encodeURIComponent(m.dpId(dp))}/maintenance-mode`, { mode });
      const rv = out && (out.return_value ?? out.ReturnValue);
      if (rv !== undefined && rv !== 0) {
        showError(new Error(`SetDPMaintenanceMode returned ${rv} (0x${(rv >>> 0).toString(16).toUpperCase()})`), 'Maintenance mode not changed');
      } else {
        showNotice(`Maintenance mode ${mode ? 'enabled' : 'disabled'} on ${m.dpName(dp)}.`);
      }
    } catch (e) {
      showError(e, 'Maintenance mode not changed');
    }
    refresh();
  }

  async function validate() {
    const dp = selectedRow();
    if (!dp) return;
    showNotice(`Validating the content on ${m.dpName(dp)}…`);
    try {
      const out = list(await post(`/dps/${encodeURIComponent(m.dpId(dp))}/validate`, {}), 'validations', 'results');
      const bad = out.filter((v) => v.ok === false);
      if (bad.length) {
        showError(new Error(bad.map((v) => `${v.image}: ${v.problem || 'content differs'}`).join('; ')), `Validation found ${bad.length} problem(s) on ${m.dpName(dp)}`);
      } else {
        showNotice(`Content validated on ${m.dpName(dp)}: ${out.length} version(s), all correct.`);
      }
    } catch (e) {
      showError(e, 'Validate Content');
    }
    refresh();
  }

  clear(main, h('h1', { tabindex: '-1' }, 'Distribution Points'), bar, listArea, props);
  refresh();
  const off = onEvent((ev) => {
    if (/transfer|distribution|dp/.test(String(ev.type))) refresh();
  });
  return off;
}
