package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

func TestDiscoverBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"discover", "--port", "mlx5_0"}, "--port"},
		{[]string{"discover", "--port", "mlx5_0:0"}, "--port"},
		{[]string{"discover", "--pkey", "0xzz"}, "--pkey"},
		{[]string{"discover", "--pkey", "0x0000"}, "--pkey"},
		{[]string{"discover", "--config", filepath.Join("testdata", "bad.yaml")}, "bad.yaml"},
	} {
		_, stderr, code := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", tc.args, code, stderr, ExitUsage, tc.want)
		}
	}
}

// TestDiscoverStaticRoCE runs discovery over a simulated RoCE-only fabric:
// there is no subnet administrator, so exactly the configuration's static
// targets come back, in add_target form and as JSON.
func TestDiscoverStaticRoCE(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(`targets:
  - address: 198.18.1.2
    port: 5000
    id_ext: 0x0002c90300a1b2c3
`), 0o600); err != nil {
		t.Fatal(err)
	}
	fab := sim.New(sim.Config{Seed: 1})
	defer fab.Close()
	if err := fab.AddDevice("rxe0", sim.PortConfig{LinkLayer: verbs.LinkEthernet}); err != nil {
		t.Fatal(err)
	}
	for _, asJSON := range []bool{false, true} {
		o := discoverOpts{configFile: cfg, asJSON: asJSON}
		var out, errb bytes.Buffer
		opts, err := o.options(&errb)
		if err != nil {
			t.Fatal(err)
		}
		cmd := &cobra.Command{}
		cmd.SetOut(&out)
		if err := runDiscover(cmd, fab, opts, asJSON); err != nil {
			t.Fatalf("runDiscover: %v (log %s)", err, errb.String())
		}
		if !asJSON {
			want := "id_ext=0002c90300a1b2c3,ioc_guid=0002c90300a1b2c3"
			if got := out.String(); !strings.Contains(got, want) || !strings.Contains(got, "dest=198.18.1.2:5000") || strings.Count(got, "\n") != 1 {
				t.Fatalf("discover printed %q; want one line with %q and dest=198.18.1.2:5000", got, want)
			}
			continue
		}
		var ts []json.RawMessage
		if err := json.Unmarshal(out.Bytes(), &ts); err != nil || len(ts) != 1 {
			t.Fatalf("discover --json: %v, %d targets:\n%s", err, len(ts), out.String())
		}
	}
}
