package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// verify polls this run's usage until it is exactly accepted × 0.1 or
// VerifyTimeout after the last acknowledgement has passed. The billable
// latency is measured when an exact answer arrives, so it is an upper
// bound within one poll of the true one.
func (lg *loadgen) verify(ctx context.Context, rep *loadgenReport, from, lastAck time.Time) error {
	rep.Verified = true
	rep.Expected = decimal.New(int64(rep.Accepted), -1)
	deadline := lastAck.Add(lg.cfg.VerifyTimeout)
	for {
		got, err := lg.usage(ctx, from)
		now := time.Now()
		rep.BillableLatency = now.Sub(lastAck)
		if err != nil {
			rep.VerifyError = err.Error()
		} else {
			rep.Got, rep.VerifyError = got, ""
			if got.Equal(rep.Expected) {
				rep.Exact = true
				return nil
			}
		}
		if now.After(deadline) {
			return fmt.Errorf("usage of run %s is %s, not %s, %s after the last acknowledged request", rep.RunID, rep.Got, rep.Expected, lg.cfg.VerifyTimeout)
		}
		select {
		case <-time.After(loadgenPollInterval):
		case <-ctx.Done():
			return fmt.Errorf("verification stopped: %w", ctx.Err())
		}
	}
}

// usage returns the meter's total for this run.
func (lg *loadgen) usage(ctx context.Context, from time.Time) (decimal.Decimal, error) {
	q := url.Values{}
	q.Set("from", from.UTC().Format(time.RFC3339Nano))
	q.Set("to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano))
	q.Set("filter["+loadgenGroupKey+"]", lg.cfg.RunID)
	u := strings.TrimRight(lg.cfg.QueryURL, "/") + "/api/v1/meters/" + lg.cfg.Meter + "/query?" + q.Encode()
	code, body, err := lg.do(ctx, http.MethodGet, u, "", nil)
	if err != nil {
		return decimal.Zero, err
	}
	if code != http.StatusOK {
		return decimal.Zero, fmt.Errorf("query answered %d: %s", code, bytes.TrimSpace(body))
	}
	var resp struct {
		Data []struct {
			Value json.Number `json:"value"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return decimal.Zero, fmt.Errorf("query answer: %w", err)
	}
	total := decimal.Zero
	for _, row := range resp.Data {
		v, err := decimal.NewFromString(row.Value.String())
		if err != nil {
			return decimal.Zero, fmt.Errorf("query answer value %q: %w", row.Value, err)
		}
		total = total.Add(v)
	}
	return total, nil
}
