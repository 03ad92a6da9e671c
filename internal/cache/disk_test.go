package cache

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// The disk tests run a store whose memory tier keeps bodies up to 128 KiB
// (cache_size 1 MiB) and whose disk tier keeps larger ones.
const (
	diskMemBudget = 1 * mib // memory tier's largest object: 128 KiB
	diskObject    = 300 << 10
)

// bigBody is n bytes that differ with seed, so that a wrong or stale file
// shows.
func bigBody(n int, seed string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s-%08d\n", seed, i)
	}
	return b.String()[:n]
}

// openDir makes path a cache_dir as rampart wants it (mode 0700) and opens
// it.
func openDir(t *testing.T, path string) *Dir {
	t.Helper()
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
	d := NewDir(path)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// newDiskEnv is a test environment whose store has a disk tier in a fresh
// directory; it returns the site directory too.
func newDiskEnv(t *testing.T, cfg RouteConfig, disk DiskConfig) (*testEnv, string) {
	t.Helper()
	if disk.Dir == nil {
		disk.Dir = openDir(t, t.TempDir())
	}
	env := newTestEnvWith(t, cfg, NewDiskStore(testSite, diskMemBudget, disk))
	if env.store.disk == nil {
		t.Fatalf("no disk tier for %+v", disk)
	}
	return env, SiteDir(disk.Dir.Path(), testSite)
}

// bodyFiles lists the files in a site directory, temporary ones included.
func bodyFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// filesOpenIn counts the process's descriptors open on files in dir,
// deleted ones included.
func filesOpenIn(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// noFilesOpenIn waits until no descriptor is open on a file in dir. The
// garbage collector is off meanwhile (noGC), so a leaked *os.File is not
// closed by its finalizer behind the test's back.
func noFilesOpenIn(t *testing.T, dir string) {
	t.Helper()
	waitFor(t, "the body files to be closed", func() bool { return filesOpenIn(t, dir) == 0 })
}

func noGC(t *testing.T) {
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// settleFDs closes the test's idle connections and waits until the
// descriptor count is back to at most want.
func (env *testEnv) settleFDs(t *testing.T, want int) {
	t.Helper()
	env.client.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := openFDs(t)
		if got <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d file descriptors open, want at most %d as before", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var hexName = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestDisk_SiteDirIsAHashOfTheSite(t *testing.T) {
	dir := SiteDir("/var/cache/rampart", testSite)
	if filepath.Dir(dir) != "/var/cache/rampart" || !hexName.MatchString(filepath.Base(dir)) {
		t.Errorf("SiteDir = %q, want /var/cache/rampart/<32 hex digits>", dir)
	}
	if SiteDir("/c", "a.example.com") == SiteDir("/c", "b.example.com") {
		t.Error("two sites share a directory")
	}
}

func TestDisk_LargeObjectFetchedOnceThenServedFromDisk(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	big := bigBody(diskObject, "v1")
	env.origin.set(func(o *origin) { o.body = big })

	resp, body := env.get(t, "/recordings/a.wav")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", big)
	files := bodyFiles(t, dir)
	if len(files) != 1 || !hexName.MatchString(files[0]) {
		t.Fatalf("site directory holds %q, want one body file with a random hex name", files)
	}
	if info, err := os.Stat(filepath.Join(dir, files[0])); err != nil || info.Mode().Perm() != 0o600 || info.Size() != int64(len(big)) {
		t.Errorf("body file: %v, %v; want mode 0600 and %d bytes", info.Mode(), err, len(big))
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("site directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}

	noGC(t)
	before := openFDs(t)
	env.clock.Advance(7 * time.Second)
	for range 5 {
		resp, body = env.get(t, "/recordings/a.wav")
		expect(t, resp, body, 200, "rampart; hit", big)
	}
	if got := resp.Header.Get("Age"); got != "7" {
		t.Errorf("Age = %q, want 7", got)
	}
	if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(big)) {
		t.Errorf("Content-Length = %q, want %d", got, len(big))
	}
	if got := resp.Header.Get("ETag"); got != `"v1"` {
		t.Errorf("ETag = %q", got)
	}

	// The memory tier's other answers, from the same entry.
	resp, body = env.do(t, http.MethodHead, "/recordings/a.wav")
	expect(t, resp, body, 200, "rampart; hit", "")
	if resp.ContentLength != int64(len(big)) {
		t.Errorf("HEAD Content-Length = %d, want %d", resp.ContentLength, len(big))
	}
	resp, body = env.get(t, "/recordings/a.wav", "If-None-Match", `"v1"`)
	expect(t, resp, body, http.StatusNotModified, "rampart; hit", "")
	resp, body = env.get(t, "/recordings/a.wav", "If-Modified-Since", env.origin.lastMod.Format(http.TimeFormat))
	expect(t, resp, body, http.StatusNotModified, "rampart; hit", "")
	// Range is ignored, as for bodies in memory: the whole 200.
	resp, body = env.get(t, "/recordings/a.wav", "Range", "bytes=0-9")
	expect(t, resp, body, 200, "rampart; hit", big)

	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	st := env.store.Stats()
	if st.DiskObjects != 1 || st.DiskBytes != int64(len(big)) || st.DiskBudget != 8*mib || st.DiskMaxObject != 2*mib {
		t.Errorf("disk stats = %+v", st)
	}
	if st.Entries != 1 || st.Bytes <= 0 || st.Bytes >= 4096 {
		t.Errorf("memory stats = %+v: the entry's headers count against cache_size, its body does not", st)
	}
	if got := metricValue(t, env.store.m.diskBytes); got != float64(len(big)) {
		t.Errorf("rampart_cache_disk_bytes = %v, want %d", got, len(big))
	}
	noFilesOpenIn(t, dir)
	env.settleFDs(t, before)
}

func TestDisk_ClientStreamingAnUnlinkedFileFinishes(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	big := bigBody(diskObject, "v1")
	env.origin.set(func(o *origin) { o.body = big })
	env.get(t, "/a.wav")
	noGC(t)
	env.settleFDs(t, openFDs(t))
	before := openFDs(t)

	// A client whose first write blocks until the entry is purged.
	w := &blockingWriter{header: make(http.Header), started: make(chan struct{}), release: make(chan struct{})}
	req := httptest.NewRequest(http.MethodGet, "/a.wav", nil)
	req = req.WithContext(reqinfo.With(req.Context(), &reqinfo.Info{Site: testSite, Path: "/a.wav"}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.handler.ServeHTTP(w, req)
	}()
	<-w.started
	if n := env.store.Purge(""); n != 1 {
		t.Errorf("purged %d, want 1", n)
	}
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("files left after the purge: %q", files)
	}
	close(w.release)
	<-done
	if got := w.body.String(); got != big {
		t.Errorf("streamed %d bytes, want the whole %d-byte body", len(got), len(big))
	}
	if got := w.header.Get("Cache-Status"); got != "rampart; hit" {
		t.Errorf("Cache-Status = %q", got)
	}
	if n := filesOpenIn(t, dir); n != 0 {
		t.Errorf("%d descriptors still open on the purged file", n)
	}
	env.settleFDs(t, before)
}

type blockingWriter struct {
	header           http.Header
	status           int
	body             bytes.Buffer
	started, release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if w.body.Len() == 0 {
		close(w.started)
		<-w.release
	}
	return w.body.Write(p)
}

func TestDisk_BudgetEvictsLeastRecentlyUsedFiles(t *testing.T) {
	// Max object 256 KiB (a quarter of the budget): four 250 KiB bodies fit, five do not.
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 1 * mib})
	env.origin.set(func(o *origin) { o.body = bigBody(250<<10, "x") })
	for i := range 4 {
		env.get(t, fmt.Sprintf("/r/%d", i))
	}
	if files := bodyFiles(t, dir); len(files) != 4 {
		t.Fatalf("%d files, want 4", len(files))
	}
	env.get(t, "/r/0") // now the most recently used
	for i := 4; i < 7; i++ {
		env.get(t, fmt.Sprintf("/r/%d", i))
	}
	files := bodyFiles(t, dir)
	st := env.store.Stats()
	if len(files) != 4 || st.DiskObjects != 4 || st.DiskBytes != 4*250<<10 || st.DiskEvictions != 3 {
		t.Errorf("%d files, stats %+v; want 4 files and objects, 3 disk evictions", len(files), st)
	}
	if got := metricValue(t, env.store.m.diskEvictions); got < 3 {
		t.Errorf("rampart_cache_disk_evictions_total = %v, want at least 3", got)
	}
	// /r/0 was used last: it stayed. /r/1 went.
	resp, _ := env.get(t, "/r/0")
	if cs := resp.Header.Get("Cache-Status"); cs != "rampart; hit" {
		t.Errorf("/r/0: Cache-Status %q, want a hit", cs)
	}
	resp, _ = env.get(t, "/r/1")
	if cs := resp.Header.Get("Cache-Status"); cs != "rampart; fwd=uri-miss; stored" {
		t.Errorf("/r/1: Cache-Status %q, want evicted", cs)
	}
}

func TestDisk_PurgeDeletesFiles(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	env.origin.set(func(o *origin) { o.body = bigBody(diskObject, "p") })
	for _, p := range []string{"/a/1.wav", "/a/2.wav", "/a/3.wav?v=1", "/b/4.wav"} {
		env.get(t, p)
	}
	if files := bodyFiles(t, dir); len(files) != 4 {
		t.Fatalf("%d files, want 4", len(files))
	}
	admin := httptest.NewServer(NewAdmin(map[string]*Store{testSite: env.store}))
	defer admin.Close()
	var out struct{ Purged int }
	steps := []struct {
		query string
		left  int
	}{
		{"site=" + testSite + "&key=/a/1.wav", 3},
		{"site=" + testSite + "&prefix=/a/", 1},
		{"site=" + testSite, 0},
	}
	for _, s := range steps {
		if code := adminCall(t, admin, http.MethodPost, "/cache/purge?"+s.query, &out); code != 200 || out.Purged == 0 {
			t.Errorf("purge %s: %d, %+v", s.query, code, out)
		}
		if files := bodyFiles(t, dir); len(files) != s.left {
			t.Errorf("after purge %s: %d files, want %d", s.query, len(files), s.left)
		}
	}
	if st := env.store.Stats(); st.DiskObjects != 0 || st.DiskBytes != 0 {
		t.Errorf("stats after purging everything: %+v", st)
	}
	// An unsafe method on the URL drops its file as well.
	env.get(t, "/a/1.wav")
	env.do(t, http.MethodPost, "/a/1.wav")
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("after a POST: files %q", files)
	}
}

func TestDisk_OverMaxObjectPassesThroughWithoutFile(t *testing.T) {
	// Max object 256 KiB: a 400 KiB body is too large for both tiers.
	big := bigBody(400<<10, "big")
	for _, declared := range []bool{true, false} {
		t.Run("content-length="+strconv.FormatBool(declared), func(t *testing.T) {
			env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 1 * mib})
			env.origin.set(func(o *origin) {
				o.serve = func(w http.ResponseWriter, r *http.Request) {
					if declared {
						w.Header().Set("Content-Length", strconv.Itoa(len(big)))
					}
					for i := 0; i < len(big); i += 32 << 10 {
						w.Write([]byte(big[i:min(i+32<<10, len(big))]))
						w.(http.Flusher).Flush()
					}
				}
			})
			noGC(t)
			resp, body := env.get(t, "/huge.wav")
			expect(t, resp, body, 200, "rampart; fwd=uri-miss; detail=too-large", big)
			if files := bodyFiles(t, dir); len(files) != 0 {
				t.Errorf("files left: %q", files)
			}
			noFilesOpenIn(t, dir)
			resp, body = env.get(t, "/huge.wav")
			expect(t, resp, body, 200, "rampart; fwd=miss; detail=uncacheable", big)
			if st := env.store.Stats(); st.Entries != 0 || st.DiskObjects != 0 || st.DiskWriteErrors != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestDisk_BodyCutMidwayLeavesNoFile(t *testing.T) {
	part := bigBody(200<<10, "cut") // past the memory tier: on its way to disk
	for _, declared := range []bool{true, false} {
		t.Run("content-length="+strconv.FormatBool(declared), func(t *testing.T) {
			env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
			noGC(t)
			env.origin.set(func(o *origin) {
				o.serve = func(w http.ResponseWriter, r *http.Request) {
					if declared {
						w.Header().Set("Content-Length", strconv.Itoa(2*len(part)))
					}
					w.Write([]byte(part))
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler) // the upstream breaks the connection
				}
			})
			req, _ := http.NewRequest(http.MethodGet, env.front.URL+"/cut.wav", nil)
			resp, err := env.client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body) // cut as well: passed through
				resp.Body.Close()
				if cs := resp.Header.Get("Cache-Status"); cs != "rampart; fwd=uri-miss; detail=incomplete" {
					t.Errorf("Cache-Status = %q", cs)
				}
			}
			if files := bodyFiles(t, dir); len(files) != 0 {
				t.Errorf("files left: %q", files)
			}
			if st := env.store.Stats(); st.Entries != 0 || st.DiskObjects != 0 || st.DiskBytes != 0 {
				t.Errorf("stats = %+v", st)
			}
			noFilesOpenIn(t, dir)
		})
	}
}

func TestDisk_NotModifiedKeepsTheFile(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	big := bigBody(diskObject, "v1")
	env.origin.set(func(o *origin) { o.body = big })
	env.get(t, "/a.wav")
	files := bodyFiles(t, dir)
	info, err := os.Stat(filepath.Join(dir, files[0]))
	if err != nil {
		t.Fatal(err)
	}

	// Past stale_while_revalidate: the request waits for the 304.
	env.clock.Advance(DefaultRevalidateAfter + DefaultStaleWhileRevalidate + time.Second)
	resp, body := env.get(t, "/a.wav")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=304", big)
	resp, body = env.get(t, "/a.wav")
	expect(t, resp, body, 200, "rampart; hit", big)
	if got := resp.Header.Get("Age"); got != "0" {
		t.Errorf("Age after the refresh = %q, want 0", got)
	}
	after := bodyFiles(t, dir)
	if !slices.Equal(after, files) {
		t.Errorf("files %q after the 304, want %q unchanged", after, files)
	}
	if info2, err := os.Stat(filepath.Join(dir, files[0])); err != nil || !os.SameFile(info, info2) || info2.ModTime() != info.ModTime() {
		t.Errorf("the body file was rewritten (%v)", err)
	}
	if n := env.origin.bodyBytes.Load(); n != int64(len(big)) {
		t.Errorf("origin sent %d body bytes, want one body (%d)", n, len(big))
	}
	if st := env.store.Stats(); st.Revalidated != 1 || st.DiskObjects != 1 || st.DiskBytes != int64(len(big)) {
		t.Errorf("stats = %+v", st)
	}
}

func TestDisk_FullRevalidationReplacesTheFile(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	env.origin.set(func(o *origin) { o.body = bigBody(diskObject, "v1") })
	env.get(t, "/a.wav")
	old := bodyFiles(t, dir)

	v2 := bigBody(diskObject+1000, "v2")
	env.origin.set(func(o *origin) { o.body, o.etag = v2, `"v2"` })
	env.clock.Advance(DefaultRevalidateAfter + DefaultStaleWhileRevalidate + time.Second)
	resp, body := env.get(t, "/a.wav")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=200; stored", v2)
	resp, body = env.get(t, "/a.wav")
	expect(t, resp, body, 200, "rampart; hit", v2)

	files := bodyFiles(t, dir)
	if len(files) != 1 || files[0] == old[0] {
		t.Fatalf("files %q, want one new file instead of %q", files, old)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, files[0])); string(b) != v2 {
		t.Error("the new file does not hold the new body")
	}
	if st := env.store.Stats(); st.DiskObjects != 1 || st.DiskBytes != int64(len(v2)) {
		t.Errorf("stats = %+v", st)
	}
}

func TestDisk_MaxAgeExpiryDeletesTheFile(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	env.origin.set(func(o *origin) { o.body = bigBody(diskObject, "v1") })
	env.get(t, "/a.wav")
	old := bodyFiles(t, dir)
	env.clock.Advance(DefaultMaxAge + time.Second)
	resp, _ := env.get(t, "/a.wav")
	if cs := resp.Header.Get("Cache-Status"); cs != "rampart; fwd=miss; stored" {
		t.Errorf("Cache-Status = %q", cs)
	}
	files := bodyFiles(t, dir)
	if len(files) != 1 || files[0] == old[0] {
		t.Errorf("files %q, want only a new one (the expired %q deleted)", files, old)
	}
}

func TestDisk_NewStoreEmptiesTheSiteDirectory(t *testing.T) {
	root := t.TempDir()
	disk := DiskConfig{Dir: openDir(t, root), Budget: 8 * mib}
	env, dir := newDiskEnv(t, RouteConfig{}, disk)
	env.origin.set(func(o *origin) { o.body = bigBody(diskObject, "v1") })
	env.get(t, "/a.wav")
	env.get(t, "/b.wav")
	if err := os.WriteFile(filepath.Join(dir, "stray.tmp"), []byte("half a body"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := SiteDir(root, "other.example.com")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := len(bodyFiles(t, dir)); n != 3 {
		t.Fatalf("%d files before the restart, want 3", n)
	}

	// A restart: a new store on the same directory.
	s := NewDiskStore(testSite, diskMemBudget, disk)
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("files after the restart: %q, want none", files)
	}
	if st := s.Stats(); st.DiskObjects != 0 || st.DiskBytes != 0 {
		t.Errorf("stats = %+v", st)
	}
	if files := bodyFiles(t, other); len(files) != 1 {
		t.Errorf("another site's directory was touched: %q", files)
	}
}

func TestDisk_CloseDeletesFilesAndStopsWriting(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	env.origin.set(func(o *origin) { o.body = bigBody(diskObject, "v1") })
	env.get(t, "/a.wav")
	env.store.Close()
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("files after Close: %q", files)
	}
	resp, body := env.get(t, "/b.wav")
	if cs := resp.Header.Get("Cache-Status"); cs != "rampart; fwd=uri-miss; detail=too-large" || len(body) != diskObject {
		t.Errorf("after Close: Cache-Status %q, %d bytes", cs, len(body))
	}
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("files written after Close: %q", files)
	}
}

func TestDisk_WriteErrorPassesThroughAndCounts(t *testing.T) {
	cases := []struct {
		name     string
		sabotage func(t *testing.T, siteDir string)
	}{
		{"site directory replaced by a file", func(t *testing.T, siteDir string) {
			if err := os.RemoveAll(siteDir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(siteDir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"read-only site directory", func(t *testing.T, siteDir string) {
			if os.Getuid() == 0 {
				t.Skip("root writes into a 0500 directory; the other case covers this")
			}
			if err := os.Chmod(siteDir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(siteDir, 0o700) })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, siteDir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
			tc.sabotage(t, siteDir)
			big := bigBody(diskObject, "v1")
			env.origin.set(func(o *origin) { o.body = big })
			metricBefore := metricValue(t, env.store.m.diskErrors)

			resp, body := env.get(t, "/a.wav")
			expect(t, resp, body, 200, "rampart; fwd=uri-miss; detail=disk-error", big)
			resp, body = env.get(t, "/a.wav")
			expect(t, resp, body, 200, "rampart; fwd=miss; detail=uncacheable", big)
			if st := env.store.Stats(); st.DiskWriteErrors != 1 || st.DiskObjects != 0 || st.Entries != 0 {
				t.Errorf("stats = %+v", st)
			}
			if got := metricValue(t, env.store.m.diskErrors) - metricBefore; got != 1 {
				t.Errorf("rampart_cache_disk_write_errors_total rose by %v, want 1", got)
			}
			// Small objects still go to memory.
			env.origin.set(func(o *origin) { o.body = "small" })
			env.get(t, "/small.js")
			resp, body = env.get(t, "/small.js")
			expect(t, resp, body, 200, "rampart; hit", "small")
		})
	}
}

func TestDisk_NoTierWhenNothingWouldGoToDisk(t *testing.T) {
	dir := openDir(t, t.TempDir())
	for _, d := range []DiskConfig{
		{Dir: dir},        // no budget
		{Budget: 8 * mib}, // no directory
		{Dir: dir, Budget: 8 * mib, MaxObject: 64 << 10}, // max object within the memory tier's
	} {
		if s := NewDiskStore(testSite, diskMemBudget, d); s.disk != nil || s.Stats().DiskBudget != 0 {
			t.Errorf("%+v: a disk tier", d)
		}
	}
	s := NewDiskStore(testSite, diskMemBudget, DiskConfig{Dir: dir, Budget: 2 * mib, MaxObject: 100 * mib})
	if st := s.Stats(); st.DiskMaxObject != 512<<10 {
		t.Errorf("max object %d, want it bounded to a quarter of the budget", st.DiskMaxObject)
	}
}

// TestDir_OpenChecksTheDirectory: cache_dir is opened only when it is a
// real directory of the user rampart runs as, closed to everyone else.
func TestDir_OpenChecksTheDirectory(t *testing.T) {
	good := t.TempDir()
	if err := os.Chmod(good, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{ // path: what the error must say
		link:                     "symbolic link",
		open:                     "chmod 700",
		file:                     "not a directory",
		filepath.Join(good, "x"): "create it",
	}
	if os.Geteuid() == 0 {
		other := t.TempDir()
		if err := os.Chmod(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		cases[other] = "belongs to uid 12345"
	}
	for path, want := range cases {
		if err := NewDir(path).Open(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s) = %v, want an error saying %q", path, err, want)
		}
	}
	d := NewDir(good)
	if err := d.Open(); err != nil {
		t.Fatalf("Open of a 0700 directory of ours: %v", err)
	}
	_ = d.Close()
}

// TestDisk_EmptyingDoesNotFollowALink: a site directory that is a link to
// somewhere else is replaced, never followed; what it pointed to stays.
func TestDisk_EmptyingDoesNotFollowALink(t *testing.T) {
	outside := t.TempDir()
	for _, f := range []string{"a.conf", "sub/b.key"} {
		p := filepath.Join(outside, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	if err := os.Symlink(outside, SiteDir(root, testSite)); err != nil {
		t.Fatal(err)
	}
	// Before Open nothing is touched; at Open the site directory is emptied.
	dir := NewDir(root)
	if err := os.Chmod(root, 0o700); err != nil {
		t.Fatal(err)
	}
	s := NewDiskStore(testSite, diskMemBudget, DiskConfig{Dir: dir, Budget: 8 * mib})
	if fi, err := os.Lstat(SiteDir(root, testSite)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the site directory changed before Open: %v %v", fi, err)
	}
	if err := dir.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	for _, f := range []string{"a.conf", "sub/b.key"} {
		if b, err := os.ReadFile(filepath.Join(outside, f)); err != nil || string(b) != "precious" {
			t.Errorf("%s outside cache_dir: %q, %v; want it untouched", f, b, err)
		}
	}
	if fi, err := os.Lstat(SiteDir(root, testSite)); err != nil || !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("the site directory is not a real directory now: %v %v", fi, err)
	}
	if s.disk == nil {
		t.Fatal("no disk tier")
	}
}

// TestDisk_ReplacedFileIsNotServed: a body file put in place of the one
// rampart wrote (same name, same size) is never served.
func TestDisk_ReplacedFileIsNotServed(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	big := bigBody(diskObject, "v1")
	env.origin.set(func(o *origin) { o.body = big })
	env.get(t, "/a.wav")
	files := bodyFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %q, want one", files)
	}
	p := filepath.Join(dir, files[0])
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Repeat("X", diskObject)), 0o600); err != nil {
		t.Fatal(err)
	}
	before := env.origin.hits.Load()
	resp, body := env.get(t, "/a.wav")
	if body != big || resp.Header.Get("Cache-Status") == "rampart; hit" {
		t.Fatalf("served %q… as %q; want the upstream's body, not the substituted file", body[:8], resp.Header.Get("Cache-Status"))
	}
	if env.origin.hits.Load() != before+1 {
		t.Errorf("the upstream was asked %d times, want once", env.origin.hits.Load()-before)
	}
}

// TestDisk_UnreadableFileKeepsTheEntry: a body file that cannot be opened
// for a reason that may pass is not taken for a deleted one: the request
// goes upstream and the entry stays.
func TestDisk_UnreadableFileKeepsTheEntry(t *testing.T) {
	d := openDir(t, t.TempDir())
	env, _ := newDiskEnv(t, RouteConfig{}, DiskConfig{Dir: d, Budget: 8 * mib})
	big := bigBody(diskObject, "v1")
	env.origin.set(func(o *origin) { o.body = big })
	env.get(t, "/a.wav")
	misses := env.store.Stats().Misses
	_ = d.Close() // every open fails now, with errNotOpen
	resp, body := env.get(t, "/a.wav")
	expect(t, resp, body, 200, "rampart; fwd=miss; detail=disk-error", big)
	if st := env.store.Stats(); st.DiskObjects != 1 || st.Entries != 1 || st.Markers != 0 || st.Misses != misses+1 {
		t.Errorf("stats = %+v; want the entry kept, no marker, one more miss", st)
	}
	env.mu.Lock()
	state := env.states[len(env.states)-1]
	env.mu.Unlock()
	if state != "miss" {
		t.Errorf("CacheState %q, want miss", state)
	}
}

// TestDisk_BodiesBeingWrittenStayWithinTheBudget: however many fetches
// write at once, their temporary files together claim at most the disk
// budget; the others pass through (detail=busy) and nothing is left.
func TestDisk_BodiesBeingWrittenStayWithinTheBudget(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 1 * mib}) // max object 256 KiB
	const size = 250 << 10
	release := make(chan struct{})
	env.origin.set(func(o *origin) {
		o.serve = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Header().Set("Cache-Control", "max-age=300")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(strings.Repeat("a", size-1)))
			w.(http.Flusher).Flush()
			<-release
			_, _ = w.Write([]byte("z"))
		}
	})
	const n = 12
	statuses := make(chan string, n)
	for i := range n {
		go func() {
			resp, err := env.client.Get(env.front.URL + fmt.Sprintf("/rec/%d.wav", i))
			if err != nil {
				statuses <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			statuses <- fmt.Sprintf("%d %d %s", resp.StatusCode, len(b), resp.Header.Get("Cache-Status"))
		}()
	}
	// The fetches that got a claim write their files and wait; the others
	// pass through and wait at the upstream too.
	deadline := time.Now().Add(5 * time.Second)
	for env.origin.hits.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	var tmpBytes int64
	tmp := 0
	for _, f := range bodyFiles(t, dir) {
		if strings.HasSuffix(f, ".tmp") {
			tmp++
			if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
				tmpBytes += fi.Size()
			}
		}
	}
	if tmp == 0 || tmp > 4 || tmpBytes > 1*mib {
		t.Errorf("%d temporary files of %d bytes while %d fetches wrote; want 1 to 4, within the 1 MiB budget", tmp, tmpBytes, n)
	}
	close(release)
	busy := 0
	for range n {
		st := <-statuses
		if !strings.HasPrefix(st, fmt.Sprintf("200 %d ", size)) {
			t.Errorf("an answer: %s", st)
		}
		if strings.Contains(st, "detail=busy") {
			busy++
		}
	}
	if busy < n-4 {
		t.Errorf("%d answers passed through as busy, want at least %d", busy, n-4)
	}
	if env.store.disk.reserved.Load() != 0 {
		t.Errorf("%d bytes still claimed after every fetch ended", env.store.disk.reserved.Load())
	}
	for _, f := range bodyFiles(t, dir) {
		if strings.HasSuffix(f, ".tmp") {
			t.Errorf("temporary file %s left", f)
		}
	}
}

// TestDisk_NotModifiedMakingTheEntryUnstorable: a 304 whose fields make a
// disk entry unstorable (no-store) removes it with its file; the request
// is passed on rather than answered from a file already deleted.
func TestDisk_NotModifiedMakingTheEntryUnstorable(t *testing.T) {
	env, dir := newDiskEnv(t, RouteConfig{}, DiskConfig{Budget: 8 * mib})
	big := bigBody(diskObject, "v1")
	env.origin.set(func(o *origin) { o.body = big })
	env.get(t, "/a.wav")
	env.clock.Advance(DefaultRevalidateAfter + DefaultStaleWhileRevalidate + time.Second)
	env.origin.set(func(o *origin) { o.cc = "no-store" })
	resp, body := env.get(t, "/a.wav")
	expect(t, resp, body, 200, "rampart; fwd=stale; detail=not-stored", big)
	if st := env.store.Stats(); st.Entries != 0 || st.DiskObjects != 0 || st.DiskBytes != 0 {
		t.Errorf("stats = %+v; want the entry and its file gone", st)
	}
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("files left: %q", files)
	}
}
