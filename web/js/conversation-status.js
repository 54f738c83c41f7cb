// A conversation's status as the console names and draws it: one pill, the same in the
// conversation list, the customer panel's earlier conversations and the archive.

import { el } from './dom.js';

export const STATUS_NAMES = { open: 'Open', pending: 'Waiting on customer', snoozed: 'Snoozed', resolved: 'Resolved' };

/**
 * The pill for `status` (an unknown word is shown as it came), marked with `testid`; `named`:
 * read as "Status: Open" (beside a row's actions, it is not taken for one of them).
 */
export function statusPill(status, testid, { named = false } = {}) {
  return el('span', { class: `pill conversation-status ${status}`, title: named ? 'Status' : undefined, dataset: { testid, status } },
    named ? el('span', { class: 'sr-only' }, 'Status: ') : null, STATUS_NAMES[status] || status);
}
