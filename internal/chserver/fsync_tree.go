package chserver

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// fsyncTree fsyncs every regular file and directory under dir, the
// portable fallback of syncDir. Files removed during the walk (parts a
// merge replaced) are skipped. On macOS fsync does not flush the drive's
// own cache (F_FULLFSYNC would); Windows cannot fsync a directory.
func fsyncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path != dir {
			return nil
		}
		if err != nil {
			return err
		}
		if (d.IsDir() && runtime.GOOS == "windows") || (!d.IsDir() && !d.Type().IsRegular()) {
			return nil
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.Join(f.Sync(), f.Close())
	})
}
