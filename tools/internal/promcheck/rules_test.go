package promcheck_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sagasuite/sagasuite/tools/internal/promcheck"
)

var (
	repo       = filepath.Join("..", "..", "..")
	promDir    = filepath.Join(repo, "deploy", "prometheus")
	rulesFile  = "sagasuite-rules.yml"
	configFile = "prometheus.yml"
)

// promtool accepts the rules and the scrape config, and the rules' unit
// tests (sagasuite-rules_test.yml) pass.
func TestPromtoolChecksAndUnitTestsTheRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"check", "config", configFile},
		{"test", "rules", "sagasuite-rules_test.yml"},
	} {
		out, err := promcheck.Promtool(ctx, promDir, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "SUCCESS") {
			t.Fatalf("promtool %s: no SUCCESS in\n%s", strings.Join(args, " "), out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// known loads the README's metric names and the rules' recorded names.
func known(t *testing.T) (documented, recorded map[string]bool, rules ruleFile) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if documented, err = promcheck.DocumentedMetrics(readme); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(promDir, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	recorded = map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	return documented, recorded, rules
}

// Every rule reads only metrics the services export (the README's list),
// Prometheus' up, or an earlier recording rule: a typo never yields a rule
// that is silently always empty.
func TestRulesReferenceOnlyExistingMetrics(t *testing.T) {
	documented, recorded, rules := known(t)
	for _, want := range []string{"sagasuite_saga_duration_seconds", "sagasuite_bus_dead_lettered_total", "sagasuite_outbox_oldest_unsent_age_seconds"} {
		if !documented[want] {
			t.Fatalf("README's metric list lacks %s (parsed %d names)", want, len(documented))
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names := promcheck.MetricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("rule %s%s: no metric found in %q", r.Record, r.Alert, r.Expr)
			}
			for _, name := range names {
				n++
				if !promcheck.Known(name, documented, recorded) {
					t.Errorf("rule %s%s references %s, which no service exports and no rule records", r.Record, r.Alert, name)
				}
			}
		}
	}
	t.Logf("%d metric references checked", n)
}

func TestMetricNamesOfAnExpression(t *testing.T) {
	got := promcheck.MetricNames(`histogram_quantile(0.99, sum by (le, outcome) (rate(sagasuite_saga_duration_seconds_bucket{reason!="x_y"}[5m]))) / on () sagasuite:foo unless up`)
	want := []string{"sagasuite:foo", "sagasuite_saga_duration_seconds_bucket", "up"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// The Grafana dashboard is valid JSON and every panel's PromQL reads metrics
// that exist.
func TestGrafanaDashboardParsesAndReadsExistingMetrics(t *testing.T) {
	documented, recorded, _ := known(t)
	raw, err := os.ReadFile(filepath.Join(repo, "deploy", "grafana", "sagasuite.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("sagasuite.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 6 {
		t.Fatalf("dashboard title %q uid %q with %d panels: want a titled dashboard of at least 6 panels", dash.Title, dash.UID, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := promcheck.MetricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, name := range names {
				if !promcheck.Known(name, documented, recorded) {
					t.Errorf("panel %q references %s, which no service exports and no rule records", p.Title, name)
				}
			}
		}
	}
}
