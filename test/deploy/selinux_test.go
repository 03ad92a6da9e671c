package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/deploy"
)

const develMakefile = "/usr/share/selinux/devel/Makefile"

// buildModule compiles a generated module with the reference policy's
// development Makefile (m4 macros, then checkmodule -M -m and
// semodule_package), as rampart-selinux.sh does on the host.
func buildModule(t *testing.T, files map[string]string) {
	t.Helper()
	requireTool(t, "checkmodule")
	requireTool(t, "semodule_package")
	requireTool(t, "make")
	if _, err := os.Stat(develMakefile); err != nil {
		skipOrFail(t, "%s is missing (Debian: selinux-policy-dev)", develMakefile)
	}
	dir := t.TempDir()
	for name, text := range files {
		writeFile(t, filepath.Join(dir, name), text, 0o644)
	}
	cmd := exec.Command("make", "-f", develMakefile, "rampart.pp")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make rampart.pp: %v\n%s\n--- rampart.te:\n%s", err, out, files["rampart.te"])
	}
	for _, bad := range []string{"Warning", "warning", "ERROR", "undefined"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("module build says %q:\n%s", bad, out)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "rampart.pp"))
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no policy package: %v", err)
	}
}

func TestSELinuxModuleCompiles(t *testing.T) {
	files := map[string]string{}
	for rel, text := range exampleArtefacts(t) {
		if name, ok := strings.CutPrefix(rel, "selinux/"); ok {
			files[name] = text
		}
	}
	buildModule(t, files)

	// A port below 1024, a log file directly in /var/log and a certificate
	// outside /etc/rampart: the variant parts of the module.
	cfg := installedConfig(t, `listen: "0.0.0.0:443"
tls: {cert: /srv/certs/site.pem, key: /srv/certs/site-key.pem}
log: {access: /var/log/rampart-access.log, security: /var/log/rampart/security.log}
sites:
  - host: app.example.com
    upstream: {targets: ["https://10.0.0.5:8445"]}
    routes: [{prefix: /}]
`)
	files, err := deploy.SELinux(cfg, exampleOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(files["rampart.te"], "logging_log_filetrans(rampart_t, rampart_log_t, file)") ||
		!strings.Contains(files["rampart.fc"], `/srv/certs(/.*)?`) {
		t.Fatalf("variant not generated:\n%s\n%s", files["rampart.te"], files["rampart.fc"])
	}
	buildModule(t, files)
}
