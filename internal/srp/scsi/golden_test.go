package scsi

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Golden files are hex text: '#' starts a comment, white space is ignored.
// Record files (cdb.hex) hold "<name>: <hex>" lines.

func decodeHexText(t testing.TB, what, text string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("%s: bad hex: %v", what, err)
	}
	return b
}

// golden reads testdata/<name>.
func golden(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return decodeHexText(t, name, string(text))
}

type record struct {
	name string
	data []byte
}

// goldenRecords reads testdata/<name> as "<name>: <hex>" records, in order.
func goldenRecords(t testing.TB, name string) []record {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) != "" {
				t.Fatalf("%s: line without a name: %q", name, line)
			}
			continue
		}
		recs = append(recs, record{strings.TrimSpace(key), decodeHexText(t, name+":"+key, val)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func goldenRecord(t testing.TB, recs []record, name string) []byte {
	t.Helper()
	for _, r := range recs {
		if r.name == name {
			return r.data
		}
	}
	t.Fatalf("no golden record %q", name)
	return nil
}

func mustEqualBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got % x\nwant % x", what, got, want)
	}
}
