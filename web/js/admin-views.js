// The admin page's sections as separate views: the header's links (and the address's
// #hash, so a view can be linked to, reloaded and reached with Back) show one section at
// a time. On a phone a long page of every section overflowed; on a desktop the one in use
// is no longer buried under the others.

const VIEWS = ['dashboard', 'agents', 'categories', 'canned', 'archive', 'reports', 'calls', 'appointments', 'offline', 'settings'];
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
  document.dispatchEvent(new CustomEvent('admin-view', { detail: view }));
}

/** Shows `name` (and puts it in the address, so Back returns to the previous view). */
export function openView(name) {
  if (current() === name && location.hash === `#${name}`) return;
  location.hash = `#${name}`;
}

window.addEventListener('hashchange', showView);
showView();
