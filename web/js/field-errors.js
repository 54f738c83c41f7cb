// A form's errors at their fields: the page checks what it can before any round trip
// (a required field left empty, an address that is no address), and a refusal from the
// server goes by the field its error code concerns. A field's error line is the element
// `<field id>-error` beside it: the field is marked `aria-invalid` and described by that
// line, and the first bad field takes the focus. The API's messages start lower-case (to
// read inside a sentence); shown on their own, they are written as sentences.

/** `text` as a sentence: a capital first letter and a full stop. */
export function sentence(text) {
  const t = String(text ?? '').trim();
  if (!t) return t;
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

const lineOf = (field) => document.getElementById(`${field.id}-error`);

/** Whether `field` is a control that takes `aria-invalid` (a group of boxes does not). */
const takesInvalid = (field) => field.matches('input, select, textarea');

/** Clears the errors of `fields`. */
export function clearFieldErrors(fields) {
  for (const field of fields) {
    field.removeAttribute('aria-invalid');
    const line = lineOf(field);
    if (line) line.textContent = '';
  }
}

/** Shows `message` at `field` (marked invalid, described by its error line). */
export function fieldError(field, message) {
  const line = lineOf(field);
  line.textContent = sentence(message);
  if (takesInvalid(field)) field.setAttribute('aria-invalid', 'true');
  const ids = (field.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
  if (!ids.includes(line.id)) field.setAttribute('aria-describedby', [...ids, line.id].join(' '));
}

/** Where focus goes for `field`: itself, or a group's first control. */
const focusable = (field) => (takesInvalid(field) ? field : field.querySelector('input, select, textarea, button') || field);

/**
 * What the field's own constraints say is wrong, in the words of `texts`
 * (`missing`: required and empty or only spaces; `type`: not an email or URL), or null.
 */
export function problemOf(field, texts) {
  if (field.required && !field.value.trim()) return texts.missing;
  if (field.value.trim() && (field.validity.typeMismatch || field.validity.badInput)) return texts.type || texts.missing;
  return null;
}

/**
 * `checks`: [field, message or null] pairs. Clears their errors, shows each message at its
 * field and focuses the first bad one. Whether none had a message.
 */
export function showFieldErrors(checks) {
  clearFieldErrors(checks.map(([field]) => field));
  const bad = checks.filter(([, message]) => message);
  for (const [field, message] of bad) fieldError(field, message);
  if (bad.length) focusable(bad[0][0]).focus();
  return bad.length === 0;
}

/**
 * A refusal from the API (`{code, message}`) at the field `fieldOf[code]` names (focused),
 * or, for a code no field answers for, in `formLine` for the whole form.
 */
export function refusalAt(error, fieldOf, formLine) {
  const field = fieldOf[error.code];
  if (field) {
    fieldError(field, error.message);
    focusable(field).focus();
  } else {
    formLine.textContent = sentence(error.message);
  }
}
