/** The browser terminal: xterm.js with its addons, themed like the page. */

import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { Terminal, type ITheme } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";

export const LIGHT: ITheme = {
  background: "#ffffff",
  foreground: "#1f2330",
  cursor: "#4f46e5",
  cursorAccent: "#ffffff",
  selectionBackground: "#c7d2fe",
  black: "#1f2330",
  red: "#c62828",
  green: "#2e7d32",
  yellow: "#a16207",
  blue: "#1d4ed8",
  magenta: "#9333ea",
  cyan: "#0e7490",
  white: "#d4d7e0",
  brightBlack: "#6b7280",
  brightRed: "#dc2626",
  brightGreen: "#16a34a",
  brightYellow: "#ca8a04",
  brightBlue: "#2563eb",
  brightMagenta: "#a855f7",
  brightCyan: "#0891b2",
  brightWhite: "#f3f4f6",
};

export const DARK: ITheme = {
  background: "#0b0d12",
  foreground: "#e7e9f0",
  cursor: "#8b85ff",
  cursorAccent: "#0b0d12",
  selectionBackground: "#3b3a70",
  black: "#1c1f2a",
  red: "#ff6b61",
  green: "#3ecf8e",
  yellow: "#f0b35a",
  blue: "#6ea8fe",
  magenta: "#c792ea",
  cyan: "#56d4dd",
  white: "#c8ccd8",
  brightBlack: "#6f7689",
  brightRed: "#ff8a80",
  brightGreen: "#69f0ae",
  brightYellow: "#ffd180",
  brightBlue: "#90caf9",
  brightMagenta: "#e1bee7",
  brightCyan: "#84ffff",
  brightWhite: "#ffffff",
};

export interface Xterm {
  term: Terminal;
  fit: FitAddon;
  search: SearchAddon;
}

export function createTerminal(el: HTMLElement, dark: boolean, readOnly: boolean): Xterm {
  const term = new Terminal({
    allowProposedApi: true, // the unicode11 addon's width tables
    cursorBlink: !readOnly,
    disableStdin: readOnly,
    fontFamily: 'ui-monospace, "SF Mono", "Cascadia Code", Menlo, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    lineHeight: 1.15,
    scrollback: 5000,
    theme: dark ? DARK : LIGHT,
  });
  const fit = new FitAddon();
  const search = new SearchAddon();
  term.loadAddon(fit);
  term.loadAddon(search);
  term.loadAddon(
    new WebLinksAddon((_event, uri) => {
      const w = window.open(uri, "_blank", "noopener,noreferrer");
      if (w) w.opener = null;
    }),
  );
  term.loadAddon(new Unicode11Addon());
  term.unicode.activeVersion = "11";
  term.open(el);
  fit.fit();
  return { term, fit, search };
}

/** The page's keys on the terminal (xterm.js takes one handler): copy on select,
 * Ctrl+Shift+C / Ctrl+Shift+V as in desktop terminals, and the way out of the terminal.
 * A shell needs Tab, so Tab stays in the terminal until Ctrl+M turns on tab-focus mode
 * (VS Code's convention; WCAG 2.1.2, no keyboard trap): then Tab and Shift+Tab move the
 * focus and the terminal does not see them. */
export function terminalKeys(
  term: Terminal,
  keys: { onCopied: () => void; tabMoves: () => boolean; toggleTabMoves: () => void },
): void {
  const { onCopied } = keys;
  const copy = () => {
    const text = term.getSelection();
    if (text) navigator.clipboard?.writeText(text).then(onCopied, () => undefined);
  };
  term.onSelectionChange(() => {
    if (term.hasSelection()) copy();
  });
  term.attachCustomKeyEventHandler((e) => {
    if (e.ctrlKey && !e.shiftKey && !e.altKey && !e.metaKey && e.code === "KeyM") {
      e.preventDefault();
      if (e.type === "keydown") keys.toggleTabMoves();
      return false;
    }
    if (e.key === "Tab" && !e.ctrlKey && !e.altKey && !e.metaKey && keys.tabMoves()) return false;
    if (e.type !== "keydown" || !e.ctrlKey || !e.shiftKey) return true;
    if (e.code === "KeyC") {
      e.preventDefault();
      copy();
      return false;
    }
    if (e.code === "KeyV") {
      e.preventDefault();
      navigator.clipboard?.readText().then((t) => term.paste(t), () => undefined);
      return false;
    }
    return true;
  });
}

/** The visible screen as text (what the acceptance tests read). */
export function screenText(term: Terminal): string {
  const buf = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? "");
  return lines.join("\n").replace(/\n+$/, "");
}
