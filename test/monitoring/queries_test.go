package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

// dashboardQueries returns every panel target and query variable of a
// Grafana dashboard.
func dashboardQueries(t *testing.T, path string) []query {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var qs []query
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		// label_values(selector, label) is Grafana's, around a selector.
		m := labelValuesRE.FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable %q: query %q is not label_values(selector, label)", v.Name, v.Query)
			continue
		}
		qs = append(qs, query{fmt.Sprintf("variable %q", v.Name), m[1]})
	}
	return qs
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// ruleQueries returns the expression of every rule of a PrometheusRule.
func ruleQueries(t *testing.T, path string) []query {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert  string `json:"alert"`
					Record string `json:"record"`
					Expr   string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &pr); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var qs []query
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{fmt.Sprintf("group %s rule %s%s", g.Name, r.Alert, r.Record), r.Expr})
		}
	}
	return qs
}

// grafanaVars are Grafana's variables: replaced by values that keep the
// PromQL valid, a duration for intervals and a regexp for the rest.
var grafanaVars = regexp.MustCompile(`\$(__rate_interval|__interval|__range)|\$\{?\w+\}?`)

func substitute(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		if v == "$__rate_interval" || v == "$__interval" || v == "$__range" {
			return "5m"
		}
		return ".*"
	})
}

// metricNames parses expr and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		names = append(names, name)
		return nil
	})
	sort.Strings(names)
	return names, nil
}

func TestDashboardAndRulesQueryExportedMetrics(t *testing.T) {
	names := exportedMetrics(t)
	sources := map[string][]query{
		"config/grafana/otafleet.json": dashboardQueries(t, "../../config/grafana/otafleet.json"),
		"config/prometheus/rules.yaml": ruleQueries(t, "../../config/prometheus/rules.yaml"),
	}
	for file, qs := range sources {
		if len(qs) < 5 {
			t.Errorf("%s: only %d queries found; is the file read right?", file, len(qs))
		}
		for _, q := range qs {
			used, err := metricNames(substitute(q.expr))
			if err != nil {
				t.Errorf("%s %s: %q does not parse: %v", file, q.where, q.expr, err)
				continue
			}
			if len(used) == 0 {
				t.Errorf("%s %s: %q selects no metric", file, q.where, q.expr)
			}
			for _, name := range used {
				if !exported(names, name) {
					t.Errorf("%s %s: %s is not a metric the operator exports", file, q.where, name)
				}
			}
		}
	}
}

// TestMetricNamesSeesEverySelector guards the check above against a parser
// walk that would find nothing and so pass everything.
func TestMetricNamesSeesEverySelector(t *testing.T) {
	got, err := metricNames(substitute(`sum(rate(a_total{job=~"$job"}[$__rate_interval])) / {__name__="b"} and on() c`))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[a_total b c]" {
		t.Errorf("metricNames = %v, want [a_total b c]", got)
	}
	if _, err := metricNames("sum(rate(x[5m])"); err == nil {
		t.Error("an unbalanced expression parsed")
	}
}
