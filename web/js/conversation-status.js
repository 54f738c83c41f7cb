// A conversation's status as the console names and draws it: one pill, the same in the
// conversation list, the customer panel's earlier conversations and the archive.

import { el } from './dom.js';

export const STATUS_NAMES = { open: 'Open', pending: 'Waiting on customer', snoozed: 'Snoozed', resolved: 'Resolved' };

/** The pill for `status` (an unknown word is shown as it came), marked with `testid`. */
export function statusPill(status, testid) {
  return el('span', { class: `pill conversation-status ${status}`, dataset: { testid, status } }, STATUS_NAMES[status] || status);
}
