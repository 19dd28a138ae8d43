package appapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// envelope is every answer of the API, as the guide shapes it: code 200
// and "success", or an error code (the HTTP status) and a message.
type envelope struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// apiError is an answer other than success. Messages are for the app
// developer and never carry more than the request did.
type apiError struct {
	status  int
	message string
	// retryAfter, when set, becomes a Retry-After header (429, 503).
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.message }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthenticated = &apiError{status: http.StatusUnauthorized, message: "invalid token"}
	errExpired         = &apiError{status: http.StatusUnauthorized, message: "token expired"}
	errNotReady        = &apiError{status: http.StatusServiceUnavailable, message: "the rollout engine is starting; retry shortly"}
)

func writeOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, envelope{Code: http.StatusOK, Message: "success", Data: data})
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, message: "internal error"}
	}
	if ae.status == http.StatusUnauthorized {
		// RFC 6750: tell the client which scheme, and that the token is bad.
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	if ae.retryAfter > 0 || ae.status == http.StatusTooManyRequests {
		secs := max(1, int((ae.retryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSON(w, ae.status, envelope{Code: ae.status, Message: ae.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded: a failure is a bug.
		status = http.StatusInternalServerError
		b = []byte(`{"code":500,"message":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads a JSON request body into v. The body is already limited by
// http.MaxBytesReader; an empty body is an empty object, so that list
// calls need not send "{}". Unknown fields are refused: a misspelt field
// would otherwise silently widen a request to all devices.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
		}
		return errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "invalid JSON body: data after the object")
	}
	return nil
}
