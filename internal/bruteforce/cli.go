package bruteforce

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampart-proxy/rampart/internal/adminclient"
)

const cliUsage = `usage:
  rampart bans list
  rampart bans add IP|KEY DURATION [REASON...]    e.g. add 203.0.113.7 1h scanning
  rampart bans remove IP|KEY

KEY is ip:<addr> or user:<site>:<name>; DURATION is 30m, 1h, 24h, ...
`

// RunCLI runs `rampart bans ARGS...` against the admin API at adminURL
// (e.g. http://127.0.0.1:9901) and returns the exit status: 0 done,
// 1 failed, 2 usage error. args are the words after "bans" (a leading
// "bans" is accepted too).
func RunCLI(args []string, adminURL string, stdout, stderr io.Writer) int {
	return adminclient.Command{Name: "bans", Usage: cliUsage, Run: runBans}.Main(args, adminURL, stdout, stderr)
}

func runBans(ac *adminclient.Client, args []string, stdout io.Writer) error {
	c := &cliClient{ac}
	switch args[0] {
	case "list", "ls":
		if len(args) != 1 {
			return adminclient.UsageError("list takes no arguments")
		}
		return c.list(stdout)
	case "add":
		if len(args) < 3 {
			return adminclient.UsageError("add needs an address (or key) and a duration")
		}
		return c.add(stdout, args[1], args[2], strings.Join(args[3:], " "))
	case "remove", "rm", "delete":
		if len(args) != 2 {
			return adminclient.UsageError("remove needs one address (or key)")
		}
		return c.remove(stdout, args[1])
	}
	return adminclient.UsageError(fmt.Sprintf("unknown command %q", args[0]))
}

type cliClient struct{ *adminclient.Client }

func (c *cliClient) list(stdout io.Writer) error {
	var bans []BanView
	if err := c.Do(http.MethodGet, "/bans", nil, &bans); err != nil {
		return err
	}
	if len(bans) == 0 {
		fmt.Fprintln(stdout, "no bans")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tUNTIL\tREMAINING\tMANUAL\tREASON")
	for _, b := range bans {
		until, remaining := "never", "-"
		if b.Until != nil {
			until, remaining = b.Until.Format(time.RFC3339), b.Remaining
		}
		manual := "no"
		if b.Manual {
			manual = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Key, until, remaining, manual, b.Reason)
	}
	return tw.Flush()
}

func (c *cliClient) add(stdout io.Writer, target, duration, reason string) error {
	req := BanRequest{Duration: duration, Reason: reason}
	if strings.HasPrefix(target, "ip:") || strings.HasPrefix(target, "user:") {
		req.Key = target
	} else {
		req.IP = target
	}
	var b BanView
	if err := c.Do(http.MethodPost, "/bans", req, &b); err != nil {
		return err
	}
	until := "further notice"
	if b.Until != nil {
		until = b.Until.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "banned %s until %s\n", b.Key, until)
	return nil
}

func (c *cliClient) remove(stdout io.Writer, target string) error {
	key, err := NormalizeKey(target)
	if err != nil {
		return err
	}
	if err := c.Do(http.MethodDelete, "/bans/"+url.PathEscape(key), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lifted ban on %s\n", key)
	return nil
}
