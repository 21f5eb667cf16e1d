// Charts as inline SVG, drawn here in a few lines rather than with a library: bar charts
// (vertical, for a series over runs; horizontal, for counts by category). Every chart carries
// its numbers as text too (labels on the bars, <title> tooltips and an aria-label), so it
// reads without colour and without a pointer.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * Vertical bars: bars [{label, value, tone, tip}]; `format(value)` prints a value.
 */
export function columnChart({ title, bars, format = String, width = 360, height = 170 }) {
  const pad = { top: 18, right: 8, bottom: 28, left: 8 };
  const max = Math.max(1e-9, ...bars.map((b) => Number(b.value) || 0));
  const n = Math.max(1, bars.length);
  const slot = (width - pad.left - pad.right) / n;
  const bw = Math.max(4, Math.min(42, slot * 0.7));
  const plotH = height - pad.top - pad.bottom;
  const summary = `${title}: ${bars.map((b) => `${b.label} ${format(b.value)}`).join(', ') || 'no data'}`;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': summary, class: 'chart' });
  svg.append(s('line', { x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, class: 'axis' }));
  bars.forEach((b, i) => {
    const v = Number(b.value) || 0;
    const bh = Math.max(v > 0 ? 1 : 0, (v / max) * plotH);
    const x = pad.left + i * slot + (slot - bw) / 2;
    const y = pad.top + plotH - bh;
    svg.append(s('g', { class: `bar ${b.tone || ''}` },
      s('title', {}, b.tip || `${b.label}: ${format(v)}`),
      s('rect', { x, y, width: bw, height: bh, rx: 2 }),
      s('text', { x: x + bw / 2, y: y - 4, 'text-anchor': 'middle', class: 'value' }, format(v)),
      s('text', { x: x + bw / 2, y: height - 10, 'text-anchor': 'middle', class: 'label' }, b.label)));
  });
  if (!bars.length) svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'label' }, 'No data'));
  return svg;
}

/** Horizontal bars for counts by category: bars [{label, value, tone}]. */
export function barChart({ title, bars, width = 360 }) {
  const row = 26;
  const labelW = 130;
  const height = Math.max(1, bars.length) * row + 8;
  const max = Math.max(1, ...bars.map((b) => Number(b.value) || 0));
  const summary = `${title}: ${bars.map((b) => `${b.label} ${b.value}`).join(', ') || 'no data'}`;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': summary, class: 'chart' });
  bars.forEach((b, i) => {
    const v = Number(b.value) || 0;
    const w = (v / max) * (width - labelW - 40);
    const y = 4 + i * row;
    svg.append(s('g', { class: `bar ${b.tone || ''}` },
      s('title', {}, `${b.label}: ${v}`),
      s('text', { x: labelW - 6, y: y + 16, 'text-anchor': 'end', class: 'label' }, b.label),
      s('rect', { x: labelW, y: y + 3, width: Math.max(v > 0 ? 2 : 0, w), height: row - 8, rx: 2 }),
      s('text', { x: labelW + w + 6, y: y + 16, class: 'value' }, String(v))));
  });
  if (!bars.length) svg.append(s('text', { x: width / 2, y: 18, 'text-anchor': 'middle', class: 'label' }, 'No data'));
  return svg;
}

/** The tone (colour class) of a status, shared with the badges. */
export function toneOf(status) {
  return {
    Successful: 'ok', Installed: 'ok', 'In progress': 'busy', Scheduled: 'info', Pending: 'info', Failed: 'bad', Canceled: 'warn', On: 'warn', Off: 'ok',
  }[status] || 'none';
}
