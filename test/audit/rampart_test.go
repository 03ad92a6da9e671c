package audit

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/audit"
)

func TestRampartPassesEverything(t *testing.T) {
	env := startRampart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	rep, err := audit.Run(ctx, audit.Options{
		Target:      "https://" + env.addr,
		Hosts:       []string{"app.test"},
		CAFile:      env.caFile,
		ExpectPaths: []string{"/", "/api/*", "/api/hello"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = rep.WriteText(&buf, false)
	t.Log("\n" + buf.String())
	for _, c := range rep.Checks {
		if c.Status == audit.Fail {
			t.Errorf("%s failed: %s", c.ID, c.Evidence)
		}
	}
}
