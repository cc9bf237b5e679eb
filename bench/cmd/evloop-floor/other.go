//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "evloop-floor: Linux only (epoll)")
	os.Exit(2)
}
