package docstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newTable returns a Table on a fresh database, with the DDL every
// document table has (see the package comment).
func newTable(t *testing.T) *Table {
	t.Helper()
	addr, database := testenv.NewDatabase(t)
	conn := testenv.Conn(t, addr, database)
	if err := conn.Exec(context.Background(), `CREATE TABLE docs (
		org_id String, key String, revision UInt64, definition String,
		deleted UInt8, version UInt64, updated_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, key)`); err != nil {
		t.Fatal(err)
	}
	return New(conn, "docs")
}

func appendRow(t *testing.T, tb *Table, r Row) {
	t.Helper()
	if err := tb.Append(context.Background(), r, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestCurrentIsHighestVersion: the current row is the highest version,
// whatever order the rows were inserted in and whether or not they were
// merged (each Append is its own part).
func TestCurrentIsHighestVersion(t *testing.T) {
	tb := newTable(t)
	ctx := context.Background()
	if _, found, err := tb.Current(ctx, "acme", "k"); err != nil || found {
		t.Fatalf("Current of a new key: found %v, %v", found, err)
	}
	appendRow(t, tb, Row{OrgID: "acme", Key: "k", Revision: 10, Definition: `{"v":3}`, Version: 30})
	appendRow(t, tb, Row{OrgID: "acme", Key: "k", Revision: 10, Definition: `{"v":1}`, Version: 10})
	appendRow(t, tb, Row{OrgID: "acme", Key: "k", Revision: 10, Definition: `{"v":2}`, Version: 20})
	r, found, err := tb.Current(ctx, "acme", "k")
	if err != nil || !found {
		t.Fatalf("Current: found %v, %v", found, err)
	}
	want := Row{OrgID: "acme", Key: "k", Revision: 10, Definition: `{"v":3}`, Version: 30}
	if r != want {
		t.Errorf("Current = %+v, want %+v", r, want)
	}

	if err := tb.Tombstone(ctx, r, time.Unix(0, 5)); err != nil { // a clock behind the version
		t.Fatal(err)
	}
	r, found, err = tb.Current(ctx, "acme", "k")
	if err != nil || !found || !r.Deleted || r.Version != 31 || r.Definition != `{"v":3}` {
		t.Errorf("after Tombstone: %+v, found %v, %v", r, found, err)
	}
	if rows, err := tb.List(ctx, "acme", "", 0); err != nil || len(rows) != 0 {
		t.Errorf("List after Tombstone: %+v, %v", rows, err)
	}
}

func TestList(t *testing.T) {
	tb := newTable(t)
	ctx := context.Background()
	for i, k := range []string{"d", "b", "a", "c", "e"} {
		appendRow(t, tb, Row{OrgID: "acme", Key: k, Definition: `{"key":"` + k + `","tier":"gold"}`, Version: uint64(i + 1)})
	}
	appendRow(t, tb, Row{OrgID: "acme", Key: "b", Definition: `{"key":"b","tier":"silver"}`, Version: 100})
	appendRow(t, tb, Row{OrgID: "acme", Key: "c", Deleted: true, Version: 100})
	appendRow(t, tb, Row{OrgID: "globex", Key: "a", Definition: `{"tier":"gold"}`, Version: 1})

	for _, tc := range []struct {
		name    string
		after   string
		limit   int
		matches []Match
		want    []string
	}{
		{"all live", "", 0, nil, []string{"a", "b", "d", "e"}},
		{"limit", "", 2, nil, []string{"a", "b"}},
		{"after", "b", 2, nil, []string{"d", "e"}},
		{"after a deleted key", "c", 0, nil, []string{"d", "e"}},
		{"past the end", "e", 10, nil, nil},
		{"a page over a deleted key", "b", 1, nil, []string{"d"}},
		{"a page of one", "", 1, nil, []string{"a"}},
		{"match the current version", "", 0, []Match{{"tier", "silver"}}, []string{"b"}},
		{"match skips old versions", "", 0, []Match{{"tier", "gold"}}, []string{"a", "d", "e"}},
		{"two matches", "", 0, []Match{{"tier", "gold"}, {"key", "d"}}, []string{"d"}},
		{"match and page", "a", 1, []Match{{"tier", "gold"}}, []string{"d"}},
		{"no match", "", 0, []Match{{"tier", "bronze"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := tb.List(ctx, "acme", tc.after, tc.limit, tc.matches...)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, r := range rows {
				if r.OrgID != "acme" || r.Deleted {
					t.Errorf("row %+v", r)
				}
				keys = append(keys, r.Key)
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("keys %v, want %v", keys, tc.want)
			}
		})
	}

	// A page carries each key's current definition, and only the
	// organization's own rows.
	page, err := tb.List(ctx, "acme", "a", 1)
	if err != nil || len(page) != 1 || page[0].Definition != `{"key":"b","tier":"silver"}` || page[0].Version != 100 {
		t.Errorf("page after a: %+v, %v", page, err)
	}
	if page, err := tb.List(ctx, "globex", "", 5); err != nil || len(page) != 1 || page[0].Definition != `{"tier":"gold"}` {
		t.Errorf("globex's page: %+v, %v", page, err)
	}

	all, err := tb.CurrentOfAllOrganizations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, r.OrgID+"/"+r.Key)
	}
	if want := []string{"acme/a", "acme/b", "acme/c", "acme/d", "acme/e", "globex/a"}; !slices.Equal(got, want) {
		t.Errorf("CurrentOfAllOrganizations %v, want %v", got, want)
	}
}

func TestOrganizationRequired(t *testing.T) {
	tb := newTable(t)
	ctx := context.Background()
	if _, _, err := tb.Current(ctx, "", "k"); !errors.Is(err, ErrNoOrg) {
		t.Errorf("Current: %v", err)
	}
	if _, err := tb.List(ctx, "", "", 0); !errors.Is(err, ErrNoOrg) {
		t.Errorf("List: %v", err)
	}
	if err := tb.Append(ctx, Row{Key: "k", Version: 1}, time.Now()); !errors.Is(err, ErrNoOrg) {
		t.Errorf("Append: %v", err)
	}
	if err := tb.Tombstone(ctx, Row{Key: "k", Version: 1}, time.Now()); !errors.Is(err, ErrNoOrg) {
		t.Errorf("Tombstone: %v", err)
	}
	if err := tb.Append(ctx, Row{OrgID: "acme", Version: 1}, time.Now()); err == nil {
		t.Error("Append of an empty key succeeded")
	}
	if all, err := tb.CurrentOfAllOrganizations(ctx); err != nil || len(all) != 0 {
		t.Errorf("nothing was written: %+v, %v", all, err)
	}
}

func TestNextVersion(t *testing.T) {
	now := time.Unix(0, 1000)
	for _, tc := range []struct{ prev, want uint64 }{{0, 1000}, {999, 1000}, {1000, 1001}, {5000, 5001}} {
		if got := NextVersion(now, tc.prev); got != tc.want {
			t.Errorf("NextVersion(1000ns, %d) = %d, want %d", tc.prev, got, tc.want)
		}
	}
}

func TestNewRejectsBadTableName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New accepted a table name with SQL in it")
		}
	}()
	New(nil, "docs; DROP TABLE meters")
}
