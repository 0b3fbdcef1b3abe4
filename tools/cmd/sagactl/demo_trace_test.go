package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/tools/internal/demo"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// consoleSpan is the part of a stdouttrace line the test reads.
type consoleSpan struct {
	Name        string
	SpanContext struct{ TraceID string }
	Resource    []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s consoleSpan) serviceName() string {
	for _, kv := range s.Resource {
		if kv.Key == "service.name" {
			name, _ := kv.Value.Value.(string)
			return name
		}
	}
	return ""
}

// OTEL_TRACES_EXPORTER=console with `sagactl demo --dev` (make demo): spans
// are JSON lines on stderr, none on stdout (which is the table and, last,
// the summary line), and they carry the five services' service.name.
func TestDemoConsoleTracesGoToStderr(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hung stack, not a speed target
	defer cancel()
	var stdout bytes.Buffer
	stderr := &testenv.SyncBuffer{}
	code := run(ctx, []string{"demo", "--dev"}, &stdout, stderr)
	errText := stderr.String()
	if code != exitOK {
		t.Fatalf("sagactl demo --dev = %d\nstdout:\n%s\nstderr (end):\n%s", code, stdout.String(), tail(errText, 4000))
	}

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum demo.Summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || !sum.OK() {
		t.Errorf("stdout's last line is not an OK summary (%v): %s", err, lines[len(lines)-1])
	}
	if strings.Contains(stdout.String(), `"SpanContext"`) {
		t.Errorf("spans on stdout:\n%.2000s", stdout.String())
	}

	services := map[string]int{}
	byTrace := map[string]map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(errText))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(`{"Name":`)) {
			continue // progress and log lines
		}
		var s consoleSpan
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("span line is not JSON: %v\n%.500s", err, line)
		}
		svc := s.serviceName()
		services[svc]++
		// The stack's own name is left to its in-process MongoDB's spans; a
		// service's gRPC or messaging span must carry the service's.
		if svc == "sagasuite-dev" && (strings.HasPrefix(s.Name, "sagasuite.") || strings.HasPrefix(s.Name, "publish ") ||
			strings.HasPrefix(s.Name, "send ") || strings.HasPrefix(s.Name, "process ")) {
			t.Errorf("service span %q carries the stack's service.name", s.Name)
		}
		if byTrace[s.SpanContext.TraceID] == nil {
			byTrace[s.SpanContext.TraceID] = map[string]bool{}
		}
		byTrace[s.SpanContext.TraceID][svc] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("spans per service.name: %v; %d traces", services, len(byTrace))
	for _, name := range suite.Services {
		if services[name] == 0 {
			t.Errorf("no span with service.name %q; got %v", name, services)
		}
	}
	// The traceparent Kafka headers already carry a saga's trace from
	// service to service: some trace (the completed saga's) holds all five.
	best := 0
	var bestSet []string
	for _, set := range byTrace {
		if len(set) > best {
			best, bestSet = len(set), nil
			for name := range set {
				bestSet = append(bestSet, name)
			}
		}
	}
	sort.Strings(bestSet)
	t.Logf("widest trace holds %d service names: %v", best, bestSet)
	if best != len(suite.Services) {
		t.Errorf("no trace holds all five services' spans; the widest holds %v", bestSet)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
