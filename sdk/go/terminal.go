package rexec

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// TerminalOptions says where a terminal opens (API.md: WS /ws/terminal/{id}).
type TerminalOptions struct {
	Cols, Rows int    // the first size (default 80x24)
	Command    string // a command line instead of the login shell
	Session    string // join this live session instead of opening one
	// Offset, with Session: resume after this many output bytes (the hub sends what
	// follows) instead of the recent screen. Negative: not set.
	Offset   int64
	Share    string // join through a share link (no sign-in needed)
	Passcode string // the share link's passcode
}

// Message is a text frame from the hub: its type and the whole object.
type Message struct {
	Type string
	Raw  map[string]any
}

// Terminal is a live terminal session: Read is its output, Write its keystrokes.
// Close detaches (the session lives on for the hub's grace period; rejoin with
// TerminalOptions{Session: t.SessionID(), Offset: t.Offset()}).
type Terminal struct {
	ws       *websocket.Conn
	output   chan []byte // bounded: a slow reader slows the socket down, nothing piles up
	pending  []byte
	messages chan Message
	done     chan struct{}

	writeMu sync.Mutex
	mu      sync.Mutex
	session string
	role    string
	offset  int64
	exit    *int
	err     error
}

const terminalBuffer = 256

// Terminal opens a terminal on a container or agent (an id or a name).
func (c *Client) Terminal(ctx context.Context, target string, o TerminalOptions) (*Terminal, error) {
	u, err := url.Parse(c.base + "/ws/terminal/" + esc(target))
	if err != nil {
		return nil, err
	}
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	q := url.Values{}
	if o.Share != "" {
		q.Set("share", o.Share)
		if o.Passcode != "" {
			q.Set("passcode", o.Passcode)
		}
	} else {
		token, err := c.freshToken(ctx)
		if err != nil {
			return nil, err
		}
		q.Set("token", token)
	}
	if o.Session != "" {
		q.Set("session", o.Session)
		if o.Offset >= 0 {
			q.Set("offset", strconv.FormatInt(o.Offset, 10))
		}
	} else if o.Command != "" {
		q.Set("command", o.Command)
	}
	if o.Cols > 0 && o.Rows > 0 {
		q.Set("cols", strconv.Itoa(o.Cols))
		q.Set("rows", strconv.Itoa(o.Rows))
	}
	u.RawQuery = q.Encode()
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			return nil, errorFrom(resp)
		}
		return nil, &Error{Code: "network_error", Message: "Cannot open the terminal: " + err.Error()}
	}
	t := &Terminal{
		ws:       ws,
		output:   make(chan []byte, terminalBuffer),
		messages: make(chan Message, terminalBuffer),
		done:     make(chan struct{}),
		offset:   -1,
	}
	go t.pump()
	// The first message names the session: wait for it, so SessionID is set on return.
	select {
	case msg, ok := <-t.messages:
		if !ok || msg.Type != "session" {
			_ = ws.Close()
			return nil, t.failure("the hub did not open a session")
		}
	case <-ctx.Done():
		_ = ws.Close()
		return nil, ctx.Err()
	}
	return t, nil
}

func (t *Terminal) failure(fallback string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return t.err
	}
	return &Error{Code: "terminal_failed", Message: fallback}
}

func (t *Terminal) pump() {
	defer close(t.done)
	defer close(t.output)
	defer close(t.messages)
	for {
		kind, data, err := t.ws.ReadMessage()
		if err != nil {
			var closed *websocket.CloseError
			if errors.As(err, &closed) && closed.Code >= 4000 {
				t.setErr(&Error{Status: closed.Code - 4000, Code: "closed", Message: closed.Text})
			}
			return
		}
		if kind == websocket.BinaryMessage {
			t.mu.Lock()
			if t.offset >= 0 {
				t.offset += int64(len(data))
			}
			t.mu.Unlock()
			t.output <- data
			continue
		}
		var raw map[string]any
		if json.Unmarshal(data, &raw) != nil {
			continue
		}
		kindName, _ := raw["type"].(string)
		t.mu.Lock()
		switch kindName {
		case "session":
			t.session, _ = raw["id"].(string)
			t.role, _ = raw["role"].(string)
			if off, ok := raw["offset"].(float64); ok {
				t.offset = int64(off)
			}
		case "exit":
			code := -1
			if n, ok := raw["code"].(float64); ok {
				code = int(n)
			}
			t.exit = &code
		case "error":
			code, _ := raw["code"].(string)
			message, _ := raw["message"].(string)
			t.err = &Error{Code: code, Message: message}
		case "skipped":
			if n, ok := raw["bytes"].(float64); ok && t.offset >= 0 {
				t.offset += int64(n)
			}
		}
		t.mu.Unlock()
		select { // messages are for watching; none are held back when nobody reads them
		case t.messages <- Message{Type: kindName, Raw: raw}:
		default:
		}
	}
}

func (t *Terminal) setErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
}

// Read reads terminal output; io.EOF once the session has ended or the socket closed.
func (t *Terminal) Read(p []byte) (int, error) { return t.read(context.Background(), p) }

func (t *Terminal) read(ctx context.Context, p []byte) (int, error) {
	if len(t.pending) == 0 {
		select {
		case chunk, ok := <-t.output:
			if !ok {
				return 0, io.EOF
			}
			t.pending = chunk
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

// Write sends keystrokes.
func (t *Terminal) Write(p []byte) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if err := t.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize sets the terminal's size (the owner's or a writer's; a viewer's is ignored).
func (t *Terminal) Resize(cols, rows int) error {
	data, _ := json.Marshal(map[string]any{"type": "resize", "cols": cols, "rows": rows})
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	return t.ws.WriteMessage(websocket.TextMessage, data)
}

// Messages are the hub's text frames (participants, approvals, exit, ...), best effort.
func (t *Terminal) Messages() <-chan Message { return t.messages }

// SessionID is the session's id (ses_...).
func (t *Terminal) SessionID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.session
}

// Role is "owner", "writer" or "viewer".
func (t *Terminal) Role() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.role
}

// Offset is the offset of the next output byte (for resuming after Close).
// It counts what the hub sent; read the output first to resume exactly after it.
func (t *Terminal) Offset() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.offset
}

// ExitCode is the program's exit code once it has ended (ok false before).
func (t *Terminal) ExitCode() (code int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exit == nil {
		return 0, false
	}
	return *t.exit, true
}

// Err is why the hub ended the socket, if it said (an *Error).
func (t *Terminal) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close detaches: the session goes on for the hub's grace period.
func (t *Terminal) Close() error {
	t.writeMu.Lock()
	_ = t.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "detached"), deadline())
	t.writeMu.Unlock()
	err := t.ws.Close()
	go func() { // let the reader finish: drain what it still holds
		for range t.output {
		}
	}()
	<-t.done
	return err
}

// ReadUntil reads output until it contains want; what was read (for a script or a
// test, expect-style). The context bounds the wait.
func (t *Terminal) ReadUntil(ctx context.Context, want string) (string, error) {
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), want) {
		n, err := t.read(ctx, buf)
		seen.Write(buf[:n])
		if err != nil && !strings.Contains(seen.String(), want) {
			return seen.String(), err
		}
	}
	return seen.String(), nil
}

func deadline() time.Time { return time.Now().Add(5 * time.Second) }
