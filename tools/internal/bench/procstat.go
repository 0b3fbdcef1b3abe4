package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicksPerSec is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicksPerSec = 100

// procStat is what the bench reads of one /proc/<pid>/stat line.
type procStat struct {
	PID, PPID int
	Comm      string
	// Ticks of CPU the process used itself (utime + stime) and that its
	// waited-for children used (cutime + cstime): a child's time moves to
	// its parent's children fields when the parent reaps it, so the sum
	// over a live process tree never loses an exited child's work.
	Self, Children uint64
}

// Total is the process's own and its reaped children's CPU ticks.
func (p procStat) Total() uint64 { return p.Self + p.Children }

// parseProcStat parses a /proc/<pid>/stat line (proc(5)). The command name
// sits in parentheses and may itself hold spaces and parentheses, so the
// fields after it are found from the last ')'.
func parseProcStat(line []byte) (procStat, error) {
	var p procStat
	s := string(bytes.TrimSpace(line))
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return p, fmt.Errorf("proc stat %q: no (comm)", truncate(s, 80))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return p, fmt.Errorf("proc stat %q: pid: %w", truncate(s, 80), err)
	}
	p.PID, p.Comm = pid, s[open+1:end]
	// After the comm: state (field 3), ppid (4), …, utime (14), stime (15),
	// cutime (16), cstime (17).
	rest := strings.Fields(s[end+1:])
	const (
		ppid, utime, stime, cutime, cstime = 4, 14, 15, 16, 17
		first                              = 3 // rest[0] is field 3
	)
	if len(rest) < cstime-first+1 {
		return p, fmt.Errorf("proc stat of %d: %d fields after the command, want at least %d", pid, len(rest), cstime-first+1)
	}
	field := func(n int) (int64, error) {
		v, err := strconv.ParseInt(rest[n-first], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat of %d: field %d: %w", pid, n, err)
		}
		return v, nil
	}
	var vals [5]int64
	for i, n := range []int{ppid, utime, stime, cutime, cstime} {
		if vals[i], err = field(n); err != nil {
			return p, err
		}
	}
	p.PPID = int(vals[0])
	// cutime/cstime are signed in proc(5); negative never happens for CPU
	// time, but a clamp keeps the sum honest if it did.
	for i, v := range vals[1:] {
		if v < 0 {
			vals[i+1] = 0
		}
	}
	p.Self = uint64(vals[1] + vals[2])
	p.Children = uint64(vals[3] + vals[4])
	return p, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// procInfo is one process of a /proc snapshot.
type procInfo struct {
	procStat
	Cmdline []string // argv; empty for kernel threads and zombies
}

// readProcs reads every process's stat and command line under root
// ("/proc"). Processes that exit while it reads are skipped.
func readProcs(root string) (map[int]procInfo, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procInfo, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process directory
		}
		data, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		st, err := parseProcStat(data)
		if err != nil || st.PID != pid {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(root, e.Name(), "cmdline"))
		procs[pid] = procInfo{procStat: st, Cmdline: splitCmdline(cmd)}
	}
	return procs, nil
}

// splitCmdline splits /proc/<pid>/cmdline (NUL-separated argv).
func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// listeningInodes parses /proc/net/tcp or tcp6 (proc(5)) and returns the
// socket inodes listening (state 0A) on port, any local address.
func listeningInodes(r io.Reader, port int) ([]uint64, error) {
	var inodes []uint64
	sc := bufio.NewScanner(r)
	header := true
	for sc.Scan() {
		if header { // "sl local_address rem_address st …"
			header = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		if !ok || f[3] != "0A" {
			continue
		}
		p, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("net/tcp inode %q: %w", f[9], err)
		}
		if inode != 0 {
			inodes = append(inodes, inode)
		}
	}
	return inodes, sc.Err()
}

// socketOwners maps each of the given socket inodes to the pids that hold
// it open, by reading every process's fd links under root. Processes whose
// fds cannot be read (another user's, gone) are skipped.
func socketOwners(root string, pids []int, inodes map[uint64]bool) map[uint64][]int {
	owners := map[uint64][]int{}
	for _, pid := range pids {
		dir := filepath.Join(root, strconv.Itoa(pid), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err == nil && inodes[inode] {
				owners[inode] = append(owners[inode], pid)
			}
		}
	}
	return owners
}

// treeTicks sums Total over roots and all their live descendants, each
// process once.
func treeTicks(procs map[int]procInfo, children map[int][]int, roots []int) (ticks uint64, members []int) {
	seen := map[int]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		p, ok := procs[pid]
		if !ok {
			return
		}
		seen[pid] = true
		members = append(members, pid)
		ticks += p.Total()
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return ticks, members
}
