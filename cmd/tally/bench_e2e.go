package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// benchE2E is the end-to-end figure: HTTP -> broker -> aggregator ->
// ClickHouse -> query.
type benchE2E struct {
	OfferedPerS float64 `json:"offered_events_per_s"`
	Shape       string  `json:"shape"`
	Events      int     `json:"events"`
	// Accepted: events acknowledged per second of sending. Queryable:
	// events over the time from the first request to the last slice's usage
	// exact, the rate from HTTP to queryable.
	EventsPerS    float64 `json:"events_per_s"`
	QueryablePerS float64 `json:"queryable_events_per_s"`
	P50ms         float64 `json:"request_p50_ms"`
	P99ms         float64 `json:"request_p99_ms"`
	// The limit: clickhouse-go inserting the same rows (ClickHouseLimit).
	Limit       float64 `json:"limit_events_per_s,omitempty"`
	Ratio       float64 `json:"ratio_to_limit,omitempty"`
	TargetPerS  float64 `json:"target_events_per_s"`
	TargetRatio float64 `json:"ratio_to_target"`
	// The slowest full 10 s window while sending, accepted and queryable:
	// "sustained" and "flat" mean these stay near the averages.
	MinWindowPerS          float64       `json:"min_window_events_per_s"`
	MinWindowQueryablePerS float64       `json:"min_window_queryable_events_per_s"`
	Windows                []benchWindow `json:"windows"`
	Slices                 int           `json:"slices"`
	Exact                  bool          `json:"exact"`
	FreshP50ms             float64       `json:"freshness_p50_ms"`
	FreshP99ms             float64       `json:"freshness_p99_ms"`
	FreshTargetMs          float64       `json:"freshness_p99_target_ms"`
	FreshTargetRatio       float64       `json:"freshness_p99_ratio_to_target"`
	// Backlog: events acknowledged but not yet queryable; broker lag: the
	// records the embedded broker held for the aggregator. Peaks over the
	// one-second samples.
	PeakBacklog   int   `json:"peak_backlog_events"`
	PeakBrokerLag int64 `json:"peak_broker_lag"`
	// Peak resident memory: `tally all` (its embedded broker included,
	// ClickHouse aside) as VmHWM, and its ClickHouse server's largest
	// one-second sample during the load (VmHWM would include the limit's
	// inserts) and its VmHWM.
	PeakRSSMiB       float64 `json:"tally_all_peak_rss_mib"`
	PeakRSSTargetMiB float64 `json:"tally_all_peak_rss_target_mib"`
	PeakRSSRatio     float64 `json:"tally_all_peak_rss_ratio_to_target"`
	CHPeakRSSMiB     float64 `json:"clickhouse_peak_rss_mib"`
	CHHWMMiB         float64 `json:"clickhouse_vmhwm_mib"`
	Error            string  `json:"error,omitempty"`
}

// benchWindow is one 10 s window of a run.
type benchWindow struct {
	FromS         float64 `json:"from_s"`
	ToS           float64 `json:"to_s"`
	AcceptedPerS  float64 `json:"events_per_s"`
	QueryablePerS float64 `json:"queryable_events_per_s"`
	Backlog       int     `json:"backlog_events"` // at the window's end
	BrokerLag     int64   `json:"broker_lag"`     // at the window's end
	TallyRSSMiB   float64 `json:"tally_all_rss_mib"`
	ClickHouseMiB float64 `json:"clickhouse_rss_mib"`
	WhileSending  bool    `json:"while_sending"`
}

// benchRSSTargetMiB is issue 7's 300 MB.
const benchRSSTargetMiB = 300e6 / (1 << 20)

// windows cuts the samples into windows of every seconds (the last one may
// be shorter).
func (r *benchLoadResult) windows(every time.Duration, sending time.Duration) []benchWindow {
	var out []benchWindow
	from := 0
	for from < len(r.samples)-1 {
		to := from + 1
		for to < len(r.samples)-1 && r.samples[to].T-r.samples[from].T < every.Seconds()-0.5 {
			to++
		}
		a, b := r.samples[from], r.samples[to]
		d := b.T - a.T
		if d <= 0 {
			break
		}
		out = append(out, benchWindow{FromS: a.T, ToS: b.T,
			AcceptedPerS: round3(float64(b.Accepted-a.Accepted) / d), QueryablePerS: round3(float64(b.Queryable-a.Queryable) / d),
			Backlog: b.Accepted - b.Queryable, BrokerLag: b.BrokerLag, TallyRSSMiB: b.TallyRSSMiB, ClickHouseMiB: b.CHRSSMiB,
			WhileSending: b.T <= sending.Seconds()+0.5})
		from = to
	}
	return out
}

func printWindows(w io.Writer, ws []benchWindow) {
	fmt.Fprintf(w, "%-12s %12s %12s %12s %12s %10s %10s\n", "window s", "accepted/s", "queryable/s", "backlog", "broker lag", "tally MiB", "CH MiB")
	for _, x := range ws {
		mark := ""
		if !x.WhileSending {
			mark = " (draining)"
		}
		fmt.Fprintf(w, "%5.0f-%-6.0f %12.0f %12.0f %12d %12d %10.0f %10.0f%s\n", x.FromS, x.ToS, x.AcceptedPerS, x.QueryablePerS,
			x.Backlog, x.BrokerLag, x.TallyRSSMiB, x.ClickHouseMiB, mark)
	}
}

// benchEndToEnd starts `tally all`, measures the aggregator's limit on its
// ClickHouse, then runs the end-to-end load.
func benchEndToEnd(ctx context.Context, cfg benchConfig, exe, dir string, rep *benchReport, w io.Writer, logger *slog.Logger) error {
	a, err := startBenchAll(ctx, exe, dir, "all", cfg.Partitions)
	if err != nil {
		return err
	}
	defer a.close()
	if cfg.ClickHouse {
		lim, err := benchClickHouseLimit(ctx, a.clickhouse, cfg, w)
		rep.ClickHouse = lim
		if err != nil {
			return fmt.Errorf("clickhouse limit: %w", err)
		}
	}
	if !cfg.E2E {
		return nil
	}
	sh, _ := parseShape(cfg.E2EShape)
	e := &benchE2E{OfferedPerS: cfg.E2ERate, Shape: sh.String(), FreshTargetMs: 1000, TargetPerS: 80000, PeakRSSTargetMiB: round3(benchRSSTargetMiB)}
	rep.E2E = e
	r, err := a.run(ctx, benchLoad{shape: sh, rate: cfg.E2ERate, duration: cfg.E2EDuration, drain: cfg.E2EDrain,
		sampleEvery: time.Second, pollEvery: 50 * time.Millisecond}, "e2e", logger)
	if err != nil {
		e.Error = err.Error()
		return err
	}
	e.Events, e.EventsPerS = r.sent.accepted, round3(r.sent.perSecond)
	e.P50ms, e.P99ms = ms(r.sent.p50), ms(r.sent.p99)
	if !r.allVisible.IsZero() {
		e.QueryablePerS = round3(float64(e.Events) / r.allVisible.Sub(r.start).Seconds())
	}
	if rep.ClickHouse != nil {
		e.Limit = rep.ClickHouse.EventsPerS
		e.Ratio = ratio(e.QueryablePerS, e.Limit)
	}
	e.TargetRatio = ratio(e.QueryablePerS, e.TargetPerS)
	e.Windows = r.windows(10*time.Second, cfg.E2EDuration)
	e.MinWindowPerS, e.MinWindowQueryablePerS = -1, -1
	for _, x := range e.Windows {
		if !x.WhileSending || x.ToS-x.FromS < 9.5 {
			continue
		}
		if e.MinWindowPerS < 0 || x.AcceptedPerS < e.MinWindowPerS {
			e.MinWindowPerS = x.AcceptedPerS
		}
		if e.MinWindowQueryablePerS < 0 || x.QueryablePerS < e.MinWindowQueryablePerS {
			e.MinWindowQueryablePerS = x.QueryablePerS
		}
	}
	e.MinWindowPerS, e.MinWindowQueryablePerS = max(e.MinWindowPerS, 0), max(e.MinWindowQueryablePerS, 0)
	var fresh []time.Duration
	e.Slices, e.Exact, fresh = r.freshness()
	e.FreshP50ms, e.FreshP99ms = ms(percentile(fresh, 0.5)), ms(percentile(fresh, 0.99))
	e.FreshTargetRatio = ratio(e.FreshP99ms, e.FreshTargetMs)
	e.PeakBacklog = int(r.peak(func(s benchSample) float64 { return float64(s.Accepted - s.Queryable) }))
	e.PeakBrokerLag = int64(r.peak(func(s benchSample) float64 { return float64(s.BrokerLag) }))
	e.PeakRSSMiB = procPeakRSSMiB(a.cmd.Process.Pid)
	e.PeakRSSRatio = ratio(e.PeakRSSMiB, e.PeakRSSTargetMiB)
	e.CHPeakRSSMiB = r.peak(func(s benchSample) float64 { return s.CHRSSMiB })
	e.CHHWMMiB = procPeakRSSMiB(a.chPID)

	fmt.Fprintf(w, "\nend to end (tally all: embedded broker + private ClickHouse; %s at %.0f events/s offered for %s)\n", sh, cfg.E2ERate, cfg.E2EDuration)
	printWindows(w, e.Windows)
	fmt.Fprintf(w, "%-20s %10.0f events/s accepted (requests p50 %.0f ms, p99 %.0f ms), %.0f queryable (HTTP -> queryable; target %.0f for 60 s, ratio %.2f; limit %.0f, ratio %.2f)\n",
		"sustained", e.EventsPerS, e.P50ms, e.P99ms, e.QueryablePerS, e.TargetPerS, e.TargetRatio, e.Limit, e.Ratio)
	if e.MinWindowPerS > 0 {
		fmt.Fprintf(w, "%-20s slowest 10 s window while sending: %.0f events/s accepted, %.0f queryable\n", "flat", e.MinWindowPerS, e.MinWindowQueryablePerS)
	}
	fmt.Fprintf(w, "%-20s %d one-second slices, exact %v (each checked once more after the drain), p50 %.0f ms, p99 %.0f ms (target p99 < %.0f ms; polled every 50 ms)\n",
		"freshness", e.Slices, e.Exact, e.FreshP50ms, e.FreshP99ms, e.FreshTargetMs)
	fmt.Fprintf(w, "%-20s peak backlog %d events (acknowledged, not yet queryable), peak broker lag %d records\n", "lag", e.PeakBacklog, e.PeakBrokerLag)
	fmt.Fprintf(w, "%-20s tally all %.0f MiB (VmHWM, embedded broker included; target < %.0f MiB = 300 MB), ClickHouse %.0f MiB (peak sample under load; VmHWM %.0f)\n",
		"peak RSS", e.PeakRSSMiB, e.PeakRSSTargetMiB, e.CHPeakRSSMiB, e.CHHWMMiB)
	if !e.Exact {
		err := r.notExact(cfg.E2EDrain)
		e.Error = err.Error()
		return err
	}
	return nil
}
