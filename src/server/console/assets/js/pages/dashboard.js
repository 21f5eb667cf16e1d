// Dashboard: servicing duration and size per image over its last runs, runs by status, DPs by
// state, and what is running now with progress bars fed by the event stream.

import { get, list } from '../api.js';
import { h, clear, bytes, seconds, duration, errorPanel, progressBar, when } from '../ui.js';
import { onEvent } from '../session.js';
import { columnChart, barChart, toneOf } from '../charts.js';
import * as m from '../model.js';

const LAST_RUNS = 8;

/**
 * The dashboard's data. The server's /dashboard view when it answers; the same figures
 * computed from the image and DP views when it does not (an older server).
 */
async function load() {
  let doc = null;
  try {
    doc = await get('/dashboard');
  } catch (e) {
    if (![404, 405, 501].includes(e.status)) throw e;
  }
  if (doc && (doc.images || doc.runs_by_status)) return normalise(doc);
  const images = list(await get('/images'), 'images');
  const views = await Promise.all(images.map((i) => get(`/images/${encodeURIComponent(m.imageId(i))}`).catch(() => null)));
  const dps = list(await get('/dps').catch(() => []), 'dps');
  return normalise({
    images: views.filter(Boolean).map((v) => ({ id: m.imageId(v), name: m.imageName(v), runs: list(v.runs) })),
    dps,
    running: images.filter(m.inProgress).map((i) => ({ image: m.imageName(i), image_id: m.imageId(i) })),
  });
}

function byCount(obj) {
  if (!obj) return null;
  if (Array.isArray(obj)) return obj.map((x) => ({ label: x.status || x.state || x.label, value: x.count ?? x.value ?? 0 }));
  return Object.entries(obj).map(([label, value]) => ({ label, value: typeof value === 'object' ? value.count : value }));
}

function normalise(doc) {
  const images = list(doc.images).map((i) => {
    const runs = list(i.runs || i.last_runs).slice(0, LAST_RUNS).reverse();
    return {
      id: i.id ?? i.image_id,
      name: i.name ?? i.image,
      runs: runs.map((r) => ({
        id: r.id ?? r.run_id,
        status: r.status,
        seconds: r.seconds ?? r.duration_seconds ?? duration(r.started_at, r.finished_at),
        size: r.size_after ?? r.size_bytes ?? r.size_before,
        started_at: r.started_at,
      })),
    };
  });
  let runsByStatus = byCount(doc.runs_by_status);
  if (!runsByStatus) {
    const counts = {};
    for (const i of images) for (const r of i.runs) counts[r.status] = (counts[r.status] || 0) + 1;
    runsByStatus = byCount(counts);
  }
  let dpsByState = byCount(doc.dps_by_state);
  if (!dpsByState) {
    const dps = list(doc.dps);
    const on = dps.filter(m.inMaintenance).length;
    dpsByState = [{ label: 'Maintenance mode', value: on }, { label: 'Available', value: dps.length - on }];
  }
  return { images, runsByStatus, dpsByState, running: list(doc.running || doc.in_progress) };
}

export function render(main) {
  const charts = h('div', { class: 'dashboard', 'aria-busy': 'true' });
  const runningArea = h('section', { class: 'card running', id: 'running-now', 'aria-label': 'Running now' });
  // Progress from the event stream, by image (or run): {label, fraction, step}.
  const live = new Map();

  function drawRunning(base) {
    for (const r of base || []) {
      const k = String(r.image_id ?? r.image ?? r.run_id);
      if (!live.has(k)) {
        const fraction = r.percent !== undefined && r.percent !== null ? r.percent / 100 : (r.total ? r.done / r.total : 0);
        live.set(k, { label: r.image || r.name || `Run ${r.run_id}`, fraction, step: r.step || 'In progress' });
      }
    }
    clear(runningArea, h('h2', {}, 'Running now'));
    if (!live.size) {
      runningArea.append(h('p', { class: 'empty' }, 'Nothing is being serviced or transferred.'));
      return;
    }
    runningArea.append(h('ul', { class: 'running-list' }, [...live.values()].map((r) => h('li', {},
      h('div', { class: 'running-label' }, h('strong', {}, r.label), ' — ', r.step),
      progressBar(r.fraction, `${r.label}: ${r.step}`)))));
  }

  async function refresh() {
    let data;
    try {
      data = await load();
    } catch (e) {
      clear(charts, errorPanel(e, 'Cannot draw the dashboard'));
      return;
    }
    const perImage = data.images.map((i) => h('section', { class: 'card image-card', dataset: { image: i.id } },
      h('h3', {}, h('a', { href: `#/images/${encodeURIComponent(i.id)}/history` }, i.name)),
      h('div', { class: 'pair' },
        h('figure', {}, h('figcaption', {}, 'Servicing duration'),
          columnChart({ title: `Servicing duration of ${i.name}`, format: (v) => seconds(v), bars: i.runs.map((r) => ({ label: `#${r.id}`, value: r.seconds || 0, tone: toneOf(r.status), tip: `Run ${r.id} (${r.status}, ${when(r.started_at)}): ${seconds(r.seconds)}` })) })),
        h('figure', {}, h('figcaption', {}, 'Image size after the run'),
          columnChart({ title: `Size of ${i.name}`, format: bytes, bars: i.runs.map((r) => ({ label: `#${r.id}`, value: r.size || 0, tone: 'size', tip: `Run ${r.id}: ${bytes(r.size)}` })) })))));
    clear(charts,
      h('div', { class: 'row' },
        h('section', { class: 'card' }, h('h2', {}, 'Runs by status'), barChart({ title: 'Runs by status', bars: data.runsByStatus.map((b) => ({ ...b, tone: toneOf(b.label) })) })),
        h('section', { class: 'card' }, h('h2', {}, 'Distribution points by state'), barChart({ title: 'Distribution points by state', bars: data.dpsByState.map((b) => ({ ...b, tone: /maint/i.test(b.label) ? 'warn' : toneOf(b.label) })) })),
        runningArea),
      h('h2', {}, `Servicing per image (last ${LAST_RUNS} runs)`),
      data.images.length ? h('div', { class: 'grid-cards' }, perImage) : h('p', { class: 'empty' }, 'No image yet.'));
    live.clear();
    drawRunning(data.running);
    charts.setAttribute('aria-busy', 'false');
  }

  clear(main, h('h1', { tabindex: '-1' }, 'Dashboard'), charts);
  refresh();

  const off = onEvent((ev) => {
    const d = ev.data || {};
    // A transfer is one image to one DP; its bar is its own beside the image's run.
    const transfer = ev.type === 'transfer_progress';
    const k = transfer ? `${d.image} → ${d.dp}` : String(d.image_id ?? d.image ?? d.run_id ?? d.dp ?? '');
    if (!k) return;
    const finished = /finish|repaired|error/i.test(String(ev.type)) || (d.status && d.status !== 'In progress');
    if (finished) {
      live.delete(k);
      if (ev.type === 'distribution_finished') {
        for (const key of [...live.keys()]) if (key.startsWith(`${d.image} → `)) live.delete(key);
      }
      setTimeout(refresh, 300);
    } else {
      const cur = live.get(k) || { label: transfer ? `${d.image} → ${d.dp}` : d.image || d.dp || `Run ${d.run_id}`, fraction: 0, step: 'In progress' };
      if (transfer) cur.step = d.sent < d.total ? 'Sending to the distribution point' : 'Verifying on the distribution point';
      if (d.total) cur.fraction = (d.done ?? d.sent ?? 0) / d.total;
      else if (d.percent !== undefined) cur.fraction = d.percent / 100;
      else if (d.fraction !== undefined) cur.fraction = d.fraction;
      if (d.step || d.message) cur.step = d.step || d.message;
      live.set(k, cur);
    }
    drawRunning();
  });
  return off;
}
