// Files in a chat: picking, dropping and pasting them, their uploads (with progress and
// a way to cancel), and how a message shows the files it carries. Used by ChatView on
// the customer page, the widget, the agent console and (signed-in staff) the buddy list.
//
// An upload goes to `POST /api/attachments` with XMLHttpRequest (fetch reports no upload
// progress); the answer's id is what the next `message` names. A file removed from the
// tray, or cancelled, is taken back (`DELETE /api/attachments/{id}`) so its bytes stop
// counting against the quotas; one cancelled mid-upload is cut off and never kept. Files are shown through
// links the hub signs for a few minutes (`GET /api/attachments/{id}/link`), asked for when
// a message is shown: images as a thumbnail that opens the full picture, anything else as
// a card with its name, type and size and a download link.

import { el } from './dom.js';

/** Types the hub takes, for the file picker's filter (the hub decides from the bytes). */
const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.txt,.pdf,.doc,.docx,.xls,.xlsx,.ppt,.pptx,.odt,.ods,.odp,.rtf';

/** A paperclip, drawn (an emoji would need a font the machine may not have). */
function paperclip() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48');
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '2');
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

/** "48 KB", "1.2 MB": a size as people read it. */
export function humanSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A short label for a MIME type: "PNG image", "PDF", "Word document". */
export function typeLabel(mime) {
  const labels = {
    'image/png': 'PNG image', 'image/jpeg': 'JPEG image', 'image/gif': 'GIF image', 'image/webp': 'WebP image',
    'application/pdf': 'PDF', 'text/plain; charset=utf-8': 'Text',
    'application/msword': 'Word document',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'Word document',
    'application/vnd.ms-excel': 'Excel sheet',
    'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'Excel sheet',
    'application/vnd.ms-powerpoint': 'PowerPoint',
    'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'PowerPoint',
    'application/rtf': 'Rich text',
    'message/rfc822': 'Mail',
  };
  return labels[mime] || (mime.startsWith('application/vnd.oasis.opendocument') ? 'OpenDocument' : 'File');
}

/**
 * How a page reaches the hub for files: `conversation()` names the chat, `headers()`
 * adds the customer's token (staff send their session cookie by themselves).
 */
export class FileAccess {
  constructor({ conversation, headers = () => ({}) }) {
    this.conversation = conversation;
    this.headers = headers;
    /** id → promise of its links, until they are about to expire. */
    this.links = new Map();
  }

  /**
   * Starts uploading `file`: `{ promise, abort, bodySent }`; `onProgress(fraction)` as it
   * goes. `bodySent()`: are all its bytes out (then the hub may be keeping it already)?
   */
  upload(file, onProgress) {
    const xhr = new XMLHttpRequest();
    let bodySent = false;
    const query = new URLSearchParams({ conversation: this.conversation(), name: file.name || 'pasted image.png' });
    const promise = new Promise((resolve, reject) => {
      xhr.open('POST', `/api/attachments?${query}`);
      for (const [k, v] of Object.entries(this.headers())) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.upload.onload = () => { bodySent = true; };
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: said below */ }
        if (xhr.status === 201 && body) resolve(body);
        else reject(new Error(body?.error?.message || `upload failed (${xhr.status})`));
      };
      xhr.onerror = () => reject(new Error('the upload broke off; check your connection'));
      xhr.onabort = () => reject(Object.assign(new Error('cancelled'), { cancelled: true }));
      xhr.send(file);
    });
    return { promise, abort: () => xhr.abort(), bodySent: () => bodySent };
  }

  /**
   * Takes back upload `id`, which no message carried: the hub deletes it and gives its
   * bytes back to the conversation's and the day's quotas. Best effort: a failure is
   * logged (the file then stays, counted, as before).
   */
  remove(id) {
    return fetch(`/api/attachments/${encodeURIComponent(id)}`, { method: 'DELETE', headers: this.headers(), credentials: 'same-origin' })
      .then((r) => { if (!r.ok && r.status !== 404) throw new Error(`not taken back (${r.status})`); })
      .catch((e) => console.warn(`attachments: ${e.message}`));
  }

  /** Links to attachment `id` (cached while they work). */
  link(id) {
    const cached = this.links.get(id);
    if (cached && cached.until > Date.now()) return cached.promise;
    const promise = fetch(`/api/attachments/${encodeURIComponent(id)}/link`, { headers: this.headers(), credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`no link (${r.status})`))));
    // Asked again a minute before they expire (they work 15 minutes).
    this.links.set(id, { promise, until: Date.now() + 14 * 60 * 1000 });
    promise.catch(() => this.links.delete(id));
    return promise;
  }
}

/**
 * The files a message carries, as shown in the transcript: filled in as their links come.
 * @param {Array<{id:string,name:string,type:string,size:number,thumbnail:boolean}>} files
 * @param {FileAccess|null} access
 */
export function renderFiles(files, access) {
  const list = el('ul', { class: 'attachments', dataset: { testid: 'message-attachments' } });
  for (const file of files) {
    const label = `${file.name}, ${typeLabel(file.type)}, ${humanSize(file.size)}`;
    if (file.thumbnail) {
      const img = el('img', { alt: file.name, dataset: { testid: 'attachment-thumbnail' } });
      const link = el('a', { class: 'attachment-image', target: '_blank', rel: 'noopener', title: label, 'aria-label': `${file.name} (opens the full picture)` }, img);
      list.append(el('li', {}, link));
      access?.link(file.id).then((links) => {
        img.src = links.thumbnail_url;
        link.href = links.url;
      }).catch(() => { img.alt = `${file.name} (unavailable)`; });
    } else {
      const download = el('a', { class: 'attachment-download', download: file.name, dataset: { testid: 'attachment-download' } }, 'Download');
      const card = el('div', { class: 'attachment-card', dataset: { testid: 'attachment-card' } },
        el('span', { class: 'attachment-icon', 'aria-hidden': 'true' }, typeLabel(file.type).slice(0, 4).toUpperCase()),
        el('span', { class: 'attachment-text' },
          el('span', { class: 'attachment-name', title: file.name }, file.name),
          el('span', { class: 'attachment-meta muted' }, `${typeLabel(file.type)} · ${humanSize(file.size)} · `, download)));
      list.append(el('li', {}, card));
      access?.link(file.id).then((links) => { download.href = links.url; })
        .catch(() => { download.textContent = 'Unavailable'; });
    }
  }
  return list;
}

/** How long a new upload waits at most for the take-backs in flight. */
const TAKE_BACK_WAIT_MS = 10_000;

/**
 * `begin()` (an upload: `{ promise, abort, bodySent }`) started once every promise of
 * `waits` has settled (at once when there is none; after `TAKE_BACK_WAIT_MS` at most), as
 * an upload itself: cancelled before it starts, it never starts.
 */
function afterAll(waits, begin) {
  if (waits.size === 0) return begin();
  let started = null;
  let cancelled = false;
  // Bounded: a take-back that never settles (a request the network holds) makes later
  // files wait that long at most, then go, and take their chance with the quota.
  const waited = Promise.race([Promise.allSettled([...waits]), new Promise((r) => { setTimeout(r, TAKE_BACK_WAIT_MS); })]);
  const promise = waited.then(() => {
    if (cancelled) throw Object.assign(new Error('cancelled'), { cancelled: true });
    started = begin();
    return started.promise;
  });
  return {
    promise,
    abort: () => { cancelled = true; started?.abort(); },
    bodySent: () => Boolean(started?.bodySent()),
  };
}

/**
 * The composer's files: an attach button, drop and paste, and a tray of uploads, each
 * with its progress and a button to cancel or remove it.
 */
export class FileTray {
  /**
   * @param {FileAccess} access
   * @param {()=>void} onChange called when an upload starts, ends or goes
   */
  constructor(access, onChange) {
    this.access = access;
    this.onChange = onChange;
    /** The uploads in the tray, in the order added. */
    this.items = [];
    /** Take-backs on their way (promises): a new upload waits for them, or the hub could
     *  still count a file just removed against the quota and refuse the next one. */
    this.takingBack = new Set();
    const inputId = `files-${Math.random().toString(36).slice(2, 9)}`;
    this.input = el('input', { type: 'file', id: inputId, multiple: true, accept: ACCEPT, class: 'sr-only', tabindex: '-1', 'aria-label': 'Files to attach', dataset: { testid: 'attach-input' } });
    this.button = el('button', { type: 'button', class: 'attach-button', 'aria-label': 'Attach files', title: 'Attach files (or drop or paste them)', dataset: { testid: 'attach-button' } }, paperclip());
    this.button.addEventListener('click', () => this.input.click());
    this.input.addEventListener('change', () => { this.add([...this.input.files]); this.input.value = ''; });
    this.tray = el('ul', { class: 'file-tray', 'aria-label': 'Files to send', hidden: true, dataset: { testid: 'file-tray' } });
  }

  /** Drop and paste on `target` add files too. */
  listen(dropTarget, pasteTarget) {
    dropTarget.addEventListener('dragover', (e) => {
      if ([...(e.dataTransfer?.types || [])].includes('Files')) { e.preventDefault(); dropTarget.classList.add('dropping'); }
    });
    dropTarget.addEventListener('dragleave', () => dropTarget.classList.remove('dropping'));
    dropTarget.addEventListener('drop', (e) => {
      dropTarget.classList.remove('dropping');
      if (!e.dataTransfer?.files?.length) return;
      e.preventDefault();
      this.add([...e.dataTransfer.files]);
    });
    pasteTarget.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (!files.length) return;
      e.preventDefault();
      this.add(files);
    });
  }

  add(files) {
    for (const file of files) this.start(file);
  }

  start(file) {
    const name = file.name || 'pasted image.png';
    const progress = el('progress', { max: 1, value: 0, 'aria-label': `Uploading ${name}`, dataset: { testid: 'upload-progress' } });
    const status = el('span', { class: 'file-status muted', 'aria-live': 'polite' }, humanSize(file.size));
    const remove = el('button', { type: 'button', class: 'file-remove', 'aria-label': `Cancel ${name}`, dataset: { testid: 'upload-cancel' } }, '×');
    const row = el('li', { class: 'file-item', dataset: { testid: 'file-item' } },
      el('span', { class: 'file-name' }, name), progress, status, remove);
    const item = { file, row, done: null, failed: false };
    const upload = afterAll(this.takingBack, () => this.access.upload(file, (f) => { progress.value = f; }));
    item.abort = upload.abort;
    remove.addEventListener('click', () => {
      this.drop(item);
      if (item.failed) return;
      if (item.done) { this.takeBack(this.access.remove(item.done.id)); return; }
      item.withdrawn = true;
      // With all its bytes out the hub may be keeping it: cut off now, it could be kept
      // with its id never known. It finishes instead, and is taken back then.
      if (!upload.bodySent()) upload.abort();
      else this.takeBack(upload.promise.then((answer) => this.access.remove(answer.id), () => {}));
    });
    upload.promise.then((answer) => {
      if (item.withdrawn) return;
      item.done = answer;
      progress.remove();
      status.textContent = 'ready';
      row.dataset.ready = 'true';
      remove.setAttribute('aria-label', `Remove ${name}`);
      this.onChange();
    }).catch((e) => {
      if (e.cancelled || item.withdrawn) return;
      item.failed = true;
      progress.remove();
      status.textContent = `not sent: ${e.message}`;
      row.classList.add('failed');
      remove.setAttribute('aria-label', `Dismiss ${name}`);
      this.onChange();
    });
    this.items.push(item);
    this.tray.append(row);
    this.tray.hidden = false;
    this.onChange();
  }

  /** Keeps `promise` (a take-back) among those a new upload waits for, until it settles. */
  takeBack(promise) {
    const held = promise.finally(() => this.takingBack.delete(held));
    this.takingBack.add(held);
  }

  drop(item) {
    this.items = this.items.filter((i) => i !== item);
    item.row.remove();
    this.tray.hidden = this.items.length === 0;
    this.onChange();
  }

  /** Is any upload still on its way? */
  busy() { return this.items.some((i) => !i.done && !i.failed); }

  /** The uploaded files ready to go with the next message. */
  ready() { return this.items.filter((i) => i.done).map((i) => i.done); }

  /** After a send: the sent files leave the tray (failed ones stay, with why). */
  clearSent() {
    for (const item of [...this.items]) if (item.done) this.drop(item);
  }

  /** Off while the chat cannot take messages (reconnecting, ended); uploads on their way go on. */
  setEnabled(enabled) {
    this.button.disabled = !enabled;
  }
}
