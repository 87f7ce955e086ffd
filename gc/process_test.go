package gc

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestProcessGone(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no process check on this platform")
	}
	// A child killed but not yet reaped is a zombie: gone as far as a
	// lease is concerned.
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	pid := sleeper.Process.Pid
	tests := []struct {
		name string
		pid  int
		gone bool
	}{
		{"this process", os.Getpid(), false},
		{"a running child", pid, false},
		{"no pid", 0, false},
	}
	for _, tc := range tests {
		if got := processGone(tc.pid); got != tc.gone {
			t.Errorf("%s: gone %v, want %v", tc.name, got, tc.gone)
		}
	}
	if err := sleeper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) { // a zombie until Wait below
		if time.Now().After(deadline) {
			t.Fatal("a killed, unreaped child is not gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = sleeper.Wait()
	if !processGone(pid) {
		t.Fatal("a reaped child is not gone")
	}
}
