package cache

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

func TestCache_Metrics(t *testing.T) {
	const site = "metrics.example.com"
	body := make([]byte, 1000)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"m"`)
		if r.Header.Get("If-None-Match") == `"m"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(body)
	})
	clock := newFakeClock()
	s := NewStore(site, 8*2000) // room for about 8 such entries
	s.now = clock.Now
	h := s.Handler(RouteConfig{Enabled: true}, origin)
	get := func(method, path string) {
		r := httptest.NewRequest(method, path, nil)
		r = r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{Site: site, Path: path}))
		h.ServeHTTP(httptest.NewRecorder(), r)
	}

	series := []struct {
		name string
		m    prometheus.Metric
		want func() float64
	}{
		{"requests hit", requestsTotal.WithLabelValues(site, "hit"), func() float64 { return 1 }},
		{"requests miss", requestsTotal.WithLabelValues(site, "miss"), func() float64 { return 21 }},
		{"requests stale", requestsTotal.WithLabelValues(site, "stale"), func() float64 { return 1 }},
		{"requests bypass", requestsTotal.WithLabelValues(site, "bypass"), func() float64 { return 1 }},
		{"revalidations 304", revalidationsTotal.WithLabelValues(site, "304"), func() float64 { return 1 }},
		{"stale served", staleServedTotal.WithLabelValues(site), func() float64 { return 1 }},
		{"evictions", evictionsTotal.WithLabelValues(site), func() float64 { return float64(s.Stats().Evictions) }},
	}
	// The series are process-wide: compare what this test added.
	before := make([]float64, len(series))
	for i, sr := range series {
		before[i] = metricValue(t, sr.m)
	}

	get("GET", "/m.js")                                 // miss
	get("GET", "/m.js")                                 // hit
	clock.Advance(DefaultRevalidateAfter + time.Second) // stale within stale_while_revalidate
	get("GET", "/m.js")                                 // stale, background 304
	waitFor(t, "the background revalidation", func() bool { return s.Stats().Revalidated == 1 })
	get("POST", "/m.js") // bypass
	for i := range 20 {
		get("GET", "/fill/"+string(rune('a'+i))) // evicts
	}

	for i, sr := range series {
		if got := metricValue(t, sr.m) - before[i]; got != sr.want() {
			t.Errorf("%s grew by %v, want %v", sr.name, got, sr.want())
		}
	}
	if got := metricValue(t, bytesGauge.WithLabelValues(site)); got != float64(s.Stats().Bytes) {
		t.Errorf("bytes gauge = %v, want %d", got, s.Stats().Bytes)
	}
	if st := s.Stats(); st.Evictions == 0 || st.Bytes > st.Budget {
		t.Errorf("stats = %+v, want evictions within the budget", st)
	}
}
