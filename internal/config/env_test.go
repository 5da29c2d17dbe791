package config

import (
	"flag"
	"testing"
)

func TestApplyEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	addr := fs.String("clickhouse.addr", "default:9000", "")
	port := fs.Int("listen-port", 1, "")
	var brokers StringList
	fs.Var(&brokers, "kafka.brokers", "")
	t.Setenv("TALLY_CLICKHOUSE_ADDR", "env:9000")
	t.Setenv("TALLY_LISTEN_PORT", "2")
	t.Setenv("TALLY_KAFKA_BROKERS", "a:1, b:2")
	if err := fs.Parse([]string{"-listen-port=3"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *addr != "env:9000" {
		t.Errorf("addr = %q, want the environment value", *addr)
	}
	if *port != 3 {
		t.Errorf("port = %d, want the command-line value 3", *port)
	}
	if len(brokers) != 2 || brokers[1] != "b:2" {
		t.Errorf("brokers = %v", brokers)
	}
}

func TestApplyEnvReportsBadValues(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("listen-port", 1, "")
	t.Setenv("TALLY_LISTEN_PORT", "not-a-number")
	_ = fs.Parse(nil)
	if err := ApplyEnv(fs); err == nil {
		t.Fatal("want an error naming TALLY_LISTEN_PORT")
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("ingest.max-body-bytes"); got != "TALLY_INGEST_MAX_BODY_BYTES" {
		t.Errorf("EnvName = %q", got)
	}
}
