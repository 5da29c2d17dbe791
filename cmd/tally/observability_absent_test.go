package main

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestAnAlertFiresWhenAComponentIsNotScraped: when every instance of a
// component is gone, some alert must fire, whatever Prometheus calls its
// scrape job. TallyTargetDown (up{job=~"tally-.*"} == 0) only sees
// targets Prometheus still scrapes under the jobs of
// deploy/prometheus/prometheus.yml: on Kubernetes (deploy/kubernetes,
// prometheus.io/scrape annotations) the job is the scrape config's name
// (commonly kubernetes-pods) and a deleted or never-scheduled pod leaves
// no target at all, so no up == 0; and an aggregate such as
// sum(tally_aggregator_assigned_partitions) == 0 is empty, not 0, when no
// aggregator exports anything. Each alert is evaluated here in a world
// where the component's series and `up` do not exist and every other
// series is unknown; the alert must fire in that world whatever the rest.
func TestAnAlertFiresWhenAComponentIsNotScraped(t *testing.T) {
	var alerts []struct{ name, expr string }
	for _, g := range parseRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, struct{ name, expr string }{r.Alert, r.Expr})
			}
		}
	}
	for _, component := range []string{"ingest", "aggregator", "query"} {
		gone := func(metric string) bool {
			return metric == "up" || strings.HasPrefix(metric, "tally_"+component+"_")
		}
		var firing []string
		for _, a := range alerts {
			e, err := promQL.ParseExpr(a.expr)
			if err != nil {
				t.Fatalf("%s: %v", a.name, err)
			}
			if absentEval(e, gone) == seriesPresent {
				firing = append(firing, a.name)
			}
		}
		if len(firing) == 0 {
			t.Errorf("no alert fires when no %s is scraped (every tally_%s_* series absent, no up series)", component, component)
		} else {
			t.Logf("without %s: %v fire", component, firing)
		}
	}
}

// seriesState is what an expression yields in the world of absentEval.
type seriesState int

const (
	seriesUnknown seriesState = iota // depends on series this world does not fix
	seriesNone                       // certainly no sample: an alert does not fire
	seriesPresent                    // certainly a sample: an alert fires
)

// absentEval evaluates e where the metrics gone reports do not exist and
// all others are unknown. It knows the PromQL the rules use and answers
// unknown for the rest.
func absentEval(e parser.Expr, gone func(string) bool) seriesState {
	switch n := e.(type) {
	case *parser.ParenExpr:
		return absentEval(n.Expr, gone)
	case *parser.VectorSelector:
		if gone(n.Name) {
			return seriesNone
		}
		return seriesUnknown
	case *parser.MatrixSelector:
		return absentEval(n.VectorSelector, gone)
	case *parser.SubqueryExpr:
		return absentEval(n.Expr, gone)
	case *parser.AggregateExpr:
		if s := absentEval(n.Expr, gone); s == seriesNone {
			return seriesNone
		}
		return seriesUnknown
	case *parser.Call:
		switch n.Func.Name {
		case "absent", "absent_over_time":
			switch absentEval(n.Args[0], gone) {
			case seriesNone:
				return seriesPresent
			case seriesPresent:
				return seriesNone
			}
			return seriesUnknown
		case "label_replace", "label_join":
			return absentEval(n.Args[0], gone)
		}
		for _, arg := range n.Args {
			if arg.Type() == parser.ValueTypeVector || arg.Type() == parser.ValueTypeMatrix {
				if absentEval(arg, gone) == seriesNone {
					return seriesNone
				}
			}
		}
		return seriesUnknown
	case *parser.BinaryExpr:
		l, r := absentEval(n.LHS, gone), absentEval(n.RHS, gone)
		lv, rv := n.LHS.Type() == parser.ValueTypeVector, n.RHS.Type() == parser.ValueTypeVector
		switch {
		case n.Op == parser.LOR:
			if l == seriesPresent || r == seriesPresent {
				return seriesPresent
			}
			if l == seriesNone && r == seriesNone {
				return seriesNone
			}
		case n.Op == parser.LUNLESS:
			if l == seriesNone {
				return seriesNone
			}
		default: // and, arithmetic, comparison: nothing without both sides
			if (lv && l == seriesNone) || (rv && r == seriesNone) {
				return seriesNone
			}
		}
		return seriesUnknown
	}
	return seriesUnknown
}
