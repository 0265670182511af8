// Rexec interim web page: sign in, list agents, open a terminal.
// Plain browser JS, no build step. Tokens live in memory only (never storage).
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const el = {
    vendorMissing: $('vendor-missing'),
    userLabel: $('user-label'),
    signoutBtn: $('signout-btn'),
    loginView: $('login-view'),
    loginForm: $('login-form'),
    email: $('login-email'),
    password: $('login-password'),
    passcode: $('login-passcode'),
    loginError: $('login-error'),
    loginBtn: $('login-btn'),
    agentsView: $('agents-view'),
    agentsStatus: $('agents-status'),
    agentsError: $('agents-error'),
    agentsEmpty: $('agents-empty'),
    agentsTable: $('agents-table'),
    agentsBody: $('agents-body'),
    refreshBtn: $('refresh-btn'),
    terminalView: $('terminal-view'),
    backBtn: $('back-btn'),
    termTitle: $('term-title'),
    termSession: $('term-session'),
    termStatus: $('term-status'),
    reconnectBtn: $('reconnect-btn'),
    terminal: $('terminal'),
  };

  const vendorOk = typeof window.Terminal === 'function' &&
    !!window.FitAddon && typeof window.FitAddon.FitAddon === 'function';

  // ---------------------------------------------------------------- API --

  const auth = { access: null, refresh: null, expiresAt: 0, user: null };
  let refreshing = null;

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
      this.handled = false; // true once the UI already reacted (signed out)
    }
  }

  async function errorFrom(resp) {
    let code = 'http_' + resp.status;
    let message = 'The hub answered ' + resp.status + (resp.statusText ? ' ' + resp.statusText : '') + '.';
    try {
      const body = await resp.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) { /* not JSON */ }
    return new ApiError(resp.status, code, message);
  }

  async function request(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (_) {
      throw new ApiError(0, 'network_error', 'Cannot reach the hub. Check the connection and try again.');
    }
    if (!resp.ok) throw await errorFrom(resp);
    if (resp.status === 204) return null;
    try { return await resp.json(); } catch (_) { return null; }
  }

  function setTokens(data) {
    auth.access = data.access_token;
    auth.refresh = data.refresh_token;
    auth.expiresAt = Date.now() + (Number(data.expires_in) || 0) * 1000;
    if (data.user) auth.user = data.user;
  }

  // One refresh at a time: concurrent 401s share it (a refresh token is single use).
  function refreshTokens() {
    if (!refreshing) {
      const token = auth.refresh;
      refreshing = (async () => {
        if (!token) throw new ApiError(401, 'not_authenticated', 'Please sign in.');
        try {
          setTokens(await request('POST', '/api/refresh', { refresh_token: token }));
        } catch (err) {
          if (err.status === 401) {
            signOutLocal('Your session has expired. Please sign in again.');
            err.handled = true;
          }
          throw err;
        }
      })().finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // Authenticated call: on 401, refresh the tokens and retry once.
  async function api(method, path, body) {
    try {
      return await request(method, path, body, auth.access);
    } catch (err) {
      if (err.status !== 401 || !auth.refresh) throw err;
    }
    await refreshTokens();
    return request(method, path, body, auth.access);
  }

  // --------------------------------------------------------------- views --

  function show(view) {
    el.loginView.hidden = view !== 'login';
    el.agentsView.hidden = view !== 'agents';
    el.terminalView.hidden = view !== 'terminal';
    const signedIn = view !== 'login';
    el.signoutBtn.hidden = !signedIn;
    el.userLabel.hidden = !signedIn;
    el.userLabel.textContent = signedIn && auth.user ? (auth.user.email || auth.user.name || '') : '';
  }

  function showError(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  function showLogin(message) {
    show('login');
    showError(el.loginError, message);
    (el.email.value ? el.password : el.email).focus();
  }

  function signOutLocal(message) {
    closeTerminal();
    auth.access = auth.refresh = auth.user = null;
    auth.expiresAt = 0;
    showLogin(message);
  }

  // --------------------------------------------------------------- login --

  el.loginForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const email = el.email.value.trim();
    const password = el.password.value;
    if (!email || !password) {
      showError(el.loginError, 'Enter your email and password.');
      (email ? el.password : el.email).focus();
      return;
    }
    const body = { email, password };
    const passcode = el.passcode.value.trim();
    if (passcode) body.passcode = passcode;

    showError(el.loginError, null);
    el.loginBtn.disabled = true;
    el.loginBtn.textContent = 'Signing in…';
    try {
      setTokens(await request('POST', '/api/login', body));
      el.password.value = '';
      el.passcode.value = '';
      showAgents();
    } catch (err) {
      showError(el.loginError, err.message);
      if (err.code === 'passcode_required') el.passcode.focus();
      else if (err.code === 'invalid_credentials') el.password.select();
    } finally {
      el.loginBtn.disabled = false;
      el.loginBtn.textContent = 'Sign in';
    }
  });

  el.signoutBtn.addEventListener('click', async () => {
    const token = auth.refresh;
    const access = auth.access;
    signOutLocal(null);
    if (token) {
      try { await request('POST', '/api/logout', { refresh_token: token }, access); } catch (_) { /* best effort */ }
    }
  });

  // -------------------------------------------------------------- agents --

  function showAgents() {
    show('agents');
    el.refreshBtn.focus();
    loadAgents();
  }

  async function loadAgents() {
    el.refreshBtn.disabled = true;
    el.agentsStatus.textContent = 'Loading…';
    showError(el.agentsError, null);
    try {
      const data = await api('GET', '/api/agents');
      renderAgents((data && data.agents) || []);
    } catch (err) {
      if (!err.handled) showError(el.agentsError, err.message);
    } finally {
      el.agentsStatus.textContent = '';
      el.refreshBtn.disabled = false;
    }
  }

  function cell(text, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    return td;
  }

  function renderAgents(agents) {
    el.agentsBody.replaceChildren();
    el.agentsEmpty.hidden = agents.length > 0;
    el.agentsTable.hidden = agents.length === 0;
    for (const agent of agents) {
      const online = agent.status === 'online';
      const tr = document.createElement('tr');

      const name = cell(agent.name || agent.id);
      name.title = agent.id;
      tr.appendChild(name);
      tr.appendChild(cell(agent.hostname || ''));

      const status = document.createElement('span');
      status.className = 'status ' + (online ? 'status-online' : 'status-offline');
      status.textContent = online ? 'online' : 'offline';
      if (agent.last_seen) status.title = 'Last seen ' + agent.last_seen;
      const statusCell = cell();
      statusCell.appendChild(status);
      tr.appendChild(statusCell);

      const actions = cell(undefined, 'actions');
      if (online) {
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.textContent = 'Open terminal';
        btn.setAttribute('aria-label', 'Open terminal on ' + (agent.name || agent.id));
        if (!vendorOk) {
          btn.disabled = true;
          btn.title = 'Terminal library missing: run scripts/build-web.sh';
        }
        btn.addEventListener('click', () => openTerminal(agent));
        actions.appendChild(btn);
      }
      tr.appendChild(actions);
      el.agentsBody.appendChild(tr);
    }
  }

  el.refreshBtn.addEventListener('click', loadAgents);

  // ------------------------------------------------------------ terminal --

  const encoder = new TextEncoder();
  let term = null; // the open terminal: {agent, xterm, fit, ws, sessionId, ...}
  let fitQueued = false;

  function setTermStatus(text, isError) {
    el.termStatus.textContent = text || '';
    el.termStatus.className = isError ? 'error-text' : 'muted';
  }

  function clean(text) {
    return String(text === undefined || text === null ? '' : text).replace(/[\x00-\x1f\x7f]/g, ' ');
  }

  function fitNow() {
    fitQueued = false;
    if (!term || el.terminalView.hidden) return;
    try { term.fit.fit(); } catch (_) { /* not laid out yet */ }
  }

  function scheduleFit() {
    if (fitQueued) return;
    fitQueued = true;
    window.requestAnimationFrame(fitNow);
  }

  function send(t, data) {
    if (t.ws && t.ws.readyState === WebSocket.OPEN && !t.ended) t.ws.send(data);
  }

  function sendResize(t) {
    send(t, JSON.stringify({ type: 'resize', cols: t.xterm.cols, rows: t.xterm.rows }));
    t.sentCols = t.xterm.cols;
    t.sentRows = t.xterm.rows;
  }

  function openTerminal(agent) {
    if (!vendorOk) {
      el.vendorMissing.hidden = false;
      return;
    }
    closeTerminal();
    show('terminal');
    el.termTitle.textContent = agent.name || agent.id;
    el.termSession.textContent = '';
    el.reconnectBtn.hidden = true;

    const xterm = new window.Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#0b0d10', foreground: '#e6e8eb', cursor: '#e6e8eb', selectionBackground: '#3a4a66' },
    });
    const fit = new window.FitAddon.FitAddon();
    xterm.loadAddon(fit);
    xterm.open(el.terminal);

    const t = { agent, xterm, fit, ws: null, sessionId: null, role: null, ended: false, retried: false };
    term = t;
    try { fit.fit(); } catch (_) { /* keeps 80x24 */ }

    xterm.onData((data) => send(t, encoder.encode(data)));
    xterm.onBinary((data) => { // e.g. some mouse reports: one byte per char
      const bytes = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
      send(t, bytes);
    });
    xterm.onResize(() => sendResize(t));

    if (typeof ResizeObserver === 'function') {
      t.observer = new ResizeObserver(scheduleFit);
      t.observer.observe(el.terminal);
    }
    window.addEventListener('resize', scheduleFit);

    connect(t, null);
    xterm.focus();
  }

  async function connect(t, sessionId) {
    setTermStatus('Connecting…');
    // A WebSocket cannot retry after a 401, so refresh an access token about to expire.
    if (auth.refresh && auth.expiresAt && auth.expiresAt - Date.now() < 30000) {
      try { await refreshTokens(); } catch (err) {
        if (!err.handled) setTermStatus(err.message, true);
        return;
      }
    }
    if (term !== t) return; // closed meanwhile

    const params = new URLSearchParams({
      token: auth.access || '',
      cols: String(t.xterm.cols),
      rows: String(t.xterm.rows),
    });
    if (sessionId) params.set('session', sessionId);
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = scheme + '//' + window.location.host + '/ws/terminal/' +
      encodeURIComponent(t.agent.id) + '?' + params.toString();

    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    t.ws = ws;
    t.joinId = sessionId;
    t.gotSession = false;
    t.sentCols = t.xterm.cols;
    t.sentRows = t.xterm.rows;

    ws.onmessage = (ev) => {
      if (t.ws !== ws) return;
      if (typeof ev.data === 'string') onControl(t, ev.data);
      else t.xterm.write(new Uint8Array(ev.data));
    };
    ws.onclose = (ev) => { onClose(t, ws, ev); };
  }

  function onControl(t, text) {
    let msg;
    try { msg = JSON.parse(text); } catch (_) { return; }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'session':
        t.gotSession = true;
        t.sessionId = msg.id;
        t.role = msg.role;
        el.termSession.textContent = 'session ' + clean(msg.id) + ' · ' + clean(msg.role);
        setTermStatus('Connected');
        if (msg.role === 'viewer') t.xterm.options.disableStdin = true;
        // the window may have been refitted while the socket was connecting
        if (t.xterm.cols !== t.sentCols || t.xterm.rows !== t.sentRows) sendResize(t);
        break;
      case 'exit': {
        const code = msg.code === undefined || msg.code === null ? '?' : clean(msg.code);
        t.xterm.write('\r\n[process exited with code ' + code + ']\r\n');
        setTermStatus('Exited (' + code + ')');
        stop(t);
        break;
      }
      case 'error':
        t.lastError = msg;
        t.xterm.write('\r\n\x1b[31m[error: ' + clean(msg.message || msg.code) + ']\x1b[0m\r\n');
        setTermStatus(clean(msg.message || msg.code), true);
        break;
      default:
        break; // participants, approvals, ...: not shown on this page
    }
  }

  // The session is over: no more input, close our side, let the keyboard out.
  function stop(t) {
    t.ended = true;
    t.xterm.options.disableStdin = true;
    t.xterm.options.cursorBlink = false;
    if (t.ws) {
      const ws = t.ws;
      t.ws = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    }
    el.reconnectBtn.hidden = true;
    el.backBtn.focus();
  }

  async function onClose(t, ws, ev) {
    if (term !== t || t.ws !== ws) return; // superseded or we closed it
    t.ws = null;
    if (t.ended) return;

    // Refused at the upgrade (HTTP status not visible: 1006) or token rejected (4401):
    // refresh the tokens if needed, check the agent, and try once more.
    if (!t.retried && (ev.code === 4401 || (ev.code === 1006 && !t.gotSession))) {
      t.retried = true;
      setTermStatus('Checking access…');
      try {
        if (ev.code === 4401) await refreshTokens();
        const agent = await api('GET', '/api/agents/' + encodeURIComponent(t.agent.id));
        if (term !== t) return;
        if (agent && agent.status && agent.status !== 'online') {
          t.xterm.write('\r\n[agent is offline]\r\n');
          setTermStatus('Agent is offline', true);
          stop(t);
          return;
        }
        connect(t, t.gotSession ? t.sessionId : t.joinId);
      } catch (err) {
        if (term !== t || err.handled) return;
        t.xterm.write('\r\n[' + clean(err.message) + ']\r\n');
        setTermStatus(err.message, true);
        stop(t);
      }
      return;
    }

    t.xterm.write('\r\n[connection closed (code ' + ev.code + ')]\r\n');
    if (!t.lastError) setTermStatus('Disconnected', true);
    const fatal = ev.code >= 4400 && ev.code < 4500 && ev.code !== 4408 && ev.code !== 4429;
    el.reconnectBtn.hidden = fatal;
    if (fatal) stop(t);
  }

  el.reconnectBtn.addEventListener('click', () => {
    const t = term;
    if (!t || t.ws || t.ended) return;
    el.reconnectBtn.hidden = true;
    t.retried = false;
    t.lastError = null;
    if (t.sessionId) t.xterm.reset(); // rejoining replays the recent screen
    connect(t, t.sessionId);
    t.xterm.focus();
  });

  function closeTerminal() {
    const t = term;
    if (!t) return;
    term = null;
    if (t.ws) {
      const ws = t.ws;
      t.ws = null;
      ws.onclose = null;
      ws.onmessage = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    }
    if (t.observer) t.observer.disconnect();
    window.removeEventListener('resize', scheduleFit);
    t.xterm.dispose();
    el.terminal.replaceChildren();
  }

  el.backBtn.addEventListener('click', () => {
    closeTerminal();
    showAgents();
  });

  // ---------------------------------------------------------------- start --

  if (!vendorOk) el.vendorMissing.hidden = false;
  showLogin(null);
})();
