// Package rexec is the Go client of Rexec's public API (API.md): accounts with token
// refresh, containers, agents, exec, terminals, sessions and recordings, approvals and
// billing. Every call takes a context; every refusal is an *Error carrying API.md's code.
package rexec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// refreshMargin: the access token is refreshed this long before it expires.
const refreshMargin = time.Minute

// maxAnswer bounds the JSON answers read into memory (exec output is bounded by the hub).
const maxAnswer = 64 << 20

// Client talks to one hub. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client

	mu         sync.Mutex
	access     string
	refresh    string
	expiresAt  time.Time
	apiToken   bool
	refreshing sync.Mutex // one refresh at a time: a refresh token presented twice revokes the sign-in
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, transport).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithToken uses an API token (rx_...) instead of signing in; it is never refreshed.
func WithToken(token string) Option {
	return func(c *Client) {
		c.access, c.apiToken = token, true
	}
}

// New returns a client of the hub at base (e.g. "http://127.0.0.1:8080").
func New(base string, options ...Option) *Client {
	c := &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 5 * time.Minute}}
	for _, o := range options {
		o(c)
	}
	return c
}

// TargetKind says where a target lives: "containers" or "agents".
type TargetKind string

const (
	Containers TargetKind = "containers"
	Agents     TargetKind = "agents"
)

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any, token string) (*http.Response, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(data)
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &Error{Status: 0, Code: "network_error", Message: "Cannot reach the hub: " + err.Error()}
	}
	return resp, nil
}

// raw makes an authenticated call, refreshing once when the hub says the token expired;
// a non-2xx answer becomes an *Error. The caller closes the body.
func (c *Client) raw(ctx context.Context, method, path string, query url.Values, body any, auth bool) (*http.Response, error) {
	token := ""
	if auth {
		var err error
		if token, err = c.freshToken(ctx); err != nil {
			return nil, err
		}
	}
	resp, err := c.send(ctx, method, path, query, body, token)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized && auth && token != "" {
		failure := errorFrom(resp)
		if (failure.Code == "token_expired" || failure.Code == "invalid_token") && c.canRefresh() {
			if err := c.Refresh(ctx); err != nil {
				return nil, failure
			}
			if resp, err = c.send(ctx, method, path, query, body, c.token()); err != nil {
				return nil, err
			}
		} else {
			return nil, failure
		}
	}
	if resp.StatusCode >= 300 {
		return nil, errorFrom(resp)
	}
	return resp, nil
}

// call makes a JSON call and decodes the answer into out (nil: ignore it).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.raw(ctx, method, path, query, body, true)
	if err != nil {
		return err
	}
	return decode(resp, out)
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("rexec: the hub's answer is not the expected JSON: %w", err)
	}
	return nil
}

func (c *Client) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.access
}

func (c *Client) canRefresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.apiToken && c.refresh != ""
}

// freshToken is the access token, refreshed first when it is about to expire.
func (c *Client) freshToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	due := !c.apiToken && c.refresh != "" && time.Now().After(c.expiresAt.Add(-refreshMargin))
	c.mu.Unlock()
	if due {
		if err := c.Refresh(ctx); err != nil {
			return "", err
		}
	}
	return c.token(), nil
}

func (c *Client) adopt(pair *TokenPair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.access, c.refresh = pair.AccessToken, pair.RefreshToken
	c.expiresAt = time.Now().Add(time.Duration(pair.ExpiresIn) * time.Second)
}

// Register creates an account (when the hub allows it).
func (c *Client) Register(ctx context.Context, email, password, name string) (*User, error) {
	body := map[string]string{"email": email, "password": password}
	if name != "" {
		body["name"] = name
	}
	resp, err := c.raw(ctx, "POST", "/api/register", nil, body, false)
	if err != nil {
		return nil, err
	}
	var answer struct {
		User User `json:"user"`
	}
	return &answer.User, decode(resp, &answer)
}

// Login signs in; an account with a passcode needs it (401 passcode_required otherwise).
func (c *Client) Login(ctx context.Context, email, password, passcode string) (*User, error) {
	body := map[string]string{"email": email, "password": password}
	if passcode != "" {
		body["passcode"] = passcode
	}
	resp, err := c.raw(ctx, "POST", "/api/login", nil, body, false)
	if err != nil {
		return nil, err
	}
	var pair TokenPair
	if err := decode(resp, &pair); err != nil {
		return nil, err
	}
	c.adopt(&pair)
	return &pair.User, nil
}

// Refresh trades the refresh token for new tokens (the old refresh token stops working).
func (c *Client) Refresh(ctx context.Context) error {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	c.mu.Lock()
	refresh := c.refresh
	c.mu.Unlock()
	if refresh == "" {
		return &Error{Status: 401, Code: "not_signed_in", Message: "Sign in first."}
	}
	resp, err := c.raw(ctx, "POST", "/api/refresh", nil, map[string]string{"refresh_token": refresh}, false)
	if err != nil {
		return err
	}
	var pair TokenPair
	if err := decode(resp, &pair); err != nil {
		return err
	}
	c.adopt(&pair)
	return nil
}

// Logout revokes the sign-in on the hub and forgets the tokens here.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	body := map[string]string{}
	if c.refresh != "" {
		body["refresh_token"] = c.refresh
	}
	token := c.access
	c.access, c.refresh, c.expiresAt = "", "", time.Time{}
	c.mu.Unlock()
	resp, err := c.send(ctx, "POST", "/api/logout", nil, body, token)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return errorFrom(resp)
	}
	return decode(resp, nil)
}

// User is the signed-in account.
func (c *Client) User(ctx context.Context) (*User, error) {
	var u User
	return &u, c.call(ctx, "GET", "/api/user", nil, nil, &u)
}

func esc(s string) string { return url.PathEscape(s) }
