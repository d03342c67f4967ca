package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is one running `redis-server` process on a free 127.0.0.1 port,
// in memory only (no snapshot, no append-only file), for tests of the
// server's Redis broker.
type Redis struct {
	// URL is where it listens: redis://127.0.0.1:PORT.
	URL string
	// Port is its port.
	Port int

	cmd    *exec.Cmd
	output *watcher
	// exited is closed once the process has exited.
	exited chan struct{}
	once   sync.Once
}

// StartRedis starts a redis-server (the binary from PATH) and waits until
// it answers PING; the test fails if it is not installed or does not
// answer within StartupTimeout. It is resumed (if paused) and killed when
// the test ends.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server is not installed (%v): scripts/test.sh installs it (apt-get install redis-server)", err)
	}
	// The free port is found by binding and releasing it, so another
	// process may take it first: then redis-server exits, and a new port is
	// tried.
	var failures []string
	for range 3 {
		r, err := startRedis(bin)
		if err == nil {
			tb.Cleanup(r.Kill)
			return r
		}
		failures = append(failures, err.Error())
	}
	tb.Fatalf("redis-server did not start:\n%s", strings.Join(failures, "\n"))
	return nil
}

func startRedis(bin string) (*Redis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	out := newWatcher()
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	r := &Redis{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), Port: port, cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(r.exited)
	}()
	deadline := time.Now().Add(StartupTimeout)
	for {
		if r.ping() == nil {
			return r, nil
		}
		select {
		case <-r.exited:
			return nil, fmt.Errorf("redis-server exited before answering on port %d; its output:\n%s", port, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Kill()
			return nil, fmt.Errorf("redis-server did not answer on port %d within %s; its output:\n%s", port, StartupTimeout, out.String())
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends PING and expects +PONG, within a second.
func (r *Redis) ping() error {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("unexpected answer to PING: " + line)
	}
	return nil
}

// ServerEnv is the server settings that make it use this Redis as its
// broker; add more (e.g. SWITCHBOARD_REDIS__COMMAND_TIMEOUT) to the map.
func (r *Redis) ServerEnv() map[string]string {
	return map[string]string{
		"SWITCHBOARD_BROKER":    "redis",
		"SWITCHBOARD_REDIS_URL": r.URL,
	}
}

// Pause freezes the process with SIGSTOP, as a hung Redis: its sockets stay
// open and nothing is answered. It returns once every thread has stopped.
func (r *Redis) Pause() error { return pause(r.cmd.Process, "redis-server") }

// Resume undoes Pause (SIGCONT).
func (r *Redis) Resume() {
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
}

// Kill resumes and kills the process, and waits until it is gone.
// Idempotent.
func (r *Redis) Kill() {
	r.once.Do(func() {
		r.Resume()
		_ = r.cmd.Process.Kill()
		select {
		case <-r.exited:
		case <-time.After(StopTimeout):
			panic("testserver: redis-server did not exit after SIGKILL")
		}
	})
}
