// Package loadresult is the report the load generator (bench/loadgen)
// prints and the harness (bench/run) reads.
package loadresult

// Result is the load generator's report: one JSON line printed at the
// end of a run and read by the harness.
type Result struct {
	Mode       string         `json:"mode"`
	Requests   int64          `json:"requests"`
	Errors     int64          `json:"errors"`
	Non2xx     int64          `json:"non_2xx"`
	Status     map[string]int `json:"status"`
	Seconds    float64        `json:"seconds"`
	RPS        float64        `json:"rps"`
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	P999       float64        `json:"p999_ms"`
	Max        float64        `json:"max_ms"`
	Bytes      int64          `json:"bytes"`
	TLS        string         `json:"tls,omitempty"`
	Late       int64          `json:"late,omitempty"` // rate mode: sends more than 1 ms behind schedule
	WSOpened   int            `json:"ws_opened,omitempty"`
	WSFailed   int            `json:"ws_failed,omitempty"`
	WSEchoed   int            `json:"ws_echoed,omitempty"`
	FirstError string         `json:"first_error,omitempty"`
}
