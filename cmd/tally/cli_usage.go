package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tally-oss/tally/client"
)

// usageConfig is the configuration of `tally usage`.
type usageConfig struct {
	conn       connFlags
	from, to   string
	windowSize string
	timeZone   string
	customers  stringsFlag
	groupBy    stringsFlag
	filters    stringsFlag
	output     string
}

func (c *usageConfig) register(fs *flag.FlagSet) {
	c.conn.register(fs)
	fs.StringVar(&c.from, "from", "", "start of the range, RFC 3339 (default: the start of the current month in -time-zone)")
	fs.StringVar(&c.to, "to", "", "end of the range, exclusive, RFC 3339 (default: now)")
	fs.StringVar(&c.windowSize, "window-size", "", "MINUTE, HOUR, DAY or MONTH (default: one row per group over the range)")
	fs.StringVar(&c.timeZone, "time-zone", "", "IANA time zone of the windows, e.g. America/New_York (default: UTC)")
	fs.Var(&c.customers, "customer", "only this customer id (repeatable)")
	fs.Var(&c.groupBy, "group-by", "group by customer_id or a group key of the meter (repeatable, or comma-separated)")
	fs.Var(&c.filters, "filter", "key=value: only rows whose group key has this value (repeatable)")
	fs.StringVar(&c.output, "o", "table", "output: table, csv or json")
}

func (c *usageConfig) query() (client.UsageQuery, error) {
	q := client.UsageQuery{WindowSize: strings.ToUpper(c.windowSize), TimeZone: c.timeZone, CustomerIDs: c.customers, GroupBy: c.groupBy}
	var errs []error
	for _, b := range []struct {
		name, value string
		dst         *time.Time
	}{{"from", c.from, &q.From}, {"to", c.to, &q.To}} {
		if b.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s %q must be an RFC 3339 time such as 2026-03-01T00:00:00Z", b.name, b.value))
		}
		*b.dst = t
	}
	for _, f := range c.filters {
		key, value, ok := strings.Cut(f, "=")
		if !ok || key == "" {
			errs = append(errs, fmt.Errorf("-filter %q must be key=value", f))
			continue
		}
		if q.Filters == nil {
			q.Filters = map[string][]string{}
		}
		q.Filters[key] = append(q.Filters[key], value)
	}
	switch c.output {
	case "table", "csv", "json":
	default:
		errs = append(errs, fmt.Errorf("-o %q must be table, csv or json", c.output))
	}
	return q, errors.Join(errs...)
}

func runUsage(ctx context.Context, args []string) error {
	return usageCommand(ctx, args, os.Stdout, os.Stderr)
}

// usageCommand is `tally usage <meter>`: one usage query, printed as an
// aligned table, CSV or JSON.
func usageCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg usageConfig
	fs := newCLIFlagSet("usage", "usage <meter> [flags]", stderr)
	cfg.register(fs)
	rest, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		return errors.New("name one meter")
	}
	q, err := cfg.query()
	if err != nil {
		return err
	}
	c, err := cfg.conn.client()
	if err != nil {
		return err
	}
	u, err := c.Usage(ctx, rest[0], q)
	if err != nil {
		return err
	}
	switch cfg.output {
	case "csv":
		return writeUsageCSV(stdout, u, u.GroupKeys(q))
	case "json":
		return writeUsageJSON(stdout, u)
	}
	return writeUsageTable(stdout, u, u.GroupKeys(q))
}

// usageColumns are the header and the rows: the window bounds when the
// query has windows, the group keys in the order asked, and the value.
func usageColumns(u client.Usage, keys []string) [][]string {
	windowed := u.WindowSize != ""
	var header []string
	if windowed {
		header = append(header, "window_start", "window_end")
	}
	header = append(append(header, keys...), "value")
	rows := [][]string{header}
	for _, r := range u.Data {
		var row []string
		if windowed {
			row = append(row, r.WindowStart.Format(time.RFC3339), r.WindowEnd.Format(time.RFC3339))
		}
		for _, k := range keys {
			row = append(row, r.GroupBy[k])
		}
		rows = append(rows, append(row, r.Value.String()))
	}
	return rows
}

func writeUsageTable(w io.Writer, u client.Usage, keys []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range usageColumns(u, keys) {
		for i, cell := range row {
			// A group value (from event properties) with a control
			// character is quoted: a tab or newline would shift columns.
			if strings.ContainsFunc(cell, unicode.IsControl) {
				row[i] = strconv.Quote(cell)
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func writeUsageCSV(w io.Writer, u client.Usage, keys []string) error {
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(usageColumns(u, keys)); err != nil {
		return err
	}
	return cw.Error()
}

// writeUsageJSON writes the answer in the API's shape, values as JSON
// numbers written from the exact decimals.
func writeUsageJSON(w io.Writer, u client.Usage) error {
	type row struct {
		WindowStart string            `json:"window_start"`
		WindowEnd   string            `json:"window_end"`
		CustomerID  string            `json:"customer_id,omitempty"`
		GroupBy     map[string]string `json:"group_by"`
		Value       json.Number       `json:"value"`
	}
	out := struct {
		Meter          string  `json:"meter"`
		From           string  `json:"from"`
		To             string  `json:"to"`
		WindowSize     *string `json:"window_size"`
		WindowTimeZone string  `json:"window_time_zone"`
		Data           []row   `json:"data"`
	}{Meter: u.Meter, From: u.From.Format(time.RFC3339Nano), To: u.To.Format(time.RFC3339Nano), WindowTimeZone: u.WindowTimeZone, Data: []row{}}
	if u.WindowSize != "" {
		out.WindowSize = &u.WindowSize
	}
	for _, r := range u.Data {
		out.Data = append(out.Data, row{
			WindowStart: r.WindowStart.Format(time.RFC3339Nano), WindowEnd: r.WindowEnd.Format(time.RFC3339Nano),
			CustomerID: r.CustomerID, GroupBy: r.GroupBy, Value: json.Number(r.Value.String()),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}
