package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tally-oss/tally/client"
)

func runMeters(ctx context.Context, args []string) error {
	return metersCommand(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// metersConfig is the configuration of `tally meters`.
type metersConfig struct {
	conn   connFlags
	file   string
	output string
}

func (c *metersConfig) register(fs *flag.FlagSet) {
	c.conn.register(fs)
	fs.StringVar(&c.file, "f", "", "create: file of one meter definition or a JSON array of them (\"-\": stdin)")
	fs.StringVar(&c.output, "o", "table", "list: output as table or json")
}

const metersSynopsis = "meters list | get <key> | create -f <file.json> | delete <key>   (-f -: stdin; one meter or an array)"

// metersCommand is `tally meters`: list, get, create (from a file of one
// meter or an array of meters) and delete.
func metersCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg metersConfig
	fs := newCLIFlagSet("meters", metersSynopsis, stderr)
	cfg.register(fs)
	rest, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("name a verb: list, get, create or delete")
	}
	verb, rest := rest[0], rest[1:]
	wantArgs := map[string]int{"list": 0, "get": 1, "create": 0, "delete": 1}
	n, known := wantArgs[verb]
	switch {
	case !known:
		return fmt.Errorf("unknown verb %q: use list, get, create or delete", verb)
	case len(rest) != n:
		return fmt.Errorf("meters %s takes %d argument(s), got %d", verb, n, len(rest))
	case verb == "create" && cfg.file == "":
		return errors.New("meters create needs -f <file.json> (\"-\": stdin)")
	case cfg.output != "table" && cfg.output != "json":
		return fmt.Errorf("-o %q must be table or json", cfg.output)
	}
	c, err := cfg.conn.client()
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		meters, err := c.ListMeters(ctx)
		if err != nil {
			return err
		}
		if cfg.output == "json" {
			return printJSON(stdout, meters)
		}
		return writeMetersTable(stdout, meters)
	case "get":
		m, err := c.GetMeter(ctx, rest[0])
		if err != nil {
			return err
		}
		return printJSON(stdout, m)
	case "delete":
		if err := c.DeleteMeter(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", rest[0])
		return nil
	}
	return createMeters(ctx, c, cfg.file, stdin, stdout)
}

// createMeters creates each meter of the file, in order, each one tried
// whatever happened to those before it (so that a file with one bad
// meter can be fixed and sent again: the others answer 409), and says
// which failed and why.
func createMeters(ctx context.Context, c *client.Client, file string, stdin io.Reader, stdout io.Writer) error {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	var definitions []json.RawMessage
	if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 && trimmed[0] == '[' {
		err = json.Unmarshal(trimmed, &definitions)
	} else {
		definitions = []json.RawMessage{trimmed}
		if !json.Valid(trimmed) {
			err = errors.New("not JSON: want one meter object or an array of them")
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	failed := 0
	for i, d := range definitions {
		m, err := c.CreateMeterJSON(ctx, d)
		if err != nil {
			if ctx.Err() != nil || len(definitions) == 1 {
				if rest := len(definitions) - i - 1; rest > 0 {
					return fmt.Errorf("meter %d of %s: %w (%d after it not tried)", i+1, file, err, rest)
				}
				return fmt.Errorf("meter %d of %s: %w", i+1, file, err)
			}
			failed++
			var named struct {
				Key string `json:"key"`
			}
			_ = json.Unmarshal(d, &named)
			fmt.Fprintf(stdout, "meter %d (%s): %v\n", i+1, named.Key, err)
			continue
		}
		fmt.Fprintf(stdout, "created %s\n", m.Key)
	}
	if failed > 0 {
		return fmt.Errorf("%s: %d of %d meters not created", file, failed, len(definitions))
	}
	return nil
}

func writeMetersTable(w io.Writer, meters []client.Meter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "key\tevent_type\taggregation\tvalue_property\tgroup_by")
	for _, m := range meters {
		keys := make([]string, 0, len(m.GroupBy))
		for k := range m.GroupBy {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		value := m.ValueProperty
		if value == "" {
			value = "-"
		}
		group := strings.Join(keys, ",")
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Key, m.EventType, m.Aggregation, value, group)
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
