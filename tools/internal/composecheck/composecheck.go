// Package composecheck loads deploy/compose/compose.yaml with compose-go (the
// library behind `docker compose`: interpolation, schema validation and its
// consistency checks) and checks what those cannot see: that depends_on asks
// only for states its targets can reach, that images are pinned, that each
// sagasuite service's environment covers every variable its Config requires
// (read from the Go Config type through k8scheck, as for the manifests), that
// credentials stay out of the compose file, that ports are published on
// loopback only and once, that the sagasuite containers are locked down, that
// every file the file mounts exists, and that the console reaches each service's
// browser listener, which only it publishes.
package composecheck

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"

	"github.com/sagasuite/sagasuite/tools/internal/k8scheck"
)

// Load reads a compose file the way `docker compose -f path config` does,
// with env as the only environment for interpolation (not this process's),
// so the result does not depend on who runs it. Environments stay unresolved:
// Check reads env_file itself, to tell inline variables from those in files.
func Load(ctx context.Context, path string, env map[string]string) (*types.Project, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadContent(ctx, filepath.Dir(path), filepath.Base(path), content, env)
}

// LoadContent is Load of content as if it were the file name in dir (relative
// paths in it resolve against dir).
func LoadContent(ctx context.Context, dir, name string, content []byte, env map[string]string) (*types.Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	details := types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, name), Content: content}},
		Environment: types.Mapping(env),
	}
	return loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.ResolvePaths = true
		o.SkipResolveEnvironment = true
		o.SkipValidation = false
		o.SkipInterpolation = false
		o.SkipConsistencyCheck = false
	})
}

// Options are what Check needs to know beyond the file.
type Options struct {
	// Services are the sagasuite services; each must be a compose service of
	// the same name.
	Services []k8scheck.Service
	// NoHealthcheck names long-running services allowed to have no
	// healthcheck (an image with nothing to probe with); nothing may wait
	// for them to be healthy.
	NoHealthcheck []string
	// NonRootUser is the user the sagasuite containers must run as.
	NonRootUser string
	// Console, when set, is the browser console: a compose service of that name.
	Console *k8scheck.Console
}

// Check runs every check and returns one problem per finding.
func Check(p *types.Project, opts Options) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	for _, name := range sortedNames(p.Services) {
		s := p.Services[name]
		checkDependsOn(p, s, add)
		checkImage(s, add)
		checkHealthcheck(s, opts, add)
		checkMounts(p, s, add)
		for key, value := range s.Environment {
			if value != nil && k8scheck.LooksSecret(key) {
				add("service %s: %s is set in the compose file: credentials belong in an env_file or a secret", name, key)
			}
		}
	}
	checkPorts(p, add)
	checkTopLevelFiles(p, add)
	for _, svc := range opts.Services {
		s, ok := p.Services[svc.Name]
		if !ok {
			add("sagasuite service %s is not in the compose file", svc.Name)
			continue
		}
		checkSagasuiteService(s, svc, opts, add)
		checkWebListener(p, s, svc, add)
	}
	if opts.Console != nil {
		checkConsole(p, *opts.Console, opts, add)
	}
	return problems
}

// checkWebListener: a service's browser listener (<P>_WEB_ADDR) is not published: the
// console forwards to it over the compose network, so the page needs one origin only.
func checkWebListener(p *types.Project, s types.ServiceConfig, svc k8scheck.Service, add func(string, ...any)) {
	env, err := Environment(s)
	if err != nil {
		return // checkSagasuiteService reports it
	}
	addr, ok := env[svc.Prefix+"_WEB_ADDR"]
	if !ok {
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		add("service %s: %s_WEB_ADDR=%q is no host:port", s.Name, svc.Prefix, addr)
		return
	}
	for _, pc := range s.Ports {
		if fmt.Sprint(pc.Target) == port {
			add("service %s: its web port %s is published on %s: only the console's is (it forwards to this one)", s.Name, port, pc.Published)
		}
	}
	if v := env[svc.Prefix+"_WEB_ALLOWED_ORIGINS"]; v != "" {
		add("service %s: %s_WEB_ALLOWED_ORIGINS=%q: the page calls the console's own origin, no CORS is needed", s.Name, svc.Prefix, v)
	}
}

// checkConsole: the console's Config is covered, it is locked down like the services, and
// each service URL names that compose service on the port of its <P>_WEB_ADDR.
func checkConsole(p *types.Project, console k8scheck.Console, opts Options, add func(string, ...any)) {
	s, ok := p.Services[console.Name]
	if !ok {
		add("the console (%s) is not in the compose file", console.Name)
		return
	}
	what := "service " + s.Name
	env, err := Environment(s)
	if err != nil {
		add("%s: %v", what, err)
		return
	}
	for _, key := range k8scheck.RequiredVariables(console.Config, console.Prefix+"_") {
		if _, ok := env[key]; !ok {
			add("%s: required variable %s is not set (%s.Config)", what, key, console.Name)
		}
	}
	checkLockedDown(s, opts, add)
	checkGrace(s, console.Service, env, add)
	for _, key := range sortedNames(console.Upstreams) {
		target := console.Upstreams[key]
		raw, ok := env[console.Prefix+"_"+key]
		if !ok {
			continue // reported as a required variable
		}
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" || u.Port() == "" {
			add("%s: %s_%s=%q: want http(s)://service:port", what, console.Prefix, key, raw)
			continue
		}
		if u.Hostname() != target {
			add("%s: %s_%s=%q names %s, want the %s service", what, console.Prefix, key, raw, u.Hostname(), target)
			continue
		}
		t, ok := p.Services[target]
		if !ok {
			add("%s: %s_%s=%q: no service %s in the file", what, console.Prefix, key, raw, target)
			continue
		}
		tenv, _ := Environment(t)
		prefix := strings.ToUpper(target)
		webAddr, set := tenv[prefix+"_WEB_ADDR"]
		_, webPort, _ := net.SplitHostPort(webAddr)
		if !set || webPort != u.Port() {
			add("%s: %s_%s=%q, but %s's %s_WEB_ADDR is %q: nothing answers browsers there", what, console.Prefix, key, raw, target, prefix, webAddr)
		}
	}
}

// Environment is a service's variables as the container gets them: its
// env_files in order, then its inline environment (which wins). The image's
// own ENV is not included.
func Environment(s types.ServiceConfig) (map[string]string, error) {
	env := map[string]string{}
	for _, f := range s.EnvFiles {
		vars, err := dotenv.Read(f.Path)
		if err != nil {
			return nil, fmt.Errorf("env_file %s: %w", f.Path, err)
		}
		for k, v := range vars {
			env[k] = v
		}
	}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env, nil
}

func checkDependsOn(p *types.Project, s types.ServiceConfig, add func(string, ...any)) {
	for _, target := range sortedNames(s.DependsOn) {
		dep := s.DependsOn[target]
		t, ok := p.Services[target]
		if !ok {
			add("service %s depends on %s, which is no service of the file", s.Name, target)
			continue
		}
		switch dep.Condition {
		case types.ServiceConditionHealthy:
			if t.HealthCheck == nil || t.HealthCheck.Disable || len(t.HealthCheck.Test) == 0 {
				add("service %s waits for %s to be healthy, but %s has no healthcheck", s.Name, target, target)
			}
		case types.ServiceConditionCompletedSuccessfully:
			// An init that compose restarts never stays completed.
			if t.Restart != "" && t.Restart != types.RestartPolicyNo {
				add("service %s waits for %s to complete, but %s has restart: %s", s.Name, target, target, t.Restart)
			}
		}
	}
}

// checkImage: a named image with a real tag or a digest, never :latest or
// none (which means :latest).
func checkImage(s types.ServiceConfig, add func(string, ...any)) {
	if s.Image == "" {
		add("service %s has no image", s.Name)
		return
	}
	named, err := reference.ParseNormalizedNamed(s.Image)
	if err != nil {
		add("service %s: image %q: %v", s.Name, s.Image, err)
		return
	}
	if _, ok := named.(reference.Digested); ok {
		return
	}
	tagged, ok := named.(reference.Tagged)
	if !ok || tagged.Tag() == "latest" || tagged.Tag() == "" {
		add("service %s: image %q needs a real tag or digest, not :latest or none", s.Name, s.Image)
	}
}

// checkHealthcheck: every long-running service has one (init containers,
// restart "no", run once and need none), unless allowed by opts.
func checkHealthcheck(s types.ServiceConfig, opts Options, add func(string, ...any)) {
	if s.Restart == types.RestartPolicyNo || slices.Contains(opts.NoHealthcheck, s.Name) {
		return
	}
	if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
		add("service %s runs without a healthcheck", s.Name)
	}
}

// checkMounts: bind mounts and env_files name files that exist; secrets and
// configs a service uses are defined at the top level.
func checkMounts(p *types.Project, s types.ServiceConfig, add func(string, ...any)) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			if _, err := os.Stat(v.Source); err != nil {
				add("service %s: bind mount %s → %s: %v", s.Name, v.Source, v.Target, err)
			}
		}
	}
	for _, f := range s.EnvFiles {
		if _, err := os.Stat(f.Path); err != nil {
			add("service %s: env_file %s: %v", s.Name, f.Path, err)
		}
	}
	for _, sec := range s.Secrets {
		if _, ok := p.Secrets[sec.Source]; !ok {
			add("service %s uses secret %s, which is not defined", s.Name, sec.Source)
		}
	}
	for _, c := range s.Configs {
		if _, ok := p.Configs[c.Source]; !ok {
			add("service %s uses config %s, which is not defined", s.Name, c.Source)
		}
	}
}

// checkTopLevelFiles: every secret and config read from a file has that file.
func checkTopLevelFiles(p *types.Project, add func(string, ...any)) {
	for _, name := range sortedNames(p.Secrets) {
		sec := p.Secrets[name]
		if sec.File == "" {
			continue
		}
		if _, err := os.Stat(sec.File); err != nil {
			add("secret %s: file %v", name, err)
		}
	}
	for _, name := range sortedNames(p.Configs) {
		c := p.Configs[name]
		if c.File == "" {
			continue
		}
		if _, err := os.Stat(c.File); err != nil {
			add("config %s: file %v", name, err)
		}
	}
}

// checkPorts: published on 127.0.0.1 only (the stores and services have dev
// credentials), and no host port twice.
func checkPorts(p *types.Project, add func(string, ...any)) {
	owner := map[string]string{}
	for _, name := range sortedNames(p.Services) {
		for _, port := range p.Services[name].Ports {
			if port.Published == "" {
				add("service %s: container port %d is published on a random host port; publish a fixed one on 127.0.0.1", name, port.Target)
				continue
			}
			if port.HostIP != "127.0.0.1" {
				host := port.HostIP
				if host == "" {
					host = "every address"
				}
				add("service %s: port %s is published on %s, want 127.0.0.1 only", name, port.Published, host)
			}
			proto := port.Protocol
			if proto == "" {
				proto = "tcp"
			}
			key := port.Published + "/" + proto
			if other, ok := owner[key]; ok {
				add("host port %s is published by both %s and %s", key, other, name)
				continue
			}
			owner[key] = name
		}
	}
}

// checkSagasuiteService: the environment covers the Config, no credentials
// inline, locked down (checkLockedDown), and time to drain on stop.
func checkSagasuiteService(s types.ServiceConfig, svc k8scheck.Service, opts Options, add func(string, ...any)) {
	what := "service " + s.Name
	env, err := Environment(s)
	if err != nil {
		add("%s: %v", what, err)
		return
	}
	for _, key := range k8scheck.RequiredVariables(svc.Config, svc.Prefix+"_") {
		if _, ok := env[key]; !ok {
			add("%s: required variable %s is not set (%s.Config)", what, key, svc.Name)
		}
	}
	auth, err := k8scheck.AuthSettings(env, svc.Prefix)
	if err != nil {
		add("%s: %v", what, err)
	}
	if f := auth.JWKSFile; f != "" && !mounted(s, f) {
		add("%s: %s_AUTH_JWKS_FILE=%s is not mounted from a config, secret or volume", what, svc.Prefix, f)
	}
	for key, value := range env {
		if strings.HasSuffix(key, "_FILE") && strings.HasPrefix(value, "/run/secrets/") && !mounted(s, value) {
			add("%s: %s=%s names a secret the service does not mount", what, key, value)
		}
	}
	checkLockedDown(s, opts, add)
	checkGrace(s, svc, env, add)
}

// checkLockedDown: the image's non-root user, a read-only root, no capabilities, no
// privilege gain.
func checkLockedDown(s types.ServiceConfig, opts Options, add func(string, ...any)) {
	what := "service " + s.Name
	user := strings.SplitN(s.User, ":", 2)[0]
	if user != opts.NonRootUser {
		add("%s: user %q, want %s (the image's non-root user)", what, s.User, opts.NonRootUser)
	}
	if !s.ReadOnly {
		add("%s: root filesystem is writable; set read_only: true", what)
	}
	if !slices.ContainsFunc(s.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") }) {
		add("%s: cap_drop %v does not drop ALL", what, s.CapDrop)
	}
	if len(s.CapAdd) > 0 {
		add("%s: cap_add %v: the services need no capability", what, s.CapAdd)
	}
	if !slices.ContainsFunc(s.SecurityOpt, func(o string) bool {
		return o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
	}) {
		add("%s: security_opt %v lacks no-new-privileges:true", what, s.SecurityOpt)
	}
	if s.Privileged {
		add("%s: privileged", what)
	}
}

// checkGrace: compose's stop grace period is above the process's shutdown timeout.
func checkGrace(s types.ServiceConfig, svc k8scheck.Service, env map[string]string, add func(string, ...any)) {
	what := "service " + s.Name
	raw, err := k8scheck.Setting(svc, env, "SHUTDOWN_TIMEOUT")
	if err != nil {
		add("%s: %v", what, err)
		return
	}
	shutdown, err := time.ParseDuration(raw)
	if err != nil {
		add("%s: %s_SHUTDOWN_TIMEOUT=%q: %v", what, svc.Prefix, raw, err)
		return
	}
	grace := 10 * time.Second // Docker's default
	if s.StopGracePeriod != nil {
		grace = time.Duration(*s.StopGracePeriod)
	}
	if grace <= shutdown {
		add("%s: stop_grace_period %s is not above %s_SHUTDOWN_TIMEOUT %s", what, grace, svc.Prefix, shutdown)
	}
}

// mounted says whether path is a config, secret or volume target of s (or
// lies under a volume's target).
func mounted(s types.ServiceConfig, path string) bool {
	for _, c := range s.Configs {
		if target(c.Target, "/"+c.Source) == path {
			return true
		}
	}
	for _, sec := range s.Secrets {
		if target(sec.Target, "/run/secrets/"+sec.Source) == path {
			return true
		}
	}
	for _, v := range s.Volumes {
		if v.Target == path || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/") {
			return true
		}
	}
	return false
}

// target is where compose mounts a secret or config: its target (a relative
// one under the default directory's parent), else the default.
func target(t, def string) string {
	switch {
	case t == "":
		return def
	case filepath.IsAbs(t):
		return t
	default:
		return filepath.Join(filepath.Dir(def), t)
	}
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
