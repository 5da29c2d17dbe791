package chserver

import (
	"errors"
	"log/slog"
	"time"
)

// retryOnPortInUse runs start up to maxAttempts times while it fails
// because a port it picked was taken before its server bound it (retried
// on new ports), logging each retry with msg; any other error ends it.
func retryOnPortInUse[T any](logger *slog.Logger, msg string, start func() (T, error)) (T, error) {
	var zero T
	var lastErr error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		v, err := start()
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, errPortInUse) {
			return zero, err
		}
		logger.Warn(msg, "attempt", attempt, "err", err)
		lastErr = err
	}
	return zero, lastErr
}

// terminateAndWait sends the child pid SIGTERM and waits until done is
// closed; if it is still running after stopTimeout, it SIGKILLs the
// process group, waits for it, and reports false (it ignored SIGTERM).
func terminateAndWait(pid int, done <-chan struct{}, logger *slog.Logger) bool {
	if err := terminate(pid); err != nil {
		logger.Warn("SIGTERM failed", "pid", pid, "err", err)
	}
	select {
	case <-done:
		return true
	case <-time.After(stopTimeout):
		_ = kill(pid)
		<-done
		return false
	}
}
