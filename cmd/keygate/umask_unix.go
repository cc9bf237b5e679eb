//go:build unix

package main

import "syscall"

// privateUmask makes every file the daemon creates from now on unreadable
// by other users (0600, directories 0700), whatever umask it was started
// with: Badger creates its files 0666 less the umask and has no option for
// the mode. The store also tightens existing files when it opens.
func privateUmask() { syscall.Umask(0o077) }
