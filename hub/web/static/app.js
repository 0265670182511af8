// Rexec interim web page: sign in, list agents and containers, open a terminal.
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
    containersView: $('containers-view'),
    containersStatus: $('containers-status'),
    containersError: $('containers-error'),
    containersEmpty: $('containers-empty'),
    containersTable: $('containers-table'),
    containersBody: $('containers-body'),
    newContainerBtn: $('new-container-btn'),
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
  let epoch = 0; // bumped on sign-out: answers to older requests are dropped

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
    el.containersView.hidden = view !== 'agents';
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
    epoch++;
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

  // The agents view holds both cards: agents, then containers.
  function showAgents(focusNode) {
    show('agents');
    (focusNode || el.refreshBtn).focus();
    refreshAll();
  }

  let refreshingAll = null;

  // The Refresh button reloads both lists; clicks while loading share the load.
  function refreshAll() {
    if (!refreshingAll) {
      el.refreshBtn.disabled = true;
      refreshingAll = Promise.all([loadAgents(), loadContainers()]).finally(() => {
        refreshingAll = null;
        el.refreshBtn.disabled = false;
      });
    }
    return refreshingAll;
  }

  let agentsSeq = 0;

  async function loadAgents() {
    const seq = ++agentsSeq;
    const at = epoch;
    el.agentsStatus.textContent = 'Loading…';
    showError(el.agentsError, null);
    try {
      const data = await api('GET', '/api/agents');
      if (seq !== agentsSeq || at !== epoch) return;
      renderAgents((data && data.agents) || []);
    } catch (err) {
      if (seq !== agentsSeq || at !== epoch) return;
      if (!err.handled) showError(el.agentsError, err.message);
    } finally {
      if (seq === agentsSeq) el.agentsStatus.textContent = '';
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
        btn.addEventListener('click', () => openTerminal({ kind: 'agent', id: agent.id, name: agent.name }));
        actions.appendChild(btn);
      }
      tr.appendChild(actions);
      el.agentsBody.appendChild(tr);
    }
  }

  el.refreshBtn.addEventListener('click', () => { refreshAll(); });

  // ---------------------------------------------------------- containers --

  const UNAVAILABLE = 'Containers are not available on this hub (no Docker engine).';
  let containersUnavailable = false; // learnt from a 503 containers_unavailable
  let containersSeq = 0;
  let creating = false;

  function containerError(err) {
    if (err.code === 'containers_unavailable') {
      containersUnavailable = true;
      el.newContainerBtn.hidden = true;
      el.containersEmpty.hidden = true;
      return UNAVAILABLE;
    }
    return err.message; // plan_limit_reached (402) and the rest carry their own text
  }

  async function loadContainers() {
    const seq = ++containersSeq;
    const at = epoch;
    el.containersStatus.textContent = 'Loading…';
    try {
      const data = await api('GET', '/api/containers');
      if (seq !== containersSeq || at !== epoch) return;
      showError(el.containersError, containersUnavailable ? UNAVAILABLE : null);
      renderContainers((data && data.containers) || []);
    } catch (err) {
      if (seq !== containersSeq || at !== epoch) return;
      if (!err.handled) showError(el.containersError, containerError(err));
    } finally {
      if (seq === containersSeq) el.containersStatus.textContent = '';
    }
  }

  function plural(n, unit) { return n + ' ' + unit + (n === 1 ? '' : 's'); }

  // "in 7h 59m", "in 3m", "in 40s", "in 2d 4h"; "expired" once past; "never" without a date.
  function relativeExpiry(iso) {
    if (!iso) return { text: 'never', soon: false };
    const when = Date.parse(iso);
    if (Number.isNaN(when)) return { text: clean(iso), soon: false };
    const secs = Math.floor((when - Date.now()) / 1000);
    if (secs <= 0) return { text: 'expired', soon: true };
    const d = Math.floor(secs / 86400);
    const h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60);
    let text;
    if (d > 0) text = d + 'd ' + h + 'h';
    else if (h > 0) text = h + 'h ' + m + 'm';
    else if (m > 0) text = m + 'm';
    else text = secs + 's';
    return { text: 'in ' + text, soon: secs < 600 };
  }

  function setExpiry(node) {
    const r = relativeExpiry(node.dataset.expires);
    node.textContent = r.text;
    node.classList.toggle('expires-soon', r.soon);
  }

  function describeLimits(limits) {
    if (!limits || typeof limits !== 'object') return '';
    const parts = [];
    if (limits.cpus !== undefined && limits.cpus !== null) parts.push(limits.cpus + ' CPU');
    if (limits.memory_mb !== undefined && limits.memory_mb !== null) parts.push(limits.memory_mb + ' MB memory');
    return parts.join(', ');
  }

  function renderContainers(containers) {
    el.containersBody.replaceChildren();
    el.containersEmpty.hidden = containers.length > 0 || containersUnavailable;
    el.containersTable.hidden = containers.length === 0;
    el.newContainerBtn.hidden = containersUnavailable;
    for (const ctr of containers) {
      const label = ctr.name || ctr.id;
      const running = !ctr.status || ctr.status === 'running';
      const tr = document.createElement('tr');
      tr.dataset.id = ctr.id;

      const name = cell(label);
      const limits = describeLimits(ctr.limits);
      name.title = ctr.id + (limits ? ' · ' + limits : '') + (running ? '' : ' · ' + ctr.status);
      tr.appendChild(name);
      tr.appendChild(cell(ctr.image || '', 'mono'));

      const expires = cell(undefined, 'nowrap expires');
      expires.dataset.expires = ctr.expires_at || '';
      if (ctr.expires_at) expires.title = 'Expires ' + new Date(ctr.expires_at).toLocaleString();
      setExpiry(expires);
      tr.appendChild(expires);

      const actions = cell(undefined, 'actions');
      const open = document.createElement('button');
      open.type = 'button';
      open.textContent = 'Open terminal';
      open.setAttribute('aria-label', 'Open terminal in ' + label);
      if (!vendorOk) {
        open.disabled = true;
        open.title = 'Terminal library missing: run scripts/build-web.sh';
      } else if (!running) {
        open.disabled = true;
        open.title = 'The container is ' + ctr.status + '.';
      }
      open.addEventListener('click', () => openTerminal({ kind: 'container', id: ctr.id, name: ctr.name }));
      actions.appendChild(open);

      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'btn-danger';
      del.textContent = 'Delete';
      del.setAttribute('aria-label', 'Delete container ' + label);
      del.addEventListener('click', () => deleteContainer(ctr, tr, del));
      actions.appendChild(del);

      tr.appendChild(actions);
      el.containersBody.appendChild(tr);
    }
  }

  // Keep "in 7h 59m" current while the list is on screen.
  window.setInterval(() => {
    if (el.containersView.hidden) return;
    for (const node of el.containersBody.querySelectorAll('td.expires')) setExpiry(node);
  }, 20000);

  async function deleteContainer(ctr, tr, btn) {
    const label = ctr.name || ctr.id;
    if (!window.confirm('Delete container "' + label + '"? Its files are lost and open terminals close.')) return;
    const at = epoch;
    for (const b of tr.querySelectorAll('button')) b.disabled = true;
    btn.textContent = 'Deleting…';
    showError(el.containersError, null);
    try {
      await api('DELETE', '/api/containers/' + encodeURIComponent(ctr.id));
      if (at !== epoch) return;
      // the row's buttons are about to go: keep the keyboard in the card
      (el.newContainerBtn.hidden ? el.refreshBtn : el.newContainerBtn).focus();
      tr.remove();
      await loadContainers();
      if (at === epoch) el.containersStatus.textContent = 'Deleted ' + label + '.';
    } catch (err) {
      if (at !== epoch || err.handled) return;
      if (err.code === 'container_not_found') { // already gone (expired, deleted elsewhere)
        tr.remove();
        await loadContainers();
        return;
      }
      showError(el.containersError, containerError(err));
      for (const b of tr.querySelectorAll('button')) b.disabled = false;
      btn.textContent = 'Delete';
      btn.focus();
    }
  }

  el.newContainerBtn.addEventListener('click', async () => {
    if (creating) return;
    creating = true;
    const at = epoch;
    el.newContainerBtn.disabled = true;
    el.newContainerBtn.textContent = 'Creating…';
    el.containersStatus.textContent = 'Starting a container…';
    showError(el.containersError, null);
    try {
      const ctr = await api('POST', '/api/containers', {});
      if (at !== epoch) return;
      el.containersStatus.textContent = '';
      // still on the list (not signed out or in another terminal meanwhile): open it
      if (ctr && ctr.id && !el.agentsView.hidden && vendorOk) {
        openTerminal({ kind: 'container', id: ctr.id, name: ctr.name });
      } else {
        loadContainers();
      }
    } catch (err) {
      if (at !== epoch) return;
      el.containersStatus.textContent = '';
      if (!err.handled) showError(el.containersError, containerError(err));
    } finally {
      creating = false;
      el.newContainerBtn.disabled = false;
      el.newContainerBtn.textContent = 'New container';
    }
  });

  // ------------------------------------------------------------ terminal --

  const encoder = new TextEncoder();
  let term = null; // the open terminal: {target, xterm, fit, ws, sessionId, ...}
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

  // target: {kind: 'agent' | 'container', id: 'agt_...' | 'ctr_...', name}
  function openTerminal(target) {
    if (!vendorOk) {
      el.vendorMissing.hidden = false;
      return;
    }
    closeTerminal();
    show('terminal');
    el.termTitle.textContent = target.name || target.id;
    el.termTitle.title = target.id;
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

    const t = { target, xterm, fit, ws: null, sessionId: null, role: null, ended: false, retried: false };
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
      encodeURIComponent(t.target.id) + '?' + params.toString();

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
        // why it ended (container expired, idle, deleted) says more than the exit code
        if (t.endError) setTermStatus(clean(t.endError.message || t.endError.code), true);
        else setTermStatus('Exited (' + code + ')');
        stop(t);
        break;
      }
      case 'error':
        t.lastError = msg;
        if (typeof msg.code === 'string' && msg.code.indexOf('container_') === 0) t.endError = msg;
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
    // refresh the tokens if needed, check the agent or container, and try once more.
    if (!t.retried && !t.endError && (ev.code === 4401 || (ev.code === 1006 && !t.gotSession))) {
      t.retried = true;
      setTermStatus('Checking access…');
      try {
        if (ev.code === 4401) await refreshTokens();
        const isContainer = t.target.kind === 'container';
        const path = (isContainer ? '/api/containers/' : '/api/agents/') + encodeURIComponent(t.target.id);
        const info = await api('GET', path);
        if (term !== t) return;
        const down = isContainer ? (info && info.status && info.status !== 'running' ? info.status : null)
          : (info && info.status && info.status !== 'online' ? 'offline' : null);
        if (down) {
          const what = (isContainer ? 'Container is ' : 'Agent is ') + clean(down);
          t.xterm.write('\r\n[' + what.toLowerCase() + ']\r\n');
          setTermStatus(what, true);
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
    // a container that expired, went idle or was deleted cannot be rejoined
    const fatal = !!t.endError ||
      (ev.code >= 4400 && ev.code < 4500 && ev.code !== 4408 && ev.code !== 4429);
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
