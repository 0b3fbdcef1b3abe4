// Package telemetrytest lets tests read the metrics code records through the
// global OpenTelemetry meter provider, as Prometheus would scrape them.
package telemetrytest

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Install makes the global meter provider export to a fresh Prometheus
// registry (the exporter telemetry.Setup uses, so names and labels are the
// ones /metrics shows) and puts a no-op provider back when the test ends.
// Instruments are taken from the global provider when code creates them:
// install before starting what records. Not for parallel tests.
func Install(t testing.TB) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatalf("prometheus exporter: %v", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	otel.SetMeterProvider(provider)
	t.Cleanup(func() {
		otel.SetMeterProvider(noop.NewMeterProvider())
		_ = provider.Shutdown(t.Context())
	})
	return reg
}

// Series is one scraped sample: for a counter or gauge its value, for a
// histogram its count and sum.
type Series struct {
	Labels map[string]string
	Value  float64 // counter, gauge; histogram: count
	Sum    float64 // histogram only
}

// Find returns the series of the Prometheus family name (as exposed, e.g.
// "messaging_client_sent_messages_total" is family
// "messaging_client_sent_messages_total") whose labels include want.
func Find(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) []Series {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var out []Series
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if !matches(labels, want) {
				continue
			}
			out = append(out, sample(labels, m))
		}
	}
	return out
}

// Total is the sum of Value over Find's series: 0 when there are none.
func Total(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	total := 0.0
	for _, s := range Find(t, reg, name, want) {
		total += s.Value
	}
	return total
}

// Names lists the family names gathered, for failure messages.
func Names(t testing.TB, reg prometheus.Gatherer, prefix string) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var names []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), prefix) {
			names = append(names, f.GetName())
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func sample(labels map[string]string, m *dto.Metric) Series {
	switch {
	case m.Counter != nil:
		return Series{Labels: labels, Value: m.GetCounter().GetValue()}
	case m.Gauge != nil:
		return Series{Labels: labels, Value: m.GetGauge().GetValue()}
	case m.Histogram != nil:
		return Series{Labels: labels, Value: float64(m.GetHistogram().GetSampleCount()), Sum: m.GetHistogram().GetSampleSum()}
	}
	return Series{Labels: labels}
}
