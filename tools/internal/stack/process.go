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
	name  string // the service
	slot  int    // its port slot
	label string // name, or name#slot beyond the first slot (messages)
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{} // closed when the process has exited
	err   error         // its exit error, set before done closes
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

// procLabel names a service's process in messages: the service, with
// "#slot" beyond the first slot.
func procLabel(name string, slot int) string {
	if slot == 0 {
		return name
	}
	return fmt.Sprintf("%s#%d", name, slot)
}

// StartService starts the named service in its first slot (same ports and
// environment as before, plus the Env overrides) and waits until its
// /readyz answers 200, at most Options.ReadyTimeout. The error names the
// service and carries the tail of its log.
func (s *Stack) StartService(ctx context.Context, name string) error {
	return s.StartReplica(ctx, name, 0)
}

// StartReplica starts a process of the named service in the slot (0 ≤ slot
// < Slots(name)) and waits until it is ready, as StartService does.
func (s *Stack) StartReplica(ctx context.Context, name string, slot int) error {
	if !slices.Contains(s.opts.Services, name) {
		return fmt.Errorf("stack: %s is not one of this stack's services %v", name, s.opts.Services)
	}
	if slot < 0 || slot >= s.slotCount(name) {
		return fmt.Errorf("stack: %s has slots 0..%d, not %d", name, s.slotCount(name)-1, slot)
	}
	label := procLabel(name, slot)
	s.mu.Lock()
	if p := s.procs[name][slot]; p != nil && !p.exited() {
		s.mu.Unlock()
		return fmt.Errorf("stack: %s is already running (pid %d)", label, p.cmd.Process.Pid)
	}
	s.mu.Unlock()

	logPath := s.LogPathOf(name, slot)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("stack: %s log: %w", label, err)
	}
	// A JSON line like the service's own, so the log stays one format.
	fmt.Fprintf(log, `{"time":%q,"level":"INFO","msg":"stack: starting process","service":%q,"slot":%d}`+"\n",
		time.Now().UTC().Format(time.RFC3339Nano), name, slot)
	cmd := exec.Command(filepath.Join(s.opts.BinDir, name))
	cmd.Env = s.environ(name, slot)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a Ctrl-C in the terminal reaches the test, which stops the services
		Pdeathsig: syscall.SIGKILL, // a test binary that dies (timeout panic) takes its services along
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("stack: start %s: %w", label, err)
	}
	p := &process{name: name, slot: slot, label: label, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[name][slot] = p
	s.mu.Unlock()

	started := time.Now()
	if err := s.awaitReady(ctx, p); err != nil {
		return err
	}
	s.logf("%s ready in %s (pid %d, grpc %s)", label, time.Since(started).Round(time.Millisecond), cmd.Process.Pid, s.GRPCAddrOf(name, slot))
	return nil
}

// awaitReady polls /readyz until 200, the process exits, or the bound passes.
func (s *Stack) awaitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	url := "http://" + s.OpsAddrOf(p.name, p.slot) + "/readyz"
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
				p.label, p.err, p.logPath(s), logTail(p.logPath(s), 30))
		case <-ctx.Done():
			return fmt.Errorf("stack: %s not ready within %s at %s (last answer: %s); last lines of %s:\n%s",
				p.label, s.opts.ReadyTimeout, url, last, p.logPath(s), logTail(p.logPath(s), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *process) logPath(s *Stack) string { return s.LogPathOf(p.name, p.slot) }

// running returns the live process in the service's slot, or an error
// saying it is not running; the process's exit is expected from now on.
func (s *Stack) running(name string, slot int) (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p *process
	if ps := s.procs[name]; slot >= 0 && slot < len(ps) {
		p = ps[slot]
	}
	if p == nil || p.exited() {
		return nil, fmt.Errorf("stack: %s is not running", procLabel(name, slot))
	}
	p.exitExpected = true
	return p, nil
}

// Kill sends SIGKILL (kill -9) to the named service's first slot's process
// and waits until it is gone: the crash the saga must survive.
func (s *Stack) Kill(name string) error { return s.KillReplica(name, 0) }

// KillReplica kills -9 the process in the named service's slot, as Kill does.
func (s *Stack) KillReplica(name string, slot int) error {
	p, err := s.running(name, slot)
	if err != nil {
		return err
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		return fmt.Errorf("stack: kill %s: %w", p.label, err)
	}
	select {
	case <-p.done:
		s.logf("%s killed (pid %d)", p.label, p.cmd.Process.Pid)
		return nil
	case <-time.After(s.opts.StopTimeout):
		return fmt.Errorf("stack: %s (pid %d) still running %s after SIGKILL", p.label, p.cmd.Process.Pid, s.opts.StopTimeout)
	}
}

// Stop sends SIGTERM to the named service's first slot's process and waits
// for it to exit; after Options.StopTimeout it sends SIGKILL and reports
// that. An exit status other than 0 after SIGTERM is an error too (the
// shutdown was not clean).
func (s *Stack) Stop(name string) error { return s.StopReplica(name, 0) }

// StopReplica stops (SIGTERM) the process in the named service's slot, as Stop does.
func (s *Stack) StopReplica(name string, slot int) error {
	p, err := s.running(name, slot)
	if err != nil {
		return err
	}
	return s.stop(p)
}

func (s *Stack) stop(p *process) error {
	started := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		return fmt.Errorf("stack: SIGTERM to %s: %w", p.label, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("stack: %s exited with %v after SIGTERM; last lines of %s:\n%s",
				p.label, p.err, p.logPath(s), logTail(p.logPath(s), 20))
		}
		s.logf("%s stopped in %s", p.label, time.Since(started).Round(time.Millisecond))
		return nil
	case <-time.After(s.opts.StopTimeout):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL) // it may have exited just now
	<-p.done
	return fmt.Errorf("stack: %s %w (SIGTERM, %s); last lines of %s:\n%s",
		p.label, errStopTimeout, s.opts.StopTimeout, p.logPath(s), logTail(p.logPath(s), 20))
}

// Restart stops the named service (SIGTERM) and starts it again on the same
// ports, waiting until it is ready.
func (s *Stack) Restart(ctx context.Context, name string) error {
	if err := s.Stop(name); err != nil {
		return err
	}
	return s.StartService(ctx, name)
}

// Running reports whether the named service's first slot's process is alive.
func (s *Stack) Running(name string) bool { return s.RunningReplica(name, 0) }

// RunningReplica reports whether a process runs in the named service's slot.
func (s *Stack) RunningReplica(name string, slot int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.procs[name]
	return slot >= 0 && slot < len(ps) && ps[slot] != nil && !ps[slot].exited()
}

// stopAll stops every process for the cleanup and returns the problems a
// test should fail on: a service that crashed (exited without being asked
// to) and one that ignored SIGTERM. An unclean exit status after SIGTERM
// is only logged.
func (s *Stack) stopAll() []string {
	s.mu.Lock()
	var procs []*process
	var problems []string
	for _, slots := range s.procs {
		for _, p := range slots {
			if p == nil {
				continue
			}
			if p.exited() {
				if !p.exitExpected {
					problems = append(problems, p.crash(s))
				}
				continue
			}
			p.exitExpected = true
			procs = append(procs, p)
		}
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

// crash describes a process that exited without being asked to.
func (p *process) crash(s *Stack) string {
	return fmt.Sprintf("stack: %s exited on its own during the test (%v); last lines of %s:\n%s",
		p.label, p.err, p.logPath(s), logTail(p.logPath(s), 30))
}

// Crashed lists the processes that exited without being stopped or killed
// through the stack, described with their log tails (the cleanup fails the
// test on them too; this lets a test stop waiting early).
func (s *Stack) Crashed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, name := range s.opts.Services {
		for _, p := range s.procs[name] {
			if p != nil && p.exited() && !p.exitExpected {
				out = append(out, p.crash(s))
			}
		}
	}
	return out
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
