package fsm_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// bannedImports are the packages the pure core must not import (STYLE.md
// item 1, DESIGN.md: no goroutines, clock, I/O or logging). Entries ending in
// "/" ban a whole tree.
var bannedImports = []string{
	"os", "os/", "net", "net/", "sync", "sync/", "syscall", "log", "log/",
	"math/rand", "math/rand/", "io", "io/", "bufio", "unsafe", "time/tzdata",
	"golang.org/x/sys/",
	"github.com/srp-mpathd/srp-mpathd/internal/verbs",
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/",
	"github.com/srp-mpathd/srp-mpathd/internal/ublk",
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/",
	"github.com/srp-mpathd/srp-mpathd/internal/store",
	"github.com/srp-mpathd/srp-mpathd/internal/store/",
	"github.com/srp-mpathd/srp-mpathd/internal/clock",
}

// bannedTimeCalls read or wait on the wall clock.
var bannedTimeCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

func banned(imp string) bool {
	for _, b := range bannedImports {
		if imp == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(imp, b)) {
			return true
		}
	}
	return false
}

// TestImportsArePure asks the go tool for the package's own imports (not its
// tests') and fails on any banned one.
func TestImportsArePure(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not in PATH (%v); go test normally puts GOROOT/bin there", err)
	}
	out, err := exec.Command(goTool, "list", "-f", `{{join .Imports " "}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("go list reported no imports; the check would prove nothing")
	}
	for _, imp := range imports {
		if banned(imp) {
			t.Errorf("internal/fsm imports %s: the state machine must stay pure (no clock, I/O, goroutine sync or logging)", imp)
		}
	}
}

// TestNoClockNoGoroutines parses the package's non-test files and fails on a
// call to a wall-clock function of package time, a go statement, a select or
// a channel type.
func TestNoClockNoGoroutines(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, v := range impurities(fset, f) {
			t.Errorf("%s", v)
		}
	}
	if checked == 0 {
		t.Fatal("no package files found; the check would prove nothing")
	}
}

// TestImpurityCheckerBites shows that the checker above finds what it looks
// for, including a renamed import, so it cannot pass by being blind.
func TestImpurityCheckerBites(t *testing.T) {
	const src = `package x

import clk "time"

func g(any) {}

func f() {
	_ = clk.Now()
	clk.Sleep(1)
	g(clk.After)
	go f()
	var c chan int
	select { case <-c: }
	_ = clk.Duration(1) // allowed: a type, not a clock read
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got := impurities(fset, f)
	want := []string{"time.Now", "time.Sleep", "time.After", "go statement", "channel type", "select statement"}
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("checker missed %s; found %q", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("checker found %d impurities, want %d: %q", len(got), len(want), got)
	}
}

func impurities(fset *token.FileSet, f *ast.File) []string {
	timeName := ""
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if path != "time" {
			continue
		}
		timeName = "time"
		if imp.Name != nil {
			timeName = imp.Name.Name
		}
	}
	var found []string
	report := func(n ast.Node, what string) {
		found = append(found, fset.Position(n.Pos()).String()+": "+what)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			// A reference, called or not (time.Now passed as a func value
			// reads the clock just the same).
			if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && bannedTimeCalls[n.Sel.Name] {
				report(n, "uses time."+n.Sel.Name)
			}
		case *ast.GoStmt:
			report(n, "go statement")
		case *ast.SelectStmt:
			report(n, "select statement")
		case *ast.ChanType:
			report(n, "channel type")
		}
		return true
	})
	return found
}

func TestBannedImportList(t *testing.T) {
	for _, imp := range []string{
		"os", "os/exec", "net", "net/netip", "sync", "sync/atomic", "syscall", "log", "log/slog",
		"math/rand", "math/rand/v2", "io", "io/fs", "bufio", "unsafe", "golang.org/x/sys/unix",
		"github.com/srp-mpathd/srp-mpathd/internal/verbs", "github.com/srp-mpathd/srp-mpathd/internal/verbs/sim",
		"github.com/srp-mpathd/srp-mpathd/internal/ublk", "github.com/srp-mpathd/srp-mpathd/internal/store",
		"github.com/srp-mpathd/srp-mpathd/internal/clock",
	} {
		if !banned(imp) {
			t.Errorf("%s is not banned", imp)
		}
	}
	for _, imp := range []string{"time", "errors", "strconv", "strings", "math", "slices", "iotest", "network"} {
		if banned(imp) {
			t.Errorf("%s is banned but harmless", imp)
		}
	}
}
