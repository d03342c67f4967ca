// Command testreport reads `go test -json` events on stdin, prints a
// readable account as they come (each package's result, and the output of
// every failed test), and writes "PASSED FAILED SKIPPED" to the file named by
// -counts for test.sh.
//
// Counting: every test that has no subtests counts once (so each golden
// vector and each scenario is one test); a test with subtests counts only
// through them, unless it failed while none of them did (e.g. its setup
// failed), when it counts as one failure. A package or build that failed
// outside any test counts as one failure.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
	Elapsed    float64
}

type testID struct{ pkg, name string }

type report struct {
	out io.Writer
	// result is each test's final action: pass, fail or skip.
	result map[testID]string
	// output is each test's output, kept to print failures.
	output map[testID][]string
	// pkgResult is each package's final action.
	pkgResult map[string]string
	// pkgOutput is output outside any test (e.g. a TestMain failure).
	pkgOutput map[string][]string
	// buildOutput is the compiler's output per import path.
	buildOutput map[string][]string
	// buildFailed counts builds that failed.
	buildFailed int
	// unparsed counts lines that were not events.
	unparsed int
}

func main() {
	countsFile := flag.String("counts", "", "file to write \"PASSED FAILED SKIPPED\" to")
	flag.Parse()
	r := &report{
		out:         os.Stdout,
		result:      map[testID]string{},
		output:      map[testID][]string{},
		pkgResult:   map[string]string{},
		pkgOutput:   map[string][]string{},
		buildOutput: map[string][]string{},
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		r.handle(scanner.Bytes())
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		r.unparsed++
	}
	passed, failed, skipped := r.counts()
	counts := fmt.Sprintf("%d %d %d\n", passed, failed, skipped)
	if *countsFile == "" {
		fmt.Print(counts)
		return
	}
	if err := os.WriteFile(*countsFile, []byte(counts), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
}

func (r *report) handle(line []byte) {
	var e event
	if err := json.Unmarshal(line, &e); err != nil || (e.Action == "" && e.ImportPath == "") {
		// Not an event (e.g. a message from the go command itself).
		fmt.Fprintf(r.out, "%s\n", line)
		r.unparsed++
		return
	}
	switch {
	case e.Action == "build-output":
		r.buildOutput[e.ImportPath] = append(r.buildOutput[e.ImportPath], e.Output)
	case e.Action == "build-fail":
		fmt.Fprintf(r.out, "BUILD FAILED %s\n%s", e.ImportPath, strings.Join(r.buildOutput[e.ImportPath], ""))
		r.buildFailed++
	case e.Test != "":
		id := testID{e.Package, e.Test}
		switch e.Action {
		case "output":
			if len(r.output[id]) < 2000 {
				r.output[id] = append(r.output[id], e.Output)
			}
		case "pass", "fail", "skip":
			r.result[id] = e.Action
			if e.Action == "fail" && !strings.Contains(e.Test, "/") {
				r.printFailure(id)
			}
		}
	default:
		switch e.Action {
		case "output":
			r.pkgOutput[e.Package] = append(r.pkgOutput[e.Package], e.Output)
		case "pass", "fail", "skip":
			r.pkgResult[e.Package] = e.Action
			switch e.Action {
			case "pass":
				fmt.Fprintf(r.out, "ok   %s (%.1fs)\n", e.Package, e.Elapsed)
			case "fail":
				fmt.Fprintf(r.out, "FAIL %s (%.1fs)\n%s", e.Package, e.Elapsed, r.packageFailure(e.Package))
			}
		}
	}
}

// printFailure prints a failed top-level test with its subtests' output.
func (r *report) printFailure(top testID) {
	var names []string
	for id := range r.output {
		if id.pkg == top.pkg && (id.name == top.name || strings.HasPrefix(id.name, top.name+"/")) {
			names = append(names, id.name)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(r.out, "--- FAIL: %s (%s)\n", top.name, top.pkg)
	for _, name := range names {
		id := testID{top.pkg, name}
		if name != top.name && r.result[id] != "fail" {
			continue
		}
		for _, line := range r.output[id] {
			fmt.Fprint(r.out, "    ", line)
		}
	}
}

// packageFailure is a failed package's output outside its tests.
func (r *report) packageFailure(pkg string) string {
	var b strings.Builder
	for _, line := range r.pkgOutput[pkg] {
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "ok ") {
			continue
		}
		b.WriteString("    " + line)
	}
	return b.String()
}

func (r *report) counts() (passed, failed, skipped int) {
	hasSubtests := map[testID]bool{}
	subtestFailed := map[testID]bool{}
	for id, result := range r.result {
		name := id.name
		for i := strings.LastIndexByte(name, '/'); i >= 0; i = strings.LastIndexByte(name, '/') {
			name = name[:i]
			parent := testID{id.pkg, name}
			hasSubtests[parent] = true
			if result == "fail" {
				subtestFailed[parent] = true
			}
		}
	}
	failedPkgs := map[string]bool{}
	for id, result := range r.result {
		if result == "fail" {
			failedPkgs[id.pkg] = true
		}
		if hasSubtests[id] {
			if result == "fail" && !subtestFailed[id] {
				failed++
			}
			continue
		}
		switch result {
		case "pass":
			passed++
		case "fail":
			failed++
		case "skip":
			skipped++
		}
	}
	outside := 0
	for pkg, result := range r.pkgResult {
		if result == "fail" && !failedPkgs[pkg] {
			outside++ // failed outside any test: a build, a TestMain check, a panic, a timeout
		}
	}
	// A failed build also fails its package; count it once.
	failed += max(outside, r.buildFailed)
	return passed, failed, skipped
}
