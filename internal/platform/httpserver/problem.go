// Package httpserver is the HTTP plumbing every service shares: RFC 9457
// problem responses, JSON decoding with the platform's status codes, the
// /healthz, /readyz and /metrics endpoints, request metrics, and graceful
// serving.
package httpserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/escqrs/platform/internal/domain"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Errors   []domain.FieldError `json:"errors,omitempty"`
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// Error writes a problem with status and detail.
func Error(w http.ResponseWriter, r *http.Request, status int, detail string) {
	WriteProblem(w, r, Problem{Status: status, Detail: detail})
}

// Unavailable writes 503 with Retry-After.
func Unavailable(w http.ResponseWriter, r *http.Request, retryAfter time.Duration, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	Error(w, r, http.StatusServiceUnavailable, detail)
}

// WriteJSON writes v as application/json with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// DecodeError is a request body that could not become the target value; it
// carries the status the client should get.
type DecodeError struct {
	Status int
	Detail string
	Fields []domain.FieldError
}

func (e *DecodeError) Error() string { return e.Detail }

// DecodeJSON reads r's body into dst: 415 unless the body is JSON, 413 when
// too large, 400 when malformed or with unknown fields, 422 when a field has
// the wrong type.
func DecodeJSON(r *http.Request, dst any) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &DecodeError{Status: http.StatusUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %q: want application/json", ct)}
	}
	body := http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var (
			maxErr  *http.MaxBytesError
			typeErr *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &maxErr):
			return &DecodeError{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("body larger than %d bytes", MaxBodyBytes)}
		case errors.As(err, &typeErr):
			return &DecodeError{Status: http.StatusUnprocessableEntity, Detail: "a field has the wrong type",
				Fields: []domain.FieldError{{Field: typeErr.Field, Message: "must be a " + typeErr.Type.String()}}}
		case errors.Is(err, io.EOF):
			return &DecodeError{Status: http.StatusBadRequest, Detail: "empty body: want a JSON object"}
		default:
			return &DecodeError{Status: http.StatusBadRequest, Detail: "malformed JSON: " + err.Error()}
		}
	}
	if dec.More() {
		return &DecodeError{Status: http.StatusBadRequest, Detail: "malformed JSON: trailing data after the object"}
	}
	return nil
}

// WriteDecodeError writes err (from DecodeJSON) as a problem.
func WriteDecodeError(w http.ResponseWriter, r *http.Request, err error) {
	var de *DecodeError
	if errors.As(err, &de) {
		WriteProblem(w, r, Problem{Status: de.Status, Detail: de.Detail, Errors: de.Fields})
		return
	}
	Error(w, r, http.StatusBadRequest, err.Error())
}
