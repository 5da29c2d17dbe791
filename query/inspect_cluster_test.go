package query

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/testenv"
)

// TestInspectOnCluster: on a 2 shards x 2 replicas cluster the dead
// letters and the status read the Distributed tables and count exactly:
// rows written twice (a retried insert, through another server) fold on
// their shard, and customers spread over both shards all count.
func TestInspectOnCluster(t *testing.T) {
	d := testenv.NewMigratedClusterDatabase(t)
	writer, reader := d.Open(t, 0, 4), d.Open(t, len(d.Addrs)-1, 4)
	keys := &httpapi.Keys{}
	if err := keys.AddSpec("acme:" + keyAcme + ",globex:" + keyGlobex); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := New(Config{ListenAddr: "127.0.0.1:0", MaxRows: DefaultMaxRows, Timeout: DefaultTimeout},
		Deps{ClickHouse: reader, Keys: keys, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	e := &env{t: t, conn: reader, svc: svc, url: srv.URL, reg: reg}

	now := time.Now().UTC().Truncate(time.Second)
	var events []eventRow
	var dls []deadLetterRow
	// Twenty customers: both shards hold some.
	for i := range 20 {
		customer := "c" + string(rune('a'+i))
		events = append(events, eventRow{org: "acme", customer: customer, id: "e1", ingestedAt: now.Add(-time.Duration(i) * time.Minute), offset: int64(i)})
		dls = append(dls, deadLetterRow{org: "acme", customer: customer, eventID: "e2", meter: "tokens", reason: "value_not_number",
			message: "m", payload: `{"v":1}`, time: now, ingestedAt: now, deadLetteredAt: now.Add(-time.Duration(i) * time.Second), offset: int64(100 + i)})
	}
	events = append(events, eventRow{org: "globex", customer: "ca", id: "e1", ingestedAt: now, offset: 99})
	insertEvents(t, writer, events...)
	insertEvents(t, reader, events...) // retried through another server
	insertDeadLetters(t, writer, dls...)
	insertDeadLetters(t, reader, dls[:5]...)

	var s statusBody
	e.getJSON("/api/v1/status", keyAcme, http.StatusOK, &s)
	if s.Events == nil || s.Events.Last24h != 20 || s.Events.LastHour != 20 || s.DeadLetters.Last24h != 20 ||
		*s.Events.LatestIngestedAt != now.Format(time.RFC3339) {
		t.Errorf("acme status on the cluster: %s", mustMarshal(t, s))
	}
	var b deadLettersBody
	e.getJSON("/api/v1/dead_letters?limit=3", keyAcme, http.StatusOK, &b)
	wantLines(t, "latest", b.ids(), "ca/e2/tokens", "cb/e2/tokens", "cc/e2/tokens")
	wantLines(t, "reasons", b.reasons(), "value_not_number=20")
	var g statusBody
	e.getJSON("/api/v1/status", keyGlobex, http.StatusOK, &g)
	if g.Events == nil || g.Events.Last24h != 1 || g.DeadLetters.Last24h != 0 {
		t.Errorf("globex status on the cluster: %s", mustMarshal(t, g))
	}
}
