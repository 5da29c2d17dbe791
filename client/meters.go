package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Meter is a meter definition as the meters API reads and writes it.
// Filter is kept as JSON text ({"status": {"eq": "ok"}}): the server
// validates it.
type Meter struct {
	Key           string            `json:"key"`
	Name          string            `json:"name,omitempty"`
	Description   string            `json:"description,omitempty"`
	EventType     string            `json:"event_type"`
	Aggregation   string            `json:"aggregation"`
	ValueProperty string            `json:"value_property,omitempty"`
	GroupBy       map[string]string `json:"group_by,omitempty"`
	Filter        json.RawMessage   `json:"filter,omitempty"`
	// Set by the server; ignored when creating.
	Revision  uint64    `json:"revision,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// meterPath is the path of a meter's route. A key that is empty or a dot
// segment would reach another route once the server cleans the path (and
// the client decodes that route's answer as the meter's): refused.
func meterPath(key string) (string, error) {
	if key == "" || key == "." || key == ".." {
		return "", fmt.Errorf("tally: invalid meter key %q", key)
	}
	return "/api/v1/meters/" + url.PathEscape(key), nil
}

// ListMeters returns the organization's meters, sorted by key.
func (c *Client) ListMeters(ctx context.Context) ([]Meter, error) {
	var body struct {
		Data []Meter `json:"data"`
	}
	if err := c.call(ctx, request{method: http.MethodGet, path: "/api/v1/meters"}, &body); err != nil {
		return nil, err
	}
	return body.Data, nil
}

// GetMeter returns one meter; a missing one is an *Error with status 404
// (IsNotFound).
func (c *Client) GetMeter(ctx context.Context, key string) (Meter, error) {
	path, err := meterPath(key)
	if err != nil {
		return Meter{}, err
	}
	var m Meter
	err = c.call(ctx, request{method: http.MethodGet, path: path}, &m)
	return m, err
}

// CreateMeter creates m and returns it as stored. A key that exists is an
// *Error with status 409.
func (c *Client) CreateMeter(ctx context.Context, m Meter) (Meter, error) {
	return c.CreateMeterJSON(ctx, m)
}

// CreateMeterJSON creates a meter from its definition as JSON (a
// json.RawMessage is sent as it is, so the server sees every field, an
// unknown one included).
func (c *Client) CreateMeterJSON(ctx context.Context, definition any) (Meter, error) {
	req, err := jsonRequest(http.MethodPost, "/api/v1/meters", definition)
	if err != nil {
		return Meter{}, err
	}
	var created Meter
	err = c.call(ctx, req, &created)
	return created, err
}

// DeleteMeter deletes a meter; its usage is no longer served.
func (c *Client) DeleteMeter(ctx context.Context, key string) error {
	path, err := meterPath(key)
	if err != nil {
		return err
	}
	return c.call(ctx, request{method: http.MethodDelete, path: path}, nil)
}
