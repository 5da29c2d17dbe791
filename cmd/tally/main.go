// Command tally runs Tally's components. One binary, one subcommand per
// component, so that `tally all` can run the whole pipeline in one process
// for local use while production runs each component on its own:
//
//	tally ingest       HTTP ingest -> Kafka
//	tally aggregator   Kafka consumer group -> meters -> ClickHouse
//	tally query        meters API and usage queries over ClickHouse
//	tally all          the three together, plus an embedded Kafka-protocol
//	                   broker and ClickHouse server unless external ones are set
//	tally migrate      apply the ClickHouse schema
//	tally send         events from files or stdin to a running Tally
//	tally usage        a usage query as a table, CSV or JSON
//	tally meters       list, get, create and delete meters
//	tally health URL   exit 0 when URL answers 2xx (container healthchecks)
//	tally help config  every setting: flag, environment variable, default
//
// Every flag has an environment override: TALLY_<FLAG> with dots and dashes
// as underscores (clickhouse.addr -> TALLY_CLICKHOUSE_ADDR).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = []command{
	{"ingest", "accept usage events over HTTP and produce them to Kafka", runIngest},
	{"aggregator", "consume events, apply meters, write usage to ClickHouse", runAggregator},
	{"query", "serve the meters API and usage queries", runQuery},
	{"all", "run the whole pipeline in one process (local development)", runAll},
	{"migrate", "apply the ClickHouse schema and exit", runMigrate},
	// loadgen is a client of a running Tally, not a component (loadgen.go).
	{"loadgen", "send synthetic events to a running Tally and verify their usage", runLoadgen},
	// bench starts its own Tally and measures it against its limits (bench.go).
	{"bench", "measure ingest and end to end against their limits (make bench)", runBench},
	// The client verbs use the client package against a running Tally (cli*.go).
	{"send", "send events from files or stdin (JSON, NDJSON) to a running Tally", runSend},
	{"usage", "query a meter's usage: a table, CSV or JSON", runUsage},
	{"meters", "list, get, create (from a file) and delete meters", runMeters},
	// health is the healthcheck of the distroless image (health.go).
	{"health", "GET a URL; exit 0 on 2xx, 1 otherwise (container healthchecks)", runHealth},
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	switch name {
	case "-h", "-help", "--help", "help":
		if err := runHelp(os.Stdout, args); err != nil {
			fmt.Fprintf(os.Stderr, "tally help: %v\n", err)
			os.Exit(2)
		}
		return
	case "version", "-version", "--version":
		fmt.Println("tally", version)
		return
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		// SIGTERM (Kubernetes, docker stop) and SIGINT (Ctrl-C) both start
		// an orderly shutdown; a second signal kills the process.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := c.run(ctx, args)
		stop()
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "tally %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "tally: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: tally <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'tally <command> -h' for the flags of a command; every flag can be set\nwith an environment variable TALLY_<FLAG> (clickhouse.addr -> TALLY_CLICKHOUSE_ADDR);\n'tally help config' lists them all. The client verbs (send, usage, meters) take\nonly -url, -key and -timeout from the environment: TALLY_URL, TALLY_KEY, TALLY_TIMEOUT.")
}
