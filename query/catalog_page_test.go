package query

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// pageItem is an item of a test list: its encoding is about 20 bytes
// plus its padding.
type pageItem struct {
	Key string `json:"key"`
	Pad string `json:"pad"`
}

// walkPages follows next_cursor through every page of items (sorted by
// key) and returns the pages' keys. It fails the test when a page breaks
// its bounds or a read asks for more than batch.
func walkPages(t *testing.T, items []pageItem, limit, maxBytes, batch int, keep func(pageItem) bool) [][]string {
	t.Helper()
	read := func(after string, n int) ([]pageItem, error) {
		if n < 1 || n > batch {
			t.Fatalf("read of %d items, batch %d", n, batch)
		}
		i, _ := slices.BinarySearchFunc(items, after, func(it pageItem, k string) int { return strings.Compare(it.Key, k) })
		if i < len(items) && items[i].Key == after {
			i++
		}
		return items[i:min(i+n, len(items))], nil
	}
	var pages [][]string
	p := page{limit: limit, maxBytes: maxBytes}
	for range len(items) + 1 {
		body, err := fillPage(p, batch, read, func(it pageItem) string { return it.Key }, keep)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		size := 0
		for _, raw := range body.Data {
			var it pageItem
			if err := json.Unmarshal(raw, &it); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, it.Key)
			size += len(raw)
		}
		if len(keys) > limit || (len(keys) > 1 && size > maxBytes) {
			t.Fatalf("page %v: %d items of %d bytes, limit %d and %d bytes", keys, len(keys), size, limit, maxBytes)
		}
		pages = append(pages, keys)
		if body.NextCursor == nil {
			return pages
		}
		if len(keys) == 0 {
			t.Fatal("an empty page with a next cursor")
		}
		after, _ := base64.RawURLEncoding.DecodeString(*body.NextCursor)
		p.after = string(after)
	}
	t.Fatal("the pages do not end")
	return nil
}

func TestFillPageBounds(t *testing.T) {
	item := func(key string, pad int) pageItem { return pageItem{Key: key, Pad: strings.Repeat("x", pad)} }
	small := []pageItem{item("a", 0), item("b", 0), item("c", 0), item("d", 0), item("e", 0)} // 20 bytes each
	mixed := []pageItem{item("a", 0), item("b", 80), item("c", 0), item("d", 0), item("e", 200), item("f", 0)}
	even := func(it pageItem) bool { return (it.Key[0]-'a')%2 == 0 }
	cases := []struct {
		name                   string
		items                  []pageItem
		limit, maxBytes, batch int
		keep                   func(pageItem) bool
		want                   string // pages split by |
	}{
		{"by limit", small, 2, 1000, 10, nil, "a b|c d|e"},
		{"limit, small reads", small, 3, 1000, 1, nil, "a b c|d e"},
		{"limit, whole list", small, 5, 1000, 10, nil, "a b c d e"},
		{"empty list", nil, 5, 1000, 10, nil, ""},
		{"by bytes", small, 5, 45, 10, nil, "a b|c d|e"},
		// A page holds at least one item, however large: e alone.
		{"large items", mixed, 10, 120, 2, nil, "a b|c d|e|f"},
		{"filtered", small, 2, 1000, 1, even, "a c|e"},
		{"filtered by bytes", mixed, 10, 30, 4, even, "a|c|e"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, keys := range walkPages(t, tc.items, tc.limit, tc.maxBytes, tc.batch, tc.keep) {
				got = append(got, strings.Join(keys, " "))
			}
			if s := strings.Join(got, "|"); s != tc.want {
				t.Errorf("pages %q, want %q", s, tc.want)
			}
		})
	}
}

// maximalPlan is a plan of MaxPlanCharges charges of MaxChargeTiers tiers
// on meter calls: about 0.9 MiB of JSON, near the body limit.
func maximalPlan(code string) string {
	var charges []string
	for c := range 100 {
		var tiers []string
		for i := range 100 {
			from, to := "0", "null"
			if i > 0 {
				from = fmt.Sprintf(`"%d.5"`, i*1000)
			}
			if i < 99 {
				to = fmt.Sprintf(`"%d.5"`, (i+1)*1000)
			}
			tiers = append(tiers, fmt.Sprintf(`{"from_value":%s,"to_value":%s,"per_unit_amount":"0.0%03d","flat_amount":"1"}`, from, to, i))
		}
		charges = append(charges, fmt.Sprintf(`{"meter":"calls","charge_model":"graduated","invoice_display_name":"charge %d",`+
			`"properties":{"graduated_ranges":[%s]}}`, c, strings.Join(tiers, ",")))
	}
	return `{"code":"` + code + `","name":"big","interval":"monthly","amount_currency":"USD","charges":[` + strings.Join(charges, ",") + `]}`
}

// A page of large plans stops at maxPageBytes, fewer than ?limit=, and
// its next_cursor leads through the rest.
func TestPlansPageByteBudget(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	var want []string
	for i := range 6 {
		code := fmt.Sprintf("big%d", i)
		c.mustCall("POST", PlansRoute, keyAcme, maximalPlan(code), http.StatusCreated, nil)
		want = append(want, code)
	}
	for _, code := range []string{"small1", "small2"} {
		c.createPlan(keyAcme, strings.Replace(basicPlan, `"basic"`, `"`+code+`"`, 1))
		want = append(want, code)
	}
	var got []string
	path := PlansRoute + "?limit=1000"
	for pages := 1; ; pages++ {
		code, out := c.call("GET", path, keyAcme, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %.300s", path, code, out)
		}
		var p struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		decodeJSON(t, out, &p)
		if len(out) > maxPageBytes+1000 || len(p.Data) == 0 {
			t.Fatalf("GET %s: %d plans in %d bytes, over the page's %d", path, len(p.Data), len(out), maxPageBytes)
		}
		for _, raw := range p.Data {
			var plan struct{ Code string }
			decodeJSON(t, raw, &plan)
			got = append(got, plan.Code)
		}
		if p.NextCursor == nil {
			if pages < 2 {
				t.Errorf("%d plans of about 0.9 MiB came in one page", len(got))
			}
			break
		}
		path = PlansRoute + "?limit=1000&cursor=" + *p.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("plans listed %v, want %v", got, want)
	}
}

// DELETE /api/v1/meters/{key} reads the plans planBatch at a time and
// still finds a plan charging the meter past the first read.
func TestMeterDeleteFindsPlansPastOneRead(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	const callsOnly = `{"code": %q, "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`
	for i := range planBatch + 5 {
		c.createPlan(keyAcme, fmt.Sprintf(callsOnly, fmt.Sprintf("p%03d", i)))
	}
	c.createPlan(keyAcme, strings.Replace(basicPlan, `"basic"`, `"zz-last"`, 1)) // charges storage
	code, out := c.call("DELETE", MetersRoute+"/storage", keyAcme, "")
	if code != http.StatusConflict || !strings.Contains(string(out), "zz-last") {
		t.Errorf("DELETE storage: %d %s, want 409 naming plan zz-last", code, out)
	}
}
