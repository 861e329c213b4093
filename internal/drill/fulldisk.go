package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The full-disk drill puts the warehouse on a small volume of its own
// (tmpfs), fills it while the sink writes, grows it as an operator would,
// applies the runbook and checks nothing was lost, nothing partial was
// committed, and the sink resumed by itself.

const fullDiskRunbook = "docs/operations/runbooks/full-disk.md"

func init() {
	register(Drill{Name: "full-disk", Family: "disk", Runbook: fullDiskRunbook,
		Summary: "fill the warehouse's volume (a 64 MiB tmpfs) while the sink writes; grow it and apply the runbook",
		Run:     fullDiskDrill})
}

const volumeSize = 64 << 20

func fullDiskDrill(ctx context.Context, e *Env) ([]Row, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: mounting the warehouse's volume needs root", ErrSkip)
	}
	vol := filepath.Join(e.Dir, "warehouse-volume")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(volumeSize), "tmpfs", vol).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: mount a tmpfs on %s: %v: %s", ErrSkip, vol, err, strings.TrimSpace(string(out)))
	}
	// Registered first, so it runs after the processes have stopped.
	e.Cleanup(func() {
		if err := exec.Command("umount", vol).Run(); err != nil {
			exec.Command("umount", "-l", vol).Run()
		}
	})
	in, err := e.Distributed(ctx, false, func(in *Install) error {
		in.SetWarehouse(vol)
		// Orphans older than this are removed by the runbook's
		// remove-orphans: files a failed write left a minute ago, here
		// seconds ago.
		in.Settings = append(in.Settings, "K2_ORPHAN_MIN_AGE=2s")
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The installation's processes stop before the volume goes.
	e.Cleanup(func() {
		for _, p := range []*Proc{in.Sink, in.Broker} {
			p.Stop()
		}
	})
	t, err := warm(ctx, e, in, "disk")
	if err != nil {
		return nil, err
	}
	row := Row{Fault: "fill the warehouse's volume (ENOSPC) for 3 s while the sink writes", Target: ProcessRTO}
	var failures []string
	errorsBefore, _ := sinkLakeErrors(ctx, in)
	row.InjectedAt = time.Now()
	filler := filepath.Join(vol, "filler")
	if err := fill(filler); err != nil {
		return nil, err
	}
	e.Logf("warehouse volume full")
	// Detected: the sink counts a failed write to the warehouse.
	row.DetectedAt = WaitDetected(ctx, 15*time.Second, func(ctx context.Context) error {
		if n, err := sinkLakeErrors(ctx, in); err == nil && n > errorsBefore {
			return errors.New("lake write failed")
		}
		return nil
	})
	if row.DetectedAt.IsZero() {
		failures = append(failures, storageErrors+" did not rise while the disk was full")
	}
	if !in.Sink.LogContains("no space left on device") {
		failures = append(failures, "the sink's log does not say \"no space left on device\"")
	}
	sleep(ctx, 3*time.Second)
	stuck, _ := in.StoredRows(ctx)
	// The operator grows the volume (here: remount the tmpfs larger), then
	// applies the runbook.
	recoverAt := time.Now()
	if out, err := exec.CommandContext(ctx, "mount", "-o", "remount,size="+strconv.Itoa(2*volumeSize), vol).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("grow the volume: %v: %s", err, out)
	}
	out, err := e.RunRunbook(ctx, fullDiskRunbook, StepRecover, in)
	if err != nil {
		return nil, err
	}
	row.Notes = fmt.Sprintf("%d trades stored when the disk filled, the sink paused and retrying; runbook: %s", stuck, orphansLine(out))
	if !in.Sink.Running() {
		failures = append(failures, "the sink exited on the full disk: "+in.Sink.LogTail(2))
		if err := e.Restart(ctx, in.Sink); err != nil {
			return nil, err
		}
	}
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(recoverAt)
	}
	os.Remove(filler)
	return finish(ctx, e, in, t, fullDiskRunbook, row, failures)
}

// fill writes path until the volume is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill %s: %w", path, err)
		}
	}
}

// storageErrors is the sink's count of writes the warehouse refused.
const storageErrors = `k2_iceberg_write_errors_total{error_type="storage",table="trades"}`

func sinkLakeErrors(ctx context.Context, in *Install) (float64, error) {
	return scrape(ctx, in.Sink, storageErrors)
}

// scrape reads one series of a process's /metrics.
func scrape(ctx context.Context, p *Proc, series string) (float64, error) {
	b, err := get(ctx, "http://"+p.HTTP+"/metrics")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no series %s", p.Name, series)
}

// orphansLine is what remove-orphans said of the trades table.
func orphansLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "market_data.trades: removed") {
			return l
		}
	}
	return "remove-orphans said nothing of the trades table"
}
