package ciscocc

// profileTemplate is the generated config. Its comments are the operator's
// documentation of each choice.
const profileTemplate = `# rampart config: cisco-cc profile
# Agents on the internet reach Finesse, IdS, CUIC and LiveData through this
# host; nothing else is exposed. Generated for {{.Agents}} concurrent agents.
# Validate with ` + "`rampart check -c FILE`" + `; it must report no warnings.
#
# Certificates this file expects (relative to this file):
#   {{.CertDir}}/site.pem, {{.CertDir}}/site-key.pem   public certificate for all four names (chmod 600 the key)
#   {{.CertDir}}/internal-ca.pem                      trust file for the internal servers' certificates
#   {{.CertDir}}/proxy-client.pem, -key.pem           rampart's client certificate (the servers accept only it)

listeners:{{range .Ports}}
  - "{{$.Listen}}:{{.}}"{{end}}
admin: {listen: "{{.Admin}}"}      # health and metrics: never on a public interface

tls:
  cert: {{.CertDir}}/site.pem
  key: {{.CertDir}}/site-key.pem
  versions: ["1.2"]                     # TLS 1.2 only, as the guideline asks
  ciphers:                              # ECDHE with AES-GCM only
    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  session_tickets: false

limits:
  max_header_bytes: 16KiB               # 4 KiB buffer + 2 x 8 KiB large headers
  max_body: 15MiB
  read_header_timeout: 10s
  body_read_timeout: 10s
  body_min_rate: 1KiB                   # a body must average 1 KiB/s after its first 10 s (slow POST)
  send_timeout: 10s
  idle_timeout: 20s                     # keepalive 20 s
  connections_per_client: 12            # per client IP (503 above); raise it when agents share a NAT address
  handshakes_per_client: 20/s

# When a load balancer sits in front, list it and say where the client
# address comes from; its connections then meet only the total cap.
# trusted_proxies: [10.0.0.0/24]
# client_ip: {header: X-Forwarded-For}
# exempt: [10.0.0.10/32]                # monitoring: no rate limits (bans still apply)

rate_limits:                            # per client IP; 429 with Retry-After above
  finesse:           {rate: 45/s, burst: 50}
  finesse_clientlog: {rate: 5/s, burst: 5}
  finesse_sso:       {rate: 5/s, burst: 5}
  shindig:           {rate: 45/s, burst: 40}
  ids:               {rate: 5/s, burst: 4}
  cuic:              {rate: 50/s, burst: 100}
  livedata:          {rate: 25/s, burst: 25}

log:
  access: {{.AccessLog}}
  security: {{.SecurityLog}}

sites:
{{with index .Sites "finesse"}}  # Finesse: agent desktop, REST API, gadgets, notifications.
  - host: {{.Host}}
{{template "upstream" .}}    deny_status: 421                    # any URL not listed below
    rate_limit: finesse
    max_websockets: {{$.FinesseSiteWS}}
    brute_force: {failures: 5, window: 30s, ban: 30m, ban_status: 418, statuses: [401], username: {basic: true}}
    auth: {kind: basic_upstream, verify_url: /finesse/api/UserAuth, cache: 15m}
    require_header:
      - {header: Referer, match: origin_of_hosts, hosts: {{$.ReferrerHosts}}, status: 417, allow_missing: true}
{{template "browsers"}}    deny:
      - {prefix: /cfadmin/, status: 403}
      - {prefix: /finesse/admin/, status: 403}
      - {prefix: /admin/, status: 403}
    routes:
      # Regex routes are tried in file order after exact and prefix
      # routes: the ClientLog route must come before the general API route.
      - regex: '^/finesse/api/User/[^/]+/ClientLog$'
        methods: [POST]
        rate_limit: finesse_clientlog
      - regex: '^/finesse/api/'
        methods: [GET, POST, PUT, DELETE]
        waf:                             # agents' notes are free text: exclude only the command-word rules, only there
          exclusions:
            - {rules: [932230, 932235, 932236, 932250, 932260, 932340, 932370, 932380], routes: [/finesse/api/], fields: ["ARGS:json.note", "ARGS:note", "XML:/*"]}
      - exact: /desktop/sso/token
        methods: [GET, POST]
        rate_limit: finesse_sso
        auth: {kind: "off"}
      - prefix: /desktop/api/
        methods: [GET]
        auth: {kind: "off"}
      - prefix: /desktop/                # desktop page and static resources, cached and revalidated
        auth: {kind: "off"}
        cache: {enabled: true, public: true, revalidate_after: 5m, max_age: 24h, stale_while_revalidate: 30s, stale_if_error: 1h}
      - prefix: /3rdpartygadget/files/
        auth: {kind: "off"}
        cache: {enabled: true, public: true, revalidate_after: 5m, max_age: 24h}
      - prefix: /gadgets/                # Shindig rpc / ifr
        methods: [GET, POST]
        rate_limit: shindig
      - exact: /ws                       # XMPP over WebSocket notifications
        websocket: true
        max_websockets: {{$.FinesseWS}}
        max_websockets_per_client: 4
        websocket_idle_timeout: 10m
{{end}}
{{with index .Sites "ids"}}  # IdS: single sign-on. Never cached; only GET, POST, OPTIONS.
  - host: {{.Host}}
{{template "upstream" .}}    deny_status: 421
    rate_limit: ids
    brute_force: {failures: 5, window: 30s, ban: 30m, ban_status: 418, statuses: [401]}
    require_header:
{{template "browsers"}}    deny:
      - {prefix: /idsadmin/, status: 403}
      - {prefix: /ids/v1/testsso, status: 403}
    routes:
      - prefix: /ids/
        methods: [GET, POST, OPTIONS]
{{end}}
{{with index .Sites "cuic"}}  # CUIC: reports.
  - host: {{.Host}}
{{template "upstream" .}}    deny_status: 421
    rate_limit: cuic
    brute_force: {failures: 5, window: 30s, ban: 30m, ban_status: 418, statuses: [401]}
    require_header:
      - {header: Referer, match: origin_of_hosts, hosts: {{$.ReferrerHosts}}, status: 417, allow_missing: true}
{{template "browsers"}}    deny:
      - {prefix: /cuic/admin/, status: 403}
    routes:
      - prefix: /cuic/static/
        cache: {enabled: true, public: true, revalidate_after: 5m, max_age: 24h}
      - prefix: /cuic/
        methods: [GET, POST]
{{end}}
{{with index .Sites "livedata"}}  # LiveData: real-time reporting over socket.io.
  - host: {{.Host}}
{{template "upstream" .}}    deny_status: 421
    rate_limit: livedata
    max_websockets: {{$.LiveSiteWS}}
    require_header:
{{template "browsers"}}    routes:
      - prefix: /livedata/
        methods: [GET, POST]
      - prefix: /security/socket.io/
        websocket: true
        max_websockets: {{$.LiveDataWS}}
        max_websockets_per_client: 4
{{end}}`

// upstreamTemplate is each site's listener port and verified, mutually
// authenticated upstream.
const upstreamTemplate = `{{define "upstream"}}{{if not .SinglePort}}    ports: [{{.Port}}]
{{end}}    upstream:
      targets: ["{{.Upstream}}"]
      tls: {ca: {{.CertDir}}/internal-ca.pem, cert: {{.CertDir}}/proxy-client.pem, key: {{.CertDir}}/proxy-client-key.pem}
{{end}}{{define "browsers"}}      - {header: User-Agent, regex: '(Chrome|Firefox|Edg|Safari)/[0-9]+', status: 412}
{{end}}`
