package billing_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query/billing"
)

// TestGroupRowsAcrossCharges: the row limit given to New bounds the group
// lines of one priced usage over all its charges, taken in plan order; a
// grouped charge that does not fit in what is left omits its groups and
// is priced on its total. A charge without readings has no groups to
// omit.
func TestGroupRowsAcrossCharges(t *testing.T) {
	now := at("2026-02-20T12:00:00Z")
	f, insert := newFixture(t, now)
	calls := f.meter("acme", `{"key":"calls","event_type":"api","aggregation":"COUNT","group_by":{"region":"$.region"}}`)
	f.meter("acme", `{"key":"gpus","event_type":"gpu","aggregation":"MAX","value_property":"$.n","group_by":{"region":"$.region"}}`)
	f.meter("acme", `{"key":"storage","event_type":"disk","aggregation":"SUM","value_property":"$.gb"}`)
	charge := func(meter string) string {
		return `{"meter":"` + meter + `","charge_model":"standard","properties":{"amount":"1"}}`
	}
	f.plan("acme", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","charges":[`+
		strings.Join([]string{charge("calls"), charge("calls"), charge("gpus"), charge("storage"), charge("calls")}, ",")+`]}`)
	f.subscribe("acme", `{"external_id":"s","external_customer_id":"c1","plan_code":"p","subscription_at":"2026-02-01T00:00:00Z"}`)
	for i, region := range []string{"eu", "us", "us"} { // 2 groups, 3 calls
		insert(testenv.Reading{Org: "acme", Meter: calls.Key, Revision: calls.Revision, Customer: "c1", EventID: fmt.Sprint(i),
			Time: at("2026-02-02T00:00:00Z"), Groups: map[string]string{"region": region}})
	}

	// Each charge's groups, "-" when omitted: calls, calls, gpus (no
	// readings), storage (no group keys), calls.
	for _, tt := range []struct {
		maxRows int
		want    string
	}{
		{1, "- - 0 0 -"}, // 2 groups never fit
		{2, "2 - 0 0 -"},
		{3, "2 - 0 0 -"},
		{4, "2 2 0 0 -"},
		{6, "2 2 0 0 2"},
	} {
		t.Run(fmt.Sprint(tt.maxRows), func(t *testing.T) {
			svc := billing.New(f.catalog, f.usage, catalogstore.ErrNotFound, tt.maxRows)
			svc.SetClock(func() time.Time { return now })
			u, err := svc.SubscriptionUsage(f.ctx, "acme", "s", billing.PeriodRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, c := range u.Invoice.Charges {
				groups := fmt.Sprint(len(c.Groups))
				if c.GroupsOmitted {
					groups = "-"
					if len(c.Groups) > 0 {
						t.Errorf("charge %d omits its groups but has %d", i, len(c.Groups))
					}
				}
				got = append(got, groups)
				if c.Charge.Meter == "calls" && (c.Units.String() != "3" || c.Amount.Minor != 300) {
					t.Errorf("charge %d: %s units, %d cents; want 3 calls priced 300 cents", i, c.Units, c.Amount.Minor)
				}
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("groups per charge %q, want %q", s, tt.want)
			}
		})
	}
}
