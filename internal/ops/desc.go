package ops

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
)

// descName reads a family's name from its descriptor: client_golang keeps
// it unexported, and its String form is the one stable way to see it.
var descNamePattern = regexp.MustCompile(`fqName: "([^"]+)"`)

func descName(d *prometheus.Desc) string {
	if m := descNamePattern.FindStringSubmatch(d.String()); m != nil {
		return m[1]
	}
	return d.String()
}
