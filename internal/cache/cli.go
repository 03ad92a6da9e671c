package cache

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/rampart-proxy/rampart/internal/adminclient"
)

const cliUsage = `usage:
  rampart cache stats [SITE]              entries, sizes and counters of every site's cache (or one)
  rampart cache purge SITE                drop everything SITE's cache holds
  rampart cache purge SITE --prefix PATH  drop the URLs under a path prefix, e.g. /desktop/js/
  rampart cache purge SITE --key URL      drop one URL (path and query) with all its variants
`

// RunCLI runs `rampart cache ARGS...` against the admin API at adminURL
// (e.g. http://127.0.0.1:9901) and returns the exit status: 0 done,
// 1 failed, 2 usage error. args are the words after "cache".
func RunCLI(args []string, adminURL string, stdout, stderr io.Writer) int {
	return adminclient.Command{Name: "cache", Usage: cliUsage, Run: runCLI}.Main(args, adminURL, stdout, stderr)
}

func runCLI(c *adminclient.Client, args []string, stdout io.Writer) error {
	switch args[0] {
	case "stats":
		if len(args) > 2 {
			return adminclient.UsageError("stats takes at most one site")
		}
		site := ""
		if len(args) == 2 {
			site = args[1]
		}
		return cliStats(c, stdout, site)
	case "purge":
		q := url.Values{}
		switch {
		case len(args) == 2:
		case len(args) == 4 && (args[2] == "--prefix" || args[2] == "--key"):
			q.Set(args[2][2:], args[3])
		default:
			return adminclient.UsageError("purge needs a site, then at most one of --prefix PATH or --key URL")
		}
		q.Set("site", args[1])
		return cliPurge(c, stdout, q)
	}
	return adminclient.UsageError(fmt.Sprintf("unknown command %q", args[0]))
}

func cliStats(c *adminclient.Client, stdout io.Writer, site string) error {
	path := "/cache/stats"
	if site != "" {
		path += "?site=" + url.QueryEscape(site)
	}
	var out struct {
		Sites []Stats `json:"sites"`
	}
	if err := c.Do(http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	if len(out.Sites) == 0 {
		fmt.Fprintln(stdout, "no site has a cache")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tENTRIES\tMEMORY\tDISK\tHITS\tMISSES\tSTALE SERVED\tREVALIDATED 304/200/ERR\tEVICTIONS")
	for _, s := range out.Sites {
		disk := "-"
		if s.DiskBudget > 0 {
			disk = fmt.Sprintf("%s / %s (%d files)", approxBytes(s.DiskBytes), approxBytes(s.DiskBudget), s.DiskObjects)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s / %s\t%s\t%d\t%d\t%d\t%d/%d/%d\t%d\n",
			s.Site, s.Entries, approxBytes(s.Bytes), approxBytes(s.Budget), disk,
			s.Hits, s.Misses, s.StaleServed, s.Revalidated, s.Replaced, s.RevalidationErrors,
			s.Evictions+s.DiskEvictions)
	}
	return tw.Flush()
}

func cliPurge(c *adminclient.Client, stdout io.Writer, q url.Values) error {
	var out struct {
		Site   string `json:"site"`
		Purged int    `json:"purged"`
	}
	if err := c.Do(http.MethodPost, "/cache/purge?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	what := "everything"
	switch {
	case q.Has("prefix"):
		what = "URLs under " + q.Get("prefix")
	case q.Has("key"):
		what = q.Get("key")
	}
	fmt.Fprintf(stdout, "purged %d stored responses (%s) from %s\n", out.Purged, what, out.Site)
	return nil
}

// approxBytes writes n in the largest binary unit it reaches, to one
// decimal: 1.5 MiB.
func approxBytes(n int64) string {
	const units = "KMGT"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
