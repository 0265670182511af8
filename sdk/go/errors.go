package rexec

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Error is a refusal in API.md's shape: {"error": {"code", "message", "details"}}.
// Compare with errors.Is against the sentinels (ErrNotFound, ...) for the kind of
// refusal, or read Code for the exact one ("container_not_found", "ai_paused", ...).
type Error struct {
	Status     int            // HTTP status; 0 when the hub could not be reached
	Code       string         // API.md's snake_case code
	Message    string         // text a person can act on
	Details    map[string]any // e.g. {"field": "cmd"} for a 400
	RetryAfter int            // seconds, for 429
}

func (e *Error) Error() string { return fmt.Sprintf("rexec: %s (%s)", e.Message, e.Code) }

// Is matches the sentinel of the same status (errors.Is(err, rexec.ErrNotFound)).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == "" && t.Status == e.Status
}

// Sentinels for errors.Is, by API.md's statuses.
var (
	ErrInvalidRequest   = &Error{Status: 400}
	ErrUnauthorized     = &Error{Status: 401}
	ErrPlanLimit        = &Error{Status: 402}
	ErrForbidden        = &Error{Status: 403}
	ErrNotFound         = &Error{Status: 404}
	ErrConflict         = &Error{Status: 409}
	ErrTooLarge         = &Error{Status: 413}
	ErrUnprocessable    = &Error{Status: 422}
	ErrRateLimited      = &Error{Status: 429}
	ErrUnavailable      = &Error{Status: 503}
	ErrHubUnreachable   = &Error{Status: 0}
	errorAnswerMaxBytes = int64(1 << 20)
)

func errorFrom(resp *http.Response) *Error {
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, errorAnswerMaxBytes))
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		return &Error{resp.StatusCode, body.Error.Code, body.Error.Message, body.Error.Details, retry}
	}
	return &Error{
		Status:     resp.StatusCode,
		Code:       "http_" + strconv.Itoa(resp.StatusCode),
		Message:    "The hub answered " + resp.Status + ".",
		RetryAfter: retry,
	}
}
