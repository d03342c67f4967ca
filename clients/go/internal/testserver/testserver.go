// Package testserver runs real Switchboard server processes for tests: one
// `switchboard serve` per test on 127.0.0.1 (port 0 unless told), killed when
// the test ends, and, for tests of the Redis broker, `redis-server`
// processes on free loopback ports (redis.go). Every wait here is bounded.
package testserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the waits.
const (
	// StartupTimeout bounds the wait for the "listening" line.
	StartupTimeout = 15 * time.Second
	// StopTimeout bounds the wait for the process to exit.
	StopTimeout = 10 * time.Second
)

var listening = regexp.MustCompile(`listening on http://([0-9.]+):(\d+)`)

// RepoRoot is the repository root: the nearest ancestor of this file holding
// Cargo.toml and proto/.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testserver: cannot locate the source file")
	}
	dir := filepath.Dir(file)
	for range 32 {
		if exists(filepath.Join(dir, "Cargo.toml")) && exists(filepath.Join(dir, "proto")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	panic("testserver: cannot find the repository root (Cargo.toml) above " + file)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Binary is the server binary: $SWITCHBOARD_BIN, or
// <repo>/target/debug/switchboard.
func Binary() string {
	if bin := os.Getenv("SWITCHBOARD_BIN"); bin != "" {
		return bin
	}
	return filepath.Join(RepoRoot(), "target", "debug", "switchboard")
}

// Options configure Start.
type Options struct {
	// Env adds SWITCHBOARD_* settings (e.g. production mode, a JWT secret).
	Env map[string]string
	// Listen is the address to listen on; default 127.0.0.1:0.
	Listen string
}

// Server is one running `switchboard serve` process.
type Server struct {
	// URL is the WebSocket endpoint, ws://127.0.0.1:PORT/ws.
	URL string
	// Host and Port are where it listens.
	Host string
	Port int

	cmd    *exec.Cmd
	output *watcher
	// exited is closed once the process has exited and its output is read.
	exited chan struct{}
	once   sync.Once
}

// Start starts a server and waits for its "listening" line; the test fails
// if it does not come within StartupTimeout. The server is killed when the
// test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := StartE(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Kill)
	return s
}

// StartE is Start without a test: the caller must Kill the server.
func StartE(opts Options) (*Server, error) {
	bin := Binary()
	if !exists(bin) {
		return nil, fmt.Errorf("server binary not found: %s (build it with cargo build, or set SWITCHBOARD_BIN)", bin)
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cmd := exec.Command(bin, "serve", "--listen", listen)
	cmd.Env = environment(opts.Env)
	out := newWatcher()
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		// Wait also copies the last output; it returns once the process is
		// gone, which Kill guarantees.
		_ = cmd.Wait()
		close(s.exited)
	}()
	timer := time.NewTimer(StartupTimeout)
	defer timer.Stop()
	select {
	case m := <-out.found:
		s.Host = m[1]
		s.Port, _ = strconv.Atoi(m[2])
		s.URL = fmt.Sprintf("ws://%s:%d/ws", s.Host, s.Port)
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("server exited before listening; its output:\n%s", out.String())
	case <-timer.C:
		s.Kill()
		return nil, fmt.Errorf("server printed no listening line within %s; its output:\n%s", StartupTimeout, out.String())
	}
}

// environment is this process's environment without SWITCHBOARD_* (the
// server reads every such variable as configuration and refuses unknown
// keys, SWITCHBOARD_BIN among them), plus fast test settings and extra.
func environment(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_") {
			env = append(env, kv)
		}
	}
	settings := map[string]string{
		"SWITCHBOARD_LIMITS__CLOSE_TIMEOUT": "300ms",
		"SWITCHBOARD_SHUTDOWN_TIMEOUT":      "2s",
		"NO_COLOR":                          "1",
	}
	for k, v := range extra {
		settings[k] = v
	}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return env
}

// Logs is the server's output so far (for failure messages).
func (s *Server) Logs() string { return s.output.String() }

// Stop sends SIGTERM (a graceful shutdown: connections get close 1001) and
// waits for the exit, killing the process after StopTimeout. It returns
// the exit code (-1 if killed).
func (s *Server) Stop() int {
	s.Resume()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-timer.C:
		s.Kill()
		return -1
	}
}

// Kill kills the process (if still running) and waits until it is gone.
// Idempotent.
func (s *Server) Kill() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		_ = s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(StopTimeout):
			panic("testserver: the server did not exit after SIGKILL")
		}
	})
}

// Pause sends SIGSTOP and waits until every thread of the process has
// stopped (a busy machine can take a moment).
func (s *Server) Pause() error { return pause(s.cmd.Process, "server") }

// pause sends SIGSTOP to process and waits until every thread of it has
// stopped; what names the process in the error.
func pause(process *os.Process, what string) error {
	if err := process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	tasks := fmt.Sprintf("/proc/%d/task", process.Pid)
	if !exists(tasks) {
		time.Sleep(200 * time.Millisecond) // not Linux: give the signal a moment
		return nil
	}
	deadline := time.Now().Add(StopTimeout)
	for time.Now().Before(deadline) {
		if allStopped(tasks) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s did not stop on SIGSTOP within %s", what, StopTimeout)
}

func allStopped(tasks string) bool {
	stats, _ := filepath.Glob(filepath.Join(tasks, "*", "stat"))
	for _, stat := range stats {
		data, err := os.ReadFile(stat)
		if err != nil {
			continue // the thread is gone
		}
		// The state follows the parenthesised command name: "T" is stopped.
		text := string(data)
		i := strings.LastIndexByte(text, ')')
		fields := strings.Fields(text[i+1:])
		if len(fields) == 0 || (fields[0] != "T" && fields[0] != "t") {
			return false
		}
	}
	return true
}

// Resume sends SIGCONT.
func (s *Server) Resume() {
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
}

// watcher collects the server's output and reports the listening line.
type watcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	seen  bool
	found chan []string
}

func newWatcher() *watcher { return &watcher{found: make(chan []string, 1)} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Bound the kept output: a noisy server must not grow the test's memory.
	if w.buf.Len() > 1<<20 {
		w.buf.Reset()
	}
	w.buf.Write(p)
	if !w.seen {
		if m := listening.FindStringSubmatch(w.buf.String()); m != nil {
			w.seen = true
			w.found <- m
		}
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	text := w.buf.String()
	if len(text) > 4000 {
		text = text[len(text)-4000:]
	}
	return text
}

// JWT returns an HS256 token for sub signed with secret; exp (Unix seconds)
// is included when non-zero.
func JWT(sub, secret string, exp int64) string {
	b64 := base64.RawURLEncoding.EncodeToString
	claims := map[string]any{"sub": sub}
	if exp != 0 {
		claims["exp"] = exp
	}
	body, _ := json.Marshal(claims)
	signing := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + b64(mac.Sum(nil))
}
