package telemetry

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// MaxProfileDuration bounds the seconds= of a profile or trace on the
// admin server: Go's handlers otherwise run (and keep the CPU profiler or
// tracer busy) for as long as the caller asks.
const MaxProfileDuration = 60 * time.Second

// NewAdminServer returns the server of the admin address: Go's profiles
// under /debug/pprof/, which are the first thing to ask for when a
// component is slow in production, but which no public port may serve.
// They show the heap and every goroutine's stack, and a CPU profile or
// trace loads the process while it runs; bind the admin address to
// localhost or a private network, never to the Internet.
//
// The command line (/debug/pprof/cmdline) is left out: it holds API keys
// and passwords given as flags. seconds= is a whole number from 1 to
// MaxProfileDuration (60), else 400; the server's write timeout is longer
// than the longest profile.
func NewAdminServer(addr string, logger *slog.Logger) *Server {
	s := NewPlainServer(addr, logger)
	t := DefaultTimeouts()
	t.Write = MaxProfileDuration + 30*time.Second
	s.timeouts = &t
	s.Mux.Handle("GET /debug/pprof/", boundSeconds(http.HandlerFunc(pprof.Index)))
	s.Mux.Handle("GET /debug/pprof/profile", boundSeconds(http.HandlerFunc(pprof.Profile)))
	s.Mux.Handle("GET /debug/pprof/trace", boundSeconds(http.HandlerFunc(pprof.Trace)))
	s.Mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.Mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	s.Mux.HandleFunc("GET /debug/pprof/cmdline", http.NotFound)
	return s
}

// boundSeconds refuses a seconds= parameter that is not a whole number of
// seconds from 1 to MaxProfileDuration. Every pprof handler that reads
// it (profile, trace, and the delta of heap, allocs, block, mutex and the
// others) runs for that long.
func boundSeconds(h http.Handler) http.Handler {
	limit := int(MaxProfileDuration / time.Second)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query()["seconds"]; len(v) > 0 {
			n, err := strconv.Atoi(v[0])
			if len(v) > 1 || err != nil || n < 1 || n > limit {
				http.Error(w, "seconds must be one whole number from 1 to "+strconv.Itoa(limit), http.StatusBadRequest)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
