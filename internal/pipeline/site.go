package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/rampart-proxy/rampart/internal/bruteforce"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/egress"
	"github.com/rampart-proxy/rampart/internal/proxy"
	"github.com/rampart-proxy/rampart/internal/route"
)

type site struct {
	conf     *config.Site
	index    int
	guard    *bruteforce.Guard
	metrics  siteMetrics
	names    []string
	matcher  *route.Matcher
	routes   []*routeEntry
	headers  [][2]string
	upstream *proxy.Upstream
}

type routeEntry struct {
	conf    *config.Route
	desc    string
	methods map[string]bool
	allow   string // value of the Allow header on 405
	handler http.Handler
}

// Build makes the pipeline for cfg: it reads every certificate and CA file
// the upstreams need and builds each route's stage chain. Nothing here runs
// per request; a reload that fails here leaves the running pipeline alone.
func Build(ctx context.Context, cfg *config.Config, shared *Shared) (*Pipeline, error) {
	var hostports []string
	for _, s := range cfg.Sites {
		for _, t := range s.Upstream.Targets {
			u, _ := url.Parse(t)
			hostports = append(hostports, u.Host)
		}
	}
	dialer, err := egress.New(ctx, hostports)
	if err != nil {
		return nil, err
	}
	b, err := newBuilder(cfg, shared)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Config: cfg, sites: map[string]*site{}, resolver: b.resolver}
	// Every site's upstream exists before any route chain is built: edge
	// authentication may fetch its keys from another site's upstream.
	for i := range cfg.Sites {
		s, err := b.site(i, dialer)
		if err != nil {
			return nil, fmt.Errorf("sites[%d] (%s): %w", i, cfg.Sites[i].Host, err)
		}
		b.sites = append(b.sites, s)
	}
	for i, s := range b.sites {
		if err := b.routes(s); err != nil {
			return nil, fmt.Errorf("sites[%d] (%s): %w", i, cfg.Sites[i].Host, err)
		}
		p.all = append(p.all, s)
		for _, n := range s.names {
			p.sites[n] = s
		}
	}
	shared.setCaches(b.caches)
	p.auths = b.auths
	return p, nil
}

// Close releases what the pipeline holds (idle upstream connections, key
// refresh loops) once a reload replaced it.
func (p *Pipeline) Close() {
	for _, s := range p.all {
		s.upstream.Close()
	}
	if p.auths != nil {
		p.auths.Close()
	}
}

// ownedHeaders are the response headers rampart sets itself; an upstream's
// copy is dropped so the site's policy is the one the client sees.
var ownedHeaders = []string{"Strict-Transport-Security", "X-Frame-Options", "Referrer-Policy", "X-Content-Type-Options", "X-Request-ID"}

func (b *builder) site(i int, dialer *egress.Dialer) (*site, error) {
	cfg, cs := b.cfg, &b.cfg.Sites[i]
	s := &site{conf: cs, names: append([]string{cs.Host}, cs.Aliases...), index: i, metrics: newSiteMetrics(cs.Host)}
	h := cs.Headers
	for _, kv := range [][2]*string{
		{strp("Strict-Transport-Security"), h.HSTS},
		{strp("X-Frame-Options"), h.FrameOptions},
		{strp("Referrer-Policy"), h.ReferrerPolicy},
		{strp("X-Content-Type-Options"), h.ContentTypeOptions},
	} {
		if v := *kv[1]; v != "" && v != "off" {
			s.headers = append(s.headers, [2]string{*kv[0], v})
		}
	}
	owned := append([]string{}, ownedHeaders...)
	extra := make([]string, 0, len(h.Set))
	for k := range h.Set {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		s.headers = append(s.headers, [2]string{http.CanonicalHeaderKey(k), h.Set[k]})
		owned = append(owned, k)
	}
	up, err := proxy.New(cfg, cs, dialer, owned)
	if err != nil {
		return nil, err
	}
	s.upstream = up
	return s, nil
}

// routes builds the site's ban guard, matcher and route chains.
func (b *builder) routes(s *site) error {
	cs := s.conf
	var err error
	bf := bruteforce.Config{}
	if cs.BruteForce != nil {
		bf = *cs.BruteForce
	}
	if s.guard, err = bruteforce.New(cs.Host, bf, b.shared.Store); err != nil {
		return fmt.Errorf("brute_force: %w", err)
	}

	var routes, denies []route.Rule
	for i, d := range cs.Deny {
		denies = append(denies, rule(d.Exact, d.Prefix, d.Regex, i))
	}
	for i := range cs.Routes {
		rc := &cs.Routes[i]
		routes = append(routes, rule(rc.Exact, rc.Prefix, rc.Regex, i))
	}
	if s.matcher, err = route.NewMatcher(routes, denies); err != nil {
		return err
	}
	for i := range cs.Routes {
		rc := &cs.Routes[i]
		rt := &routeEntry{conf: rc, desc: s.matcher.Describe(i), methods: map[string]bool{}}
		for _, m := range rc.Methods {
			rt.methods[m] = true
		}
		rt.allow = strings.Join(rc.Methods, ", ")
		if rt.handler, err = b.routeChain(s, i, rt); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		s.routes = append(s.routes, rt)
	}
	return nil
}

func rule(exact, prefix, regex string, i int) route.Rule {
	switch {
	case exact != "":
		return route.Rule{Kind: route.KindExact, Pattern: exact, Index: i}
	case prefix != "":
		return route.Rule{Kind: route.KindPrefix, Pattern: prefix, Index: i}
	}
	return route.Rule{Kind: route.KindRegex, Pattern: regex, Index: i}
}

func strp(s string) *string { return &s }

func (s *site) setHeaders(h http.Header) {
	for _, kv := range s.headers {
		h[kv[0]] = []string{kv[1]}
	}
}
