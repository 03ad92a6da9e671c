// Package browser drives a real headless Chromium to the mock agent desktop
// through rampart over TLS, as an agent's browser on the internet would.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/rampart-proxy/rampart/internal/ciscodemo"
	"github.com/rampart-proxy/rampart/internal/config"
)

func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RAMPART_REQUIRE_BROWSER") == "1" {
		t.Fatal("Chromium is required (RAMPART_REQUIRE_BROWSER=1) but not installed: apt-get install chromium")
	}
	t.Skip("Chromium not installed (apt-get install chromium); make test requires it")
	return ""
}

// TestBrowser_AgentDesktopThroughRampart: the page loads all its assets,
// logs in, receives a WebSocket notification and shows it; a second visit
// gets the static assets from rampart's cache; five wrong passwords get
// the browser's client banned.
func TestBrowser_AgentDesktopThroughRampart(t *testing.T) {
	exe := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := ciscodemo.Start(ctx, ciscodemo.Options{Listen: "127.0.0.1:0", Dir: t.TempDir(), Agents: 10})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.Server.Serve() }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		d.Close(sctx)
	}()
	url := "https://" + ciscodemo.Finesse + ":" + config.ListenPort(d.Server.Addrs()[0].String()) + "/desktop/"

	alloc, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", "MAP *.demo.test 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(alloc)
	defer bcancel()

	var mu sync.Mutex
	cacheStatus := map[string][]string{}
	err = chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.Contains(e.Response.URL, "/desktop/static/") {
			v, _ := e.Response.Headers["Cache-Status"].(string)
			mu.Lock()
			cacheStatus[filepath.Base(e.Response.URL)] = append(cacheStatus[filepath.Base(e.Response.URL)], v)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}

	steps := func(a ...chromedp.Action[chromedp.Void]) error { return chromedp.Do(bctx, a...) }
	assetsLoaded := func() chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.getElementById('status').dataset.assets === 'loaded'`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		})
	}
	loginFailed := func() chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.getElementById('status').textContent.startsWith('login failed')`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		})
	}
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	// Every visit goes to rampart, not to the browser's own cache.
	if _, err := chromedp.Call(bctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		t.Fatal(err)
	}
	err = steps(
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#signin")),
		assetsLoaded(),
		chromedp.SendKeys(chromedp.CSS("#pass"), "Secret#1"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("li.event")),
	)
	if err != nil {
		t.Fatalf("first visit: %v", err)
	}
	events, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#events")))
	if err != nil {
		t.Fatal(err)
	}
	assets := "loaded"
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if assets != "loaded" || !strings.Contains(events, "<state>READY</state>") {
		t.Fatalf("assets %q, events %q", assets, events)
	}
	art := filepath.Join("artifacts")
	_ = os.MkdirAll(art, 0o755)
	if err := os.WriteFile(filepath.Join(art, "agent-desktop.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Second visit: the static assets come from rampart's cache.
	if err := steps(chromedp.Navigate(url), assetsLoaded()); err != nil {
		t.Fatalf("second visit: %v", err)
	}
	mu.Lock()
	js := cacheStatus["desktop.js"]
	mu.Unlock()
	if len(js) < 2 || !strings.Contains(js[0], "stored") || !strings.Contains(js[len(js)-1], "rampart; hit") {
		t.Fatalf("desktop.js Cache-Status over two visits: %q", js)
	}

	// Five wrong passwords within the window ban this client (418); then
	// even the right password is refused.
	for i := 1; i <= 7; i++ {
		pass, want := fmt.Sprintf("wrong-%d", i), "login failed: 401"
		switch {
		case i == 6:
			want = "login failed: 418"
		case i == 7:
			pass, want = "Secret#1", "login failed: 418"
		}
		err := steps(
			chromedp.Evaluate[chromedp.Void](`document.getElementById('status').textContent = 'retrying'`),
			chromedp.SetValue(chromedp.CSS("#pass"), pass),
			chromedp.Click(chromedp.CSS("#signin")),
			loginFailed(),
		)
		if err != nil {
			st, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#status")))
			sec, _ := os.ReadFile(filepath.Join(d.Dir, "security.log"))
			t.Fatalf("attempt %d: %v (status %q)\nsecurity log:\n%s", i, err, st, sec)
		}
		status, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#status")))
		if err != nil {
			t.Fatal(err)
		}
		if status != want {
			t.Fatalf("attempt %d: %q, want %q", i, status, want)
		}
	}
}
