package daemon

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// Bounds of the demo's stalls on the simulated fabric (simulated time):
// a port error is seen at once, a blackhole by the heartbeat (interval +
// timeout), a DREQ at once.
var demoStallMax = map[string]time.Duration{
	"linkdown":  100 * time.Millisecond,
	"blackhole": 1500 * time.Millisecond,
	"dreq":      100 * time.Millisecond,
}

func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rep, err := RunDemo(context.Background(), DemoOptions{Duration: 15 * time.Second, Depth: 1, LinkLatency: 2 * time.Millisecond, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", rep)
		if !rep.OK() {
			t.Fatalf("%d I/O failed: %v", rep.FailedIOs, rep.ErrorSamples)
		}
		if len(rep.Scenarios) != len(demoScenarios) {
			t.Fatalf("%d scenarios", len(rep.Scenarios))
		}
		for _, s := range rep.Scenarios {
			if s.IOs == 0 {
				t.Errorf("%s: no I/O completed after the fault", s.Name)
			}
			if max := demoStallMax[s.Name]; time.Duration(s.StallMs)*time.Millisecond > max {
				t.Errorf("%s: stall %d ms > %v", s.Name, s.StallMs, max)
			}
			// A blackholed path reconnects only after its CM timeouts and
			// the reconnect backoff, which may outlast a short slot.
			if !s.Recovered && s.Name != "blackhole" {
				t.Errorf("%s: path %s did not return (%s)", s.Name, s.Path, s.PathState)
			}
		}
	})
}
