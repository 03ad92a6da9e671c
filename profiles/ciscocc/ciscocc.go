// Package ciscocc generates rampart's `cisco-cc` profile: a complete,
// commented config for exposing a contact center (Finesse agent desktop and
// API, IdS single sign-on, CUIC reporting, LiveData) to agents on the
// internet without a VPN. Every default comes from the published behaviour
// of Cisco's own reverse-proxy setup; every number stays configurable in
// the generated file.
package ciscocc

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/template"
)

// Component is one internal server: its public name and upstream URL.
type Component struct {
	Host     string // public name, e.g. finesse.example.com
	Upstream string // https://10.0.0.5:8445
}

// Options are the generator's inputs.
type Options struct {
	Finesse, IdS, CUIC, LiveData Component
	Agents                       int    // expected concurrent agents; sizes WebSocket caps
	SinglePort                   bool   // all components on 443, one name each
	CertDir                      string // where the generated file expects certificates; default certs
	Listen                       string // listener host; default 0.0.0.0
	Port                         int    // the port of --single-port; default 443
	Admin                        string // admin listener; default 127.0.0.1:9901
	AccessLog, SecurityLog       string // default /var/log/rampart/{access,security}.log
}

// ParseComponent parses "host=https://addr:port".
func ParseComponent(flagName, v string) (Component, error) {
	host, up, ok := strings.Cut(v, "=")
	u, err := url.Parse(up)
	if !ok || host == "" || err != nil || u.Scheme != "https" || u.Port() == "" {
		return Component{}, fmt.Errorf("--%s %q: write PUBLIC-HOST=https://INTERNAL-ADDRESS:PORT, e.g. finesse.example.com=https://10.0.0.5:8445", flagName, v)
	}
	return Component{Host: strings.ToLower(host), Upstream: up}, nil
}

// Published ports of each component in the multi-port layout.
const (
	portFinesse  = 8445
	portIdS      = 8553
	portCUIC     = 8444
	portLiveData = 12005
)

type site struct {
	Component
	Port       int
	CertDir    string
	SinglePort bool
}

type data struct {
	Options
	Sites                       map[string]site
	Ports                       []int
	FinesseWS, LiveDataWS       int
	FinesseSiteWS, LiveSiteWS   int
	ReferrerHosts               string
	FinesseHostPort, IdsHostRef string
}

// Generate writes the config to w.
func Generate(w io.Writer, o Options) error {
	if o.Agents <= 0 {
		return fmt.Errorf("--agents must be the number of agents working at once (e.g. 500)")
	}
	for name, c := range map[string]Component{"finesse": o.Finesse, "ids": o.IdS, "cuic": o.CUIC, "livedata": o.LiveData} {
		if c.Host == "" {
			return fmt.Errorf("--%s is required", name)
		}
	}
	if o.CertDir == "" {
		o.CertDir = "certs"
	}
	if o.Listen == "" {
		o.Listen = "0.0.0.0"
	}
	if o.Port == 0 {
		o.Port = 443
	}
	if o.Admin == "" {
		o.Admin = "127.0.0.1:9901"
	}
	if o.AccessLog == "" {
		o.AccessLog = "/var/log/rampart/access.log"
	}
	if o.SecurityLog == "" {
		o.SecurityLog = "/var/log/rampart/security.log"
	}
	d := data{Options: o, Sites: map[string]site{}}
	for name, x := range map[string]struct {
		c    Component
		port int
	}{"finesse": {o.Finesse, portFinesse}, "ids": {o.IdS, portIdS}, "cuic": {o.CUIC, portCUIC}, "livedata": {o.LiveData, portLiveData}} {
		port := x.port
		if o.SinglePort {
			port = o.Port
		}
		d.Sites[name] = site{Component: x.c, Port: port, CertDir: o.CertDir, SinglePort: o.SinglePort}
	}
	seen := map[int]bool{}
	for _, s := range d.Sites {
		if !seen[s.Port] {
			seen[s.Port] = true
			d.Ports = append(d.Ports, s.Port)
		}
	}
	sort.Ints(d.Ports)
	// Each agent desktop holds one notification socket; 20% headroom for
	// reloads and supervisors.
	d.FinesseWS = o.Agents * 12 / 10
	d.FinesseSiteWS = d.FinesseWS + 10
	d.LiveDataWS = o.Agents * 12 / 10
	d.LiveSiteWS = d.LiveDataWS + 10
	hosts := []string{o.Finesse.Host, o.IdS.Host, o.CUIC.Host, o.LiveData.Host}
	d.ReferrerHosts = "[" + strings.Join(hosts, ", ") + "]"
	return profile.Execute(w, d)
}

var profile = template.Must(template.Must(template.New("cisco-cc").Parse(upstreamTemplate)).Parse(profileTemplate))
