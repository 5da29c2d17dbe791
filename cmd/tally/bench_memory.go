package main

// Memory over time (make bench-memory): `tally all` under a steady load,
// and under more load than its aggregator takes. Not part of `make bench`:
// the issue asks for no growth across a 10-minute run.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// benchMemory is `tally all`'s resident memory under a steady load.
type benchMemory struct {
	Duration    string  `json:"duration"`
	OfferedPerS float64 `json:"offered_events_per_s"`
	Shape       string  `json:"shape"`
	Events      int     `json:"events"`
	EventsPerS  float64 `json:"events_per_s"`
	Exact       bool    `json:"exact"`
	// tally all's VmRSS at the first and last samples and its VmHWM, and
	// the least-squares slope of the samples from the second minute on
	// (the first is warm-up). Target: no growth, peak under 300 MB.
	StartMiB       float64 `json:"tally_all_start_rss_mib"`
	PeakMiB        float64 `json:"tally_all_peak_rss_mib"`
	EndMiB         float64 `json:"tally_all_end_rss_mib"`
	SlopeMiBPerMin float64 `json:"tally_all_rss_slope_mib_per_min"`
	TargetPeakMiB  float64 `json:"tally_all_peak_rss_target_mib"`
	PeakRatio      float64 `json:"tally_all_peak_rss_ratio_to_target"`
	CHStartMiB     float64 `json:"clickhouse_start_rss_mib"`
	CHPeakMiB      float64 `json:"clickhouse_peak_rss_mib"`
	CHEndMiB       float64 `json:"clickhouse_end_rss_mib"`
	// One sample every 10 s.
	Samples []benchSample `json:"samples"`
	Error   string        `json:"error,omitempty"`
}

// benchLag is `tally all` while its aggregator falls behind.
type benchLag struct {
	Duration      string        `json:"duration"`
	OfferedPerS   float64       `json:"offered_events_per_s"`
	Shape         string        `json:"shape"`
	Events        int           `json:"events"`
	EventsPerS    float64       `json:"events_per_s"`
	QueryablePerS float64       `json:"queryable_events_per_s"` // while sending
	PeakBacklog   int           `json:"peak_backlog_events"`
	PeakBrokerLag int64         `json:"peak_broker_lag"`
	PeakRSSMiB    float64       `json:"tally_all_peak_rss_mib"`
	TargetPeakMiB float64       `json:"tally_all_peak_rss_target_mib"`
	PeakRatio     float64       `json:"tally_all_peak_rss_ratio_to_target"`
	CHPeakRSSMiB  float64       `json:"clickhouse_peak_rss_mib"`
	Windows       []benchWindow `json:"windows"`
	// Always false: the lag run's totals are not awaited nor checked (the
	// backlog takes minutes to drain); the end-to-end and memory runs check
	// theirs.
	TotalsVerified bool `json:"totals_verified"`
}

func benchMemoryRun(ctx context.Context, cfg benchConfig, exe, dir string, rep *benchReport, w io.Writer, logger *slog.Logger) error {
	sh, _ := parseShape(cfg.E2EShape)
	m := &benchMemory{Duration: cfg.MemoryDuration.String(), OfferedPerS: cfg.MemoryRate, Shape: sh.String(), TargetPeakMiB: round3(benchRSSTargetMiB)}
	rep.Memory = m
	a, err := startBenchAll(ctx, exe, dir, "memory", cfg.Partitions)
	if err != nil {
		return err
	}
	defer a.close()
	r, err := a.run(ctx, benchLoad{shape: sh, rate: cfg.MemoryRate, duration: cfg.MemoryDuration, drain: cfg.E2EDrain,
		sampleEvery: 10 * time.Second, pollEvery: time.Second}, "mem", logger)
	if err != nil {
		m.Error = err.Error()
		return err
	}
	m.Events, m.EventsPerS = r.sent.accepted, round3(r.sent.perSecond)
	_, m.Exact, _ = r.freshness()
	m.Samples = r.samples
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	m.StartMiB, m.EndMiB, m.PeakMiB = first.TallyRSSMiB, last.TallyRSSMiB, procPeakRSSMiB(a.cmd.Process.Pid)
	m.PeakRatio = ratio(m.PeakMiB, m.TargetPeakMiB)
	m.CHStartMiB, m.CHEndMiB = first.CHRSSMiB, last.CHRSSMiB
	m.CHPeakMiB = r.peak(func(s benchSample) float64 { return s.CHRSSMiB })
	var xs, ys []float64
	for _, s := range r.samples {
		if s.T >= 60 && s.T <= cfg.MemoryDuration.Seconds()+1 {
			xs, ys = append(xs, s.T/60), append(ys, s.TallyRSSMiB)
		}
	}
	m.SlopeMiBPerMin = round3(slope(xs, ys))

	fmt.Fprintf(w, "\nmemory (tally all, %s at %.0f events/s offered for %s, RSS every 10 s)\n", sh, cfg.MemoryRate, cfg.MemoryDuration)
	fmt.Fprintf(w, "%-8s %12s %12s %12s %10s %10s\n", "t s", "accepted", "queryable", "broker lag", "tally MiB", "CH MiB")
	for _, s := range r.samples {
		fmt.Fprintf(w, "%-8.0f %12d %12d %12d %10.0f %10.0f\n", s.T, s.Accepted, s.Queryable, s.BrokerLag, s.TallyRSSMiB, s.CHRSSMiB)
	}
	fmt.Fprintf(w, "%-20s %.0f events/s accepted, exact %v (every slice checked once more at the end); tally all RSS start %.0f, peak %.0f (VmHWM; target < %.0f MiB), end %.0f MiB, slope %.2f MiB/min after the first minute (target: none); ClickHouse %.0f / %.0f / %.0f MiB\n",
		"memory", m.EventsPerS, m.Exact, m.StartMiB, m.PeakMiB, m.TargetPeakMiB, m.EndMiB, m.SlopeMiBPerMin, m.CHStartMiB, m.CHPeakMiB, m.CHEndMiB)
	if !m.Exact {
		err := r.notExact(cfg.E2EDrain)
		m.Error = err.Error()
		return err
	}
	return nil
}

// benchLagRun offers more than the aggregator takes and reports how much
// `tally all` holds meanwhile. Its totals are not awaited: the backlog can
// take minutes to drain.
func benchLagRun(ctx context.Context, cfg benchConfig, exe, dir string, rep *benchReport, w io.Writer, logger *slog.Logger) error {
	sh, _ := parseShape(cfg.LagShape)
	l := &benchLag{Duration: cfg.LagDuration.String(), OfferedPerS: cfg.LagRate, Shape: sh.String(), TargetPeakMiB: round3(benchRSSTargetMiB)}
	rep.Lag = l
	a, err := startBenchAll(ctx, exe, dir, "lag", cfg.Partitions)
	if err != nil {
		return err
	}
	defer a.close()
	r, err := a.run(ctx, benchLoad{shape: sh, rate: cfg.LagRate, duration: cfg.LagDuration, drain: time.Millisecond,
		sampleEvery: time.Second, pollEvery: time.Second}, "lag", logger)
	if err != nil {
		return err
	}
	l.Events, l.EventsPerS = r.sent.accepted, round3(r.sent.perSecond)
	last := r.samples[len(r.samples)-1]
	if last.T > 0 {
		l.QueryablePerS = round3(float64(last.Queryable) / last.T)
	}
	l.PeakBacklog = int(r.peak(func(s benchSample) float64 { return float64(s.Accepted - s.Queryable) }))
	l.PeakBrokerLag = int64(r.peak(func(s benchSample) float64 { return float64(s.BrokerLag) }))
	l.PeakRSSMiB = procPeakRSSMiB(a.cmd.Process.Pid)
	l.PeakRatio = ratio(l.PeakRSSMiB, l.TargetPeakMiB)
	l.CHPeakRSSMiB = r.peak(func(s benchSample) float64 { return s.CHRSSMiB })
	l.Windows = r.windows(10*time.Second, cfg.LagDuration)
	fmt.Fprintf(w, "\nlag (tally all, %s at %.0f events/s offered for %s: more than the aggregator takes)\n", sh, cfg.LagRate, cfg.LagDuration)
	printWindows(w, l.Windows)
	fmt.Fprintf(w, "%-20s %.0f events/s accepted, %.0f queryable; peak backlog %d events, peak broker lag %d records; tally all peak RSS %.0f MiB (target < %.0f), ClickHouse %.0f MiB\n",
		"lag", l.EventsPerS, l.QueryablePerS, l.PeakBacklog, l.PeakBrokerLag, l.PeakRSSMiB, l.TargetPeakMiB, l.CHPeakRSSMiB)
	fmt.Fprintf(w, "%-20s not verified: the lag run does not wait for its backlog to drain (minutes), so its usage totals are not checked\n", "totals")
	return nil
}

// slope is the least-squares slope of ys over xs, or 0.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
