package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// column is one figure of a table.
type column struct {
	head  string
	value func(m measurement) float64
	fmt   string // for the value
	ratio bool   // also show the ratio to the baseline
}

func perTenK(m measurement) float64 {
	if m.Load.Requests == 0 {
		return math.NaN()
	}
	return m.CPU / (float64(m.Load.Requests) / 10000)
}

func columns(sc scenario) []column {
	switch sc.kind {
	case "ws":
		return []column{
			{head: "opened", value: func(m measurement) float64 { return float64(m.Load.WSOpened) }, fmt: "%.0f"},
			{head: "RSS before MiB", value: func(m measurement) float64 { return mib(m.RSSBefore) }, fmt: "%.1f"},
			{head: "RSS held MiB", value: func(m measurement) float64 { return mib(m.RSSHeld) }, fmt: "%.1f", ratio: true},
			{head: "KiB per WebSocket", value: perConnKiB, fmt: "%.1f", ratio: true},
			{head: "after close +1 s MiB", value: func(m measurement) float64 { return mib(m.RSSAfter1) }, fmt: "%.1f"},
			{head: "after close +5 s MiB", value: func(m measurement) float64 { return mib(m.RSSAfter5) }, fmt: "%.1f"},
			{head: "returned %", value: returned, fmt: "%.0f"},
			{head: "CPU s (open+echo+close)", value: func(m measurement) float64 { return m.WSCPU }, fmt: "%.2f", ratio: true},
			{head: "upstream legs open after close", value: func(m measurement) float64 { return float64(m.UpOpenAfter) }, fmt: "%.0f"},
		}
	case "rate":
		return []column{
			{head: "achieved req/s", value: func(m measurement) float64 { return m.Load.RPS }, fmt: "%.0f"},
			{head: "p50 ms", value: func(m measurement) float64 { return m.Load.P50 }, fmt: "%.2f", ratio: true},
			{head: "p99 ms", value: func(m measurement) float64 { return m.Load.P99 }, fmt: "%.2f", ratio: true},
			{head: "p99.9 ms", value: func(m measurement) float64 { return m.Load.P999 }, fmt: "%.2f", ratio: true},
			{head: "CPU s / 10k req", value: perTenK, fmt: "%.3f", ratio: true},
			{head: "peak RSS MiB", value: func(m measurement) float64 { return mib(m.PeakRSS) }, fmt: "%.1f", ratio: true},
		}
	}
	cols := []column{
		{head: "req/s", value: func(m measurement) float64 { return m.Load.RPS }, fmt: "%.0f", ratio: true},
		{head: "p50 ms", value: func(m measurement) float64 { return m.Load.P50 }, fmt: "%.2f", ratio: true},
		{head: "p99 ms", value: func(m measurement) float64 { return m.Load.P99 }, fmt: "%.2f", ratio: true},
		{head: "CPU s / 10k req", value: perTenK, fmt: "%.3f", ratio: true},
		{head: "peak RSS MiB", value: func(m measurement) float64 { return mib(m.PeakRSS) }, fmt: "%.1f", ratio: true},
	}
	if strings.HasPrefix(sc.key, "2-") {
		cols = append(cols, column{head: "upstream fetches", value: func(m measurement) float64 { return float64(m.UpstreamAsset) }, fmt: "%.0f"})
	}
	return cols
}

// returned is how much of the memory the WebSockets took was given back
// 5 s after they closed.
func returned(m measurement) float64 {
	grew := float64(m.RSSHeld - m.RSSBefore)
	if grew <= 0 {
		return math.NaN()
	}
	r := 100 * float64(m.RSSHeld-m.RSSAfter5) / grew
	if math.Abs(r) < 0.5 {
		return 0 // not "-0"
	}
	return r
}

func renderReport(c *settings, e *env, all []target, ms []measurement, took time.Duration) string {
	var b strings.Builder
	now := time.Now().UTC()
	fmt.Fprintf(&b, "# rampart load benchmark — results\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./bench/run`); see `bench/README.md` for what each scenario measures and how to read the ratios.\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", now.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "| machine | %s |\n", machine())
	fmt.Fprintf(&b, "| Go | %s |\n", goVersion())
	fmt.Fprintf(&b, "| rampart | %s (built with CGO_ENABLED=0 -trimpath) |\n", gitDescribe(c.root))
	for _, v := range peerVersions() {
		fmt.Fprintf(&b, "| %s | %s |\n", v[0], v[1])
	}
	fmt.Fprintf(&b, "| runs | %d × %s measured per scenario and target (after %s warm-up); figures are medians of the runs |\n", c.runs, c.dur, c.warmup)
	fmt.Fprintf(&b, "| load | Go load generator on the same machine (it competes for the same cores); TLS verified against the run's CA, SNI = Host = `%s` |\n", Host)
	fmt.Fprintf(&b, "| load average (1 / 5 / 15 min) | %s at the start, %s at the end (other work on the machine) |\n", c.loadStart, c.loadEnd)
	fmt.Fprintf(&b, "| wall time | %s |\n\n", took.Round(time.Second))

	fmt.Fprintf(&b, "Each cell is `median (ratio to the baseline)`; the ratio is computed within each run and its median is shown. ")
	fmt.Fprintf(&b, "For req/s a ratio above 1 is better than the baseline; for latency, CPU and memory a ratio below 1 is better. ")
	fmt.Fprintf(&b, "The baseline is nginx, except in scenario 3 where it is nginx + ModSecurity.\n\n")

	for _, t := range all {
		if t.avail != "" && t.avail != "not selected" {
			fmt.Fprintf(&b, "- **%s not measured**: %s\n", t.name, t.avail)
		}
	}
	crashes := map[string][]string{}
	var order []string
	for _, m := range ms {
		if m.Crash == "" {
			continue
		}
		k := m.Target + ": " + oneLine(m.Crash)
		if _, ok := crashes[k]; !ok {
			order = append(order, k)
		}
		crashes[k] = append(crashes[k], fmt.Sprintf("%s/run %d", m.Scenario, m.Run))
	}
	if len(order) > 0 {
		fmt.Fprintf(&b, "\n**Crashes during the benchmark** (the process exited; the harness restarts every target for each scenario):\n\n")
		for _, k := range order {
			fmt.Fprintf(&b, "- %s — in %s\n", k, strings.Join(crashes[k], ", "))
		}
	}

	for _, sc := range scenarios(c) {
		if !c.scenarios[sc.num] {
			continue
		}
		var rows []measurement
		for _, m := range ms {
			if m.Scenario == sc.key {
				rows = append(rows, m)
			}
		}
		if len(rows) == 0 {
			continue
		}
		arg := any(c.conns)
		switch sc.key {
		case "4", "4-pq":
			arg = c.hsConns
		case "5":
			arg = c.wsCount
		case "6":
			arg = c.rate
		}
		fmt.Fprintf(&b, "\n## "+sc.title+"\n\n%s\n\n", arg, sc.desc)
		writeTable(&b, sc, all, rows, c.runs)
	}
	fmt.Fprintf(&b, "\n## TLS negotiated\n\n| target | protocol, suite, group |\n|---|---|\n")
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Load.TLS != "" && !seen[m.Target] {
			seen[m.Target] = true
			fmt.Fprintf(&b, "| %s | %s |\n", m.Target, m.Load.TLS)
		}
	}
	return b.String()
}

func writeTable(b *strings.Builder, sc scenario, all []target, rows []measurement, runs int) {
	cols := columns(sc)
	baseName := ""
	for _, t := range all {
		if t.kind == sc.baseline {
			baseName = t.name
		}
	}
	fmt.Fprintf(b, "| target |")
	for _, col := range cols {
		fmt.Fprintf(b, " %s |", col.head)
	}
	fmt.Fprintf(b, " errors / non-2xx |\n|---|")
	for range cols {
		fmt.Fprintf(b, "---:|")
	}
	fmt.Fprintf(b, "---:|\n")

	var notes []string
	for _, t := range sc.targets(all) {
		var ok []measurement
		var failed []measurement
		for _, m := range rows {
			if m.Target != t.name {
				continue
			}
			if m.Err != "" {
				failed = append(failed, m)
			} else {
				ok = append(ok, m)
			}
		}
		if len(ok) == 0 && len(failed) == 0 {
			continue
		}
		label := t.name
		if t.name == baseName {
			label += " (baseline)"
		}
		if len(ok) == 0 {
			fmt.Fprintf(b, "| %s | failed in every run: %s |", label, oneLine(failed[0].Err))
			for range cols {
				fmt.Fprintf(b, " |")
			}
			fmt.Fprintf(b, "\n")
			continue
		}
		fmt.Fprintf(b, "| %s |", label)
		for _, col := range cols {
			var vals, ratios []float64
			for _, m := range ok {
				v := col.value(m)
				if math.IsNaN(v) {
					continue
				}
				vals = append(vals, v)
				if !col.ratio {
					continue
				}
				for _, bm := range rows {
					if bm.Target == baseName && bm.Run == m.Run && bm.Err == "" {
						if bv := col.value(bm); bv > 0 && !math.IsNaN(bv) {
							ratios = append(ratios, v/bv)
						}
					}
				}
			}
			if len(vals) == 0 {
				fmt.Fprintf(b, " – |")
				continue
			}
			cell := fmt.Sprintf(col.fmt, median(vals))
			if col.ratio && len(ratios) > 0 {
				cell += fmt.Sprintf(" (%.2f×)", median(ratios))
			}
			fmt.Fprintf(b, " %s |", cell)
		}
		var errs, non int64
		for _, m := range ok {
			errs += m.Load.Errors
			non += m.Load.Non2xx
		}
		fmt.Fprintf(b, " %d / %d |\n", errs, non)
		if len(failed) > 0 {
			notes = append(notes, fmt.Sprintf("%s failed in %d of %d runs (figures from the others): %s",
				t.name, len(failed), len(failed)+len(ok), oneLine(failed[0].Err)))
		}
		crashed, after := 0, 0
		crash := ""
		for _, m := range append(slices.Clone(ok), failed...) {
			if m.Crash != "" {
				crashed++
				crash = m.Crash
				if m.CrashAfter {
					after++
				}
			}
		}
		if crashed > 0 {
			notes = append(notes, fmt.Sprintf("**%s crashed in %d of %d runs** (%d of them after the measured window, when the load generator closed its connections; those figures are kept): %s",
				t.name, crashed, len(ok)+len(failed), after, oneLine(crash)))
		}
		for _, m := range ok {
			if m.Load.Errors > 0 || m.Load.Non2xx > 0 {
				notes = append(notes, fmt.Sprintf("%s run %d: %d errors, %d non-2xx (statuses %v) first error: %s",
					t.name, m.Run, m.Load.Errors, m.Load.Non2xx, m.Load.Status, oneLine(m.Load.FirstError)))
			}
			if sc.kind == "ws" && m.UpOpenAfter > 0 {
				notes = append(notes, fmt.Sprintf("%s run %d: %d upstream WebSocket legs still open 5 s after the clients closed", t.name, m.Run, m.UpOpenAfter))
			}
		}
	}
	_ = runs
	if len(notes) > 0 {
		fmt.Fprintf(b, "\n")
		for _, n := range notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel := firstLine(cmdOut("uname", "-r"))
	return fmt.Sprintf("%d cores (nproc %s), %s%s, Linux %s, %s/%s; shared with other work, so figures are noisy",
		runtime.NumCPU(), firstLine(cmdOut("nproc")), model, mem, kernel, runtime.GOOS, runtime.GOARCH)
}

func goVersion() string {
	if v := firstLine(cmdOut("go", "version")); v != "" {
		return v
	}
	return runtime.Version()
}

func peerVersions() [][2]string {
	var out [][2]string
	if v := firstLine(cmdOut("nginx", "-v")); v != "" {
		out = append(out, [2]string{"nginx", v})
	}
	if v := firstLine(cmdOut("haproxy", "-v")); v != "" {
		out = append(out, [2]string{"haproxy", v})
	}
	if v := firstLine(cmdOut("caddy", "version")); v != "" {
		out = append(out, [2]string{"caddy", v})
	}
	if v := cmdOut("dpkg-query", "-W", "-f", "${Package} ${Version}; ", "libnginx-mod-http-modsecurity", "libmodsecurity3", "modsecurity-crs"); v != "" {
		out = append(out, [2]string{"ModSecurity", strings.TrimSuffix(strings.TrimSpace(v), ";")})
	}
	if v := firstLine(cmdOut("openssl", "version")); v != "" {
		out = append(out, [2]string{"OpenSSL (nginx, haproxy)", v})
	}
	return out
}
