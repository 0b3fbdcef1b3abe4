package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       procStat
		wantErr    string
	}{
		{
			name: "plain",
			line: "14228 (cat) R 14222 14222 6651 0 -1 4194304 102 0 0 0 7 3 2 1 20 0 1 0 72064 3133440 360\n",
			want: procStat{PID: 14228, PPID: 14222, Comm: "cat", Self: 10, Children: 3},
		},
		{
			// A command name may hold spaces and parentheses: fields are
			// counted from the last ')'.
			name: "comm with spaces and parentheses",
			line: "812 (java) (x) y) S 1 812 812 0 -1 4194560 5 0 0 0 123456 7890 40 2 20 0 90 0 1000 1 1",
			want: procStat{PID: 812, PPID: 1, Comm: "java) (x) y", Self: 123456 + 7890, Children: 42},
		},
		{name: "no comm", line: "12 cat R 1", wantErr: "no (comm)"},
		{name: "bad pid", line: "x12 (cat) R 1 1 1 0 -1 0 0 0 0 0 1 1 0 0", wantErr: "pid"},
		{name: "too short", line: "12 (cat) R 1 1 1", wantErr: "fields after the command"},
		{name: "bad number", line: "12 (cat) R 1 1 1 0 -1 0 0 0 0 0 1x 1 0 0", wantErr: "field 14"},
		{name: "empty", line: "", wantErr: "no (comm)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// This very process reads as itself.
func TestParseProcStatOfThisProcess(t *testing.T) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseProcStat(data)
	if err != nil || st.PID != os.Getpid() || st.PPID != os.Getppid() {
		t.Fatalf("= %+v, %v; want pid %d ppid %d", st, err, os.Getpid(), os.Getppid())
	}
}

const netTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4A84 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24216 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4A84 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 99999 1 0000000000000000 100 0 0 10 0
   2: 00000000:3C48 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 23906 1 0000000000000000 100 0 0 10 0
   3: broken line
`

func TestListeningInodes(t *testing.T) {
	// 0x4A84 = 19076; the established connection on the same port is not a listener.
	got, err := listeningInodes(strings.NewReader(netTCP), 0x4A84)
	if err != nil || fmt.Sprint(got) != "[24216]" {
		t.Errorf("port 19076: %v, %v; want [24216]", got, err)
	}
	got, err = listeningInodes(strings.NewReader(netTCP), 15432) // 0x3C48, any address
	if err != nil || fmt.Sprint(got) != "[23906]" {
		t.Errorf("port 15432: %v, %v; want [23906]", got, err)
	}
	if got, _ := listeningInodes(strings.NewReader(netTCP), 1); len(got) != 0 {
		t.Errorf("port 1: %v, want none", got)
	}
}

// fakeProc writes a /proc-like tree: processes with stat, cmdline and fds,
// and net/tcp.
type fakeProc struct {
	t    *testing.T
	root string
}

func (f fakeProc) proc(pid, ppid int, argv []string, self, children uint64, sockets ...int) {
	dir := filepath.Join(f.root, fmt.Sprint(pid))
	if err := os.RemoveAll(filepath.Join(dir, "fd")); err != nil { // rewritten: its fds anew
		f.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S %d %d 0 0 -1 0 0 0 0 0 %d 0 %d 0 20 0 1 0 1 1 1\n", pid, filepath.Base(argv[0]), ppid, pid, self, children)
	f.write(filepath.Join(dir, "stat"), stat)
	f.write(filepath.Join(dir, "cmdline"), strings.Join(argv, "\x00")+"\x00")
	for i, inode := range sockets {
		if err := os.Symlink(fmt.Sprintf("socket:[%d]", inode), filepath.Join(dir, "fd", fmt.Sprint(3+i))); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f fakeProc) write(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// Processes are found by the port they listen on, else by command line;
// a tree's CPU includes its children's, live and reaped; ticks are 10 ms.
func TestProbeFindsProcessesAndChargesTheirTrees(t *testing.T) {
	f := fakeProc{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(f.root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(filepath.Join(f.root, "net", "tcp"), netTCP)
	f.write(filepath.Join(f.root, "net", "tcp6"), "  sl header\n")
	// Kafka listens on 19076 (inode 24216); a second Kafka (another
	// engineer's private one) matches the command line too but is not ours.
	f.proc(100, 1, []string{"/usr/bin/java", "-cp", "x", "kafka.Kafka", "server.properties"}, 50, 0, 24216)
	f.proc(101, 1, []string{"/usr/bin/java", "kafka.Kafka", "other.properties"}, 7000, 0)
	// postgres on 15432 (inode 23906) with two backends; it has reaped 30 ticks.
	f.proc(200, 1, []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "d"}, 10, 30, 23906)
	f.proc(201, 200, []string{"postgres: checkpointer"}, 5, 0)
	f.proc(202, 200, []string{"postgres: sagasuite db 127.0.0.1(5000) idle"}, 20, 0)
	// mariadbd listens nowhere we were told: found by its command line.
	f.proc(300, 1, []string{"/usr/sbin/mariadbd", "--datadir=x"}, 40, 0)

	servers := LocalServers("127.0.0.1:19076", "127.0.0.1:13306", "127.0.0.1:15432", "127.0.0.1:17017", "127.0.0.1:19042")
	p := &Probe{ProcRoot: f.root, Procs: servers}
	before := p.snapshot(context.Background())

	got := before.procs
	if k := got["kafka"]; k.foundBy != "listens on 127.0.0.1:19076" || fmt.Sprint(k.members) != "[100]" || k.ticks != 50 {
		t.Errorf("kafka = %+v, want pid 100 by its port, 50 ticks", k)
	}
	if pg := got["postgres"]; fmt.Sprint(pg.members) != "[200 201 202]" || pg.ticks != 10+30+5+20 {
		t.Errorf("postgres = %+v, want the postmaster and both backends, 65 ticks", pg)
	}
	if m := got["mariadb"]; m.foundBy != "command line mariadbd" || m.ticks != 40 {
		t.Errorf("mariadb = %+v, want pid 300 by command line", m)
	}
	if _, ok := got["cassandra"]; ok {
		t.Errorf("cassandra found though nothing runs: %+v", got["cassandra"])
	}

	// The run: kafka works 120 ticks, a backend exits and is reaped (its
	// 20 + 15 more move into the postmaster's children), mariadb 60.
	f.proc(100, 1, []string{"/usr/bin/java", "kafka.Kafka"}, 170, 0, 24216)
	if err := os.RemoveAll(filepath.Join(f.root, "202")); err != nil {
		t.Fatal(err)
	}
	f.proc(200, 1, []string{"/usr/lib/postgresql/15/bin/postgres"}, 10, 30+35, 23906)
	f.proc(300, 1, []string{"/usr/sbin/mariadbd"}, 100, 0)
	after := p.snapshot(context.Background())

	in := compare(before, after, 4)
	rows := map[string]ProcCPU{}
	for _, r := range in.CPU {
		rows[r.Name] = r
	}
	for name, wantMS := range map[string]float64{"kafka": 1200, "postgres": 150, "mariadb": 600} {
		if r := rows[name]; r.CPUMS != wantMS || r.PerSaga != wantMS/4 {
			t.Errorf("%s = %+v, want %v ms, %v per saga", name, r, wantMS, wantMS/4)
		}
	}
	if in.SuiteCPUMS != 1950 || in.SuiteMSPerSag != 1950.0/4 {
		t.Errorf("suite %v ms, %v per saga; want 1950, 487.5", in.SuiteCPUMS, in.SuiteMSPerSag)
	}
}

func TestCompareArithmetic(t *testing.T) {
	before := probeSnapshot{
		procs: map[string]procReading{
			"order":     {roots: []int{10}, members: []int{10}, ticks: 100},
			"inventory": {roots: []int{10}, members: []int{10}, ticks: 100}, // the dev stack: one process
			"payment":   {roots: []int{11}, members: []int{11}, ticks: 5},
			selfName:    {roots: []int{1}, members: []int{1}, ticks: 1000},
		},
		counters: map[[2]string]float64{
			{"mariadb", "Questions"}: 1000, {"mariadb", "Com_commit"}: 10,
			{"order", "sagasuite_outbox_published_total"}: 7,
		},
		read:  map[string]bool{"mariadb": true, "order": true},
		notes: []string{"shipping metrics: connection refused"},
	}
	after := probeSnapshot{
		procs: map[string]procReading{
			"order":     {roots: []int{10}, members: []int{10}, ticks: 350},
			"inventory": {roots: []int{10}, members: []int{10}, ticks: 350},
			"payment":   {roots: []int{12}, members: []int{12}, ticks: 3}, // restarted
			"cassandra": {roots: []int{13}, members: []int{13}, ticks: 9},
			selfName:    {roots: []int{1}, members: []int{1}, ticks: 1040},
		},
		counters: map[[2]string]float64{
			{"mariadb", "Questions"}: 2000, {"mariadb", "Com_commit"}: 60,
			{"order", "sagasuite_outbox_published_total"}: 107, {"order", "sagasuite_order_refused_total"}: 3,
			{"shipping", "sagasuite_outbox_published_total"}: 50, // not read before: no delta
		},
		read: map[string]bool{"mariadb": true, "order": true, "shipping": true},
	}
	in := compare(before, after, 50)
	if len(in.CPU) != 2 {
		t.Fatalf("cpu rows %+v, want the dev stack's one and the load generator", in.CPU)
	}
	if r := in.CPU[0]; r.Name != "inventory+order" || r.CPUMS != 2500 || r.PerSaga != 50 || !r.Suite {
		t.Errorf("first row %+v, want inventory+order 2500 ms, 50 per saga", r)
	}
	if r := in.CPU[1]; r.Name != selfName || r.CPUMS != 400 || r.Suite {
		t.Errorf("last row %+v, want the load generator, 400 ms, outside the suite", r)
	}
	if in.SuiteCPUMS != 2500 || in.SuiteMSPerSag != 50 {
		t.Errorf("suite %v / %v, want 2500 ms, 50 per saga", in.SuiteCPUMS, in.SuiteMSPerSag)
	}
	want := "mariadb Com_commit 50 1; mariadb Questions 1000 20; order sagasuite_order_refused_total 3 0.06; order sagasuite_outbox_published_total 100 2"
	var got []string
	for _, o := range in.Ops {
		got = append(got, fmt.Sprintf("%s %s %g %g", o.Source, o.Counter, o.Delta, o.PerSaga))
	}
	if strings.Join(got, "; ") != want {
		t.Errorf("ops\n%s\nwant\n%s", strings.Join(got, "; "), want)
	}
	notes := strings.Join(in.Notes, "\n")
	for _, w := range []string{"shipping metrics: connection refused", "payment: process changed", "cassandra: not running when the run began"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}

	// No completed saga: totals, no division by zero.
	if zero := compare(before, after, 0); zero.SuiteCPUMS != 2500 || zero.SuiteMSPerSag != 0 {
		t.Errorf("with 0 completed: %+v", zero)
	}

	// The table and the JSON carry it.
	var table strings.Builder
	if err := in.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"inventory+order", "suite total", "2500", "50.00", "sagasuite_outbox_published_total", "note: "} {
		if !strings.Contains(table.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, table.String())
		}
	}
	js, err := json.Marshal(Result{Instruments: in})
	if err != nil || !strings.Contains(string(js), `"suite_cpu_ms_per_saga":50`) || !strings.Contains(string(js), `"per_saga":20`) {
		t.Errorf("JSON %s, %v", js, err)
	}
}

const metricsText = `# HELP sagasuite_bus_handled_total handler runs by outcome
# TYPE sagasuite_bus_handled_total counter
sagasuite_bus_handled_total{group="order",outcome="ok",type="STOCK_RESERVED"} 40
sagasuite_bus_handled_total{group="order",outcome="error",type="STOCK_RESERVED"} 2
# HELP sagasuite_outbox_batch_duration_seconds relay batches
# TYPE sagasuite_outbox_batch_duration_seconds histogram
sagasuite_outbox_batch_duration_seconds_bucket{le="0.1"} 9
sagasuite_outbox_batch_duration_seconds_bucket{le="+Inf"} 11
sagasuite_outbox_batch_duration_seconds_sum 0.4
sagasuite_outbox_batch_duration_seconds_count 11
# HELP sagasuite_bus_consumer_lag records behind
# TYPE sagasuite_bus_consumer_lag gauge
sagasuite_bus_consumer_lag{group="order"} 3
# HELP go_goroutines goroutines
# TYPE go_goroutines gauge
go_goroutines 42
# HELP rpc_calls_total not ours
# TYPE rpc_calls_total counter
rpc_calls_total 5
`

func TestCountersOfPrometheusText(t *testing.T) {
	families, err := parseMetrics(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	got := countersOf("order", families)
	want := map[[2]string]float64{
		{"order", "sagasuite_bus_handled_total"}:                   42,
		{"order", "sagasuite_outbox_batch_duration_seconds_count"}: 11,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("= %v, want %v (counters summed over labels, histogram counts; no gauges, nothing not sagasuite_)", got, want)
	}
	if _, err := parseMetrics(strings.NewReader("# TYPE x counter\nx{ 1\n")); err == nil {
		t.Error("malformed exposition parsed")
	}
}

func TestParseServers(t *testing.T) {
	got, err := ParseServers(DefaultServers)
	if err != nil || len(got) != 5 || got[0].Name != "kafka" || got[0].Addr != "127.0.0.1:19092" || got[4].Addr != "127.0.0.1:19042" {
		t.Fatalf("defaults = %+v, %v", got, err)
	}
	got, err = ParseServers("postgres=,cassandra=127.0.0.1:9042")
	if err != nil || len(got) != 2 || got[0].Name != "postgres" || got[0].Addr != "" || got[0].Match == nil {
		t.Fatalf("subset = %+v, %v", got, err)
	}
	if got, err := ParseServers("none"); err != nil || got != nil {
		t.Fatalf("none = %+v, %v", got, err)
	}
	for in, want := range map[string]string{
		"kafka":                             "not name=host:port",
		"redis=127.0.0.1:6379":              "unknown [redis]",
		"kafka=1:2,kafka=1:3":               "given twice",
		"mariadb=localhost":                 "not host:port",
		"kafka=127.0.0.1:19092,mariadb=x:y": "not host:port",
	} {
		if _, err := ParseServers(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseServers(%q) = %v, want an error with %q", in, err, want)
		}
	}
}
