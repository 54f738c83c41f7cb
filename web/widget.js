/*
 * Switchboard chat widget loader. A site owner pastes one tag:
 *
 *   <script src="https://hub.example/widget.js" data-category="sales" async></script>
 *
 * (a site that knows its user adds data-identifier, data-identifier-hash, data-name and
 * data-email: docs/protocol.md, "Verified identity")
 *
 * and gets a launcher bubble in the corner that opens the hub's chat (widget.html) in
 * a frame. The frame is on the hub's origin, so the chat's resume token stays in the
 * hub's storage for this tab: a new page of the site carries the chat on. This script
 * runs in the host page: it keeps to a shadow root, and listens only to its own frame
 * at the hub's origin. The hub must list the site in WIDGET_ALLOWED_ORIGINS.
 */
(function () {
  'use strict';
  if (window.SwitchboardWidget) return;
  var script = document.currentScript;
  if (!script || !script.src) return;
  var hub = new URL(script.src).origin;
  var category = script.getAttribute('data-category') || '';
  // A signed-in user of the site, as its server vouches for them (docs/protocol.md,
  // "Verified identity"): handed to the frame by message, never in its address.
  var identity = {
    identifier: script.getAttribute('data-identifier') || '',
    identifier_hash: script.getAttribute('data-identifier-hash') || '',
    name: script.getAttribute('data-name') || '',
    email: script.getAttribute('data-email') || '',
  };
  var KEY = 'switchboard-widget:' + hub;
  var state = load();
  var frame = null;
  var isOpen = false;
  var baseTitle = document.title;
  var desk = { title: 'Chat', color: '#2563eb' };

  function load() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  function save() {
    try { sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* storage off: no resume across pages */ }
  }

  var CSS = [
    ':host { all: initial; }',
    '.launcher { position: fixed; right: 20px; bottom: 20px; width: 60px; height: 60px; border-radius: 50%; border: 0;',
    '  background: var(--brand, #2563eb); color: var(--brand-ink, #fff); cursor: pointer; z-index: 2147483646;',
    '  box-shadow: 0 6px 20px rgba(0,0,0,.22), 0 2px 6px rgba(0,0,0,.12); display: grid; place-items: center;',
    '  transition: transform .18s ease, box-shadow .18s ease; padding: 0; }',
    '.launcher:hover { transform: scale(1.06); box-shadow: 0 8px 26px rgba(0,0,0,.26); }',
    '.launcher:focus-visible { outline: 3px solid #f0a500; outline-offset: 3px; }',
    '.launcher svg { width: 28px; height: 28px; }',
    '.launcher .close { display: none; } .launcher[aria-expanded="true"] .chat { display: none; }',
    '.launcher[aria-expanded="true"] .close { display: block; }',
    '.badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px; box-sizing: border-box;',
    '  border-radius: 11px; background: #dc2626; color: #fff; font: 700 12px/22px system-ui, sans-serif; text-align: center;',
    '  border: 2px solid #fff; }',
    '.badge[hidden] { display: none; }',
    '.panel { position: fixed; right: 20px; bottom: 92px; width: 380px; height: min(640px, calc(100vh - 112px));',
    '  border-radius: 16px; overflow: hidden; background: #fff; z-index: 2147483647;',
    '  box-shadow: 0 12px 48px rgba(0,0,0,.24), 0 2px 8px rgba(0,0,0,.1);',
    '  opacity: 0; transform: translateY(12px) scale(.98); transform-origin: bottom right; pointer-events: none; visibility: hidden;',
    '  transition: opacity .18s ease, transform .18s ease, visibility 0s linear .18s; }',
    '.panel.open { opacity: 1; transform: none; pointer-events: auto; visibility: visible; transition: opacity .18s ease, transform .18s ease; }',
    '.panel iframe { border: 0; width: 100%; height: 100%; display: block; }',
    '@media (max-width: 520px) {',
    '  .panel { right: 0; bottom: 0; width: 100vw; height: 100%; border-radius: 0; }',
    '  .panel.open ~ .launcher { display: none; }',
    '}',
    '@media (prefers-reduced-motion: reduce) { .panel, .launcher { transition: none; } }',
  ].join('\n');

  var host = document.createElement('div');
  host.id = 'switchboard-widget';
  host.setAttribute('data-testid', 'switchboard-widget');
  var root = host.attachShadow({ mode: 'open' });
  var style = document.createElement('style');
  style.textContent = CSS;
  var panel = document.createElement('div');
  panel.className = 'panel';
  panel.setAttribute('data-testid', 'widget-panel');
  var launcher = document.createElement('button');
  launcher.type = 'button';
  launcher.className = 'launcher';
  launcher.setAttribute('data-testid', 'widget-launcher');
  launcher.setAttribute('aria-expanded', 'false');
  launcher.setAttribute('aria-label', 'Open the chat');
  launcher.innerHTML =
    '<svg class="chat" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M12 3C6.5 3 2 6.9 2 11.7c0 2.4 1.1 4.6 3 6.2-.1 1.3-.6 2.6-1.6 3.6 2 .1 3.9-.6 5.3-1.8 1 .3 2.1.4 3.3.4 5.5 0 10-3.9 10-8.7S17.5 3 12 3z"/></svg>' +
    '<svg class="close" viewBox="0 0 24 24" aria-hidden="true"><path d="M6 9l6 6 6-6" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>' +
    '<span class="badge" data-testid="widget-badge" hidden></span>';
  var badge = launcher.querySelector('.badge');
  root.appendChild(style);
  root.appendChild(panel);
  root.appendChild(launcher);

  function brand(color, title) {
    if (!/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(color || '')) return;
    desk.color = color;
    if (title) desk.title = title;
    host.style.setProperty('--brand', color);
    host.style.setProperty('--brand-ink', light(color) ? '#111827' : '#ffffff');
    launcher.setAttribute('aria-label', (isOpen ? 'Minimise the chat with ' : 'Open the chat with ') + desk.title);
  }

  /** Whether dark text reads better than white on `hex`. */
  function light(hex) {
    var h = hex.slice(1);
    if (h.length === 3) h = h.replace(/./g, '$&$&');
    var lum = [0, 2, 4].map(function (i) {
      var c = parseInt(h.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var l = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    return (l + 0.05) / 0.05 > 1.05 / (l + 0.05);
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement('iframe');
    frame.title = 'Chat with ' + desk.title;
    frame.setAttribute('data-testid', 'widget-frame');
    frame.allow = 'autoplay';
    // The host page (without its query or fragment) is where the customer came from.
    var q = 'embed=1&host=' + encodeURIComponent(location.origin) + '&page=' + encodeURIComponent(location.origin + location.pathname) +
      (category ? '&category=' + encodeURIComponent(category) : '');
    frame.src = hub + '/widget.html?' + q;
    panel.appendChild(frame);
  }

  function tellFrame(msg) {
    if (!frame || !frame.contentWindow) return;
    msg.source = 'switchboard-widget-loader';
    frame.contentWindow.postMessage(msg, hub);
  }

  function setUnread(n) {
    state.unread = n;
    save();
    badge.hidden = !n;
    badge.textContent = n > 9 ? '9+' : String(n || '');
    document.title = n ? '(' + n + ') New message · ' + baseTitle : baseTitle;
  }

  function open(byUser) {
    ensureFrame();
    isOpen = true;
    state.open = true;
    panel.classList.add('open');
    launcher.setAttribute('aria-expanded', 'true');
    brand(desk.color, desk.title);
    setUnread(0);
    tellFrame({ type: 'visibility', open: true, focus: !!byUser });
    if (byUser) frame.focus();
  }

  function close() {
    isOpen = false;
    state.open = false;
    save();
    panel.classList.remove('open');
    launcher.setAttribute('aria-expanded', 'false');
    brand(desk.color, desk.title);
    tellFrame({ type: 'visibility', open: false });
    launcher.focus();
  }

  launcher.addEventListener('click', function () { if (isOpen) close(); else open(true); });

  window.addEventListener('message', function (e) {
    if (!frame || e.source !== frame.contentWindow || e.origin !== hub) return;
    var data = e.data;
    if (!data || data.source !== 'switchboard-widget') return;
    switch (data.type) {
      case 'ready':
        brand(data.color, data.title);
        frame.title = 'Chat with ' + desk.title;
        if (identity.identifier || identity.name || identity.email) {
          tellFrame({ type: 'identity', identifier: identity.identifier, identifier_hash: identity.identifier_hash,
            name: identity.name, email: identity.email });
        }
        tellFrame({ type: 'visibility', open: isOpen });
        break;
      case 'session':
        state.active = !!data.active;
        save();
        break;
      case 'reply':
        if (!isOpen) setUnread((state.unread || 0) + 1);
        else if (document.hidden) document.title = 'New message from ' + String(data.name || 'us') + ' · ' + baseTitle;
        break;
      case 'close':
        close();
        break;
    }
  });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && isOpen) document.title = baseTitle;
  });

  // The desk's colour before the frame exists (the hub answers sites it allows).
  fetch(hub + '/api/widget', { mode: 'cors', credentials: 'omit' })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (c) { if (c) brand(c.color, c.title); })
    .catch(function () { /* the frame brings the colour */ });

  function mount() {
    document.body.appendChild(host);
    // A chat in progress (or left open) on the previous page carries on here.
    if (state.unread) setUnread(state.unread);
    if (state.open) open();
    else if (state.active) ensureFrame();
  }
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);

  window.SwitchboardWidget = { open: open, close: close };
})();
