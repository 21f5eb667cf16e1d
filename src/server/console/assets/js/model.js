// Reading the server's views: one place that knows the field names, so pages stay readable and
// a renamed field is fixed here once.

/** The image record inside a list row or an image view. */
export const imageOf = (x) => (x && x.image && typeof x.image === 'object' ? x.image : x) || {};

export const imageId = (x) => imageOf(x).id ?? x.id ?? x.image_id;
export const imageName = (x) => imageOf(x).name ?? x.name ?? '';
export const imageKind = (x) => imageOf(x).kind ?? x.kind ?? 'os-image';
export const imageSize = (x) => imageOf(x).size_bytes ?? x.size_bytes;
export const lastServiced = (x) => x.last_serviced ?? imageOf(x).serviced_at ?? x.serviced_at;
export const status = (x) => x.scheduled_updates_status || imageOf(x).scheduled_updates_status || 'None';
export const scheduledDate = (x) => x.scheduled_updates_date ?? imageOf(x).scheduled_updates_date ?? null;
/** Provisioning mode as {since, run_id?, owner_host?}, or null: the list says it as a flag and
 * `provisioning_since`, the image view as the lease itself. */
export function provisioning(x) {
  const pm = x.provisioning_mode ?? imageOf(x).provisioning_mode ?? null;
  if (pm === true) return { since: x.provisioning_since ?? null };
  if (!pm) return null;
  return pm;
}
export const inProgress = (x) => status(x) === 'In progress';

/** A DP's key in /dps/{id}: its numeric id when the server gives one, else its NAL path. */
export const dpId = (dp) => String(dp.id ?? dp.dp_id ?? dp.nal_path);
export const dpOf = (x) => (x && x.dp && typeof x.dp === 'object' ? x.dp : x) || {};
export const dpName = (dp) => dpOf(dp).server || dpOf(dp).nal_path || '';
export const inMaintenance = (dp) => Boolean(dpOf(dp).maintenance_mode);

/** An update's architecture as the wizard names it (X86, X64, ARM64, Neutral). */
export function archName(a) {
  const s = String(a || '').toLowerCase();
  return { x86: 'X86', x64: 'X64', amd64: 'X64', arm64: 'ARM64', neutral: 'Neutral' }[s] || a || '';
}
export const updateId = (u) => u.id ?? u.update ?? u.update_id ?? u.identity;
export const updateTitle = (u) => u.title ?? u.name ?? '';

/** A schedule's timing in words. */
export function describeTiming(t) {
  if (!t) return 'None';
  if (t.once || t.Once) return `Once, at ${(t.once || t.Once).at}`;
  if (t.cron || t.Cron) return `Recurring: ${(t.cron || t.Cron).expression}`;
  if (t.at) return `Once, at ${t.at}`;
  if (t.expression) return `Recurring: ${t.expression}`;
  return JSON.stringify(t);
}

/** What a schedule takes, in words. */
export function describeSelection(sel) {
  if (!sel) return '';
  if (Array.isArray(sel)) return sel.join(', ');
  if (sel.updates) return sel.updates.join(', ');
  if (sel.all_applicable !== undefined) return `All applicable updates (${sel.all_applicable || 'all'} kinds)`;
  return JSON.stringify(sel);
}
