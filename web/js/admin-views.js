// The admin page's sections as separate views: the header's links (and the address's
// #hash, so a view can be linked to, reloaded and reached with Back) show one section at
// a time. On a phone a long page of every section overflowed; on a desktop the one in use
// is no longer buried under the others.

const VIEWS = ['dashboard', 'agents', 'categories', 'canned', 'archive', 'reports', 'calls', 'appointments', 'offline', 'settings', 'tokens', 'webhooks'];
const DEFAULT_VIEW = 'dashboard';

/** The view the address names, or the dashboard. */
function current() {
  const name = location.hash.replace(/^#/, '');
  return VIEWS.includes(name) ? name : DEFAULT_VIEW;
}

function showView() {
  const view = current();
  for (const name of VIEWS) {
    const section = document.getElementById(name);
    if (section) section.hidden = name !== view;
  }
  for (const link of document.querySelectorAll('#nav a[href^="#"]')) {
    if (link.getAttribute('href') === `#${view}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  showCurrentTab();
  markMore();
  document.dispatchEvent(new CustomEvent('admin-view', { detail: view }));
}

/** Shows `name` (and puts it in the address, so Back returns to the previous view). */
export function openView(name) {
  if (current() === name && location.hash === `#${name}`) return;
  location.hash = `#${name}`;
}

/**
 * On a phone the links are one row that scrolls sideways: the current one is brought into
 * it (only the row scrolls, never the page).
 */
function showCurrentTab() {
  const nav = document.getElementById('nav');
  const link = nav?.querySelector('a[aria-current="page"]');
  if (!link || nav.hidden || nav.scrollWidth <= nav.clientWidth) return;
  const left = link.getBoundingClientRect().left - nav.getBoundingClientRect().left + nav.scrollLeft;
  if (left < nav.scrollLeft || left + link.offsetWidth > nav.scrollLeft + nav.clientWidth) {
    nav.scrollLeft = Math.max(0, left - (nav.clientWidth - link.offsetWidth) / 2);
  }
}

window.addEventListener('hashchange', () => {
  showView();
  // One view at a time: it starts at the top (the browser would scroll the section's top
  // to the window's, the header out of sight).
  window.scrollTo(0, 0);
});
/** Marks the row's edges past which links are hidden (it fades out there). */
function markMore() {
  const nav = document.getElementById('nav');
  if (!nav) return;
  const before = nav.scrollLeft > 2;
  const after = nav.scrollLeft + nav.clientWidth < nav.scrollWidth - 2;
  nav.dataset.more = before && after ? 'both' : before ? 'start' : after ? 'end' : 'none';
}

// The links appear once signed in: the current one is brought into view then.
const nav = document.getElementById('nav');
if (nav) {
  new MutationObserver(() => { showCurrentTab(); markMore(); }).observe(nav, { attributes: true, attributeFilter: ['hidden'] });
  nav.addEventListener('scroll', markMore, { passive: true });
  window.addEventListener('resize', markMore);
}
showView();
