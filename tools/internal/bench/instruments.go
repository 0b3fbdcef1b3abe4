package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Probe is what a run measures besides latency, read before the first order
// and after the last one ended: CPU time of local processes (/proc) and
// operation counters of the servers and services. Every part is optional;
// what cannot be read becomes a note in the result, never a failed run.
type Probe struct {
	// Procs are the local processes to charge CPU to.
	Procs []ProcTarget
	// MySQLStatusDSN, when set, reads MariaDB's SHOW GLOBAL STATUS counters
	// (server-wide: they include anything else using the server meanwhile).
	MySQLStatusDSN string
	// Metrics are Prometheus endpoints to scrape (a service's ops
	// /metrics); their sagasuite_* counters are compared.
	Metrics []MetricsTarget
	// ProcRoot is /proc (tests point it elsewhere).
	ProcRoot string
}

// ProcTarget names a local process (tree) to measure. It is found by the
// TCP port it listens on when Addr is set (exact even with several
// instances on the machine), else — or when nothing listens there — by
// command line. Its CPU includes its descendants' (postgres forks a backend
// per connection).
type ProcTarget struct {
	Name string
	// Addr is a local listen address, "127.0.0.1:19092"; only its port
	// is used.
	Addr string
	// Match picks processes by argv; nil means by port only.
	Match func(argv []string) bool
	// MatchDesc says what Match looks for, for the report.
	MatchDesc string
}

// MetricsTarget is a Prometheus text endpoint.
type MetricsTarget struct {
	Name, URL string
}

// mysqlStatusVars are the SHOW GLOBAL STATUS counters compared: statements
// by kind, transactions, every statement (Questions), the server-side
// prepares and closes that Questions leaves out (each a round trip of its
// own), and the fsyncs that durable commits cost.
var mysqlStatusVars = []string{"Questions", "Com_commit", "Com_rollback", "Com_begin", "Com_insert", "Com_update",
	"Com_delete", "Com_select", "Com_stmt_prepare", "Com_stmt_close", "Innodb_os_log_fsyncs", "Innodb_data_fsyncs"}

// LocalServers are the local real stack's servers (deploy/local/infra.sh),
// each found by its port, else by its command line.
func LocalServers(kafka, mariadb, postgres, ferretdb, cassandra string) []ProcTarget {
	base := func(argv []string) string {
		if len(argv) == 0 {
			return ""
		}
		return filepath.Base(argv[0])
	}
	java := func(class string) func([]string) bool {
		return func(argv []string) bool { return base(argv) == "java" && slices.Contains(argv, class) }
	}
	return []ProcTarget{
		{Name: "kafka", Addr: kafka, Match: java("kafka.Kafka"), MatchDesc: "java kafka.Kafka"},
		{Name: "mariadb", Addr: mariadb, MatchDesc: "mariadbd", Match: func(argv []string) bool {
			return base(argv) == "mariadbd" || base(argv) == "mysqld"
		}},
		{Name: "postgres", Addr: postgres, MatchDesc: "postgres (all backends)", Match: func(argv []string) bool {
			// Backends retitle themselves "postgres: user db …".
			return base(argv) == "postgres" || (len(argv) > 0 && strings.HasPrefix(argv[0], "postgres:"))
		}},
		{Name: "ferretdb", Addr: ferretdb, MatchDesc: "ferretdb", Match: func(argv []string) bool {
			return strings.HasPrefix(base(argv), "ferretdb")
		}},
		{Name: "cassandra", Addr: cassandra, Match: java("org.apache.cassandra.service.CassandraDaemon"), MatchDesc: "java CassandraDaemon"},
	}
}

// Instruments is what the probe measured over a run.
type Instruments struct {
	// Per is what the per-saga figures divide by: the run's COMPLETED sagas.
	Per int `json:"per_completed_sagas"`
	// CPU per process (tree), the suite's total (every row but the load
	// generator) and the load generator itself.
	CPU           []ProcCPU `json:"cpu"`
	SuiteCPUMS    float64   `json:"suite_cpu_ms"`
	SuiteMSPerSag float64   `json:"suite_cpu_ms_per_saga"`
	// Ops are counter deltas of the servers and services.
	Ops []OpCount `json:"ops"`
	// Notes say what could not be measured and why.
	Notes []string `json:"notes,omitempty"`
}

// ProcCPU is one process (tree) over the run.
type ProcCPU struct {
	Name    string  `json:"name"`
	FoundBy string  `json:"found_by"`
	PIDs    []int   `json:"pids"`
	CPUMS   float64 `json:"cpu_ms"`
	PerSaga float64 `json:"cpu_ms_per_saga"`
	// Suite is false for the load generator.
	Suite bool `json:"suite"`
}

// OpCount is one counter over the run.
type OpCount struct {
	Source  string  `json:"source"`
	Counter string  `json:"counter"`
	Delta   float64 `json:"delta"`
	PerSaga float64 `json:"per_saga"`
}

// probeSnapshot is one reading of everything the probe watches.
type probeSnapshot struct {
	procs    map[string]procReading // by target name
	counters map[[2]string]float64  // (source, counter) → value
	read     map[string]bool        // sources whose counters were read
	notes    []string
}

type procReading struct {
	foundBy string
	roots   []int
	members []int
	ticks   uint64
}

// selfName is the load generator's row.
const selfName = "load generator (this process)"

func (p *Probe) root() string {
	if p.ProcRoot == "" {
		return "/proc"
	}
	return p.ProcRoot
}

// snapshot reads every instrument once.
func (p *Probe) snapshot(ctx context.Context) probeSnapshot {
	s := probeSnapshot{procs: map[string]procReading{}, counters: map[[2]string]float64{}, read: map[string]bool{}}
	p.readProcs(&s)
	if p.MySQLStatusDSN != "" {
		if err := p.readMySQL(ctx, &s); err != nil {
			s.notes = append(s.notes, "mariadb status: "+err.Error())
		} else {
			s.read["mariadb"] = true
		}
	}
	for _, m := range p.Metrics {
		if err := readMetrics(ctx, m, &s); err != nil {
			s.notes = append(s.notes, fmt.Sprintf("%s metrics: %v", m.Name, err))
		} else {
			s.read[m.Name] = true
		}
	}
	return s
}

func (p *Probe) readProcs(s *probeSnapshot) {
	root := p.root()
	procs, err := readProcs(root)
	if err != nil {
		s.notes = append(s.notes, "processes: "+err.Error())
		return
	}
	children := map[int][]int{}
	pids := make([]int, 0, len(procs))
	for pid, pi := range procs {
		children[pi.PPID] = append(children[pi.PPID], pid)
		pids = append(pids, pid)
	}
	// Who listens where: one pass over every process's fds for all ports.
	portInodes := map[int][]uint64{}
	wanted := map[uint64]bool{}
	for _, t := range p.Procs {
		port := portOf(t.Addr)
		if port == 0 {
			continue
		}
		for _, f := range []string{"net/tcp", "net/tcp6"} {
			data, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				continue
			}
			inodes, _ := listeningInodes(bytes.NewReader(data), port)
			portInodes[port] = append(portInodes[port], inodes...)
			for _, in := range inodes {
				wanted[in] = true
			}
		}
	}
	owners := socketOwners(root, pids, wanted)

	for _, t := range p.Procs {
		var roots []int
		foundBy := ""
		if port := portOf(t.Addr); port != 0 {
			for _, in := range portInodes[port] {
				roots = append(roots, owners[in]...)
			}
			if len(roots) > 0 {
				foundBy = "listens on " + t.Addr
			}
		}
		if len(roots) == 0 && t.Match != nil {
			for pid, pi := range procs {
				if t.Match(pi.Cmdline) {
					roots = append(roots, pid)
				}
			}
			if len(roots) > 0 {
				foundBy = "command line " + t.MatchDesc
			}
		}
		if len(roots) == 0 {
			continue
		}
		slices.Sort(roots)
		roots = slices.Compact(roots)
		ticks, members := treeTicks(procs, children, roots)
		slices.Sort(members)
		s.procs[t.Name] = procReading{foundBy: foundBy, roots: roots, members: members, ticks: ticks}
	}
	// The load generator: its own time only — the services a test starts
	// are its children and have rows of their own.
	if self, ok := procs[os.Getpid()]; ok && p.ProcRoot == "" {
		s.procs[selfName] = procReading{foundBy: "itself", roots: []int{self.PID}, members: []int{self.PID}, ticks: self.Self}
	}
}

func portOf(addr string) int {
	if addr == "" {
		return 0
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return 0
	}
	return n
}

func (p *Probe) readMySQL(ctx context.Context, s *probeSnapshot) error {
	cfg, err := mysql.ParseDSN(p.MySQLStatusDSN)
	if err != nil {
		return fmt.Errorf("DSN: %w", err)
	}
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	q := "SHOW GLOBAL STATUS WHERE Variable_name IN (?" + strings.Repeat(", ?", len(mysqlStatusVars)-1) + ")"
	args := make([]any, len(mysqlStatusVars))
	for i, v := range mysqlStatusVars {
		args[i] = v
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return err
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			s.counters[[2]string{"mariadb", name}] = v
		}
	}
	return rows.Err()
}

// readMetrics scrapes one endpoint and keeps every sagasuite_* counter
// (summed over its labels) and histogram count (name_count: how many
// observations, e.g. relay batches).
func readMetrics(ctx context.Context, m MetricsTarget, s *probeSnapshot) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/plain") // the classic text format, not protobuf
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", m.URL, resp.Status)
	}
	families, err := parseMetrics(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", m.URL, err)
	}
	maps.Copy(s.counters, countersOf(m.Name, families))
	return nil
}

func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(r)
}

// countersOf sums each sagasuite_* counter family over its label sets, and
// each histogram's observation count.
func countersOf(source string, families map[string]*dto.MetricFamily) map[[2]string]float64 {
	out := map[[2]string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "sagasuite_") {
			continue
		}
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[[2]string{source, name}] += m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[[2]string{source, name + "_count"}] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// compare turns two snapshots into the run's figures, per completed saga.
func compare(before, after probeSnapshot, completed int) *Instruments {
	in := &Instruments{Per: completed}
	per := func(v float64) float64 {
		if completed == 0 {
			return 0
		}
		return v / float64(completed)
	}
	in.Notes = append(in.Notes, before.notes...)
	for _, n := range after.notes {
		if !slices.Contains(in.Notes, n) {
			in.Notes = append(in.Notes, n)
		}
	}

	// Targets that found the same processes (the one-process dev stack
	// serves all five services) are one row.
	byRoots := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(after.procs)) {
		key := fmt.Sprint(after.procs[name].roots)
		byRoots[key] = append(byRoots[key], name)
	}
	for _, names := range byRoots {
		name := names[0]
		a := after.procs[name]
		b, ok := before.procs[name]
		label := strings.Join(names, "+")
		switch {
		case !ok:
			in.Notes = append(in.Notes, label+": not running when the run began")
			continue
		case !slices.Equal(a.roots, b.roots):
			in.Notes = append(in.Notes, fmt.Sprintf("%s: process changed during the run (pids %v → %v), not measured", label, b.roots, a.roots))
			continue
		case a.ticks < b.ticks:
			// A child exited without being reaped into the tree: the sum fell.
			in.Notes = append(in.Notes, label+": CPU sum fell during the run (a child left the tree), not measured")
			continue
		}
		cpuMS := float64(a.ticks-b.ticks) * 1000 / clockTicksPerSec
		row := ProcCPU{Name: label, FoundBy: a.foundBy, PIDs: a.members, CPUMS: cpuMS, PerSaga: per(cpuMS), Suite: name != selfName}
		in.CPU = append(in.CPU, row)
		if row.Suite {
			in.SuiteCPUMS += cpuMS
		}
	}
	slices.SortFunc(in.CPU, func(x, y ProcCPU) int {
		if x.Suite != y.Suite { // the load generator last
			if x.Suite {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	in.SuiteMSPerSag = per(in.SuiteCPUMS)

	for _, k := range slices.SortedFunc(maps.Keys(after.counters), func(x, y [2]string) int {
		if c := strings.Compare(x[0], y[0]); c != 0 {
			return c
		}
		return strings.Compare(x[1], y[1])
	}) {
		if !before.read[k[0]] {
			continue // that source could not be read before the run (a note says why)
		}
		b := before.counters[k] // a counter born during the run (created on first use) started at zero
		d := after.counters[k] - b
		if d < 0 {
			in.Notes = append(in.Notes, fmt.Sprintf("%s %s went down (restart?), not measured", k[0], k[1]))
			continue
		}
		in.Ops = append(in.Ops, OpCount{Source: k[0], Counter: k[1], Delta: d, PerSaga: per(d)})
	}
	return in
}

// DefaultServers is the local real stack's servers (deploy/local/infra.sh).
const DefaultServers = "kafka=127.0.0.1:19092,mariadb=127.0.0.1:13306,postgres=127.0.0.1:15432,ferretdb=127.0.0.1:17017,cassandra=127.0.0.1:19042"

// ParseServers reads "kafka=host:port,mariadb=…" (any subset of kafka,
// mariadb, postgres, ferretdb, cassandra; an empty address finds the server
// by command line only) into LocalServers' targets; "" or "none" gives none.
func ParseServers(s string) ([]ProcTarget, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	addrs := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("servers: %q is not name=host:port", part)
		}
		if _, dup := addrs[name]; dup {
			return nil, fmt.Errorf("servers: %s given twice", name)
		}
		if addr != "" && portOf(addr) == 0 {
			return nil, fmt.Errorf("servers: %s address %q is not host:port", name, addr)
		}
		addrs[name] = addr
	}
	var out []ProcTarget
	for _, t := range LocalServers("", "", "", "", "") {
		addr, ok := addrs[t.Name]
		if !ok {
			continue
		}
		delete(addrs, t.Name)
		t.Addr = addr
		out = append(out, t)
	}
	if len(addrs) > 0 {
		return nil, fmt.Errorf("servers: unknown %v (want kafka, mariadb, postgres, ferretdb, cassandra)", slices.Sorted(maps.Keys(addrs)))
	}
	return out, nil
}

// SuiteProbe measures the five services — each found by its gRPC port,
// counted through its ops /metrics — and the given servers; statusDSN (may
// be empty) reads MariaDB's counters.
func SuiteProbe(grpc, ops suite.Addrs, servers []ProcTarget, statusDSN string) *Probe {
	p := &Probe{MySQLStatusDSN: statusDSN}
	for _, name := range suite.Services {
		p.Procs = append(p.Procs, ProcTarget{Name: name, Addr: grpc.Of(name)})
		if a := ops.Of(name); a != "" {
			p.Metrics = append(p.Metrics, MetricsTarget{Name: name, URL: "http://" + a + "/metrics"})
		}
	}
	p.Procs = append(p.Procs, servers...)
	return p
}
