package rexec

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
)

// The shapes of API.md. Fields the hub adds later are ignored until named here.

type User struct {
	ID              string  `json:"id"`
	Email           string  `json:"email"`
	Name            *string `json:"name"`
	Plan            string  `json:"plan"`
	CreatedAt       string  `json:"created_at"`
	PasscodeEnabled bool    `json:"passcode_enabled"`
}

type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	User         User   `json:"user"`
}

type Container struct {
	ID        string         `json:"id"`
	Name      *string        `json:"name"`
	Image     string         `json:"image"`
	Status    string         `json:"status"`
	CreatedAt string         `json:"created_at"`
	ExpiresAt *string        `json:"expires_at"`
	Limits    map[string]any `json:"limits"`
}

type CreateContainer struct {
	Image      string            `json:"image,omitempty"`
	Name       string            `json:"name,omitempty"`
	CPUs       float64           `json:"cpus,omitempty"`
	MemoryMB   int               `json:"memory_mb,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	TTLSeconds int               `json:"ttl_seconds,omitempty"`
}

type Agent struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Hostname string         `json:"hostname"`
	OS       string         `json:"os"`
	Arch     string         `json:"arch"`
	Version  string         `json:"version"`
	Status   string         `json:"status"`
	LastSeen *string        `json:"last_seen"`
	Metrics  map[string]any `json:"metrics"`
}

type AgentToken struct {
	Token          string `json:"token"`
	ExpiresAt      string `json:"expires_at"`
	InstallCommand string `json:"install_command"`
}

// Exec is one command: Cmd is a shell line (a string) or an argv list ([]string).
type Exec struct {
	Cmd        any               `json:"cmd"`
	Stdin      string            `json:"stdin,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	Timeout    float64           `json:"timeout,omitempty"`
	Supervised bool              `json:"supervised,omitempty"`
}

type ExecResult struct {
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	DurationMS int    `json:"duration_ms"`
	TimedOut   bool   `json:"timed_out"`
}

type Approval struct {
	ID          string      `json:"id"`
	Target      string      `json:"target"`
	Session     *string     `json:"session"`
	Cmd         string      `json:"cmd"`
	RequestedBy string      `json:"requested_by"`
	Status      string      `json:"status"`
	Reason      *string     `json:"reason"`
	CreatedAt   string      `json:"created_at"`
	Result      *ExecResult `json:"result"`
}

type Policy struct {
	Target string   `json:"target,omitempty"`
	Mode   string   `json:"mode"`
	Allow  []string `json:"allow,omitempty"`
	Deny   []string `json:"deny,omitempty"`
	Paused bool     `json:"paused,omitempty"`
}

type Recording struct {
	Available bool    `json:"available"`
	Bytes     int64   `json:"bytes"`
	Duration  float64 `json:"duration"`
}

type Session struct {
	ID        string    `json:"id"`
	Target    string    `json:"target"`
	Owner     string    `json:"owner"`
	Status    string    `json:"status"`
	StartedAt string    `json:"started_at"`
	EndedAt   *string   `json:"ended_at"`
	Recording Recording `json:"recording"`
}

type Share struct {
	Share struct {
		ID    string `json:"id"`
		Token string `json:"token"`
		Role  string `json:"role"`
	} `json:"share"`
	URL       string  `json:"url"`
	ExpiresAt *string `json:"expires_at"`
}

type PlanLimits struct {
	Containers             *int `json:"containers"`
	Agents                 *int `json:"agents"`
	SessionMinutesPerMonth *int `json:"session_minutes_per_month"`
	RecordingRetentionDays *int `json:"recording_retention_days"`
}

type Plan struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	PriceCents int        `json:"price_cents"`
	Interval   *string    `json:"interval"`
	Limits     PlanLimits `json:"limits"`
}

type Usage struct {
	Plan        string           `json:"plan"`
	PeriodStart string           `json:"period_start"`
	PeriodEnd   string           `json:"period_end"`
	Usage       map[string]int64 `json:"usage"`
	Limits      PlanLimits       `json:"limits"`
}

// APIToken is an API token (rx_...); Token is only in the answer that made it.
type APIToken struct {
	ID        string   `json:"id"`
	Token     string   `json:"token,omitempty"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	Kind      string   `json:"kind"`
	ExpiresAt *string  `json:"expires_at"`
}

// CreateToken makes an API token ("agent" kind: an AI or a script, under the policies).
func (c *Client) CreateToken(ctx context.Context, name string, scopes []string) (*APIToken, error) {
	body := map[string]any{"name": name}
	if scopes != nil {
		body["scopes"] = scopes
	}
	var out APIToken
	return &out, c.call(ctx, "POST", "/api/user/tokens", nil, body, &out)
}

// -- containers and agents ---------------------------------------------------------

func (c *Client) CreateContainer(ctx context.Context, body CreateContainer) (*Container, error) {
	var out Container
	return &out, c.call(ctx, "POST", "/api/containers", nil, body, &out)
}

func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	var out struct {
		Containers []Container `json:"containers"`
	}
	return out.Containers, c.call(ctx, "GET", "/api/containers", nil, nil, &out)
}

func (c *Client) Container(ctx context.Context, id string) (*Container, error) {
	var out Container
	return &out, c.call(ctx, "GET", "/api/containers/"+esc(id), nil, nil, &out)
}

func (c *Client) DeleteContainer(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/api/containers/"+esc(id), nil, nil, nil)
}

func (c *Client) Agents(ctx context.Context) ([]Agent, error) {
	var out struct {
		Agents []Agent `json:"agents"`
	}
	return out.Agents, c.call(ctx, "GET", "/api/agents", nil, nil, &out)
}

func (c *Client) DeleteAgent(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/api/agents/"+esc(id), nil, nil, nil)
}

// AgentToken makes a one-time registration token and its install line.
func (c *Client) AgentToken(ctx context.Context, name string) (*AgentToken, error) {
	body := map[string]string{}
	if name != "" {
		body["name"] = name
	}
	var out AgentToken
	return &out, c.call(ctx, "POST", "/api/agents/tokens", nil, body, &out)
}

// Exec runs one command to completion on a container or agent (an id or a name). When
// a policy holds it for a person (Supervised), the result is nil and the approval set.
func (c *Client) Exec(ctx context.Context, kind TargetKind, target string, body Exec) (*ExecResult, *Approval, error) {
	resp, err := c.raw(ctx, "POST", "/api/"+string(kind)+"/"+esc(target)+"/exec", nil, body, true)
	if err != nil {
		return nil, nil, err
	}
	var raw json.RawMessage
	if err := decode(resp, &raw); err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == 202 {
		var held struct {
			Approval Approval `json:"approval"`
		}
		return nil, &held.Approval, json.Unmarshal(raw, &held)
	}
	var result ExecResult
	return &result, nil, json.Unmarshal(raw, &result)
}

// -- sessions and recordings -------------------------------------------------------

func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	return out.Sessions, c.call(ctx, "GET", "/api/sessions", nil, nil, &out)
}

func (c *Client) Session(ctx context.Context, id string) (*Session, error) {
	var out Session
	return &out, c.call(ctx, "GET", "/api/sessions/"+esc(id), nil, nil, &out)
}

// EndSession ends a live session (its program gets SIGHUP).
func (c *Client) EndSession(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/api/sessions/"+esc(id), nil, nil, nil)
}

// ShareSession makes a share link: role "viewer" or "writer", an optional passcode.
func (c *Client) ShareSession(ctx context.Context, id, role, passcode string) (*Share, error) {
	body := map[string]string{"role": role}
	if passcode != "" {
		body["passcode"] = passcode
	}
	var out Share
	return &out, c.call(ctx, "POST", "/api/sessions/"+esc(id)+"/share", nil, body, &out)
}

// Recording streams a session's recording (asciicast v2); the caller closes it.
func (c *Client) Recording(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.raw(ctx, "GET", "/api/sessions/"+esc(id)+"/recording", nil, nil, true)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// -- supervised AI execution ---------------------------------------------------------

func (c *Client) Approvals(ctx context.Context, status string) ([]Approval, error) {
	query := url.Values{}
	if status != "" {
		query.Set("status", status)
	}
	var out struct {
		Approvals []Approval `json:"approvals"`
	}
	return out.Approvals, c.call(ctx, "GET", "/api/approvals", query, nil, &out)
}

// Approval reads one approval; wait > 0 long-polls that many seconds for a decision.
func (c *Client) Approval(ctx context.Context, id string, wait int) (*Approval, error) {
	query := url.Values{}
	if wait > 0 {
		query.Set("wait", strconv.Itoa(wait))
	}
	var out Approval
	return &out, c.call(ctx, "GET", "/api/approvals/"+esc(id), query, nil, &out)
}

// Approve runs the held command (or cmd instead, when not empty).
func (c *Client) Approve(ctx context.Context, id, cmd string) (*Approval, error) {
	body := map[string]string{}
	if cmd != "" {
		body["cmd"] = cmd
	}
	var out Approval
	return &out, c.call(ctx, "POST", "/api/approvals/"+esc(id)+"/approve", nil, body, &out)
}

func (c *Client) Reject(ctx context.Context, id, reason string) (*Approval, error) {
	body := map[string]string{}
	if reason != "" {
		body["reason"] = reason
	}
	var out Approval
	return &out, c.call(ctx, "POST", "/api/approvals/"+esc(id)+"/reject", nil, body, &out)
}

func (c *Client) Policy(ctx context.Context, kind TargetKind, target string) (*Policy, error) {
	var out Policy
	return &out, c.call(ctx, "GET", "/api/"+string(kind)+"/"+esc(target)+"/policy", nil, nil, &out)
}

func (c *Client) SetPolicy(ctx context.Context, kind TargetKind, target string, p Policy) (*Policy, error) {
	body := map[string]any{"mode": p.Mode, "allow": nonNil(p.Allow), "deny": nonNil(p.Deny)}
	var out Policy
	return &out, c.call(ctx, "PUT", "/api/"+string(kind)+"/"+esc(target)+"/policy", nil, body, &out)
}

// Pause is the kill switch: every AI command on the target is refused until resumed.
func (c *Client) Pause(ctx context.Context, kind TargetKind, target string, paused bool) (*Policy, error) {
	verb := "resume"
	if paused {
		verb = "pause"
	}
	var out Policy
	return &out, c.call(ctx, "POST", "/api/"+string(kind)+"/"+esc(target)+"/policy/"+verb, nil, nil, &out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// -- billing ------------------------------------------------------------------------

func (c *Client) Plans(ctx context.Context) ([]Plan, error) {
	var out struct {
		Plans []Plan `json:"plans"`
	}
	return out.Plans, c.call(ctx, "GET", "/api/billing/plans", nil, nil, &out)
}

func (c *Client) Usage(ctx context.Context) (*Usage, error) {
	var out Usage
	return &out, c.call(ctx, "GET", "/api/billing/usage", nil, nil, &out)
}
