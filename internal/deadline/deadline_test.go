package deadline

import (
	"testing"
	"time"
)

func TestRolling(t *testing.T) {
	var r Rolling
	by, ok := r.Next(time.Hour)
	if !ok || time.Until(by) < 59*time.Minute {
		t.Fatalf("first Next = %v, %v; want a deadline an hour ahead", by, ok)
	}
	if _, ok := r.Next(time.Hour); ok {
		t.Error("Next moved a deadline that still had more than half its time")
	}
	if _, ok := r.Next(3 * time.Hour); !ok {
		t.Error("Next kept a deadline with less than half of a longer timeout left")
	}
	if !r.Forget() || r.Forget() {
		t.Error("Forget should report the owner's deadline once")
	}
	if _, ok := r.Next(time.Hour); !ok {
		t.Error("Next after Forget set nothing")
	}
}
