// The image commands of the ribbon, shared by the list and the details page.

import { post } from './api.js';
import { confirmDialog, showError, showNotice, h, when } from './ui.js';
import { canChange } from './session.js';
import { imageId, imageName, inProgress, provisioning } from './model.js';
import { scheduleWizard } from './wizard.js';

/** Why Schedule Updates is not available for `img` (true when it is). */
export function canSchedule(img) {
  const c = canChange();
  if (c !== true) return c;
  if (!img) return 'Select an image first';
  if (inProgress(img)) return 'The image is being serviced: wait for the run to end or cancel it';
  if (provisioning(img)) return 'The image is in provisioning mode: leave provisioning mode first';
  return true;
}

export function canCancel(img) {
  const c = canChange();
  if (c !== true) return c;
  if (!img) return 'Select an image first';
  if (!inProgress(img)) return 'Available only while the Scheduled Updates Status is In progress';
  return true;
}

export function canRepair(img) {
  const c = canChange();
  if (c !== true) return c;
  if (!img) return 'Select an image first';
  if (!provisioning(img)) return 'The image is not in provisioning mode';
  return true;
}

export async function scheduleUpdates(img, done) {
  const saved = await scheduleWizard(img);
  if (saved) {
    showNotice(`Updates scheduled for ${imageName(img)}.`);
    done?.();
  }
}

export async function cancelScheduledUpdates(img, done) {
  const ok = await confirmDialog({
    title: 'Cancel Scheduled Updates',
    message: [`Cancel the servicing of ${imageName(img)} that is in progress?`,
      'The run stops at its next safe point; the image stays as it was before the run.'],
    confirmLabel: 'Cancel Scheduled Updates',
    danger: true,
  });
  if (!ok) return;
  try {
    const out = await post(`/images/${encodeURIComponent(imageId(img))}/cancel`, {});
    const st = out && (out.status || out.canceled);
    showNotice(`Cancel requested for ${imageName(img)}${st ? `: ${st}` : ''}.`);
  } catch (e) {
    showError(e, 'Cancel Scheduled Updates');
  }
  done?.();
}

export async function leaveProvisioningMode(img, done) {
  const pm = provisioning(img);
  const ok = await confirmDialog({
    title: 'Leave provisioning mode',
    message: [
      `${imageName(img)} has been in provisioning mode since ${pm?.since ? when(pm.since) : 'an unknown time'}${pm?.run_id ? ` (run ${pm.run_id})` : ''}.`,
      'Leaving provisioning mode ends that run for good: its staging folder and partial output are removed and the run is recorded as failed. The image file stays as it is.',
      h('p', { class: 'warning' }, 'Do this only when the run is no longer working (its process was stopped or its host restarted).'),
    ],
    confirmLabel: 'Leave provisioning mode',
    danger: true,
  });
  if (!ok) return;
  try {
    await post(`/images/${encodeURIComponent(imageId(img))}/repair`, {});
    showNotice(`${imageName(img)} left provisioning mode.`);
  } catch (e) {
    showError(e, 'Leave provisioning mode');
  }
  done?.();
}
