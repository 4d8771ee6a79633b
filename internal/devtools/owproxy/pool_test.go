package owproxy

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

func startPool(t *testing.T, n int, opts Options) *Pool {
	t.Helper()
	pl, err := StartPool(testCtx(t), echoExec, n, opts)
	if err != nil {
		t.Fatalf("StartPool: %v", err)
	}
	t.Cleanup(func() { _ = pl.Close() })
	return pl
}

func TestPoolRunsConcurrently(t *testing.T) {
	const procs, runs, sleep = 3, 9, 200 * time.Millisecond
	var logs syncBuffer // one writer for everything, not safe on its own
	pl := startPool(t, procs, Options{Stdout: &logs, Stderr: &logs})
	if pl.Size() != procs {
		t.Fatalf("Size = %d", pl.Size())
	}
	begin := time.Now()
	var mu sync.Mutex
	pids := map[int]int{}
	var wg sync.WaitGroup
	for range runs {
		wg.Go(func() {
			status, body, err := pl.Run(testCtx(t), map[string]any{"sleep_ms": sleep.Milliseconds(), "stdout": "hi"}, RunMeta{})
			if status != 200 || err != nil {
				t.Errorf("Run = %d %s %v", status, body, err)
				return
			}
			mu.Lock()
			pids[decodeEcho(t, body).Pid]++
			mu.Unlock()
		})
	}
	wg.Wait()
	// Sequential would be runs*sleep = 1.8 s; three at a time is ~0.6 s.
	if elapsed := time.Since(begin); elapsed > runs*sleep*3/4 {
		t.Errorf("%d runs took %v: not concurrent", runs, elapsed)
	}
	if len(pids) != procs {
		t.Errorf("activations ran on %d processes (%v), want %d", len(pids), pids, procs)
	}
	if n := bytes.Count(logs.Bytes(), []byte(Sentinel)); n != 2*runs {
		t.Errorf("%d sentinels in the shared writer, want %d", n, 2*runs)
	}
}

func TestPoolReplacesAProcessAfterADeveloperError(t *testing.T) {
	pl := startPool(t, 1, Options{})
	ctx := testCtx(t)
	if status, _, _ := pl.Run(ctx, map[string]any{"exit": 1}, RunMeta{}); status != 400 {
		t.Fatalf("crash status = %d, want 400", status)
	}
	if status, _, err := pl.Run(ctx, map[string]any{"raw": "garbage"}, RunMeta{}); status != 502 || err != nil {
		t.Fatalf("garbage status = %d %v, want 502", status, err)
	}
	if _, _, err := pl.Run(ctx, map[string]any{"sleep_ms": 5000}, RunMeta{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrTimeLimit) {
		t.Fatalf("time limit err = %v", err)
	}
	for i := range 3 {
		if status, body, err := pl.Run(ctx, nil, RunMeta{}); status != 200 || err != nil {
			t.Fatalf("run %d after the failures = %d %s %v", i, status, body, err)
		}
	}
	if n := len(pl.Logs()); n != 4 {
		t.Errorf("pool started %d processes, want 4 (one + three cold starts)", n)
	}
}

func TestPoolStartFailure(t *testing.T) {
	_, err := StartPool(testCtx(t), echoExec, 2, Options{InitEnv: map[string]any{"ECHO_MODE": "exit"}})
	if !errors.Is(err, ErrExitedDuringInit) {
		t.Errorf("err = %v, want ErrExitedDuringInit", err)
	}
	if _, err := StartPool(testCtx(t), echoExec, 0, Options{}); err == nil {
		t.Errorf("size 0: want an error")
	}
}

func TestPoolClosed(t *testing.T) {
	pl := startPool(t, 2, Options{})
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pl.Run(testCtx(t), nil, RunMeta{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: err = %v, want ErrClosed", err)
	}
}

func TestPoolWaitsForAFreeProcessWithinContext(t *testing.T) {
	pl := startPool(t, 1, Options{})
	go func() { _, _, _ = pl.Run(testCtx(t), map[string]any{"sleep_ms": 1000}, RunMeta{}) }()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := contextWithTimeout(t, 100*time.Millisecond)
	defer cancel()
	if _, _, err := pl.Run(ctx, nil, RunMeta{}); err == nil {
		t.Errorf("want an error when no process frees up in time")
	}
}
