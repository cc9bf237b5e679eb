// Command cpuperop compares benchmarks of two test binaries by the CPU time
// each operation costs, for a machine too loaded for wall-clock ns/op: it
// runs each benchmark alone with -test.benchtime Nx and with 1x, takes the
// difference of the child's user+system time (so setup cancels out), and
// divides by N-1. Binaries are alternated within each round, and the load
// average is printed before and after.
//
//	go test -c -o old.test ./engine/   # at the old commit
//	go test -c -o new.test ./engine/
//	cpuperop -n 5000000 -count 3 old.test new.test 'Contains/v6/n=20/miss$' ...
//
// Each pattern must select exactly one benchmark. The CPU time still counts
// a core shared with another thread (SMT) and caches others use, so compare
// the two columns of one run, not figures of different runs.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 5000000, "iterations per measured run")
	count := flag.Int("count", 3, "rounds")
	flag.Parse()
	if flag.NArg() < 3 {
		log.Fatal("usage: cpuperop [-n N] [-count C] OLD.test NEW.test PATTERN...")
	}
	bins, pats := flag.Args()[:2], flag.Args()[2:]
	fmt.Println("load before:", loadavg())
	type sample struct{ cpu, wall float64 }
	res := map[string][]sample{}
	for _, pat := range pats {
		for range *count {
			for _, bin := range bins {
				base, _ := run(bin, pat, 1)
				cpu, wall := run(bin, pat, *n)
				res[bin+pat] = append(res[bin+pat], sample{(cpu - base).Seconds() * 1e9 / float64(*n), wall})
			}
		}
	}
	fmt.Println("load after: ", loadavg())
	fmt.Printf("%-44s %30s %30s %8s\n", "benchmark (CPU ns/op median [min-max], wall ns/op median)", filepath.Base(bins[0]), filepath.Base(bins[1]), "new/old")
	for _, pat := range pats {
		var med [2]float64
		var cols [2]string
		for i, bin := range bins {
			s := res[bin+pat]
			cpus := make([]float64, len(s))
			walls := make([]float64, len(s))
			for j := range s {
				cpus[j], walls[j] = s[j].cpu, s[j].wall
			}
			slices.Sort(cpus)
			slices.Sort(walls)
			med[i] = cpus[len(cpus)/2]
			cols[i] = fmt.Sprintf("%6.2f [%6.2f-%6.2f] w%7.1f", med[i], cpus[0], cpus[len(cpus)-1], walls[len(walls)/2])
		}
		fmt.Printf("%-44s %30s %30s %8.2f\n", pat, cols[0], cols[1], med[1]/med[0])
	}
}

// run runs one benchmark for iters iterations and returns the child's CPU
// time and the ns/op the benchmark reported (wall clock).
func run(bin, pat string, iters int) (time.Duration, float64) {
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", pat, "-test.cpu", "1",
		"-test.benchtime", strconv.Itoa(iters)+"x")
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %s: %v\n%s", bin, pat, err, out)
	}
	var wall []float64
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[0], "Benchmark") {
			v, err := strconv.ParseFloat(f[2], 64)
			if err == nil {
				wall = append(wall, v)
			}
		}
	}
	if len(wall) != 1 {
		log.Fatalf("%s: %d benchmarks matched, want 1", pat, len(wall))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpu, wall[0]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
