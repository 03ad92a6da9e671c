package waf

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/units"
)

// Mode says what the WAF does with a request the rules would refuse.
type Mode string

// The modes.
const (
	ModeBlock  Mode = "block"  // refuse with 403
	ModeDetect Mode = "detect" // log the security event and forward
	ModeOff    Mode = "off"    // no inspection at all
)

// OverLimit says what happens to a request body larger than body_limit.
type OverLimit string

// The over-limit actions.
const (
	OverLimitReject  OverLimit = "reject"  // refuse with 413
	OverLimitPartial OverLimit = "partial" // inspect the first body_limit bytes, forward all
)

// MaxBodyLimit caps body_limit: the inspected part of a body is held in
// memory for the lifetime of the request.
const MaxBodyLimit = 256 << 20

// Config is the waf: block of a site or of a route. A zero field means
// "not set here": Merge lets a route inherit it from its site, and Defaults
// fills what neither sets.
type Config struct {
	Mode               Mode           `yaml:"mode"`
	Paranoia           int            `yaml:"paranoia"`
	InboundThreshold   int            `yaml:"inbound_threshold"`
	OutboundThreshold  int            `yaml:"outbound_threshold"`
	ResponseInspection *bool          `yaml:"response_inspection"`
	BodyLimit          units.ByteSize `yaml:"body_limit"`
	OverLimit          OverLimit      `yaml:"over_limit"`
	Exclusions         []Exclusion    `yaml:"exclusions"`
	RulesFile          string         `yaml:"rules_file"`
}

// Exclusion switches CRS rules off narrowly. Rules is required. With Fields,
// only those request fields are taken out of the rules' targets (for example
// "ARGS:note", "ARGS_POST:note", "REQUEST_HEADERS:Referer",
// "REQUEST_COOKIES:/^_ga/"); without, the rules are removed whole. With
// Routes, the exclusion applies only to request paths starting with one of
// the prefixes; without, it applies to every request the WAF inspects.
type Exclusion struct {
	Rules  []int    `yaml:"rules"`
	Routes []string `yaml:"routes,omitempty"`
	Fields []string `yaml:"fields,omitempty"`
}

// Defaults returns the configuration in effect when nothing is set:
// blocking at paranoia level 1 with the CRS default thresholds, a 1 MiB
// inspected body that is also the largest accepted, no response inspection.
func Defaults() Config {
	off := false
	return Config{
		Mode:               ModeBlock,
		Paranoia:           1,
		InboundThreshold:   5,
		OutboundThreshold:  4,
		ResponseInspection: &off,
		BodyLimit:          1 << 20,
		OverLimit:          OverLimitReject,
	}
}

// Merge returns c with every field that override sets replacing c's. A
// route's exclusions replace the site's list rather than adding to it, so
// that a route can also clear it with "exclusions: []".
func (c Config) Merge(override *Config) Config {
	if override == nil {
		return c
	}
	if override.Mode != "" {
		c.Mode = override.Mode
	}
	if override.Paranoia != 0 {
		c.Paranoia = override.Paranoia
	}
	if override.InboundThreshold != 0 {
		c.InboundThreshold = override.InboundThreshold
	}
	if override.OutboundThreshold != 0 {
		c.OutboundThreshold = override.OutboundThreshold
	}
	if override.ResponseInspection != nil {
		v := *override.ResponseInspection
		c.ResponseInspection = &v
	}
	if override.BodyLimit != 0 {
		c.BodyLimit = override.BodyLimit
	}
	if override.OverLimit != "" {
		c.OverLimit = override.OverLimit
	}
	if override.Exclusions != nil {
		c.Exclusions = slices.Clone(override.Exclusions)
	}
	if override.RulesFile != "" {
		c.RulesFile = override.RulesFile
	}
	return c
}

// Validate checks the fields that are set; unset (zero) fields are valid
// because Merge and Defaults fill them.
func (c *Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "", ModeBlock, ModeDetect, ModeOff:
	default:
		errs = append(errs, fmt.Errorf("waf.mode %q: must be block, detect or off", c.Mode))
	}
	if c.Paranoia < 0 || c.Paranoia > 4 {
		errs = append(errs, fmt.Errorf("waf.paranoia %d: must be 1 to 4", c.Paranoia))
	}
	if c.InboundThreshold < 0 {
		errs = append(errs, fmt.Errorf("waf.inbound_threshold %d: must be at least 1", c.InboundThreshold))
	}
	if c.OutboundThreshold < 0 {
		errs = append(errs, fmt.Errorf("waf.outbound_threshold %d: must be at least 1", c.OutboundThreshold))
	}
	if c.BodyLimit < 0 || c.BodyLimit > MaxBodyLimit {
		errs = append(errs, fmt.Errorf("waf.body_limit %s: must be between 1B and %s", c.BodyLimit, units.ByteSize(MaxBodyLimit)))
	}
	switch c.OverLimit {
	case "", OverLimitReject, OverLimitPartial:
	default:
		errs = append(errs, fmt.Errorf("waf.over_limit %q: must be reject or partial", c.OverLimit))
	}
	for i, ex := range c.Exclusions {
		if err := ex.validate(); err != nil {
			errs = append(errs, fmt.Errorf("waf.exclusions[%d]: %w", i, err))
		}
	}
	if c.RulesFile != "" && strings.ContainsRune(c.RulesFile, 0) {
		errs = append(errs, errors.New("waf.rules_file: invalid path"))
	}
	return errors.Join(errs...)
}

// reservedRuleIDs are the ids of the rules this package generates; an
// exclusion may not name them and a rules_file may not reuse them.
const (
	firstGeneratedID = 99000
	lastGeneratedID  = 99999
)

func (ex Exclusion) validate() error {
	if len(ex.Rules) == 0 {
		return errors.New("rules: list at least one rule id")
	}
	for _, id := range ex.Rules {
		if id <= 0 {
			return fmt.Errorf("rules: %d is not a rule id", id)
		}
		if id >= firstGeneratedID && id <= lastGeneratedID {
			return fmt.Errorf("rules: %d is in the range %d-%d that rampart generates", id, firstGeneratedID, lastGeneratedID)
		}
	}
	for _, p := range ex.Routes {
		if err := validRoutePrefix(p); err != nil {
			return err
		}
	}
	for _, f := range ex.Fields {
		if err := validField(f); err != nil {
			return err
		}
	}
	return nil
}

func validRoutePrefix(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("routes: %q must be a path prefix starting with /", p)
	}
	for _, r := range p {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'\%,;`, r) {
			return fmt.Errorf("routes: %q: only printable characters other than quotes, backslash, %%, comma and semicolon", p)
		}
	}
	return nil
}

// fieldCollections are the collections an exclusion may name.
var fieldCollections = []string{
	"ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
	"REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES",
	"XML", "FILES", "FILES_NAMES", "REQUEST_BODY", "REQUEST_URI", "REQUEST_FILENAME",
	"REQUEST_BASENAME", "QUERY_STRING",
}

func validField(f string) error {
	coll, key, hasKey := strings.Cut(f, ":")
	if !slices.Contains(fieldCollections, coll) {
		return fmt.Errorf("fields: %q: the collection must be one of %s", f, strings.Join(fieldCollections, ", "))
	}
	if hasKey {
		if key == "" {
			return fmt.Errorf("fields: %q: empty name after the colon", f)
		}
		for _, r := range key {
			if r <= ' ' || r == 0x7f || strings.ContainsRune(`"'\,;|%`, r) {
				return fmt.Errorf("fields: %q: the name may not contain spaces, quotes, backslash, comma, semicolon, | or %%", f)
			}
		}
	}
	return nil
}

// resolveRulesFile returns the path of the rules file, relative paths taken
// from baseDir.
func (c Config) resolveRulesFile(baseDir string) string {
	if c.RulesFile == "" || filepath.IsAbs(c.RulesFile) {
		return c.RulesFile
	}
	return filepath.Join(baseDir, c.RulesFile)
}
