package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/schemas"
)

// benchFigure is one measured ingest shape.
type benchFigure struct {
	Name       string  `json:"name"`
	EventsPerS float64 `json:"events_per_s"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	// The limit: kafka-go with ingest's writer settings (5 ms linger).
	Limit      float64 `json:"limit_events_per_s,omitempty"`
	LimitP99ms float64 `json:"limit_p99_ms,omitempty"`
	Ratio      float64 `json:"ratio_to_limit,omitempty"`
	// The limit without linger (small shapes): what group commit can reach.
	NoLingerLimit      float64 `json:"nolinger_limit_events_per_s,omitempty"`
	NoLingerLimitP99ms float64 `json:"nolinger_limit_p99_ms,omitempty"`
	NoLingerRatio      float64 `json:"ratio_to_nolinger_limit,omitempty"`
	Target             float64 `json:"target_events_per_s,omitempty"`
	TargetRatio        float64 `json:"ratio_to_target,omitempty"`
	TargetP99ms        float64 `json:"target_p99_ms,omitempty"`
	P99TargetRatio     float64 `json:"p99_ratio_to_target,omitempty"`
	Events             int     `json:"events"`
	Failed             int     `json:"failed_requests"`
	// CPU of the ingest process (user + system) per accepted event.
	CPUus          float64 `json:"cpu_us_per_event"`
	CPUTargetUs    float64 `json:"cpu_us_per_event_target,omitempty"`
	CPUTargetRatio float64 `json:"cpu_ratio_to_target,omitempty"`
}

// benchIngest measures every shape against ingest and its limits.
func benchIngest(ctx context.Context, cfg benchConfig, exe, dir string, rep *benchReport, w io.Writer, logger *slog.Logger) error {
	shapes, _ := cfg.shapes()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(cfg.Partitions), "tally-bench-limit"))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	addrs, err := benchAddrs(1)
	if err != nil {
		return err
	}
	addr := addrs[0]
	child, err := startChild(ctx, exe, filepath.Join(dir, "ingest.log"), addr, "ingest",
		"-api-keys="+benchOrg+":"+benchKey, "-kafka.brokers="+broker,
		"-kafka.partitions="+strconv.Itoa(cfg.Partitions), "-ingest.listen-addr="+addr, "-log.level=warn")
	if err != nil {
		return err
	}
	defer child.stop()

	fmt.Fprintf(w, "\ningest (tally ingest -> in-process kfake, %d partitions, %s per shape; limit: kafka-go Writer, same records, RequireAll, lz4, 5 ms linger; no-linger limit: the same with a 1 us batch timeout)\n", cfg.Partitions, cfg.Duration)
	fmt.Fprintf(w, "%-20s %10s %8s %8s %12s %8s %6s %12s %8s %6s %8s %9s\n", "shape", "events/s", "p50 ms", "p99 ms",
		"limit ev/s", "lim p99", "ratio", "nolinger", "nl p99", "ratio", "target", "cpu us/ev")
	for i, sh := range shapes {
		lim, limP99, err := benchLimit(ctx, broker, sh, cfg.Duration, ingest.DefaultKafkaBatchTimeout, "limit-"+strconv.Itoa(i))
		if err != nil {
			return fmt.Errorf("limit %s: %w", sh, err)
		}
		var nl float64
		var nlP99 time.Duration
		if sh.Batch <= cfg.NoLingerMaxBatch {
			// kafka-go treats a zero BatchTimeout as its 1 s default.
			nl, nlP99, err = benchLimit(ctx, broker, sh, cfg.Duration, time.Microsecond, "nolinger-"+strconv.Itoa(i))
			if err != nil {
				return fmt.Errorf("limit without linger %s: %w", sh, err)
			}
		}
		lg := benchLoadgen("http://"+addr, "", sh, fmt.Sprintf("b%d", i), logger)
		cpu0 := procCPU(child.cmd.Process.Pid)
		res := lg.sendFor(ctx, cfg.Duration, nil)
		cpu := procCPU(child.cmd.Process.Pid) - cpu0
		f := benchFigure{Name: sh.String(), EventsPerS: round3(res.perSecond), P50ms: ms(res.p50), P99ms: ms(res.p99),
			Limit: round3(lim), LimitP99ms: ms(limP99), NoLingerLimit: round3(nl), NoLingerLimitP99ms: ms(nlP99),
			Events: res.accepted, Failed: res.failed}
		if res.accepted > 0 && cpu > 0 {
			f.CPUus = round3(float64(cpu) / float64(time.Microsecond) / float64(res.accepted))
		}
		if sh.Batch >= 500 {
			f.CPUTargetUs, f.CPUTargetRatio = 4, ratio(f.CPUus, 4)
		}
		f.Ratio, f.NoLingerRatio = ratio(f.EventsPerS, f.Limit), ratio(f.EventsPerS, f.NoLingerLimit)
		if t := benchTargets[sh.String()]; t > 0 {
			f.Target, f.TargetRatio = t, ratio(f.EventsPerS, t)
		}
		if sh.String() == "1x1" {
			f.TargetP99ms, f.P99TargetRatio = 5, ratio(f.P99ms, 5)
		}
		rep.Ingest = append(rep.Ingest, f)
		target := "-"
		if f.Target > 0 {
			target = strconv.FormatFloat(f.Target, 'f', 0, 64)
		}
		nlCols := fmt.Sprintf("%12s %8s %6s", "-", "-", "-")
		if f.NoLingerLimit > 0 {
			nlCols = fmt.Sprintf("%12.0f %8.1f %6.2f", f.NoLingerLimit, f.NoLingerLimitP99ms, f.NoLingerRatio)
		}
		fmt.Fprintf(w, "%-20s %10.0f %8.1f %8.1f %12.0f %8.1f %6.2f %s %8s %9.1f\n", f.Name, f.EventsPerS, f.P50ms, f.P99ms,
			f.Limit, f.LimitP99ms, f.Ratio, nlCols, target, f.CPUus)
		if res.failed > 0 {
			fmt.Fprintf(w, "  %d requests failed: %v\n", res.failed, res.failedWhy)
		}
	}
	rep.IngestPeakRSSMiB = procPeakRSSMiB(child.cmd.Process.Pid)
	fmt.Fprintf(w, "ingest peak RSS %.0f MiB; cpu us/ev is the ingest process's user+system CPU per accepted event (target < 4 us for large requests)\n", rep.IngestPeakRSSMiB)
	return nil
}

// benchEvents returns n of the load generator's events of run runID.
func benchEvents(n int, runID string) ([]schemas.Event, error) {
	cfg := loadgenConfig{Format: "json", Customers: 1000, RunID: runID}
	raw := appendEvents(nil, &cfg, 0, n, time.Now())
	var events []schemas.Event
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, err
	}
	return events, nil
}

// benchRecords returns n records encoded as ingest encodes them, for the
// limit: same key, value, header and timestamp.
func benchRecords(n int, runID string) ([]kafka.Message, error) {
	events, err := benchEvents(n, runID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		k, v, err := schemas.EncodeRecord(schemas.Record{OrgID: benchOrg, Event: e, IngestedAt: now})
		if err != nil {
			return nil, err
		}
		msgs[i] = kafka.Message{Key: k, Value: v, Time: now,
			Headers: []kafka.Header{{Key: "content-type", Value: []byte(schemas.RecordContentType)}}}
	}
	return msgs, nil
}

// benchLimit produces the shape's records with kafka-go alone: sh.Conns
// goroutines, each writing sh.Batch records at a time and waiting for the
// acknowledgement, as ingest's requests do. linger is the writer's batch
// timeout: ingest's default, or about none for the ceiling of group commit.
func benchLimit(ctx context.Context, broker string, sh benchShape, d, linger time.Duration, runID string) (float64, time.Duration, error) {
	msgs, err := benchRecords(sh.Batch, runID)
	if err != nil {
		return 0, 0, err
	}
	wr := &kafka.Writer{
		Addr: kafka.TCP(broker), Topic: "tally-bench-limit", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, Compression: kafka.Lz4,
		BatchTimeout: linger, BatchSize: ingest.DefaultKafkaBatchSize, BatchBytes: ingest.DefaultKafkaBatchBytes,
	}
	defer wr.Close()
	// A first write outside the timing: metadata and connections.
	if err := wr.WriteMessages(ctx, slices.Clone(msgs[:1])...); err != nil {
		return 0, 0, err
	}
	written, lat, elapsed, first := benchWorkers(ctx, sh.Conns, d, func() func() (int, error) {
		batch := make([]kafka.Message, len(msgs))
		return func() (int, error) {
			copy(batch, msgs)
			return len(batch), wr.WriteMessages(ctx, batch...)
		}
	})
	return float64(written) / elapsed.Seconds(), percentile(lat, 0.99), first
}
