package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/internal/daemontest"
)

// ruleFile is the part of a Prometheus rule file the test reads; decoded
// strictly, so a misspelt key fails.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// promtool is Prometheus's own checker, from Debian's prometheus package
// (installed by .ci/run). Its absence fails the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	return p
}

// TestAlertRules: deploy/prometheus/alerts.yml is valid YAML with the
// rules deploy/README.md promises, passes `promtool check rules`, and
// names only metrics a running daemon exports.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var alerts, exprs []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			exprs = append(exprs, r.Expr)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: want a severity label and a summary", r.Alert)
			}
		}
	}
	for _, want := range []string{"KeygateBlockedRateSpike", "KeygateUsageLogDrops", "KeygateStoreUnreachable", "KeygateChangeFeedLag"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml has no %s (has %v)", want, alerts)
		}
	}
	if out, err := exec.Command(promtool(t), "check", "rules", "prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	checkNames(t, "alerts.yml", exprs, exportedMetrics(t))
}

// TestGrafanaDashboard: deploy/grafana/keygate.json is valid JSON, has
// the promised panels, every query parses as PromQL (promtool, with
// Grafana's variables substituted) and names only exported metrics.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/keygate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("keygate.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("keygate.json: no uid or title")
	}
	var titles, exprs []string
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, want := range []string{"Decisions by outcome", "Decision latency", "Usage-log queue", "Usage-log records", "Store up", "Change lag"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard has no panel %q (has %v)", want, titles)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(([^,]+),`)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok {
			if m := labelValues.FindStringSubmatch(q); m != nil {
				exprs = append(exprs, m[1])
			}
		}
	}

	// promtool parses each query as a recording rule's expression.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", "keygate", "$instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(grafana.Replace(e)) // a JSON string is a YAML string
		rules.WriteString("  - record: dashboard:query" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "\n    expr: " + string(q) + "\n")
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, rules.String())
	}
	checkNames(t, "keygate.json", exprs, exportedMetrics(t))
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promNumbers   = regexp.MustCompile(`\b\d[0-9.e+]*[a-z]*\b`) // 0.99, 3, 1h, 1e-3
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	promKeywords  = []string{"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring", "group_left", "group_right"}
	histogramPart = regexp.MustCompile(`_(bucket|sum|count)$`)
)

// metricNames returns the metric names a PromQL expression selects: its
// identifiers that are not functions, keywords, label names in grouping
// clauses, strings or durations.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	e = promNumbers.ReplaceAllString(e, " ")
	var out []string
	for _, id := range promIdent.FindAllString(e, -1) {
		id = strings.TrimSpace(id)
		if strings.HasSuffix(id, "(") || slices.Contains(promKeywords, strings.ToLower(id)) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// checkNames fails for every metric an expression names that the daemon
// does not export ("up" is Prometheus's own; a histogram's _bucket, _sum
// and _count belong to it).
func checkNames(t *testing.T, file string, exprs []string, exported map[string]*dto.MetricFamily) {
	t.Helper()
	seen := 0
	for _, e := range exprs {
		for _, name := range metricNames(e) {
			seen++
			if name == "up" || exported[name] != nil {
				continue
			}
			if base := histogramPart.ReplaceAllString(name, ""); exported[base].GetType() == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s: %q names %s, which the daemon does not export", file, e, name)
		}
	}
	if seen == 0 {
		t.Errorf("%s: no metric names found in %v", file, exprs)
	}
}

// exportedMetrics starts the real daemon, makes it decide a check (so
// the request counter has a series), and parses its /metrics.
func exportedMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	d := startKeygate(t, false)
	if _, err := daemontest.Request(nil, "POST", d.URL()+"/v1/check", "", map[string]string{"key": "kg_nope", "ip": "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	r, err := daemontest.Request(nil, "GET", d.AdminURL()+"/metrics", "", nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("/metrics: %v %d", err, r.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return fams
}

// TestMetricNames keeps metricNames honest.
func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (le, instance) (rate(keygate_decision_duration_seconds_bucket{job="k", a=~"x|y"}[5m]))`: {"keygate_decision_duration_seconds_bucket"},
		`a / on (instance) group_left b > 3 * c offset 1h and up == 0`:                                  {"a", "b", "c", "up"},
		`histogram_quantile(0.99, x)`: {"x"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}
