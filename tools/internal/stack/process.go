package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// errStopTimeout: a service ignored SIGTERM for Options.StopTimeout.
var errStopTimeout = errors.New("did not stop in time and was killed")

// process is one run of a service binary.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // its exit error, set before done closes
	// exitExpected is set when the stack signals the process or has
	// reported its exit already, so the cleanup does not call it a crash.
	exitExpected bool
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartService starts the named service (same ports and environment as
// before, plus the Env overrides) and waits until its /readyz answers 200,
// at most Options.ReadyTimeout. The error names the service and carries
// the tail of its log.
func (s *Stack) StartService(ctx context.Context, name string) error {
	if !slices.Contains(s.opts.Services, name) {
		return fmt.Errorf("stack: %s is not one of this stack's services %v", name, s.opts.Services)
	}
	s.mu.Lock()
	if p := s.procs[name]; p != nil && !p.exited() {
		s.mu.Unlock()
		return fmt.Errorf("stack: %s is already running (pid %d)", name, p.cmd.Process.Pid)
	}
	s.mu.Unlock()

	log, err := os.OpenFile(s.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("stack: %s log: %w", name, err)
	}
	// A JSON line like the service's own, so the log stays one format.
	fmt.Fprintf(log, `{"time":%q,"level":"INFO","msg":"stack: starting process","service":%q}`+"\n",
		time.Now().UTC().Format(time.RFC3339Nano), name)
	cmd := exec.Command(filepath.Join(s.opts.BinDir, name))
	cmd.Env = s.environ(name)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a Ctrl-C in the terminal reaches the test, which stops the services
		Pdeathsig: syscall.SIGKILL, // a test binary that dies (timeout panic) takes its services along
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("stack: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()

	started := time.Now()
	if err := s.awaitReady(ctx, p); err != nil {
		return err
	}
	s.logf("%s ready in %s (pid %d, grpc %s)", name, time.Since(started).Round(time.Millisecond), cmd.Process.Pid, s.GRPCAddr(name))
	return nil
}

// awaitReady polls /readyz until 200, the process exits, or the bound passes.
func (s *Stack) awaitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	url := "http://" + s.OpsAddr(p.name) + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil) // the URL is well-formed
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			s.mu.Lock()
			p.exitExpected = true // reported here
			s.mu.Unlock()
			return fmt.Errorf("stack: %s exited before it was ready (%v); last lines of %s:\n%s",
				p.name, p.err, s.LogPath(p.name), logTail(s.LogPath(p.name), 30))
		case <-ctx.Done():
			return fmt.Errorf("stack: %s not ready within %s at %s (last answer: %s); last lines of %s:\n%s",
				p.name, s.opts.ReadyTimeout, url, last, s.LogPath(p.name), logTail(s.LogPath(p.name), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// running returns the live process of name, or an error saying it is not running.
func (s *Stack) running(name string) (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.procs[name]
	if p == nil || p.exited() {
		return nil, fmt.Errorf("stack: %s is not running", name)
	}
	p.exitExpected = true
	return p, nil
}

// Kill sends SIGKILL (kill -9) to the named service and waits until it is
// gone: the crash the saga must survive.
func (s *Stack) Kill(name string) error {
	p, err := s.running(name)
	if err != nil {
		return err
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		return fmt.Errorf("stack: kill %s: %w", name, err)
	}
	select {
	case <-p.done:
		s.logf("%s killed (pid %d)", name, p.cmd.Process.Pid)
		return nil
	case <-time.After(s.opts.StopTimeout):
		return fmt.Errorf("stack: %s (pid %d) still running %s after SIGKILL", name, p.cmd.Process.Pid, s.opts.StopTimeout)
	}
}

// Stop sends SIGTERM to the named service and waits for it to exit; after
// Options.StopTimeout it sends SIGKILL and reports that. An exit status
// other than 0 after SIGTERM is an error too (the shutdown was not clean).
func (s *Stack) Stop(name string) error {
	p, err := s.running(name)
	if err != nil {
		return err
	}
	return s.stop(p)
}

func (s *Stack) stop(p *process) error {
	started := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		return fmt.Errorf("stack: SIGTERM to %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("stack: %s exited with %v after SIGTERM; last lines of %s:\n%s",
				p.name, p.err, s.LogPath(p.name), logTail(s.LogPath(p.name), 20))
		}
		s.logf("%s stopped in %s", p.name, time.Since(started).Round(time.Millisecond))
		return nil
	case <-time.After(s.opts.StopTimeout):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL) // it may have exited just now
	<-p.done
	return fmt.Errorf("stack: %s %w (SIGTERM, %s); last lines of %s:\n%s",
		p.name, errStopTimeout, s.opts.StopTimeout, s.LogPath(p.name), logTail(s.LogPath(p.name), 20))
}

// Restart stops the named service (SIGTERM) and starts it again on the same
// ports, waiting until it is ready.
func (s *Stack) Restart(ctx context.Context, name string) error {
	if err := s.Stop(name); err != nil {
		return err
	}
	return s.StartService(ctx, name)
}

// Running reports whether the named service's process is alive.
func (s *Stack) Running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.procs[name]
	return p != nil && !p.exited()
}

// stopAll stops every process for the cleanup and returns the problems a
// test should fail on: a service that crashed (exited without being asked
// to) and one that ignored SIGTERM. An unclean exit status after SIGTERM
// is only logged.
func (s *Stack) stopAll() []string {
	s.mu.Lock()
	procs := make([]*process, 0, len(s.procs))
	var problems []string
	for _, p := range s.procs {
		if p.exited() {
			if !p.exitExpected {
				problems = append(problems, fmt.Sprintf("stack: %s exited on its own during the test (%v); last lines of %s:\n%s",
					p.name, p.err, s.LogPath(p.name), logTail(s.LogPath(p.name), 30)))
			}
			continue
		}
		p.exitExpected = true
		procs = append(procs, p)
	}
	s.mu.Unlock()

	results := make(chan string, len(procs))
	for _, p := range procs {
		go func() {
			err := s.stop(p)
			switch {
			case err == nil:
				results <- ""
			case errors.Is(err, errStopTimeout):
				results <- err.Error()
			default:
				s.logf("%v", err)
				results <- ""
			}
		}()
	}
	for range procs {
		if r := <-results; r != "" {
			problems = append(problems, r)
		}
	}
	return problems
}

// logTail returns the last n lines of a log file ("" when there is none).
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	if info, err := f.Stat(); err == nil && info.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd) // a short read below is fine
	}
	b, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + string(bytes.Join(lines, []byte("\n  ")))
}
