package rexec_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	rexec "rexec.dev/sdk"
)

// The hub under test: tests/sdk/test_go.py starts a real one and sets REXEC_HUB_URL.
func hub(t *testing.T) string {
	base := os.Getenv("REXEC_HUB_URL")
	if base == "" {
		t.Fatal("REXEC_HUB_URL must name a running hub (tests/sdk/test_go.py sets it)")
	}
	return base
}

func signedIn(ctx context.Context, t *testing.T) *rexec.Client {
	raw := make([]byte, 4)
	_, _ = rand.Read(raw)
	email := "go-" + hex.EncodeToString(raw) + "@example.com"
	client := rexec.New(hub(t))
	if _, err := client.Register(ctx, email, "correct horse 1", ""); err != nil {
		t.Fatal(err)
	}
	user, err := client.Login(ctx, email, "correct horse 1", "")
	if err != nil || user.Email != email {
		t.Fatalf("login: %v %+v", err, user)
	}
	return client
}

// The shared scenario of every SDK.
func TestScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := signedIn(ctx, t)
	box, err := client.CreateContainer(ctx, rexec.CreateContainer{Name: "gobox"})
	if err != nil || box.Status != "running" {
		t.Fatalf("create: %v %+v", err, box)
	}
	defer func() { _ = client.DeleteContainer(context.Background(), box.ID) }()

	result, held, err := client.Exec(ctx, rexec.Containers, "gobox", rexec.Exec{
		Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"},
	})
	if err != nil || held != nil {
		t.Fatalf("exec: %v %+v", err, held)
	}
	if result.ExitCode != 3 || result.Stdout != "out\n" || result.Stderr != "err\n" {
		t.Fatalf("exec answered %+v", result)
	}

	term, err := client.Terminal(ctx, box.ID, rexec.TerminalOptions{Cols: 80, Rows: 24, Offset: -1})
	if err != nil {
		t.Fatal(err)
	}
	session := term.SessionID()
	if !strings.HasPrefix(session, "ses_") || term.Role() != "owner" {
		t.Fatalf("session %q role %q", session, term.Role())
	}
	wait, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if _, err := term.Write([]byte("echo $((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	if seen, err := term.ReadUntil(wait, "\n42\r\n"); err != nil {
		t.Fatalf("no 42: %v %q", err, seen)
	}
	if err := term.Resize(100, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	if seen, err := term.ReadUntil(wait, "30 100"); err != nil {
		t.Fatalf("no new size: %v %q", err, seen)
	}
	// A viewer joins through a share link, with no sign-in of its own.
	share, err := client.ShareSession(ctx, session, "viewer", "")
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := rexec.New(hub(t)).Terminal(ctx, box.ID, rexec.TerminalOptions{Share: share.Share.Token, Offset: -1})
	if err != nil || viewer.SessionID() != session || viewer.Role() != "viewer" {
		t.Fatalf("share join: %v", err)
	}
	_ = viewer.Close()

	if err := term.Close(); err != nil { // detach
		t.Fatal(err)
	}
	offset := term.Offset()
	if offset <= 0 {
		t.Fatalf("offset %d", offset)
	}

	again, err := client.Terminal(ctx, box.ID, rexec.TerminalOptions{Session: session, Offset: offset})
	if err != nil {
		t.Fatal(err)
	}
	if again.SessionID() != session {
		t.Fatalf("rejoined %q, not %q", again.SessionID(), session)
	}
	if _, err := again.Write([]byte("echo resumed-$((1+1)); exit 0\n")); err != nil {
		t.Fatal(err)
	}
	seen, err := again.ReadUntil(wait, "resumed-2\r\n")
	if err != nil || strings.Contains(seen, "42") {
		t.Fatalf("after the offset only: %v %q", err, seen)
	}
	for { // to the end of the output: the session ends with exit 0
		if _, err := again.ReadUntil(wait, "\x00never"); err != nil {
			break
		}
	}
	if code, ok := again.ExitCode(); !ok || code != 0 {
		t.Fatalf("exit %d %v", code, ok)
	}

	var recording *rexec.Session
	for recording == nil || !recording.Recording.Available {
		if recording, err = client.Session(ctx, session); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the recording never became available")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cast, err := client.Recording(ctx, session)
	if err != nil {
		t.Fatal(err)
	}
	defer cast.Close()
	lines := bufio.NewScanner(cast)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	var header struct {
		Version int `json:"version"`
	}
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &header) != nil || header.Version != 2 {
		t.Fatalf("not asciicast v2: %q", lines.Text())
	}
	var played strings.Builder
	for lines.Scan() {
		var event []any
		if json.Unmarshal(lines.Bytes(), &event) == nil && len(event) == 3 {
			text, _ := event[2].(string)
			played.WriteString(text)
		}
	}
	if !strings.Contains(played.String(), "42") {
		t.Fatalf("the recording lacks 42: %q", played.String())
	}
}

func TestErrorsRefreshApprovalsBilling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := signedIn(ctx, t)
	_, _, err := client.Exec(ctx, rexec.Containers, "nothere", rexec.Exec{Cmd: "true"})
	var apiErr *rexec.Error
	if !errors.Is(err, rexec.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Code != "container_not_found" {
		t.Fatalf("a missing container: %v", err)
	}
	for i := 0; i < 2; i++ { // the refresh token rotates; calls go on working
		if err := client.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.User(ctx); err != nil {
		t.Fatal(err)
	}
	plans, err := client.Plans(ctx)
	if err != nil || len(plans) == 0 {
		t.Fatalf("plans: %v %v", err, plans)
	}
	if _, err := client.Usage(ctx); err != nil {
		t.Fatal(err)
	}

	box, err := client.CreateContainer(ctx, rexec.CreateContainer{Name: "held"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.DeleteContainer(context.Background(), box.ID) }()
	if _, err := client.SetPolicy(ctx, rexec.Containers, "held", rexec.Policy{Mode: "approve_all"}); err != nil {
		t.Fatal(err)
	}
	made, err := client.CreateToken(ctx, "ai", []string{"read", "exec"})
	if err != nil {
		t.Fatal(err)
	}
	ai := rexec.New(hub(t), rexec.WithToken(made.Token))
	result, held, err := ai.Exec(ctx, rexec.Containers, box.ID, rexec.Exec{Cmd: "echo approved", Supervised: true})
	if err != nil || result != nil || held == nil {
		t.Fatalf("not held: %v %+v", err, result)
	}
	if _, err := client.Approve(ctx, held.ID, ""); err != nil {
		t.Fatal(err)
	}
	done, err := ai.Approval(ctx, held.ID, 30)
	if err != nil || done.Status != "completed" || done.Result == nil || done.Result.Stdout != "approved\n" {
		t.Fatalf("approval: %v %+v", err, done)
	}
	if err := client.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.User(ctx); !errors.Is(err, rexec.ErrUnauthorized) {
		t.Fatalf("signed out, still answered: %v", err)
	}
}
