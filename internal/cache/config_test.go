package cache

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestRouteConfig_DecodesAndDefaults(t *testing.T) {
	var c RouteConfig
	if err := yaml.Unmarshal([]byte("{enabled: true, revalidate_after: 10m, public: true}"), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := RouteConfig{
		Enabled: true, Public: true,
		RevalidateAfter: dur(10 * time.Minute), MaxAge: dur(24 * time.Hour),
		StaleWhileRevalidate: dur(30 * time.Second), StaleIfError: dur(time.Hour),
	}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}

	full := "{enabled: true, revalidate_after: 5m, max_age: 24h, stale_while_revalidate: 30s, stale_if_error: 1h, public: false}"
	var d RouteConfig
	if err := yaml.Unmarshal([]byte(full), &d); err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err != nil || d.MaxAge.D() != 24*time.Hour || d.StaleIfError.D() != time.Hour {
		t.Errorf("full example: %+v, %v", d, err)
	}
}

func TestRouteConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		cfg  RouteConfig
		want string
	}{
		{RouteConfig{RevalidateAfter: dur(time.Hour), MaxAge: dur(time.Minute)}, "shorter than revalidate_after"},
		{RouteConfig{RevalidateAfter: dur(time.Millisecond)}, "below the minimum"},
		{RouteConfig{StaleIfError: dur(-time.Second)}, "negative"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	var c RouteConfig
	if err := yaml.Unmarshal([]byte("{revalidate_after: 5}"), &c); err == nil {
		t.Error("a bare number was accepted as a duration")
	}
}

func TestRouteConfig_NormalizedClampsWhatValidateRefuses(t *testing.T) {
	c := RouteConfig{RevalidateAfter: dur(time.Millisecond), MaxAge: dur(time.Millisecond)}.normalized()
	if c.RevalidateAfter.D() != time.Second || c.MaxAge.D() != time.Second {
		t.Errorf("normalized = %+v", c)
	}
}
