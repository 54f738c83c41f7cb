// Waits between retries: doubling from a short first wait up to a cap, each
// drawn at random from its upper half (jitter), so a hub that comes back is
// not hit by every page at the same instant.

/**
 * First wait and longest wait, in ms. The cap is short next to the hub's resume
 * grace (RESUME_GRACE_SECS, 30 s by default): a page whose network comes back
 * late in the grace period must still get there in time to keep its chats.
 */
export const FIRST_MS = 500;
export const CAP_MS = 5000;

/** The wait before retry number `attempt` (0 is the first retry). */
export function backoffDelay(attempt, { first = FIRST_MS, cap = CAP_MS } = {}) {
  const ceiling = Math.min(cap, first * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * Calls `attempt()` until it returns something other than undefined, waiting
 * backoffDelay between tries; `onRetry(delay)` is told before each wait.
 * Returns a function that stops the retrying.
 */
export function retryWithBackoff(attempt, onDone, { onRetry } = {}) {
  let stopped = false;
  let timer = null;
  let n = 0;
  const run = async () => {
    if (stopped) return;
    const result = await attempt();
    if (stopped) return;
    if (result !== undefined) { onDone(result); return; }
    const delay = backoffDelay(n);
    n += 1;
    onRetry?.(delay);
    timer = setTimeout(run, delay);
  };
  run();
  return () => { stopped = true; clearTimeout(timer); };
}
