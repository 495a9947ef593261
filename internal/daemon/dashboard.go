package daemon

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"slices"
	"time"
)

// dashboardLimit is how many transitions the page shows.
const dashboardLimit = 50

// dashboardSrc is the built-in dashboard: one page rendered on the server
// from the same views the API serves, no external assets, and a small
// script that then polls the read-only JSON API of the same listener
// (/v1/topology, /v1/transitions) to keep it live.
//
//go:embed dashboard.html
var dashboardSrc string

var dashboardTmpl = template.Must(template.New("dashboard").Parse(dashboardSrc))

type dashboardData struct {
	Status      Status
	Topology    []TopologyView
	Transitions []TransitionView
	Rendered    string
}

// serveDashboard renders the page.
func (d *Daemon) serveDashboard(w http.ResponseWriter, _ *http.Request) {
	topo, _ := d.Topology("")
	trs := d.Transitions(dashboardLimit)
	slices.Reverse(trs) // newest first, as the script renders them
	data := dashboardData{Status: d.Status(), Topology: topo, Transitions: trs, Rendered: time.Now().UTC().Format(time.TimeOnly)}
	var buf bytes.Buffer
	if err := dashboardTmpl.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page loads nothing from elsewhere; the browser is told so.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	_, _ = w.Write(buf.Bytes())
}
