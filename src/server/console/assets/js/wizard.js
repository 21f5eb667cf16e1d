// The Schedule Updates wizard, in the steps of the ConfigMgr console's: Choose Updates (filter
// over the update metadata, System architecture X86 / X64 / All, select one, several or all),
// Set Schedule (as soon as possible, a custom time or a recurring schedule; Continue on error;
// Update distribution points with the image), Summary, then Completion.

import { get, put, list, query } from './api.js';
import { h, clear, modal, field, errorPanel, bytes, uid } from './ui.js';
import * as m from './model.js';

const STEPS = ['Choose Updates', 'Set Schedule', 'Summary', 'Completion'];

/** Runs the wizard for `img`; resolves with the saved schedule, or undefined when cancelled. */
export function scheduleWizard(img) {
  const id = encodeURIComponent(m.imageId(img));
  const state = {
    filter: '',
    arch: 'all',
    updates: [],
    chosen: new Set(),
    when: 'now',
    at: '',
    cron: '0 0 2 * * Sat',
    continueOnError: false,
    updateDps: false,
    saved: null,
  };
  let step = 0;

  return modal({
    title: `Schedule Updates Wizard — ${m.imageName(img)}`,
    className: 'wizard',
    build: (close, dlg) => {
      const stepList = h('ol', { class: 'wizard-steps', 'aria-label': 'Steps' });
      const body = h('div', { class: 'wizard-body' });
      const problem = h('div', { class: 'wizard-problem', 'aria-live': 'assertive' });
      const back = h('button', { type: 'button', id: 'wizard-previous' }, '< Previous');
      const next = h('button', { type: 'button', class: 'primary', id: 'wizard-next' }, 'Next >');
      const cancel = h('button', { type: 'button', id: 'wizard-cancel' }, 'Cancel');
      dlg.setAttribute('data-wizard', 'schedule-updates');

      const show = (focusFirst = true) => {
        clear(problem);
        clear(stepList, STEPS.map((s, i) => h('li', { class: i === step ? 'current' : (i < step ? 'done' : ''), 'aria-current': i === step ? 'step' : null }, s)));
        clear(body);
        [chooseUpdates, setSchedule, summary, completion][step](body);
        back.disabled = step === 0 || step === 3;
        next.textContent = step === 2 ? 'Schedule' : (step === 3 ? 'Close' : 'Next >');
        cancel.hidden = step === 3;
        if (focusFirst) {
          const first = body.querySelector('[autofocus]') || body.querySelector('input, select, button, textarea, [tabindex="0"]');
          (first || next).focus();
        }
      };

      // ---- step 1 -------------------------------------------------------------------------
      function chooseUpdates(el) {
        const filterInput = h('input', { type: 'search', value: state.filter, placeholder: 'KB number, title, classification…', autofocus: true });
        const archGroup = h('fieldset', { class: 'inline' }, h('legend', {}, 'System architecture'),
          ['x86', 'x64', 'all'].map((a) => {
            const r = h('input', { type: 'radio', name: 'wizard-arch', value: a, checked: state.arch === a, id: `wizard-arch-${a}` });
            r.addEventListener('change', () => { state.arch = a; load(); });
            return h('label', { class: 'radio', for: `wizard-arch-${a}` }, r, a === 'all' ? 'All' : a.toUpperCase());
          }));
        const listArea = h('div', { class: 'update-choices', 'aria-live': 'polite' });
        const selectAll = h('button', { type: 'button', id: 'wizard-select-all' }, 'Select All');
        const clearAll = h('button', { type: 'button', id: 'wizard-clear-all' }, 'Clear All');
        const picked = h('p', { class: 'count', id: 'wizard-picked' });
        const tick = () => { picked.textContent = `${state.chosen.size} update(s) selected`; };

        let timer = null;
        filterInput.addEventListener('input', () => {
          state.filter = filterInput.value;
          clearTimeout(timer);
          timer = setTimeout(load, 250);
        });
        filterInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); clearTimeout(timer); load(); } });
        selectAll.addEventListener('click', () => { state.updates.forEach((u) => state.chosen.add(m.updateId(u))); drawList(); });
        clearAll.addEventListener('click', () => { state.updates.forEach((u) => state.chosen.delete(m.updateId(u))); drawList(); });

        function drawList() {
          if (!state.updates.length) {
            clear(listArea, h('p', { class: 'empty' }, 'No applicable update matches: the content library has none that this image has not yet applied.'));
          } else {
            clear(listArea, h('table', { class: 'grid compact' },
              h('caption', { class: 'sr-only' }, 'Applicable updates'),
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Selected')),
                ['Article ID', 'Title', 'Classification', 'Architecture', 'Size'].map((t) => h('th', { scope: 'col' }, t)))),
              h('tbody', {}, state.updates.map((u) => {
                const uidv = m.updateId(u);
                const box = h('input', { type: 'checkbox', checked: state.chosen.has(uidv), 'aria-label': `${uidv} ${m.updateTitle(u)}`, dataset: { update: uidv } });
                box.addEventListener('change', () => { if (box.checked) state.chosen.add(uidv); else state.chosen.delete(uidv); tick(); });
                return h('tr', {}, h('td', {}, box), h('td', {}, uidv), h('td', {}, m.updateTitle(u)), h('td', {}, u.classification || ''),
                  h('td', {}, m.archName(u.architecture)), h('td', { class: 'num' }, bytes(u.size_bytes)));
              }))));
          }
          tick();
        }

        async function load() {
          listArea.setAttribute('aria-busy', 'true');
          try {
            const doc = await get(`/images/${id}/applicable${query({ filter: state.filter.trim(), arch: state.arch })}`);
            state.updates = list(doc, 'updates');
            drawList();
          } catch (e) {
            clear(listArea, errorPanel(e, 'Cannot list the applicable updates'));
          }
          listArea.setAttribute('aria-busy', 'false');
        }

        el.append(
          h('p', {}, 'Choose the updates to apply to the image. The list holds the applicable updates from the content library that the site has not yet applied to it.'),
          h('div', { class: 'filters' }, field('Filter', filterInput, 'Matches text in the update metadata.'), archGroup),
          h('div', { class: 'choice-buttons' }, selectAll, clearAll, picked),
          listArea);
        load();
      }

      // ---- step 2 -------------------------------------------------------------------------
      function setSchedule(el) {
        const name = 'wizard-when';
        const option = (value, label, extra) => {
          const rid = uid('when');
          const r = h('input', { type: 'radio', name, value, id: rid, checked: state.when === value });
          r.addEventListener('change', () => { state.when = value; sync(); });
          return h('div', { class: 'when-option' }, h('label', { class: 'radio', for: rid }, r, label), extra);
        };
        const at = h('input', { type: 'datetime-local', value: state.at, id: 'wizard-at' });
        at.addEventListener('input', () => { state.at = at.value; });
        const cron = h('input', { type: 'text', value: state.cron, id: 'wizard-cron', spellcheck: 'false' });
        cron.addEventListener('input', () => { state.cron = cron.value; });
        const sync = () => { at.disabled = state.when !== 'at'; cron.disabled = state.when !== 'cron'; };
        const coe = h('input', { type: 'checkbox', id: 'wizard-continue', checked: state.continueOnError });
        coe.addEventListener('change', () => { state.continueOnError = coe.checked; });
        const dps = h('input', { type: 'checkbox', id: 'wizard-update-dps', checked: state.updateDps });
        dps.addEventListener('change', () => { state.updateDps = dps.checked; });
        el.append(
          h('fieldset', {}, h('legend', {}, 'Schedule'),
            option('now', 'As soon as possible'),
            option('at', 'Custom schedule', field('Run at (local time)', at)),
            option('cron', 'Recurring schedule', field('Cron expression', cron, 'Six fields: seconds minutes hours day-of-month month day-of-week, e.g. 0 0 2 * * Sat for every Saturday at 02:00 (UTC).'))),
          h('fieldset', {}, h('legend', {}, 'Options'),
            h('label', { class: 'check', for: 'wizard-continue' }, coe, 'Continue on error'),
            h('p', { class: 'help' }, 'Keep applying the other updates when one fails.'),
            h('label', { class: 'check', for: 'wizard-update-dps' }, dps, 'Update distribution points with the image'),
            h('p', { class: 'help' }, 'Send the serviced image to the distribution points that hold it.')));
        sync();
      }

      // ---- step 3 -------------------------------------------------------------------------
      function whenText() {
        if (state.when === 'now') return 'As soon as possible';
        if (state.when === 'at') return `Once, at ${state.at ? new Date(state.at).toLocaleString() : '(no time chosen)'}`;
        return `Recurring: ${state.cron}`;
      }

      function summary(el) {
        const ids = [...state.chosen];
        el.append(h('p', {}, 'Confirm the settings. Choose Schedule to save the schedule; the site\'s scheduler runs it.'),
          h('dl', { class: 'summary', id: 'wizard-summary' },
            h('dt', {}, 'Image'), h('dd', {}, m.imageName(img)),
            h('dt', {}, 'Updates'), h('dd', {}, h('ul', {}, ids.map((u) => h('li', {}, u)))),
            h('dt', {}, 'Schedule'), h('dd', {}, whenText()),
            h('dt', {}, 'Continue on error'), h('dd', {}, state.continueOnError ? 'Yes' : 'No'),
            h('dt', {}, 'Update distribution points with the image'), h('dd', {}, state.updateDps ? 'Yes' : 'No')));
      }

      // ---- step 4 -------------------------------------------------------------------------
      function completion(el) {
        const next = state.saved && (state.saved.next_run_at || state.saved.scheduled_updates_date);
        el.append(h('div', { class: 'notice', role: 'status', id: 'wizard-done' },
          h('p', {}, `The Schedule Updates Wizard completed successfully for ${m.imageName(img)}.`),
          next ? h('p', {}, `Next run: ${new Date(next).toLocaleString()}`) : null));
      }

      function request() {
        const body = {
          updates: [...state.chosen],
          continue_on_error: state.continueOnError,
          update_dps: state.updateDps,
        };
        if (state.when === 'now') body.now = true;
        if (state.when === 'at') body.at = new Date(state.at).toISOString();
        if (state.when === 'cron') body.cron = state.cron.trim();
        return body;
      }

      function check() {
        if (step === 0 && state.chosen.size === 0) return 'Select at least one update.';
        if (step === 1 && state.when === 'at' && (!state.at || Number.isNaN(new Date(state.at).getTime()))) return 'Choose the date and time of the custom schedule.';
        if (step === 1 && state.when === 'cron' && state.cron.trim().split(/\s+/).length < 5) return 'Enter a cron expression (six fields: seconds minutes hours day month weekday).';
        return null;
      }

      back.addEventListener('click', () => { if (step > 0) { step -= 1; show(); } });
      cancel.addEventListener('click', () => close(undefined));
      next.addEventListener('click', async () => {
        if (step === 3) { close(state.saved); return; }
        const why = check();
        if (why) {
          clear(problem, h('p', { class: 'error-text', role: 'alert' }, why));
          return;
        }
        if (step === 2) {
          next.disabled = true;
          try {
            state.saved = await put(`/images/${id}/schedule`, request()) || {};
          } catch (e) {
            next.disabled = false;
            clear(problem, errorPanel(e, 'The schedule was not saved'));
            problem.querySelector('[role=alert]')?.focus?.();
            return;
          }
          next.disabled = false;
        }
        step += 1;
        show();
      });

      const frame = h('div', { class: 'wizard-frame' }, h('nav', { class: 'wizard-nav', 'aria-label': 'Wizard steps' }, stepList),
        h('div', { class: 'wizard-main' }, body, problem, h('div', { class: 'dialog-buttons' }, back, next, cancel)));
      setTimeout(() => show(), 0);
      return frame;
    },
  });
}
