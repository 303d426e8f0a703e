package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/stratadb/strata/internal/configdoc"
)

// dashboardPath is the Grafana dashboard checked against the inventory.
const dashboardPath = "deploy/grafana/strata-dashboard.json"

var (
	promStringRE   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatcherRE  = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	promGroupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promTokenRE    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
)

// promKeywords are PromQL words that are not metric names (aggregation
// operators, binary operators, modifiers); functions are recognised by the
// parenthesis that follows them.
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// metricNames returns the metric names a PromQL expression selects. It is a
// scanner, not a PromQL parser: it removes strings, label matchers, range
// selectors and grouping clauses, then keeps the identifiers that are not
// followed by "(" (functions, aggregations) and are not keywords.
func metricNames(expr string) []string {
	s := promStringRE.ReplaceAllString(expr, `""`)
	for {
		next := promMatcherRE.ReplaceAllString(s, " ")
		if next == s {
			break
		}
		s = next
	}
	s = promGroupingRE.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promTokenRE.FindAllStringSubmatch(s, -1) {
		tok := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), "("))
		if m[1] != "" || promKeywords[strings.ToLower(tok)] {
			continue
		}
		out = append(out, tok)
	}
	return out
}

// checkDashboard reports every query of the dashboard JSON that selects a
// metric absent from inv, or selects none; it returns the number of
// queries checked.
func checkDashboard(data []byte, inv []configdoc.Metric) (int, []string) {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, []string{fmt.Sprintf("not JSON: %v", err)}
	}
	known := map[string]string{}
	for _, m := range inv {
		known[m.Name] = m.Type
		switch m.Type {
		case "histogram":
			known[m.Name+"_bucket"], known[m.Name+"_sum"], known[m.Name+"_count"] = m.Type, m.Type, m.Type
		case "summary":
			known[m.Name+"_sum"], known[m.Name+"_count"] = m.Type, m.Type
		}
	}
	var problems []string
	n := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "expr" {
					expr, ok := c.(string)
					if !ok {
						problems = append(problems, path+".expr is not a string")
						continue
					}
					n++
					names := metricNames(expr)
					if len(names) == 0 {
						problems = append(problems, fmt.Sprintf("%s: %q selects no metric", path, expr))
					}
					for _, name := range names {
						if _, ok := known[name]; !ok {
							problems = append(problems, fmt.Sprintf("%s: %q uses %s, which no code declares", path, expr, name))
						}
					}
					continue
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("$", doc)
	return n, problems
}
