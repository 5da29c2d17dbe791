package chserver

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncDir syncfs(2)es the file system holding dir: it writes out every
// dirty page and inode of that file system, so it covers every part under
// dir however many files there are, and reports writeback errors (Linux
// 5.8+). It also syncs whatever else shares the file system.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
