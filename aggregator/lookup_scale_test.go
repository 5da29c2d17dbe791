package aggregator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestLookupScale measures the first-version lookup as the store grows:
// the rows ClickHouse reads per key and the duration of a lookup of 10,000
// keys, at each size of TALLY_LOOKUP_SCALE (a comma-separated list of
// stored events, e.g. 100000,1000000,3000000). It is a measurement, not a
// check, and runs only when that variable is set:
//
//	TALLY_LOOKUP_SCALE=100000,1000000,3000000 go test -count=1 -run TestLookupScale -v ./aggregator/
//
// The events are what ingest would store from many producers: 5,000
// customers, random ids, times spread over 90 days (four monthly
// partitions), inserted in blocks of 100,000 rows; a lookup asks for the
// keys of a batch: 10,000 new random identities plus, as redeliveries and
// duplicates, 100 stored ones.
func TestLookupScale(t *testing.T) {
	spec := os.Getenv("TALLY_LOOKUP_SCALE")
	if spec == "" {
		t.Skip("set TALLY_LOOKUP_SCALE=100000,1000000,... to measure the lookup at those numbers of stored events")
	}
	var sizes []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("TALLY_LOOKUP_SCALE: %q is not a positive number", f)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	addr, db := testenv.NewMigratedDatabase(t)
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	rng := mrand.New(mrand.NewPCG(1, 2))
	const customers, block, lookupKeys, rounds = 5000, 100_000, 10_000, 5
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sample []EventKey // some stored identities, looked up again
	stored := 0
	for _, size := range sizes {
		loadStart := time.Now()
		for stored < size {
			n := min(block, size-stored)
			store := &clickhouseStore{conn: conn, metrics: newMetrics(nil)}
			rows := make([]EventRow, n)
			for i := range rows {
				k := randomKey(rng, customers)
				rows[i] = EventRow{EventKey: k, Type: "api_call", Source: "bench",
					Time:       start.Add(time.Duration(rng.Int64N(int64(90 * 24 * time.Hour)))),
					Properties: `{"tokens":12.5,"model":"gpt-5"}`, IngestedAt: start,
					Position: Position{Partition: int32(i % 6), Offset: int64(stored + i)}}
				if len(sample) < 1000 && rng.IntN(100) == 0 {
					sample = append(sample, k)
				}
			}
			if err := store.InsertEvents(ctx, rows); err != nil {
				t.Fatal(err)
			}
			stored += n
		}
		load := time.Since(loadStart)
		var parts, idParts uint64
		if err := conn.QueryRow(ctx, "SELECT countIf(table = 'events'), countIf(table = 'event_identities') FROM system.parts WHERE database = currentDatabase() AND active").Scan(&parts, &idParts); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		store := &clickhouseStore{conn: conn, metrics: newMetrics(reg)}
		var durations []time.Duration
		for range rounds {
			keys := make([]EventKey, 0, lookupKeys+100)
			for range lookupKeys {
				keys = append(keys, randomKey(rng, customers))
			}
			for range 100 {
				keys = append(keys, sample[rng.IntN(len(sample))])
			}
			began := time.Now()
			found, err := store.StoredVersions(ctx, keys)
			durations = append(durations, time.Since(began))
			if err != nil {
				t.Fatal(err)
			}
			if len(found) < 50 {
				t.Fatalf("found %d of the 100 stored keys looked up", len(found))
			}
		}
		slices.Sort(durations)
		perKey := histogramMean(t, reg, "tally_aggregator_lookup_rows_read_per_key")
		t.Logf("stored %d events (active parts: %d of events, %d of event_identities; loaded in %v): lookup of %d keys reads %.0f rows per key (%.1f%% of the table), median %v, max %v",
			stored, parts, idParts, load.Round(time.Millisecond), lookupKeys+100, perKey,
			100*perKey*float64(lookupKeys+100)/float64(stored), durations[len(durations)/2].Round(time.Millisecond),
			durations[len(durations)-1].Round(time.Millisecond))
	}
}

func randomKey(rng *mrand.Rand, customers int) EventKey {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return EventKey{OrgID: testOrg, CustomerID: fmt.Sprintf("customer-%d", rng.IntN(customers)), ID: hex.EncodeToString(id[:])}
}

// histogramMean is the mean of the observations of the histogram name.
func histogramMean(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	f := metricFamily(t, reg, name)
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	h := f.GetMetric()[0].GetHistogram()
	return h.GetSampleSum() / float64(h.GetSampleCount())
}
