// Drives the ois web console in headless Chromium for tests/console.rs.
//
//   node console.mjs SCENARIO
//
// Environment: OIS_CONSOLE_URL (the server), OIS_CONSOLE_SHOTS (screenshot directory),
// CHROMIUM (the browser, default /usr/bin/chromium), and per scenario OIS_CONSOLE_IMAGE,
// OIS_CONSOLE_UPDATES (comma-separated), OIS_CONSOLE_DP, OIS_CONSOLE_TOKEN.
// Prints one JSON report on its last line: {scenario, ok, steps, seen, error}; the Rust test
// asserts on what the page showed (`seen`) and then on the site itself.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const scenario = process.argv[2];
const base = process.env.OIS_CONSOLE_URL;
const shots = process.env.OIS_CONSOLE_SHOTS || path.join(os.tmpdir(), 'console-screenshots');
const image = process.env.OIS_CONSOLE_IMAGE || 'golden';
const updates = (process.env.OIS_CONSOLE_UPDATES || '').split(',').filter(Boolean);
const dp = process.env.OIS_CONSOLE_DP || '';
const token = process.env.OIS_CONSOLE_TOKEN || '';
const LONG = 180_000;

const report = { scenario, ok: false, steps: [], seen: {}, console_errors: [], resource_errors: [] };
let page;
let shot = 0;

async function step(name) {
  shot += 1;
  const file = path.join(shots, scenario, `${String(shot).padStart(2, '0')}-${name}.png`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
  report.steps.push({ name, screenshot: file });
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** Presses Tab (or Shift+Tab) until `pred(activeElement)` holds; keyboard only. */
async function tabTo(description, pred, { back = false, max = 60, arg } = {}) {
  for (let i = 0; i < max; i += 1) {
    if (await page.evaluate(pred, arg)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  const at = await page.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent?.slice(0, 40)}`);
  throw new Error(`Tab never reached ${description} (focus is on ${at})`);
}

const activeText = () => page.evaluate(() => (document.activeElement?.textContent || document.activeElement?.getAttribute('aria-label') || '').trim());
const statusOf = async (name) => {
  const row = page.locator('#image-list tbody tr', { has: page.getByRole('link', { name, exact: true }) });
  return (await row.locator('td.status-col').textContent()).trim();
};

async function waitForStatus(name, wanted, timeout = LONG) {
  await page.waitForFunction(([n, w]) => {
    const rows = [...document.querySelectorAll('#image-list tbody tr')];
    const row = rows.find((r) => r.querySelector('a.image-link')?.textContent === n);
    const s = row?.querySelector('td.status-col')?.textContent.trim();
    return Array.isArray(w) ? w.includes(s) : s === w;
  }, [name, wanted], { timeout, polling: 200 });
  return statusOf(name);
}

async function openImages() {
  await page.goto(`${base}/#/images`);
  await page.waitForSelector('#image-list table');
}

async function installedUpdates() {
  await page.getByRole('tab', { name: 'Installed Updates' }).click();
  await page.waitForSelector('.index-section');
  return page.$$eval('.index-section', (secs) => secs.map((s) => ({
    index: Number(s.dataset.index),
    updates: [...s.querySelectorAll('tbody tr')].map((tr) => tr.cells[0].textContent.trim()).filter((t) => t && !t.startsWith('No ')),
  })));
}

// ---- scenarios ------------------------------------------------------------------------------

const scenarios = {
  /** Schedule Updates with the mouse, let the server's scheduler run it, see it Successful. */
  async schedule() {
    await openImages();
    await step('images');
    await page.getByRole('radio', { name: `Select ${image}` }).check();
    await page.getByRole('button', { name: 'Schedule Updates' }).click();
    const wizard = page.locator('dialog[data-wizard]');
    await wizard.locator('table').waitFor();
    // The architecture filter: X86 lists nothing for this x64 image, X64 lists the updates.
    await wizard.getByRole('radio', { name: 'X86' }).check();
    await wizard.locator('.update-choices p.empty').waitFor();
    report.seen.x86_choices = 0;
    await wizard.getByRole('radio', { name: 'X64' }).check();
    await wizard.locator('.update-choices table').waitFor();
    await wizard.getByLabel('Filter').fill('KB50400');
    await page.waitForFunction(() => [...document.querySelectorAll('dialog[data-wizard] input[data-update]')].every((b) => b.dataset.update.startsWith('KB50400')));
    report.seen.choices = await wizard.locator('input[data-update]').evaluateAll((bs) => bs.map((b) => b.dataset.update));
    await step('wizard-choose-updates');
    for (const u of updates) await wizard.locator(`input[data-update="${u}"]`).check();
    report.seen.picked = (await wizard.locator('#wizard-picked').textContent()).trim();
    await wizard.getByRole('button', { name: 'Next >' }).click();
    await wizard.getByLabel('As soon as possible').check();
    await wizard.getByLabel('Continue on error').check();
    await step('wizard-schedule');
    await wizard.getByRole('button', { name: 'Next >' }).click();
    report.seen.summary = (await wizard.locator('#wizard-summary').innerText()).trim();
    await step('wizard-summary');
    // A second tab on the dashboard records what its Running now panel shows while the run
    // goes: the progress bars come from the event stream.
    const dash = await context.newPage();
    await dash.goto(`${base}/#/dashboard`);
    await dash.waitForSelector('#running-now');
    await dash.evaluate(() => {
      window.runningSeen = [];
      const panel = document.querySelector('#running-now');
      new MutationObserver(() => {
        for (const li of panel.querySelectorAll('li')) {
          window.runningSeen.push({
            label: li.querySelector('.running-label')?.textContent,
            percent: li.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow'),
          });
        }
      }).observe(panel, { childList: true, subtree: true });
    });
    await wizard.getByRole('button', { name: 'Schedule', exact: true }).click();
    await wizard.locator('#wizard-done').waitFor();
    await step('wizard-completion');
    await wizard.getByRole('button', { name: 'Close' }).click();
    report.seen.status_after_wizard = await statusOf(image);
    report.seen.final_status = await waitForStatus(image, ['Successful', 'Failed']);
    await step('status-final');
    await dash.waitForFunction(() => /Nothing is being serviced/.test(document.querySelector('#running-now').textContent));
    report.seen.dashboard_running = await dash.evaluate(() => window.runningSeen);
    await dash.close();
    await page.getByRole('link', { name: image, exact: true }).click();
    report.seen.installed = await installedUpdates();
    await step('installed-updates');
    await page.getByRole('tab', { name: 'Update Status' }).click();
    report.seen.update_status = await page.$$eval('.tab-panel tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    await step('update-status');
    await page.getByRole('tab', { name: 'Log' }).click();
    await page.waitForSelector('.cmtrace tbody tr');
    report.seen.log_rows = await page.locator('.cmtrace tbody tr').count();
    await page.getByLabel('Find').fill(updates[0]);
    report.seen.log_matches = await page.locator('.cmtrace tbody tr.match').count();
    await step('log');
    await page.getByRole('tab', { name: 'History' }).click();
    report.seen.history = await page.$$eval('.tab-panel tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent.trim()));
    await step('history');
    // What Changed of that run: per index the totals line and each row as shown, with the
    // exact sizes the cells carry on hover.
    await page.getByRole('tab', { name: 'What Changed' }).click();
    await page.waitForSelector('.tab-panel .index-section table');
    report.seen.changes_run = (await page.locator('#changes-run').inputValue());
    report.seen.changes = await page.$$eval('.tab-panel .index-section', (secs) => secs.map((s) => ({
      index: Number(s.dataset.index),
      heading: s.querySelector('h2').textContent.trim(),
      totals: [...s.querySelectorAll('ul.totals li')].map((li) => li.textContent.trim()),
      rows: [...s.querySelectorAll('tbody tr')].map((tr) => ({
        kind: tr.cells[0].textContent.trim(),
        path: tr.cells[1].textContent.trim(),
        size_before: tr.cells[2].querySelector('[data-bytes]')?.dataset.bytes ?? null,
        size_after: tr.cells[3].querySelector('[data-bytes]')?.dataset.bytes ?? null,
        shown_before: tr.cells[2].textContent.trim(),
        shown_after: tr.cells[3].textContent.trim(),
        update: tr.cells[4].textContent.trim(),
      })),
    })));
    await step('what-changed');
    await page.goto(`${base}/#/dashboard`);
    await page.waitForSelector('.dashboard[aria-busy=false]');
    report.seen.dashboard_charts = await page.locator('.dashboard svg.chart').count();
    report.seen.runs_by_status = await page.locator('.dashboard svg.chart').first().getAttribute('aria-label');
    await step('dashboard');
  },

  /** The same wizard with the keyboard only: Tab, arrows, Space and Enter; Escape closes. */
  async keyboard() {
    await openImages();
    await page.locator('body').focus();
    // Select the image: Tab into the radio group, then arrow keys to the image's radio.
    await tabTo('the image radio buttons', () => document.activeElement?.name === 'image');
    for (let i = 0; i < 10; i += 1) {
      const label = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
      if (label === `Select ${image}`) break;
      await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('Space');
    check(await page.evaluate((n) => document.activeElement.getAttribute('aria-label') === `Select ${n}` && document.activeElement.checked, image), 'the image is selected by keyboard');
    // Back to the ribbon (before the list), to Schedule Updates.
    await tabTo('Schedule Updates', () => document.activeElement?.dataset?.action === 'schedule', { back: true });
    report.seen.focus_visible = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== 'none');
    await step('ribbon-focused');

    // Escape closes the wizard and gives focus back to the ribbon button.
    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[data-wizard] table, dialog[data-wizard] p.empty');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog[data-wizard]'));
    report.seen.escape_closed = true;
    report.seen.focus_back_on = await page.evaluate(() => document.activeElement?.dataset?.action || null);

    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[data-wizard] input[data-update]');
    report.seen.initial_focus = await page.evaluate(() => document.activeElement?.id || document.activeElement?.type);
    // Focus stays in the dialog however far one tabs.
    let escaped = 0;
    for (let i = 0; i < 25; i += 1) {
      await page.keyboard.press('Tab');
      if (!(await page.evaluate(() => Boolean(document.activeElement?.closest('dialog[data-wizard]'))))) escaped += 1;
    }
    report.seen.focus_left_dialog = escaped;
    // Step 1: type a filter, then tick each wanted update with Space.
    await tabTo('the filter', () => document.activeElement?.type === 'search');
    await page.keyboard.type('KB50400');
    await page.waitForFunction(() => [...document.querySelectorAll('dialog[data-wizard] input[data-update]')].every((b) => b.dataset.update.startsWith('KB50400')));
    for (const u of updates) {
      await tabTo(`the checkbox of ${u}`, (id) => document.activeElement?.dataset?.update === id, { max: 80, arg: u });
      await page.keyboard.press('Space');
    }
    report.seen.picked = await page.locator('#wizard-picked').textContent();
    await step('keyboard-choose-updates');
    await tabTo('Next', () => document.activeElement?.id === 'wizard-next');
    await page.keyboard.press('Enter');
    // Step 2: arrows move within the schedule radios; Space ticks the checkbox.
    await page.waitForSelector('#wizard-continue');
    check((await page.evaluate(() => document.activeElement?.name)) === 'wizard-when', 'focus starts on the schedule choice');
    await tabTo('Continue on error', () => document.activeElement?.id === 'wizard-continue');
    await page.keyboard.press('Space');
    await step('keyboard-schedule');
    await tabTo('Next', () => document.activeElement?.id === 'wizard-next');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#wizard-summary');
    report.seen.summary = (await page.locator('#wizard-summary').innerText()).trim();
    await step('keyboard-summary');
    await tabTo('Schedule', () => document.activeElement?.id === 'wizard-next');
    check((await activeText()) === 'Schedule', 'the summary step confirms with Schedule');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#wizard-done');
    await tabTo('Close', () => document.activeElement?.id === 'wizard-next');
    await step('keyboard-completion');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.querySelector('dialog[data-wizard]'));
    report.seen.final_status = await waitForStatus(image, ['Successful', 'Failed']);
    await step('keyboard-status-final');
  },

  /** Cancel Scheduled Updates while the run is In progress; the run ends Canceled. */
  async cancel() {
    await openImages();
    await page.getByRole('radio', { name: `Select ${image}` }).check();
    report.seen.cancel_enabled_before = await page.getByRole('button', { name: 'Cancel Scheduled Updates' }).isEnabled();
    await page.getByRole('button', { name: 'Schedule Updates' }).click();
    const wizard = page.locator('dialog[data-wizard]');
    await wizard.locator('input[data-update]').first().waitFor();
    for (const u of updates) await wizard.locator(`input[data-update="${u}"]`).check();
    await wizard.getByRole('button', { name: 'Next >' }).click();
    await wizard.getByRole('button', { name: 'Next >' }).click();
    await wizard.getByRole('button', { name: 'Schedule', exact: true }).click();
    await wizard.locator('#wizard-done').waitFor();
    await wizard.getByRole('button', { name: 'Close' }).click();
    // The test starts the run now and holds it; the list shows it In progress.
    await waitForStatus(image, 'In progress');
    const cancel = page.getByRole('button', { name: 'Cancel Scheduled Updates' });
    await page.waitForFunction(() => !document.querySelector('[data-action="cancel"]').disabled);
    report.seen.cancel_enabled_in_progress = await cancel.isEnabled();
    await step('in-progress');
    await cancel.click();
    const confirm = page.locator('dialog.modal');
    await confirm.waitFor();
    await step('cancel-confirm');
    await confirm.getByRole('button', { name: 'Cancel Scheduled Updates' }).click();
    report.seen.final_status = await waitForStatus(image, ['Canceled', 'Successful', 'Failed']);
    report.seen.cancel_enabled_after = await cancel.isEnabled();
    await step('canceled');
    await page.getByRole('link', { name: image, exact: true }).click();
    await page.getByRole('tab', { name: 'History' }).click();
    await page.waitForSelector('.tab-panel tbody tr');
    report.seen.history = await page.$$eval('.tab-panel tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent.trim()));
    await step('history');
  },

  /** Maintenance mode makes the DP's properties read-only; disabling it makes them editable. */
  async maintenance() {
    await page.goto(`${base}/#/dps`);
    await page.waitForSelector('#dp-list table');
    await page.getByRole('radio', { name: `Select ${dp}` }).check();
    await page.waitForSelector('#dp-form');
    const fields = page.locator('#dp-fields');
    report.seen.editable_at_start = await fields.evaluate((f) => !f.disabled);
    report.seen.column_at_start = (await page.locator('#dp-list tbody td.maintenance-col').first().textContent()).trim();
    await step('dp-selected');
    await page.getByRole('button', { name: 'Enable Maintenance Mode' }).click();
    const confirm = page.locator('dialog.modal');
    await confirm.waitFor();
    report.seen.confirm_text = (await confirm.innerText()).trim();
    await step('enable-confirm');
    await confirm.getByRole('button', { name: 'Enable Maintenance Mode' }).click();
    await page.waitForFunction(() => document.querySelector('#dp-form')?.dataset.readonly === 'true');
    report.seen.column_in_maintenance = (await page.locator('#dp-list tbody td.maintenance-col').first().textContent()).trim();
    report.seen.readonly_in_maintenance = await fields.evaluate((f) => f.disabled);
    report.seen.description_disabled = await page.getByLabel('Description').isDisabled();
    report.seen.readonly_note = (await page.locator('#dp-readonly-note').textContent()).trim();
    report.seen.enable_disabled_now = await page.getByRole('button', { name: 'Enable Maintenance Mode' }).isDisabled();
    await step('in-maintenance-read-only');
    await page.getByRole('button', { name: 'Disable Maintenance Mode' }).click();
    await page.waitForFunction(() => document.querySelector('#dp-form')?.dataset.readonly === 'false');
    report.seen.editable_after = await fields.evaluate((f) => !f.disabled);
    report.seen.column_after = (await page.locator('#dp-list tbody td.maintenance-col').first().textContent()).trim();
    await step('editable-again');
    await page.getByLabel('Description').fill('edited from the console');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForFunction(() => document.querySelector('#messages')?.textContent.includes('saved'));
    await page.waitForFunction(() => document.querySelector('#dp-description')?.value === 'edited from the console');
    await step('description-saved');
    await page.getByRole('button', { name: 'Validate Content' }).click();
    await page.waitForFunction(() => /validated|problem/i.test(document.querySelector('#messages')?.textContent || ''));
    report.seen.validate_message = (await page.locator('#messages').innerText()).trim();
    await step('validated');
    // End in maintenance mode, so the test sees the site keep it.
    await page.getByRole('button', { name: 'Enable Maintenance Mode' }).click();
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable Maintenance Mode' }).click();
    await page.waitForFunction(() => document.querySelector('#dp-form')?.dataset.readonly === 'true');
    await step('maintenance-again');
    // Who changed what: the Audit Log page lists each change.
    await page.getByRole('link', { name: 'Audit Log' }).click();
    await page.waitForSelector('#audit-list tbody tr');
    report.seen.audit = await page.$$eval('#audit-list tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    await step('audit-log');
  },

  /** Content Library: filter and architecture, import by upload, a refused upload's message. */
  async library() {
    await page.goto(`${base}/#/updates`);
    await page.waitForSelector('#update-list table');
    const rows = () => page.$$eval('#update-list tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent.trim()).filter((t) => t.startsWith('KB')));
    report.seen.all = await rows();
    await page.getByLabel('Filter').fill('AppLocker');
    await page.waitForFunction(() => document.querySelectorAll('#update-list tbody tr').length === 1);
    report.seen.filtered = await rows();
    await step('filtered');
    await page.getByLabel('System architecture').selectOption('x86');
    await page.waitForSelector('#update-list td.empty');
    report.seen.x86 = await rows();
    await page.getByLabel('Filter').fill('');
    await page.getByLabel('System architecture').selectOption('all');
    await page.waitForFunction((n) => document.querySelectorAll('#update-list tbody tr').length === n, report.seen.all.length);
    // Upload a file that is not a package: the server's refusal is shown with what to do.
    await page.setInputFiles('#import-files', process.env.OIS_CONSOLE_BAD_FILE);
    await page.getByRole('button', { name: 'Import' }).click();
    await page.waitForSelector('#messages [role=alert]');
    report.seen.refused = (await page.locator('#messages [role=alert]').innerText()).trim();
    await step('upload-refused');
    await page.setInputFiles('#import-files', process.env.OIS_CONSOLE_UPLOAD);
    await page.getByRole('button', { name: 'Import' }).click();
    await page.waitForFunction(() => /Imported/.test(document.querySelector('#messages')?.textContent || ''));
    report.seen.imported = (await page.locator('#messages').innerText()).trim();
    await page.waitForFunction((n) => document.querySelectorAll('#update-list tbody tr').length === n + 1, report.seen.all.length);
    report.seen.after = await rows();
    await step('uploaded');
  },

  /** Leave provisioning mode on an image a dead run left in it, after a confirmation. */
  async repair() {
    await openImages();
    await page.getByRole('radio', { name: `Select ${image}` }).check();
    const repair = page.getByRole('button', { name: 'Leave Provisioning Mode' });
    report.seen.repair_enabled = await repair.isEnabled();
    report.seen.provisioning_before = (await page.locator('#image-list tbody tr.selected td').nth(4).textContent()).trim();
    report.seen.schedule_enabled_while_stuck = await page.getByRole('button', { name: 'Schedule Updates' }).isEnabled();
    await step('stuck');
    await repair.click();
    const confirm = page.locator('dialog.modal');
    await confirm.waitFor();
    report.seen.confirm_text = (await confirm.innerText()).trim();
    await step('repair-confirm');
    // Escape first: nothing happens.
    await page.keyboard.press('Escape');
    await confirm.waitFor({ state: 'detached' });
    report.seen.still_stuck_after_escape = (await page.locator('#image-list tbody tr.selected td').nth(4).textContent()).trim() !== 'No';
    await repair.click();
    await page.locator('dialog.modal').getByRole('button', { name: 'Leave provisioning mode' }).click();
    await page.waitForFunction(() => /left provisioning mode/.test(document.querySelector('#messages')?.textContent || ''));
    await page.waitForFunction(() => document.querySelector('#image-list tbody tr.selected td:nth-child(5)')?.textContent.trim() === 'No');
    report.seen.status_after = await statusOf(image);
    report.seen.repair_enabled_after = await repair.isEnabled();
    await step('repaired');
  },

  /** A read-only analyst sees everything, every change control is disabled, and a forced request shows the server's 403. */
  async readonly() {
    await page.goto(`${base}/`);
    await page.waitForSelector('#login-form');
    await step('sign-in');
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('#login-form [role=alert]');
    report.seen.bad_token_message = (await page.locator('#login-form [role=alert]').innerText()).trim();
    await step('sign-in-refused');
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('#image-list table');
    report.seen.who = (await page.locator('#who-name').textContent()).trim();
    report.seen.role = (await page.locator('#who-role').textContent()).trim();
    await page.getByRole('radio', { name: `Select ${image}` }).check();
    const schedule = page.getByRole('button', { name: 'Schedule Updates' });
    report.seen.schedule_disabled = await schedule.isDisabled();
    report.seen.schedule_tooltip = await schedule.getAttribute('title');
    report.seen.cancel_disabled = await page.getByRole('button', { name: 'Cancel Scheduled Updates' }).isDisabled();
    report.seen.repair_disabled = await page.getByRole('button', { name: 'Leave Provisioning Mode' }).isDisabled();
    report.seen.images_note = (await page.locator('.readonly-note').first().textContent()).trim();
    await step('images-read-only');
    await page.getByRole('link', { name: image, exact: true }).click();
    await page.waitForSelector('.tab-panel');
    await page.getByRole('tab', { name: 'Servicing' }).click();
    report.seen.remove_schedule_disabled = await page.locator('#remove-schedule').isDisabled();
    await step('image-read-only');
    // The Distribution tab links each row to its DP by the DP's id.
    await page.getByRole('tab', { name: 'Distribution' }).click();
    const dpLink = page.locator('.tab-panel tbody tr a').first();
    report.seen.distribution_link = await dpLink.getAttribute('href');
    report.seen.distribution_dp = (await dpLink.textContent()).trim();
    await step('image-distribution');
    await dpLink.click();
    await page.waitForSelector('#dp-form');
    report.seen.linked_dp_selected = await page.locator('#dp-list tbody tr.selected input[type=radio]').getAttribute('aria-label');
    await step('linked-dp');
    await page.goto(`${base}/#/updates`);
    await page.waitForSelector('#update-list table');
    report.seen.import_disabled = await page.locator('#import-button').isDisabled() && await page.locator('#import-files').isDisabled();
    await step('content-library-read-only');
    await page.goto(`${base}/#/dps`);
    await page.getByRole('radio', { name: `Select ${dp}` }).check();
    await page.waitForSelector('#dp-form');
    report.seen.enable_maintenance_disabled = await page.getByRole('button', { name: 'Enable Maintenance Mode' }).isDisabled();
    report.seen.validate_disabled = await page.getByRole('button', { name: 'Validate Content' }).isDisabled();
    report.seen.dp_fields_disabled = await page.locator('#dp-fields').evaluate((f) => f.disabled);
    await step('dps-read-only');
    // Force the request the disabled button would send: the server refuses, the page says why.
    await page.evaluate(() => { const b = document.querySelector('[data-action="enable-maintenance"]'); b.disabled = false; b.click(); });
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable Maintenance Mode' }).click();
    await page.waitForSelector('#messages [role=alert]');
    report.seen.forced_maintenance_message = (await page.locator('#messages [role=alert]').innerText()).trim();
    await step('forced-request-refused');
    // And the wizard, forced open: its Schedule step shows the refusal.
    await page.goto(`${base}/#/images`);
    await page.getByRole('radio', { name: `Select ${image}` }).check();
    await page.evaluate(() => { const b = document.querySelector('[data-action="schedule"]'); b.disabled = false; b.click(); });
    const wizard = page.locator('dialog[data-wizard]');
    await wizard.locator('input[data-update]').first().waitFor();
    await wizard.locator('input[data-update]').first().check();
    await wizard.getByRole('button', { name: 'Next >' }).click();
    await wizard.getByRole('button', { name: 'Next >' }).click();
    await wizard.getByRole('button', { name: 'Schedule', exact: true }).click();
    await wizard.locator('.wizard-problem [role=alert]').waitFor();
    report.seen.forced_schedule_message = (await wizard.locator('.wizard-problem [role=alert]').innerText()).trim();
    await step('forced-schedule-refused');
  },
};

// ---- main -----------------------------------------------------------------------------------

const run = scenarios[scenario];
if (!run || !base) {
  console.error(`usage: OIS_CONSOLE_URL=http://127.0.0.1:PORT node console.mjs ${Object.keys(scenarios).join('|')}`);
  process.exit(2);
}
// A fresh profile each run, and no network of its own: the closed network here breaks
// Chromium's background services (component updates, sync, QUIC probes) otherwise.
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ois-console-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1366, height: 768 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
context.setDefaultTimeout(30_000);
page = context.pages()[0] || await context.newPage();
// Refused requests show up as "Failed to load resource" errors: kept apart, so a test can
// tell the refusals it provoked from a script error.
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  (m.text().startsWith('Failed to load resource') ? report.resource_errors : report.console_errors).push(m.text());
});
page.on('pageerror', (e) => report.console_errors.push(`page error: ${e.message}`));
try {
  await run();
  report.ok = true;
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
  try {
    await step('failure');
  } catch {
    // The page may be gone; the report still says what failed.
  }
}
await context.close();
fs.rmSync(profile, { recursive: true, force: true });
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
