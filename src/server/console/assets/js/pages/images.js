// Operating System Images / Operating System Upgrade Packages: the list with the console's
// columns and the Home ribbon (Schedule Updates, Cancel Scheduled Updates, provisioning mode).

import { get, list } from '../api.js';
import { h, clear, ribbon, table, bytes, when, statusBadge, errorPanel, KIND_NAMES } from '../ui.js';
import { onEvent, canChange } from '../session.js';
import * as m from '../model.js';
import { canSchedule, canCancel, canRepair, scheduleUpdates, cancelScheduledUpdates, leaveProvisioningMode } from '../actions.js';

const TITLES = {
  'os-image': 'Operating System Images',
  'os-upgrade-package': 'Operating System Upgrade Packages',
};

export function render(main, { kind }) {
  let rows = [];
  let selected = null;
  const selectedRow = () => rows.find((r) => String(m.imageId(r)) === String(selected)) || null;
  const listArea = h('div', { id: 'image-list', 'aria-live': 'polite', 'aria-busy': 'true' });
  const count = h('p', { class: 'count' });

  const refresh = async () => {
    try {
      const all = list(await get('/images'), 'images');
      rows = all.filter((r) => m.imageKind(r) === kind);
      draw();
    } catch (e) {
      clear(listArea, errorPanel(e, 'Cannot list the images'));
    }
    listArea.setAttribute('aria-busy', 'false');
  };

  const bar = ribbon('Home', [
    { id: 'schedule', label: 'Schedule Updates', icon: '◷', enabled: () => canSchedule(selectedRow()), run: () => scheduleUpdates(selectedRow(), refresh) },
    { id: 'cancel', label: 'Cancel Scheduled Updates', icon: '✕', enabled: () => canCancel(selectedRow()), run: () => cancelScheduledUpdates(selectedRow(), refresh) },
    { id: 'repair', label: 'Leave Provisioning Mode', icon: '⚠', enabled: () => canRepair(selectedRow()), run: () => leaveProvisioningMode(selectedRow(), refresh) },
    { id: 'properties', label: 'Properties', icon: '☰', enabled: () => (selectedRow() ? true : 'Select an image first'), run: () => { location.hash = `#/images/${encodeURIComponent(selected)}`; } },
    { id: 'refresh', label: 'Refresh', icon: '↻', run: () => refresh() },
  ]);

  function draw() {
    const readOnly = canChange();
    count.textContent = `${TITLES[kind]}: ${rows.length} item${rows.length === 1 ? '' : 's'}`;
    clear(listArea, table({
      caption: TITLES[kind],
      name: 'image',
      key: (r) => m.imageId(r),
      selectedKey: selected,
      select: { label: (r) => `Select ${m.imageName(r)}`, onSelect: (r) => { selected = m.imageId(r); bar.refresh(); } },
      rows,
      empty: kind === 'os-image' ? 'No operating system images. Import one with `ois image import WIM`.' : 'No operating system upgrade packages.',
      columns: [
        { title: 'Name', value: (r) => h('a', { href: `#/images/${encodeURIComponent(m.imageId(r))}`, class: 'image-link' }, m.imageName(r)) },
        { title: 'Scheduled Updates Date', value: (r) => when(m.scheduledDate(r)) },
        { title: 'Scheduled Updates Status', className: 'status-col', value: (r) => statusBadge(m.status(r)) },
        { title: 'Provisioning mode', value: (r) => (m.provisioning(r) ? h('span', { class: 'badge warn' }, `Since ${when(m.provisioning(r).since)}`) : 'No') },
        { title: 'Size', className: 'num', value: (r) => bytes(m.imageSize(r)) },
        { title: 'Last serviced', value: (r) => when(m.lastServiced(r)) || 'Never' },
        { title: 'Kind', value: (r) => KIND_NAMES[m.imageKind(r)] || m.imageKind(r) },
      ],
    }));
    if (readOnly !== true) listArea.prepend(h('p', { class: 'readonly-note' }, readOnly));
    bar.refresh();
  }

  clear(main, h('h1', { tabindex: '-1' }, TITLES[kind]), bar, count, listArea);
  refresh();

  // Status changes arrive on the event stream; refetching the list (a few rows) is simpler
  // and always right, so any run event triggers one, at most every half second.
  let pending = null;
  const off = onEvent(() => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, 500);
  });
  // Beside the stream, a slow poll keeps the list right if the stream is cut.
  const poll = setInterval(refresh, 5000);
  return () => { off(); clearInterval(poll); if (pending) clearTimeout(pending); };
}
