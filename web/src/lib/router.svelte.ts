/** A small history router: the hub answers index.html for every app path. */

export const route = $state({ path: location.pathname, search: location.search });

function sync(): void {
  route.path = location.pathname;
  route.search = location.search;
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return;
  if (opts.replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  sync();
  if (!opts.replace) window.scrollTo(0, 0);
}

/** The query of the current location (read reactively through `route.search`). */
export function query(): URLSearchParams {
  return new URLSearchParams(route.search);
}

/** `/t/:id` against `/t/ctr_1` gives {id: "ctr_1"}; null when it does not match. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(":")) params[w.slice(1)] = decodeURIComponent(g);
    else if (w !== g) return null;
  }
  return params;
}

window.addEventListener("popstate", sync);

// Same-origin links move within the app without a page load.
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = (ev.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download") || a.origin !== location.origin) return;
  if (a.getAttribute("href")?.startsWith("#")) return; // in-page (the skip link): the browser's
  if (a.pathname.startsWith("/api/") || a.pathname.startsWith("/install")) return;
  ev.preventDefault();
  navigate(a.pathname + a.search);
});
