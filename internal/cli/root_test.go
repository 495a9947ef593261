package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestVersionJSON(t *testing.T) {
	out, _, code := run(t, "version", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	if v.Version == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Fatalf("incomplete version info: %+v", v)
	}
}

func TestCompletionBash(t *testing.T) {
	out, _, code := run(t, "completion", "bash")
	if code != ExitOK || !strings.Contains(out, "srp-mpathd") {
		t.Fatalf("completion bash: exit %d, %d bytes", code, len(out))
	}
}

func TestBadInput(t *testing.T) {
	for _, args := range [][]string{{"no-such-command"}, {"version", "--bogus"}, {"version", "extra"}} {
		_, stderr, code := run(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, ExitUsage, stderr)
		}
		if !strings.Contains(stderr, "srp-mpathd:") {
			t.Errorf("%v: stderr does not explain: %q", args, stderr)
		}
	}
}
