/** Run `fn` now and every `ms` while the page is visible; returns the stop function. */
export function poll(fn: () => Promise<unknown> | unknown, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (document.visibilityState === "visible") {
      try {
        await fn();
      } catch {
        // the next tick tries again; the page shows the last good answer meanwhile
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  const wake = () => {
    if (document.visibilityState === "visible" && timer) {
      clearTimeout(timer);
      void tick();
    }
  };
  document.addEventListener("visibilitychange", wake);
  void tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    document.removeEventListener("visibilitychange", wake);
  };
}
