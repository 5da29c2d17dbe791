package measure

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// breakdownRows is the number of breakdown entries of a response, over
// every period.
func (u usageJSON) breakdownRows() int {
	n := 0
	for _, p := range u.Usage {
		n += len(p.Breakdown)
	}
	return n
}

// wantRowLimit fails the test unless the answer is the 400 of a response
// over the row limit: it names the field "period" and asks for a shorter
// range.
func wantRowLimit(t *testing.T, what string, code int, body []byte) {
	t.Helper()
	var e struct {
		Code    string
		Message string
		Details []fieldError
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: %d %s: %v", what, code, body[:min(len(body), 300)], err)
	}
	if code != http.StatusBadRequest || len(e.Details) != 1 || e.Details[0].Field != "period" ||
		!strings.Contains(e.Message, "shorter range") || !strings.Contains(e.Details[0].Message, "shorter range") {
		t.Errorf("%s: %d %s, want 400 naming period and asking for a shorter range", what, code, body[:min(len(body), 300)])
	}
}

// TestRowLimitBoundsTheResponse: the server's row limit (query.max-rows,
// 10000 here) bounds the breakdown of the whole response, not of each
// billing period. A year of the monthly plan with 30 regions a day is
// 10920 breakdown rows, at most 930 in any period: it is refused with 400
// naming period, and nothing is saved under its Idempotency-Key. Half the
// year (5430 rows) is answered.
func TestRowLimitBoundsTheResponse(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	var rows []reading
	start := mustTime("2026-02-01T12:00:00Z")
	for d := range 364 {
		for g := range 30 {
			rows = append(rows, f.tokensAt(fmt.Sprintf("e-%d-%d", d, g), start.AddDate(0, 0, d).Format(time.RFC3339), "1", fmt.Sprintf("r%02d", g)))
		}
	}
	e.insert(rows...)

	year := usageBody("ch_tokens", "2026-02-01T05:00:00Z", "2027-01-31T05:00:00Z")
	code, out, _ := e.post(keyAcme, acmeUsagePath, year, "Idempotency-Key", "year")
	wantRowLimit(t, "a year", code, out)
	var saved uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM idempotency_keys").Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved != 0 {
		t.Errorf("%d responses saved for a refused request", saved)
	}

	half := e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-02-01T05:00:00Z", "2026-08-01T04:00:00Z"))
	if n := half.breakdownRows(); len(half.Usage) != 6 || n != 181*30 {
		t.Errorf("half a year: %d periods, %d breakdown rows, want 6 and %d", len(half.Usage), n, 181*30)
	}
}

// TestRowLimitExactly: a response of exactly the limit's rows is
// answered, one row more is refused, whichever period the row is in.
func TestRowLimitExactly(t *testing.T) {
	e := newEnvRows(t, 60)
	f := setup(e)
	var rows []reading
	for g := range 30 { // 30 rows in March's period, 30 in April's
		rows = append(rows,
			f.tokensAt(fmt.Sprintf("mar-%d", g), "2026-03-03T12:00:00Z", "1", fmt.Sprintf("r%02d", g)),
			f.tokensAt(fmt.Sprintf("apr-%d", g), "2026-04-03T12:00:00Z", "1", fmt.Sprintf("r%02d", g)))
	}
	e.insert(rows...)
	marchApril := usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-05-01T04:00:00Z")
	if u := e.usageOK(keyAcme, acmeUsagePath, marchApril); u.breakdownRows() != 60 {
		t.Errorf("%d breakdown rows, want 60", u.breakdownRows())
	}

	e.insert(f.tokensAt("apr-more", "2026-04-04T12:00:00Z", "1", "r00"))
	code, out, _ := e.post(keyAcme, acmeUsagePath, marchApril)
	wantRowLimit(t, "61 rows", code, out)
	if u := e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-04-01T04:00:00Z", "2026-05-01T04:00:00Z")); u.breakdownRows() != 31 {
		t.Errorf("April alone: %d breakdown rows, want 31", u.breakdownRows())
	}
}
