package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultURL is the base URL `tally all` (make run) serves every API route on.
const DefaultURL = "http://127.0.0.1:8000"

// Client calls one Tally API with one API key. It is safe for concurrent use.
type Client struct {
	baseURL string
	key     string
	http    *http.Client
	retry   RetryPolicy
	// Ingest's limits of one request: Send refuses more, a Batcher
	// bounds its requests below them.
	maxEvents, maxBytes int
	// sleep waits between attempts; tests replace it to see the waits
	// without taking them.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout per
// attempt).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetry sets how failed event requests are retried.
func WithRetry(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithRequestLimits sets ingest's limits of one request, when a deployment
// changed -ingest.max-events or -ingest.max-body-bytes (default
// MaxEventsPerRequest and MaxRequestBytes).
func WithRequestLimits(maxEvents, maxBytes int) Option {
	return func(c *Client) {
		if maxEvents > 0 {
			c.maxEvents = maxEvents
		}
		if maxBytes > 0 {
			c.maxBytes = maxBytes
		}
	}
}

// New returns a client of the API at baseURL (DefaultURL when empty),
// authenticating with key.
func New(baseURL, key string, opts ...Option) *Client {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	c := &Client{
		baseURL:   strings.TrimRight(baseURL, "/"),
		key:       key,
		http:      &http.Client{Timeout: 30 * time.Second},
		retry:     DefaultRetryPolicy(),
		maxEvents: MaxEventsPerRequest, maxBytes: MaxRequestBytes,
		sleep: sleepContext,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is an error answer of the API: its HTTP status and the code and
// message of its JSON body ({"code", "message", "details"}).
type Error struct {
	Status  int
	Code    string
	Message string
	// Details is the raw "details" member, when there is one.
	Details json.RawMessage
	// RetryAfter is the Retry-After header of a 429 or 503 (0: none).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// request is one API call: its body is encoded once and sent unchanged on
// every attempt.
type request struct {
	method, path string
	header       http.Header
	body         []byte
}

// response is an answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// attempt sends r once.
func (c *Client) attempt(ctx context.Context, r request) (*response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.baseURL+r.path, body)
	if err == nil && req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		err = fmt.Errorf("base URL %q must start with http:// or https://", c.baseURL)
	}
	if err != nil {
		// Nothing was sent, and another attempt would fail the same way.
		return nil, &permanentError{err}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("User-Agent", "tally-go-client")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s %s: %w", r.method, r.path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// permanentError is an attempt that cannot succeed when repeated.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// call sends r once and decodes a 2xx JSON answer into out (when not nil).
// Reads and meter changes are not retried: the caller decides.
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.attempt(ctx, r)
	if err != nil {
		return fmt.Errorf("tally: %s %s: %w", r.method, r.path, err)
	}
	if resp.status/100 != 2 {
		return apiError(resp)
	}
	if out == nil || len(resp.body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("tally: %s %s: decode answer: %w", r.method, r.path, err)
	}
	return nil
}

// apiError turns a non-2xx answer into an *Error.
func apiError(resp *response) *Error {
	e := &Error{Status: resp.status, RetryAfter: retryAfter(resp.header)}
	var body struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	}
	if json.Unmarshal(resp.body, &body) == nil && body.Code != "" {
		e.Code, e.Message, e.Details = body.Code, body.Message, body.Details
		return e
	}
	e.Message = strings.TrimSpace(string(resp.body))
	if e.Message == "" {
		e.Message = http.StatusText(resp.status)
	}
	return e
}

func jsonRequest(method, path string, v any) (request, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return request{}, err
	}
	return request{method: method, path: path, body: b, header: http.Header{"Content-Type": {"application/json"}}}, nil
}
