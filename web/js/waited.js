// How long ago something happened, as a work list says it ("<1 min", "12 min",
// "2 h", "3 d"), as Chatwoot's conversation list does: an agent compares who waits
// longest at a glance, where an absolute date has to be worked out. The exact time is
// kept for the element's title; `refreshAges` rewrites every such text on the page so
// the ages move on between the list's reloads.

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The age of `since` (epoch ms) at `now`: "<1 min", "N min", "N h" or "N d" (floored). */
export function age(since, now = Date.now()) {
  const d = Math.max(0, now - since);
  if (d < MINUTE) return '<1 min';
  if (d < HOUR) return `${Math.floor(d / MINUTE)} min`;
  if (d < DAY) return `${Math.floor(d / HOUR)} h`;
  return `${Math.floor(d / DAY)} d`;
}

/** Rewrites each `[data-age-since]` element's text: its `data-age-prefix`, the age, its `data-age-suffix`. */
export function refreshAges(root = document) {
  const now = Date.now();
  for (const node of root.querySelectorAll('[data-age-since]')) {
    node.textContent = `${node.dataset.agePrefix || ''}${age(Number(node.dataset.ageSince), now)}${node.dataset.ageSuffix || ''}`;
  }
}
