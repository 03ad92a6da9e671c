package waf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
)

// Set builds WAFs and shares them: every distinct configuration is built
// once. The caller makes one Set per config load and calls Get for every
// site and route while loading, off the request path; building the CRS
// takes a few hundred milliseconds and tens of megabytes.
type Set struct {
	mu      sync.Mutex
	entries map[string]*setEntry
}

type setEntry struct {
	once sync.Once
	waf  *WAF
	err  error
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{entries: make(map[string]*setEntry)}
}

// Get returns the WAF for cfg, building it on first use. cfg is merged over
// Defaults first, so a partial configuration is accepted. baseDir is the
// directory of the config file, against which a relative rules_file is
// resolved. Two calls with configurations that are equal after that (and,
// with a rules_file, whose files have the same content) return the same
// *WAF. Get is safe for concurrent use.
func (s *Set) Get(cfg Config, baseDir string) (*WAF, error) {
	cfg, rules, err := prepare(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	key, err := cacheKey(cfg, rules)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	e, ok := s.entries[key]
	if !ok {
		e = &setEntry{}
		s.entries[key] = e
	}
	s.mu.Unlock()

	e.once.Do(func() { e.waf, e.err = build(cfg, string(rules), buildOptions{}) })
	return e.waf, e.err
}

// Len returns the number of distinct configurations built or being built.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// cacheKey is the canonical encoding of cfg (field order is fixed by the
// struct) plus the hash of the rules file content, so that two sites naming
// different files with the same rules share one WAF.
func cacheKey(cfg Config, rules []byte) (string, error) {
	if cfg.Mode == ModeOff {
		// Nothing else matters when the WAF is off.
		cfg = Config{Mode: ModeOff}
	}
	cfg.RulesFile = ""
	enc, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(rules)
	return string(enc) + "|" + hex.EncodeToString(sum[:]), nil
}
