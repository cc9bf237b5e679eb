package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	badgerstore "github.com/keygate/keygate/store/badger"
)

// backupCmd: keygate backup -o FILE [--force]. The running daemon streams
// a consistent backup (GET /v1/backup); it is written beside FILE,
// verified (length and SHA-256), and only then renamed to FILE.
func backupCmd(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	build := clientFlags(fs)
	out := fs.String("o", "", "file to write the backup to (required)")
	force := fs.Bool("force", false, "replace FILE if it exists")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("backup: -o FILE is required")
	}
	if fs.NArg() > 0 {
		return usagef("backup: unexpected argument %q", fs.Arg(0))
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return usagef("backup: %s exists; pass --force to replace it", *out)
	}
	c, err := build()
	if err != nil {
		return err
	}
	res, err := c.send("GET", "/v1/backup", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	n, err := io.Copy(tmp, res.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: after %d bytes: %w", n, err)
	}
	if _, err := badgerstore.VerifyBackup(tmp.Name()); err != nil {
		return fmt.Errorf("backup: the daemon's backup did not arrive whole (see its log): %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(w, "backup: %d bytes written to %s (checksum verified)\n", n, *out)
	return nil
}

// restoreCmd: keygate restore --data DIR FILE, into an empty (or new)
// directory, with no daemon on it.
func restoreCmd(args []string, w io.Writer) error {
	fset := flag.NewFlagSet("restore", flag.ContinueOnError)
	data := fset.String("data", "", "new, empty data directory to restore into (required)")
	if _, err := parseArgs(fset, args); err != nil {
		return err
	}
	if *data == "" || fset.NArg() != 1 {
		return usagef("restore: want --data DIR FILE")
	}
	file := fset.Arg(0)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return usagef("restore: %s does not exist", file)
	}
	if err := badgerstore.Restore(*data, file); err != nil {
		return err
	}
	fmt.Fprintf(w, "restore: %s restored into %s; start the daemon with --data %s (the admin token is not part of a backup)\n", file, *data, *data)
	return nil
}
