package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	e.insert(f.tokensAt("a", "2026-03-03T12:00:00Z", "42", "us"))
	march := usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z")
	key := func(k string) []string { return []string{"Idempotency-Key", k} }

	code, first, header := e.post(keyAcme, acmeUsagePath, march, key("k1")...)
	if code != http.StatusOK || header.Get("Idempotent-Replayed") != "" || header.Get("Idempotent-Stored") != "" {
		t.Fatalf("first: %d %s (replayed %q, stored %q), want a fresh 200, stored",
			code, first, header.Get("Idempotent-Replayed"), header.Get("Idempotent-Stored"))
	}
	// More usage arrives; a retry with the key still gets the first bytes.
	e.insert(f.tokensAt("b", "2026-03-04T12:00:00Z", "8", "us"))
	code, retry, header := e.post(keyAcme, acmeUsagePath, march, key("k1")...)
	if code != http.StatusOK || !bytes.Equal(retry, first) || header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d %s (replayed %q), want the first response %s", code, retry, header.Get("Idempotent-Replayed"), first)
	}
	if u := e.usageOK(keyAcme, acmeUsagePath, march); u.Usage[0].Value.String() != "50" {
		t.Errorf("without the key: %q, want the new usage 50", u.lines())
	}

	// The same key with another request is refused.
	other := usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-03-15T04:00:00Z")
	code, body, _ := e.post(keyAcme, acmeUsagePath, other, key("k1")...)
	var errBody struct{ Code, Message string }
	_ = json.Unmarshal(body, &errBody)
	if code != http.StatusUnprocessableEntity || errBody.Code != "idempotency_key_reused" || !strings.Contains(errBody.Message, "different request") {
		t.Errorf("same key, other body: %d %s", code, body)
	}
	// The other spelling of the company is the same request: the same answer.
	if code, body, _ := e.post(keyAcme, "/api/v1/companies/acme/subscriptions/sub-1/usage", march, key("k1")...); code != http.StatusOK || !bytes.Equal(body, first) {
		t.Errorf("same key, company without cmp_: %d %s, want the first response", code, body)
	}
	// Another subscription is another request.
	if code, body, _ := e.post(keyAcme, "/api/v1/companies/acme/subscriptions/sub-2/usage", march, key("k1")...); code != http.StatusUnprocessableEntity {
		t.Errorf("same key, other subscription: %d %s", code, body)
	}

	// Errors are not saved: the key can be used again for a corrected request.
	if code, body, _ := e.post(keyAcme, acmeUsagePath, `{}`, key("k2")...); code != http.StatusBadRequest {
		t.Errorf("invalid request: %d %s", code, body)
	}
	if code, body, _ := e.post(keyAcme, acmeUsagePath, march, key("k2")...); code != http.StatusOK {
		t.Errorf("corrected request with the key of an invalid one: %d %s", code, body)
	}

	// Keys are scoped by organization: globex's k1 is its own.
	globexPath := "/api/v1/companies/cmp_globex/subscriptions/sub-1/usage"
	if code, body, _ := e.post(keyGlobex, globexPath, usageBody("ch_globex", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"), key("k1")...); code != http.StatusOK {
		t.Errorf("globex with acme's key: %d %s", code, body)
	}

	// After the window the key answers afresh.
	e.advance(IdempotencyWindow + time.Minute)
	code, fresh, header := e.post(keyAcme, acmeUsagePath, march, key("k1")...)
	if code != http.StatusOK || bytes.Equal(fresh, first) || header.Get("Idempotent-Replayed") != "" {
		t.Errorf("after 24 h: %d %s (replayed %q), want a new response", code, fresh, header.Get("Idempotent-Replayed"))
	}

	if code, body, _ := e.post(keyAcme, acmeUsagePath, march, key(strings.Repeat("k", 256))...); code != http.StatusBadRequest {
		t.Errorf("a 256-character key: %d %s", code, body)
	}
}

// TestIdempotencyKeyRace sends two different requests with one key at
// once. Both may be computed and saved; the store's first entry (by save
// time) wins: at least one of the racing requests gets its answer, and
// from then on retries of the winner get its saved bytes and the other
// request is told the key is taken. Identical requests racing all get the
// same bytes.
func TestIdempotencyKeyRace(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	e.insert(f.tokensAt("a", "2026-03-03T12:00:00Z", "42", "us"))
	bodies := []string{
		usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"),
		usageBody("ch_calls", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"),
	}
	for round := range 3 {
		k := "race-" + string(rune('a'+round))
		codes := make([]int, len(bodies))
		answers := make([][]byte, len(bodies))
		var wg sync.WaitGroup
		for i, b := range bodies {
			wg.Go(func() { codes[i], answers[i], _ = e.post(keyAcme, acmeUsagePath, b, "Idempotency-Key", k) })
		}
		wg.Wait()
		if codes[0] != http.StatusOK && codes[1] != http.StatusOK {
			t.Errorf("round %d: codes %v, want at least one 200", round, codes)
		}
		winners := 0
		for i, b := range bodies {
			code, retry, _ := e.post(keyAcme, acmeUsagePath, b, "Idempotency-Key", k)
			switch code {
			case http.StatusOK:
				winners++
				if codes[i] == http.StatusOK && !bytes.Equal(retry, answers[i]) {
					t.Errorf("round %d: the winner's retry %s differs from its answer %s", round, retry, answers[i])
				}
			case http.StatusUnprocessableEntity:
			default:
				t.Errorf("round %d: retry of request %d: %d %s", round, i, code, retry)
			}
		}
		if winners != 1 {
			t.Errorf("round %d: %d requests own the key after the race, want 1", round, winners)
		}
	}

	answers := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { _, answers[i], _ = e.post(keyAcme, acmeUsagePath, bodies[0], "Idempotency-Key", "same") })
	}
	wg.Wait()
	for i := range answers {
		if !bytes.Equal(answers[i], answers[0]) || !bytes.Contains(answers[i], []byte(`"usage"`)) {
			t.Errorf("answer %d: %s, want %s", i, answers[i], answers[0])
		}
	}
}

// TestIdempotencyLargeResponseNotSaved: a response over maxSavedBody is
// answered with Idempotent-Stored: false and not saved, so a retry with
// the key computes it again (and sees usage that arrived since).
func TestIdempotencyLargeResponseNotSaved(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	var rows []reading
	start := mustTime("2026-03-01T12:00:00Z")
	for d := range 31 {
		for g := range 100 { // about 400 bytes a breakdown row: 1.2 MB
			region := fmt.Sprintf("%03d-%s", g, strings.Repeat("r", 240))
			rows = append(rows, f.tokensAt(fmt.Sprintf("e-%d-%d", d, g), start.AddDate(0, 0, d).Format(time.RFC3339), "1", region))
		}
	}
	e.insert(rows...)
	march := usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z")

	code, first, header := e.post(keyAcme, acmeUsagePath, march, "Idempotency-Key", "large")
	if code != http.StatusOK || len(first) <= maxSavedBody || header.Get("Idempotent-Stored") != "false" {
		t.Fatalf("%d, %d bytes, Idempotent-Stored %q; want 200, over %d bytes, false",
			code, len(first), header.Get("Idempotent-Stored"), maxSavedBody)
	}
	var saved uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM idempotency_keys").Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved != 0 {
		t.Errorf("%d responses saved", saved)
	}

	e.insert(f.tokensAt("later", "2026-03-02T12:00:00Z", "1", "000-"+strings.Repeat("r", 240)))
	code, retry, header := e.post(keyAcme, acmeUsagePath, march, "Idempotency-Key", "large")
	u := decodeUsage(t, retry)
	if code != http.StatusOK || header.Get("Idempotent-Replayed") != "" || len(u.Usage) != 1 || u.Usage[0].Value.String() != "3101" {
		t.Errorf("retry: %d, replayed %q, usage %v; want a fresh 200 with 3101 tokens", code, header.Get("Idempotent-Replayed"), u.Usage[0].Value)
	}

	// A small response with a key says nothing of storing: it is stored.
	code, _, header = e.post(keyAcme, acmeUsagePath, usageBody("ch_calls", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"), "Idempotency-Key", "small")
	if code != http.StatusOK || header.Get("Idempotent-Stored") != "" {
		t.Errorf("small response: %d, Idempotent-Stored %q", code, header.Get("Idempotent-Stored"))
	}
}
