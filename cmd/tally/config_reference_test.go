package main

import (
	"bytes"
	"flag"
	"testing"
	"time"
)

// One row per flag and variant: commands sharing a flag with the same
// default, meaning and environment override share its row; a flag without
// an override says so.
func TestConfigReferenceRows(t *testing.T) {
	set := func(command string, hasEnv func(string) bool, register func(fs *flag.FlagSet)) commandFlags {
		fs := flag.NewFlagSet(command, flag.ContinueOnError)
		register(fs)
		cf := commandFlags{command: command, hasEnv: hasEnv}
		fs.VisitAll(func(f *flag.Flag) { cf.flags = append(cf.flags, f) })
		return cf
	}
	common := func(fs *flag.FlagSet) { fs.String("log.level", "info", "log level") }
	sets := []commandFlags{
		set("ingest", nil, func(fs *flag.FlagSet) {
			common(fs)
			fs.String("ingest.listen-addr", "127.0.0.1:8080", "address | port")
		}),
		set("query", nil, func(fs *flag.FlagSet) {
			common(fs)
			fs.Bool("clickhouse.migrate", true, "apply the schema")
		}),
		set("send", func(name string) bool { return name == "timeout" }, func(fs *flag.FlagSet) {
			common(fs)
			fs.Duration("timeout", 30*time.Second, "request timeout")
			fs.String("f", "", "file")
			fs.Bool("clickhouse.migrate", false, "apply the schema")
		}),
	}
	var out bytes.Buffer
	formatConfigReference(&out, sets)
	want := "| flag | environment | default | commands | meaning |\n" +
		"|---|---|---|---|---|\n" +
		"| `-clickhouse.migrate` | `TALLY_CLICKHOUSE_MIGRATE` | `true` | query | apply the schema |\n" +
		"| `-clickhouse.migrate` | (none) | `false` | send | apply the schema |\n" +
		"| `-f` | (none) | ` ` | send | file |\n" +
		"| `-ingest.listen-addr` | `TALLY_INGEST_LISTEN_ADDR` | `127.0.0.1:8080` | ingest | address \\| port |\n" +
		"| `-log.level` | `TALLY_LOG_LEVEL` | `info` | ingest, query | log level |\n" +
		"| `-log.level` | (none) | `info` | send | log level |\n" +
		"| `-timeout` | `TALLY_TIMEOUT` | `30s` | send | request timeout |\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
