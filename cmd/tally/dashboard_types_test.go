package main

import (
	"encoding/json"
	"testing"
)

// dashboard is the part of a Grafana dashboard JSON the deploy and
// observability tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []dashboardVar `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."}
	Definition string          `json:"definition"`
}

// queryString is the variable's query, in either of its shapes.
func (v dashboardVar) queryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	json.Unmarshal(v.Query, &o)
	return o.Query
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardPanel struct {
	ID         int                      `json:"id"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Title      string                   `json:"title"`
	Type       string                   `json:"type"`
	Datasource *datasourceRef           `json:"datasource"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // of a collapsed row
}

// allPanels lists every panel, those inside collapsed rows included.
func (d *dashboard) allPanels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// checkDashboardLayout: panel ids are unique (Grafana links and keeps
// state by id) and no two panels of the grid overlap.
func checkDashboardLayout(t *testing.T, where string, d *dashboard) {
	ids := map[int]string{}
	panels := d.allPanels()
	for i, p := range panels {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("%s: panels %q and %q share id %d", where, other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: panel %q has gridPos %+v outside the 24-column grid", where, p.Title, g)
		}
		for _, q := range panels[:i] {
			o := q.GridPos
			if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
				t.Errorf("%s: panels %q and %q overlap", where, q.Title, p.Title)
			}
		}
	}
}
