package main

// The README's example, compiled and run against a real server, so it
// cannot rot; and the README must show this program exactly.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
)

// goTool is the go command (go test puts its own first on PATH).
func goTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not available: %v", err)
	}
	return path
}

func TestExampleRunsAgainstAServer(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	binary := filepath.Join(t.TempDir(), "hello")
	build := exec.CommandContext(ctx, goTool(t), "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.CommandContext(ctx, binary, "-url", srv.URL)
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("the example failed: %v\n%s", err, stderr.String())
	}
	if got, want := stdout.String(), "#1 alice: hello, switchboard\n"; got != want {
		t.Errorf("the example printed %q, want %q", got, want)
	}
}

func TestReadmeShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	// The first ```go block of the README is the example.
	_, rest, ok := strings.Cut(string(readme), "```go\n")
	if !ok {
		t.Fatal("README.md has no ```go block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README.md's first ```go block does not end")
	}
	if block != string(program) {
		t.Errorf("README.md's example differs from examples/hello/main.go:\n%s", block)
	}
}
