//go:build !linux

package chserver

// syncDir has no syncfs outside Linux, and sync(2) may return before the
// data is written (POSIX allows it): it fsyncs every file instead.
func syncDir(dir string) error { return fsyncTree(dir) }
