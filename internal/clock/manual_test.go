package clock

import (
	"testing"
	"time"
)

func TestManualOrderAndStop(t *testing.T) {
	start := time.Unix(1000, 0)
	m := NewManual(start)
	var got []string
	m.AfterFunc(2*time.Second, func() { got = append(got, "b") })
	m.AfterFunc(time.Second, func() { got = append(got, "a") })
	c := m.AfterFunc(time.Second, func() { got = append(got, "cancelled") })
	m.AfterFunc(2*time.Second, func() {
		got = append(got, "c")
		// A callback scheduling another that falls due within the same Advance runs too.
		m.AfterFunc(500*time.Millisecond, func() { got = append(got, "d@"+m.Now().Sub(start).String()) })
	})
	if !c.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	if c.Stop() {
		t.Fatal("second Stop returned true")
	}
	m.Advance(3 * time.Second)
	want := []string{"a", "b", "c", "d@2.5s"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if d := m.Now().Sub(start); d != 3*time.Second {
		t.Fatalf("clock at %v, want 3s", d)
	}
	if _, ok := m.Next(); ok {
		t.Fatal("timers left after Advance")
	}
}
