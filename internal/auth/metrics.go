package auth

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Label values of rampart_auth_total. Both sets are fixed, so the number of
// series is bounded whatever clients send.
const (
	// kind: what the request presented.
	mBasic  = "basic"  // HTTP Basic
	mBearer = "bearer" // JWT
	mRecent = "recent" // WebSocket upgrade let through by recent_auth_window
	mNone   = "none"   // nothing usable

	// result
	rPass        = "pass"        // verified now (upstream 200, or token valid)
	rCached      = "cached"      // Basic credentials found fresh in the cache
	rMissing     = "missing"     // no credentials
	rMalformed   = "malformed"   // credentials that do not parse
	rRejected    = "rejected"    // upstream said 401/403, or token invalid
	rUnavailable = "unavailable" // verification could not be done (503)
	rPreflight   = "preflight"   // CORS preflight let through by allow_cors_preflight
)

var (
	authTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_auth_total",
		Help: "Edge authentication decisions, by credential kind (basic, bearer, recent, none) and result (pass, cached, missing, malformed, rejected, unavailable, preflight).",
	}, []string{"kind", "result"})
	verifyTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_auth_verify_total",
		Help: "Calls to the upstream verify_url, by outcome (ok, rejected, error).",
	}, []string{"outcome"})
	keysTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_auth_keys_refresh_total",
		Help: "Fetches of the JWT signing keys, by result (ok, error).",
	}, []string{"result"})
)

// The series the request path counts, resolved once instead of by label
// on every request.
var (
	countBasicCached      = authTotal.WithLabelValues(mBasic, rCached)
	countBasicPass        = authTotal.WithLabelValues(mBasic, rPass)
	countBasicRejected    = authTotal.WithLabelValues(mBasic, rRejected)
	countBasicUnavailable = authTotal.WithLabelValues(mBasic, rUnavailable)
	countBearerPass       = authTotal.WithLabelValues(mBearer, rPass)
	countBearerRejected   = authTotal.WithLabelValues(mBearer, rRejected)
	countNoneMalformed    = authTotal.WithLabelValues(mNone, rMalformed)
	countNoneMissing      = authTotal.WithLabelValues(mNone, rMissing)
	countNonePreflight    = authTotal.WithLabelValues(mNone, rPreflight)
	countRecentPass       = authTotal.WithLabelValues(mRecent, rPass)
	verifyError           = verifyTotal.WithLabelValues("error")
	verifyOk              = verifyTotal.WithLabelValues("ok")
	verifyRejected        = verifyTotal.WithLabelValues("rejected")
)
