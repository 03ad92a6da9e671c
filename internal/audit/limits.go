package audit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// runLimits runs the slow-request probes and then the burst, each only
// when asked to. The burst comes last: it may exhaust the target's rate
// limit, which would answer the slow POST's head with a 429.
func (a *auditor) runLimits(ctx context.Context) {
	a.runSlow(ctx)
	a.runBurst(ctx)
}

// runBurst sends Burst quick requests to / and looks for a 429 or 503
// among the answers.
func (a *auditor) runBurst(ctx context.Context) {
	const id = "limits.burst"
	n := a.t.burst
	if n == 0 {
		a.add(CatLimits, id, Skip, "not run: --burst N sends N quick requests to / and looks for 429/503")
		return
	}
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		first  int // request number of the first 429/503
		done   int
		wg     sync.WaitGroup
	)
	start := time.Now()
	next := make(chan struct{})
	for range a.t.conc {
		wg.Go(func() {
			for range next {
				a.burstN.Add(1)
				r := a.doUnbudgeted(ctx, "GET", a.req("GET", "/"))
				mu.Lock()
				done++
				counts[r.String()]++
				if (r.Status == 429 || r.Status == 503) && first == 0 {
					first = done
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		if ctx.Err() != nil {
			break
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	took := time.Since(start).Round(10 * time.Millisecond)
	ev := fmt.Sprintf("%d requests to / in %v (%d at a time): %s", n, took, a.t.conc, tallyString(counts))
	if first > 0 {
		a.add(CatLimits, id, Pass, "%s; first 429/503 after %d requests", ev, first)
	} else {
		a.add(CatLimits, id, Warn, "%s; no 429 or 503: no rate limit seen", ev)
	}
}
