package deploy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/sandbox"
)

// SELinux returns the files of the rampart policy module for cfg, by name:
// rampart.te (the rampart_t domain), rampart.fc (file labels), rampart.if
// (interfaces for other modules) and rampart-selinux.sh (build, install,
// port labels and relabelling for this config).
//
// The module uses the reference policy's interfaces; it builds with the
// selinux-policy-devel (Fedora, RHEL) or selinux-policy-dev (Debian)
// Makefile: make -f /usr/share/selinux/devel/Makefile rampart.pp
func SELinux(cfg *config.Config, opts Options) (map[string]string, error) {
	h, err := newHost(cfg, opts)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"rampart.te":         h.selinuxTE(),
		"rampart.fc":         h.selinuxFC(),
		"rampart.if":         selinuxIF,
		"rampart-selinux.sh": h.selinuxScript(),
	}, nil
}

func (h *host) portLines() (bind, connect []uint16) {
	bind = h.bindPorts()
	for _, e := range h.upstreams {
		if !e.UDP && !slices.Contains(connect, e.Port) {
			connect = append(connect, e.Port)
		}
	}
	slices.Sort(connect)
	return bind, connect
}

func (h *host) selinuxTE() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	b.WriteString(h.header("selinux"))
	bind, connect := h.portLines()
	w("#")
	w("# Ports are labelled outside the module (a module cannot carry portcon):")
	for _, p := range bind {
		w("#   semanage port -a -t rampart_port_t -p tcp %d", p)
	}
	for _, p := range connect {
		w("#   semanage port -a -t rampart_upstream_port_t -p tcp %d", p)
	}
	w("# (rampart-selinux.sh runs them, with -m for a port that already has a type.)")
	w("")
	w("policy_module(rampart, 1.0.0)")
	w("")
	w(`########################################
#
# Declarations
#

## <desc>
## <p>
## Allow rampart to start as root and switch to its own user
## (the config key user:). Off: run it as User=rampart under systemd.
## </p>
## </desc>
gen_tunable(rampart_drop_privileges, false)

type rampart_t;
type rampart_exec_t;
init_daemon_domain(rampart_t, rampart_exec_t)

# The config, certificates, keys and CA files: read only.
type rampart_conf_t;
files_config_file(rampart_conf_t)

# Access and security logs: created and appended to, never read back.
type rampart_log_t;
logging_log_file(rampart_log_t)

type rampart_cache_t;
files_type(rampart_cache_t)

# Request bodies and uploads spooled by the WAF.
type rampart_tmp_t;
files_tmp_file(rampart_tmp_t)

# Listener and admin ports (bind), upstream and state-store ports (connect).
type rampart_port_t;
corenet_port(rampart_port_t)
type rampart_upstream_port_t;
corenet_port(rampart_upstream_port_t)

########################################
#
# Local policy
#

allow rampart_t self:process { signal_perms getsched setsched };
allow rampart_t self:fifo_file rw_fifo_file_perms;
allow rampart_t self:unix_stream_socket create_stream_socket_perms;
allow rampart_t self:tcp_socket { create_stream_socket_perms };`)
	if h.lowPort() {
		w("# A listener port below 1024.")
		w("allow rampart_t self:capability net_bind_service;")
	} else {
		w("# Every port is 1024 or above: no capability at all.")
	}
	if h.sendsUDP() {
		w("# Ban notices to syslog over UDP (SELinux checks no destination port for UDP).")
		w("allow rampart_t self:udp_socket create_socket_perms;")
		w("corenet_udp_sendrecv_generic_if(rampart_t)")
		w("corenet_udp_sendrecv_generic_node(rampart_t)")
	}
	w(`
tunable_policy(` + "`rampart_drop_privileges'" + `,` + "`" + `
	allow rampart_t self:capability { setuid setgid };
')

# Config and certificates.
list_dirs_pattern(rampart_t, rampart_conf_t, rampart_conf_t)
read_files_pattern(rampart_t, rampart_conf_t, rampart_conf_t)
read_lnk_files_pattern(rampart_t, rampart_conf_t, rampart_conf_t)
files_search_etc(rampart_t)
miscfiles_read_generic_certs(rampart_t)

# Logs: append only.
logging_search_logs(rampart_t)
allow rampart_t rampart_log_t:dir { search_dir_perms add_entry_dir_perms };
allow rampart_t rampart_log_t:file { create_file_perms append_file_perms };` + "\n" + h.logFiletrans() + `

# Cache.
manage_dirs_pattern(rampart_t, rampart_cache_t, rampart_cache_t)
manage_files_pattern(rampart_t, rampart_cache_t, rampart_cache_t)
files_search_var(rampart_t)

# Temporary files.
manage_files_pattern(rampart_t, rampart_tmp_t, rampart_tmp_t)
files_tmp_filetrans(rampart_t, rampart_tmp_t, file)

# Network: bind only rampart_port_t, connect only rampart_upstream_port_t.
corenet_tcp_bind_generic_node(rampart_t)
corenet_tcp_sendrecv_generic_if(rampart_t)
corenet_tcp_sendrecv_generic_node(rampart_t)
allow rampart_t rampart_port_t:tcp_socket name_bind;
allow rampart_t rampart_upstream_port_t:tcp_socket name_connect;

# Names pinned in /etc/hosts; DNS itself is blocked by the firewall.
sysnet_read_config(rampart_t)
files_read_etc_files(rampart_t)

# Go runtime: CPU limits, huge page size, time zones.
kernel_read_system_state(rampart_t)
kernel_read_kernel_sysctls(rampart_t)
dev_read_sysfs(rampart_t)
fs_search_cgroup_dirs(rampart_t)
fs_read_cgroup_files(rampart_t)
miscfiles_read_localization(rampart_t)
dev_read_urand(rampart_t)

# stdout and stderr go to the journal.
init_use_fds(rampart_t)
init_rw_stream_sockets(rampart_t)
logging_send_syslog_msg(rampart_t)`)
	return b.String()
}

// selinuxFC labels the program, the config and certificate directories the
// config names, the log directories and the cache directory. Directories of
// other software (certbot's, the system trust store) keep their labels:
// rampart reads them as cert_t.
func (h *host) selinuxFC() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	b.WriteString(h.header("selinux"))
	w("")
	w("%-48s --\tgen_context(system_u:object_r:rampart_exec_t,s0)", regexp.QuoteMeta(h.opts.Binary))
	label := func(p sandbox.Path, typ string) {
		re := regexp.QuoteMeta(p.Path)
		if p.File {
			w("%-48s --\tgen_context(system_u:object_r:%s,s0)", re, typ)
			return
		}
		w("%-48s \tgen_context(system_u:object_r:%s,s0)", re+"(/.*)?", typ)
	}
	for _, p := range h.plan.ReadOnly {
		if sharedCertDir(p.Path) {
			w("# %s (%s): left as it is, read as cert_t", p.Path, p.Why)
			continue
		}
		label(p, "rampart_conf_t")
	}
	cacheDefault := true
	for _, p := range h.plan.ReadWrite {
		if p.Cache {
			label(p, "rampart_cache_t")
			cacheDefault = cacheDefault && p.Path != "/var/cache/rampart"
			continue
		}
		label(p, "rampart_log_t")
	}
	if cacheDefault {
		label(sandbox.Path{Path: "/var/cache/rampart"}, "rampart_cache_t")
	}
	return b.String()
}

func (h *host) sendsUDP() bool {
	for _, e := range h.upstreams {
		if e.UDP {
			return true
		}
	}
	return false
}

// logFiletrans lets rampart create a log file directly in /var/log (and
// have it labelled rampart_log_t) only when the config puts one there.
func (h *host) logFiletrans() string {
	for _, p := range h.plan.ReadWrite {
		if p.File && filepath.Dir(p.Path) == "/var/log" {
			return "logging_log_filetrans(rampart_t, rampart_log_t, file)"
		}
	}
	return "# (no log file directly in /var/log: no right to create files there)"
}

func sharedCertDir(p string) bool {
	for _, d := range []string{"/etc/letsencrypt", "/etc/ssl", "/etc/pki"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func (h *host) selinuxScript() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/sh")
	b.WriteString(h.header("selinux"))
	w("# Builds and installs the module, labels the ports and relabels the files.")
	w("# Needs: selinux-policy-devel (Fedora, RHEL) or selinux-policy-dev (Debian),")
	w("# policycoreutils (semanage, restorecon).")
	w("set -eu")
	w(`cd "$(dirname "$0")"`)
	w("make -f /usr/share/selinux/devel/Makefile rampart.pp")
	w("semodule -i rampart.pp")
	w("")
	w("# semanage port -a fails for a port that already has a type; -m changes it.")
	w("port() { semanage port -a -t \"$1\" -p tcp \"$2\" 2>/dev/null || semanage port -m -t \"$1\" -p tcp \"$2\"; }")
	bind, connect := h.portLines()
	for _, p := range bind {
		w("port rampart_port_t %d", p)
	}
	for _, p := range connect {
		w("port rampart_upstream_port_t %d", p)
	}
	w("")
	paths := []string{h.opts.Binary}
	for _, p := range append(slices.Clone(h.plan.ReadOnly), h.plan.ReadWrite...) {
		if !sharedCertDir(p.Path) {
			paths = append(paths, p.Path)
		}
	}
	var quoted []string
	for _, p := range paths {
		quoted = append(quoted, shellQuote(p))
	}
	w("restorecon -RFv %s", strings.Join(quoted, " "))
	return b.String()
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// selinuxIF are the interfaces other modules use to work with rampart.
var selinuxIF = "## <summary>rampart, a deny-by-default TLS reverse proxy.</summary>\n" +
	selinuxInterface("rampart_domtrans", "Execute rampart in the rampart domain.", "Domain allowed to transition.", "",
		"type rampart_t, rampart_exec_t;", `
	corecmd_search_bin($1)
	domtrans_pattern($1, rampart_exec_t, rampart_t)`) +
	selinuxInterface("rampart_read_config", "Read the rampart config and certificates.", "Domain allowed access.", "",
		"type rampart_conf_t;", `
	files_search_etc($1)
	list_dirs_pattern($1, rampart_conf_t, rampart_conf_t)
	read_files_pattern($1, rampart_conf_t, rampart_conf_t)`) +
	selinuxInterface("rampart_read_log", "Read the rampart access and security logs (log shippers).", "Domain allowed access.", "",
		"type rampart_log_t;", `
	logging_search_logs($1)
	list_dirs_pattern($1, rampart_log_t, rampart_log_t)
	read_files_pattern($1, rampart_log_t, rampart_log_t)`) +
	selinuxInterface("rampart_signal", "Send rampart a signal (SIGHUP reloads, SIGTERM drains).", "Domain allowed access.", "",
		"type rampart_t;", `
	allow $1 rampart_t:process signal;`) +
	selinuxInterface("rampart_admin", "All of the rules required to administrate\n##\ta rampart environment.", "Domain allowed access.", `## <param name="role">
##	<summary>
##	Role allowed access.
##	</summary>
## </param>
## <rolecap/>
`,
		"type rampart_t, rampart_conf_t, rampart_log_t, rampart_cache_t;", `
	allow $1 rampart_t:process { ptrace signal_perms };
	ps_process_pattern($1, rampart_t)

	files_search_etc($1)
	admin_pattern($1, rampart_conf_t)

	logging_search_logs($1)
	admin_pattern($1, rampart_log_t)

	files_search_var($1)
	admin_pattern($1, rampart_cache_t)`)

// selinuxInterface is one interface of rampart.if in the reference policy's
// layout: the documentation block the policy's tools parse, then the
// interface requiring types and granting body to the domain $1. extraParams
// documents parameters after the domain.
func selinuxInterface(name, summary, domain, extraParams, types, body string) string {
	return `
########################################
## <summary>
##	` + summary + `
## </summary>
## <param name="domain">
##	<summary>
##	` + domain + `
##	</summary>
## </param>
` + extraParams + `#
interface(` + "`" + name + "'" + `,` + "`" + `
	gen_require(` + "`" + `
		` + types + `
	')
` + body + `
')
`
}
