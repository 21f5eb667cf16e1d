// Image properties: Update Status, Installed Updates per index, the read-only Servicing view,
// History of runs, What Changed, Distribution and the run's Log, with the image ribbon on top.

import { get, del, list, query } from '../api.js';
import { h, clear, ribbon, table, tabs, bytes, when, seconds, duration, statusBadge, errorPanel, confirmDialog, showError, showNotice, KIND_NAMES } from '../ui.js';
import { onEvent, canChange } from '../session.js';
import * as m from '../model.js';
import { canSchedule, canCancel, canRepair, scheduleUpdates, cancelScheduledUpdates, leaveProvisioningMode } from '../actions.js';
import { logViewer } from '../cmtrace.js';

const TABS = [
  { id: 'update-status', label: 'Update Status' },
  { id: 'installed', label: 'Installed Updates' },
  { id: 'servicing', label: 'Servicing' },
  { id: 'history', label: 'History' },
  { id: 'changes', label: 'What Changed' },
  { id: 'distribution', label: 'Distribution' },
  { id: 'log', label: 'Log' },
];

export function render(main, { id, tab }) {
  let view = null;
  let chosenRun = null;
  let currentTab = tab || 'update-status';
  const key = encodeURIComponent(id);
  const header = h('div', { class: 'details-header' });
  const body = h('div', { class: 'details-body', 'aria-busy': 'true' });

  const bar = ribbon('Image', [
    { id: 'schedule', label: 'Schedule Updates', icon: '◷', enabled: () => canSchedule(view), run: () => scheduleUpdates(view, refresh) },
    { id: 'cancel', label: 'Cancel Scheduled Updates', icon: '✕', enabled: () => canCancel(view), run: () => cancelScheduledUpdates(view, refresh) },
    { id: 'repair', label: 'Leave Provisioning Mode', icon: '⚠', enabled: () => canRepair(view), run: () => leaveProvisioningMode(view, refresh) },
    { id: 'refresh', label: 'Refresh', icon: '↻', run: () => refresh() },
  ]);

  async function refresh() {
    try {
      view = await get(`/images/${key}`);
    } catch (e) {
      clear(body, errorPanel(e, `Cannot show image ${id}`));
      body.setAttribute('aria-busy', 'false');
      return;
    }
    drawHeader();
    drawTabs();
    body.setAttribute('aria-busy', 'false');
    bar.refresh();
  }

  function drawHeader() {
    const img = m.imageOf(view);
    crumb.textContent = m.imageName(view);
    const pm = m.provisioning(view);
    clear(header,
      h('h1', { tabindex: '-1' }, m.imageName(view)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Scheduled Updates Status'), h('dd', { id: 'image-status' }, statusBadge(m.status(view))),
        h('dt', {}, 'Scheduled Updates Date'), h('dd', {}, when(m.scheduledDate(view)) || 'None'),
        h('dt', {}, 'Provisioning mode'), h('dd', { id: 'image-provisioning' }, pm ? `Since ${when(pm.since)}${pm.run_id ? `, run ${pm.run_id}` : ''}${pm.owner_host ? ` (${pm.owner_host})` : ''}` : 'No'),
        h('dt', {}, 'Kind'), h('dd', {}, KIND_NAMES[img.kind] || img.kind || ''),
        h('dt', {}, 'Size'), h('dd', {}, bytes(img.size_bytes)),
        h('dt', {}, 'Last serviced'), h('dd', {}, when(img.serviced_at) || 'Never'),
        h('dt', {}, 'Image path'), h('dd', { class: 'path' }, img.path || '')));
  }

  let tabset = null;
  function drawTabs() {
    const render = {
      'update-status': updateStatus,
      installed: installedUpdates,
      servicing,
      history: runHistory,
      changes: whatChanged,
      distribution,
      log: runLog,
    };
    const list = TABS.map((t) => ({ ...t, render: (panel) => render[t.id](panel) }));
    const keep = document.activeElement && tabset && tabset.contains(document.activeElement);
    tabset = tabs('Image properties', list, currentTab, (t) => {
      currentTab = t;
      const want = `#/images/${key}/${t}`;
      if (location.hash !== want) history.replaceState(null, '', want);
    });
    clear(body, tabset);
    if (keep) tabset.querySelector('[aria-selected=true]')?.focus();
  }

  const runs = () => list(view.runs);

  function updateStatus(panel) {
    const last = runs()[0];
    const results = list(view.update_status);
    panel.append(
      h('p', {}, last ? `The last run (${last.id}) ended ${last.status}${last.finished_at ? ` at ${when(last.finished_at)}` : ''}.` : 'No servicing run yet.'),
      table({
        caption: 'Update Status',
        rows: results,
        empty: 'No update status: the image has not been serviced.',
        columns: [
          { title: 'Update', value: (r) => r.update },
          { title: 'Index', className: 'num', value: (r) => r.index },
          { title: 'Result', value: (r) => statusBadge(r.applied ? 'Successful' : 'Failed') },
          { title: 'Error', value: (r) => r.error || '' },
        ],
      }));
  }

  function installedUpdates(panel) {
    const indexes = list(view.indexes);
    const byIndex = new Map(list(view.installed_updates).map((x) => [x.index, list(x.updates)]));
    for (const ix of indexes) {
      const installed = byIndex.get(ix.index) || list(ix.installed);
      panel.append(h('section', { class: 'index-section', dataset: { index: ix.index } },
        h('h2', {}, `Index ${ix.index}: ${ix.name || ''}`),
        h('p', { class: 'meta' }, [m.archName(ix.architecture), ix.version ? `version ${ix.version}` : null, ix.edition].filter(Boolean).join(' · ')),
        table({
          caption: `Installed Updates — index ${ix.index}`,
          rows: installed,
          empty: 'No installed updates recorded.',
          columns: [
            { title: 'Update', value: (u) => u.id },
            { title: 'Source', value: (u) => ({ 'windows-package': 'Windows package (at import)', servicing: 'Servicing run', 'import': 'At import', wim_xml: 'Image XML' }[u.source] || u.source || '') },
            { title: 'Run', className: 'num', value: (u) => u.run_id ?? '' },
            { title: 'Installed', value: (u) => when(u.installed_at) },
          ],
        })));
    }
    if (!indexes.length) panel.append(h('p', { class: 'empty' }, 'No index recorded.'));
  }

  function servicing(panel) {
    const s = view.servicing || {};
    const sch = s.schedule;
    const remove = h('button', { type: 'button', id: 'remove-schedule' }, 'Remove Schedule');
    const allowed = canChange();
    if (!sch) remove.disabled = true;
    else if (allowed !== true) { remove.disabled = true; remove.title = allowed; }
    if (m.inProgress(view)) { remove.disabled = true; remove.title = 'The schedule cannot change while the image is being serviced'; }
    remove.addEventListener('click', async () => {
      const ok = await confirmDialog({ title: 'Remove Schedule', message: `Remove the schedule of ${m.imageName(view)}? Nothing is applied until you schedule updates again.`, confirmLabel: 'Remove Schedule' });
      if (!ok) return;
      try {
        await del(`/images/${key}/schedule`);
        showNotice('The schedule was removed.');
      } catch (e) {
        showError(e, 'Remove Schedule');
      }
      refresh();
    });
    panel.append(h('p', { class: 'readonly-note' }, 'This view is read-only: use Schedule Updates to change it.'),
      h('dl', { class: 'facts', id: 'servicing-view' },
        h('dt', {}, 'Schedule'), h('dd', {}, sch ? m.describeTiming(sch.timing) : 'None'),
        h('dt', {}, 'Next run'), h('dd', {}, sch ? when(sch.next_run_at) || 'Never again' : ''),
        h('dt', {}, 'Updates scheduled'), h('dd', {}, sch ? m.describeSelection(sch.updates) : ''),
        h('dt', {}, 'Will apply'), h('dd', {}, s.will_apply && s.will_apply.length ? s.will_apply.join(', ') : (sch ? 'Nothing' : '')),
        h('dt', {}, 'Continue on error'), h('dd', {}, sch ? (sch.continue_on_error ? 'Yes' : 'No') : ''),
        h('dt', {}, 'Update distribution points with the image'), h('dd', {}, sch ? (sch.update_dps ? 'Yes' : 'No') : '')),
      s.plan_error ? h('div', { class: 'error-panel', role: 'alert' }, h('strong', {}, 'The schedule cannot run as it is'), h('p', { class: 'detail' }, s.plan_error)) : null,
      h('div', { class: 'buttons' }, remove));
  }

  function runHistory(panel) {
    panel.append(table({
      caption: 'History of servicing runs',
      rows: runs(),
      empty: 'No servicing run yet.',
      columns: [
        { title: 'Run', className: 'num', value: (r) => r.id },
        { title: 'Status', value: (r) => statusBadge(r.status) },
        { title: 'Started', value: (r) => when(r.started_at) },
        { title: 'Duration', className: 'num', value: (r) => seconds(duration(r.started_at, r.finished_at)) },
        { title: 'Size before', className: 'num', value: (r) => bytes(r.size_before) },
        { title: 'Size after', className: 'num', value: (r) => bytes(r.size_after) },
        { title: 'Updates', value: (r) => runResults(r) },
        { title: '', value: (r) => h('span', { class: 'links' },
          h('button', { type: 'button', class: 'link-button', onclick: () => { chosenRun = r.id; tabset.choose('changes', true); } }, 'What changed'),
          h('button', { type: 'button', class: 'link-button', onclick: () => { chosenRun = r.id; tabset.choose('log', true); } }, 'Log')) },
      ],
    }));
  }

  function runResults(r) {
    const ups = list(r.updates);
    const failed = ups.filter((u) => !u.applied).length;
    return h('details', {}, h('summary', {}, `${ups.length} result(s)${failed ? `, ${failed} failed` : ''}${r.error ? ' — error' : ''}`),
      r.error ? h('p', { class: 'error-text' }, r.error) : null,
      h('ul', { class: 'results' }, ups.map((u) => h('li', { class: u.applied ? 'ok' : 'bad' },
        `${u.update} on index ${u.index}: ${u.applied ? 'applied' : `failed${u.error ? ` — ${u.error}` : ''}`}`))));
  }

  function runPicker(onPick, what) {
    const rs = runs();
    if (!rs.length) return null;
    if (chosenRun === null || !rs.some((r) => r.id === chosenRun)) chosenRun = rs[0].id;
    const sel = h('select', { id: `${what}-run` }, rs.map((r) => h('option', { value: String(r.id), selected: r.id === chosenRun }, `Run ${r.id} — ${r.status}, ${when(r.started_at)}`)));
    sel.addEventListener('change', () => { chosenRun = Number(sel.value); onPick(chosenRun); });
    return h('div', { class: 'field inline' }, h('label', { for: sel.id }, 'Run'), sel);
  }

  function whatChanged(panel) {
    const out = h('div', { 'aria-live': 'polite' });
    const load = async (run) => {
      clear(out, h('p', {}, 'Loading…'));
      try {
        drawChanges(out, await get(`/images/${key}/changes${query({ run })}`));
      } catch (e) {
        clear(out, errorPanel(e, 'Cannot show what the run changed'));
      }
    };
    const picker = runPicker(load, 'changes');
    if (!picker) {
      panel.append(h('p', { class: 'empty' }, 'No servicing run yet.'));
      return;
    }
    panel.append(picker, out);
    load(chosenRun);
  }

  function distribution(panel) {
    panel.append(table({
      caption: 'Distribution Points: status per image version',
      rows: list(view.distribution),
      empty: 'The image has not been distributed to any distribution point.',
      columns: [
        { title: 'Distribution point', value: (d) => h('a', { href: `#/dps/${encodeURIComponent(d.dp_id)}`, title: d.dp }, d.server) },
        { title: 'Version (SHA-256)', value: (d) => h('span', { class: 'hash', title: d.sha256 }, `${String(d.sha256 || '').slice(0, 12)}…`) },
        { title: 'Current', value: (d) => (d.current ? 'Yes' : 'No') },
        { title: 'Status', value: (d) => statusBadge(d.status) },
        { title: 'Size', className: 'num', value: (d) => bytes(d.size_bytes) },
        { title: 'Updated', value: (d) => when(d.updated_at) },
        { title: 'Validated', value: (d) => when(d.validated_at) },
        { title: 'Error', value: (d) => d.error || '' },
      ],
    }));
  }

  function runLog(panel) {
    const out = h('div');
    const load = async (run) => {
      clear(out, h('p', {}, 'Loading…'));
      try {
        clear(out, logViewer(await get(`/images/${key}/runs/${encodeURIComponent(run)}/log`)));
      } catch (e) {
        clear(out, errorPanel(e, `Cannot read the log of run ${run}`));
      }
    };
    const picker = runPicker(load, 'log');
    if (!picker) {
      panel.append(h('p', { class: 'empty' }, 'No servicing run yet.'));
      return;
    }
    panel.append(picker, out);
    load(chosenRun);
  }

  const crumb = h('span', {}, id);
  clear(main, h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/images' }, 'Operating System Images'), ' › ', crumb), bar, header, body);
  refresh();

  // Redraw on run events for this image, but not while the user reads the log or a change
  // list: only the header and ribbon then, so the tab keeps its place.
  let pending = null;
  const off = onEvent(() => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      const was = view && m.status(view);
      try {
        view = await get(`/images/${key}`);
      } catch {
        return;
      }
      drawHeader();
      bar.refresh();
      if (m.status(view) !== was && !['log', 'changes'].includes(currentTab)) drawTabs();
    }, 500);
  });
  const poll = setInterval(async () => {
    if (!view || !m.inProgress(view)) return;
    const was = m.status(view);
    try {
      view = await get(`/images/${key}`);
    } catch {
      return;
    }
    drawHeader();
    bar.refresh();
    if (m.status(view) !== was) drawTabs();
  }, 2000);
  return () => { off(); clearInterval(poll); if (pending) clearTimeout(pending); };
}

/** The What Changed view: per index, totals per kind, then each change with its sizes. */
function drawChanges(out, doc) {
  const indexes = list(doc && (doc.indexes || doc.changes), 'indexes');
  clear(out);
  if (doc && doc.run_id) {
    out.append(h('p', { class: 'meta' }, `Run ${doc.run_id}${doc.status ? ` — ${doc.status}` : ''}${doc.finished_at ? `, ended ${when(doc.finished_at)}` : ''}`));
  }
  if (!indexes.length) {
    out.append(h('p', { class: 'empty' }, 'This run changed no file (or it was canceled or failed before writing the image).'));
    return;
  }
  for (const ix of indexes) {
    const changes = list(ix.changes || ix.files, 'changes');
    const totals = ix.totals
      ? Object.entries(ix.totals).map(([kind, t]) => ({ kind, ...(typeof t === 'object' ? t : { count: t }) }))
      : summarize(changes);
    out.append(h('section', { class: 'index-section', dataset: { index: ix.index } },
      h('h2', {}, `Index ${ix.index}${ix.name ? `: ${ix.name}` : ''}`),
      h('ul', { class: 'totals' }, totals.filter((t) => t.count).map((t) => h('li', { class: `kind-${t.kind}` },
        `${t.count} ${KIND_WORDS[t.kind] || t.kind}`, ` (${totalBytes(t)})`))),
      table({
        caption: `Changes in index ${ix.index}`,
        rows: changes,
        empty: 'No change in this index.',
        columns: [
          { title: 'Change', value: (c) => h('span', { class: `change-kind kind-${c.kind}` }, KIND_WORDS[c.kind] || c.kind) },
          { title: 'Path', className: 'path', value: changedPath },
          { title: 'Size before', className: 'num', value: (c) => exactBytes(c.size_before) },
          { title: 'Size after', className: 'num', value: (c) => exactBytes(c.size_after) },
          { title: 'Update', value: (c) => c.update || '' },
        ],
      })));
  }
}

/** A changed path as the engine records it (forward slashes, a folder ending in `/`); a
 *  rename shows where it came from, a registry change which hive it edited. */
function changedPath(c) {
  const dir = c.is_dir ? '/' : '';
  if (c.old_path) return `${c.old_path}${dir} → ${c.path}${dir}`;
  if (c.hive) return `${c.path} (${c.hive} hive)`;
  return `${c.path}${dir}`;
}

/** A size in words, with the exact byte count on hover (and for tests) since a changed file
 *  of a few bytes more reads the same in KB. */
function exactBytes(n) {
  if (n === undefined || n === null) return '';
  return h('span', { title: `${n} bytes`, dataset: { bytes: String(n) } }, bytes(n));
}

const KIND_WORDS = { added: 'added', replaced: 'replaced', deleted: 'deleted', renamed: 'renamed', registry: 'registry hive(s) edited' };

function totalBytes(t) {
  if (t.bytes_before === undefined && t.bytes_after === undefined) return bytes(t.bytes || 0);
  if (t.kind === 'added') return `+${bytes(t.bytes_after)}`;
  if (t.kind === 'deleted') return `−${bytes(t.bytes_before)}`;
  // A rename moves data without changing it: its size is the one it has now.
  if (t.kind === 'renamed') return bytes(t.bytes_after);
  return `${bytes(t.bytes_before)} → ${bytes(t.bytes_after)}`;
}

function summarize(changes) {
  const by = new Map();
  for (const c of changes) {
    const t = by.get(c.kind) || { kind: c.kind, count: 0, bytes_before: 0, bytes_after: 0 };
    t.count += 1;
    t.bytes_before += Number(c.size_before ?? 0);
    t.bytes_after += Number(c.size_after ?? 0);
    by.set(c.kind, t);
  }
  return [...by.values()];
}
