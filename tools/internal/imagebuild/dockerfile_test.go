package imagebuild

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A small reader of the Dockerfile subset deploy/images/Dockerfile uses, enough to derive the
// image config a Docker build would give each service, without a Docker engine.

type instruction struct {
	cmd  string // upper case
	args string
}

type stage struct {
	from, name string
	instrs     []instruction
}

type dockerfile struct {
	globalArgs []instruction
	stages     []stage
}

func parseDockerfile(text string) (dockerfile, error) {
	var df dockerfile
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue // comments (and parser directives) and blank lines
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	if cur.Len() != 0 {
		return df, fmt.Errorf("dockerfile ends inside a continued line")
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				return df, fmt.Errorf("FROM %s: want IMAGE [AS NAME]", in.args)
			}
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			if in.cmd != "ARG" {
				return df, fmt.Errorf("%s before the first FROM", in.cmd)
			}
			df.globalArgs = append(df.globalArgs, in)
		default:
			s := &df.stages[len(df.stages)-1]
			s.instrs = append(s.instrs, in)
		}
	}
	return df, nil
}

var varRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		return vars[name]
	})
}

// words splits k=v pairs (LABEL, ENV) and unquotes double-quoted values.
func words(s string) ([][2]string, error) {
	var out [][2]string
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%q: want KEY=VALUE", s)
		}
		key, rest := s[:eq], s[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("%q: unterminated quote", s)
			}
			val, s = rest[1:end+1], rest[end+2:]
		} else {
			sp := strings.IndexAny(rest, " \t")
			if sp < 0 {
				sp = len(rest)
			}
			val, s = rest[:sp], rest[sp:]
		}
		out = append(out, [2]string{key, val})
	}
	return out, nil
}

// dockerConfig is what a `docker build --build-arg SERVICE=… VERSION=… REVISION=…` of this
// Dockerfile sets in the image config, plus the facts about the build and base it relies on.
func dockerConfig(df dockerfile, buildArgs map[string]string) (v1.Config, error) {
	cfg := v1.Config{ExposedPorts: map[string]struct{}{}, Labels: map[string]string{}}
	globals := map[string]string{}
	for _, a := range df.globalArgs {
		name, def, _ := strings.Cut(a.args, "=")
		globals[name] = def
		if v, ok := buildArgs[name]; ok {
			globals[name] = v
		}
	}
	if len(df.stages) == 0 {
		return cfg, fmt.Errorf("no FROM")
	}
	byName := map[string]stage{}
	for _, s := range df.stages {
		byName[s.name] = s
	}
	// The chain of stages from the external base to the final one.
	var chain []stage
	st := df.stages[len(df.stages)-1]
	for {
		chain = append([]stage{st}, chain...)
		parent, ok := byName[expand(st.from, globals)]
		if !ok || len(chain) > len(df.stages) {
			break
		}
		st = parent
	}
	base := chain[0].from
	if !strings.Contains(base, "distroless/static") && base != "scratch" {
		return cfg, fmt.Errorf("runtime base %q: want distroless static or scratch (no shell)", base)
	}
	if strings.Contains(base, "distroless") && !strings.HasSuffix(base, ":nonroot") && !strings.Contains(base, ":nonroot@") {
		return cfg, fmt.Errorf("runtime base %q: want the :nonroot variant", base)
	}
	vars := map[string]string{}
	for _, s := range chain {
		// An ARG ends with its stage; ENV values carry on into child stages.
		stageArgs := map[string]bool{}
		for _, in := range s.instrs {
			args := expand(in.args, vars)
			switch in.cmd {
			case "ARG":
				name, def, _ := strings.Cut(in.args, "=")
				vars[name] = def
				if v, ok := buildArgs[name]; ok {
					vars[name] = v
				}
				stageArgs[name] = true
			case "USER":
				cfg.User = args
			case "WORKDIR":
				cfg.WorkingDir = args
			case "ENV":
				kvs, err := words(args)
				if err != nil {
					return cfg, fmt.Errorf("ENV %s", err)
				}
				for _, kv := range kvs {
					cfg.Env = append(cfg.Env, kv[0]+"="+kv[1])
					vars[kv[0]] = kv[1]
					delete(stageArgs, kv[0])
				}
			case "EXPOSE":
				for _, p := range strings.Fields(args) {
					if !strings.Contains(p, "/") {
						p += "/tcp"
					}
					cfg.ExposedPorts[p] = struct{}{}
				}
			case "LABEL":
				kvs, err := words(args)
				if err != nil {
					return cfg, fmt.Errorf("LABEL %s", err)
				}
				for _, kv := range kvs {
					cfg.Labels[kv[0]] = kv[1]
				}
			case "ENTRYPOINT":
				// Exec form only: the shell form needs /bin/sh, which the image does not have.
				if err := json.Unmarshal([]byte(in.args), &cfg.Entrypoint); err != nil {
					return cfg, fmt.Errorf("ENTRYPOINT %s: want the exec form [\"/path\"]: %v", in.args, err)
				}
			case "HEALTHCHECK":
				hc, err := parseHealthcheck(in.args)
				if err != nil {
					return cfg, err
				}
				cfg.Healthcheck = hc
			case "COPY", "RUN", "CMD":
				if in.cmd != "COPY" {
					return cfg, fmt.Errorf("%s in a runtime stage: the image has no shell", in.cmd)
				}
			default:
				return cfg, fmt.Errorf("instruction %s not understood by this test; teach it", in.cmd)
			}
		}
		for name := range stageArgs {
			delete(vars, name)
		}
	}
	return cfg, nil
}

func parseHealthcheck(args string) (*v1.HealthConfig, error) {
	hc := &v1.HealthConfig{}
	for strings.HasPrefix(args, "--") {
		flag, rest, _ := strings.Cut(args, " ")
		args = strings.TrimSpace(rest)
		name, val, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		var err error
		switch name {
		case "interval":
			hc.Interval, err = time.ParseDuration(val)
		case "timeout":
			hc.Timeout, err = time.ParseDuration(val)
		case "start-period":
			hc.StartPeriod, err = time.ParseDuration(val)
		case "retries":
			hc.Retries, err = strconv.Atoi(val)
		default:
			err = fmt.Errorf("unknown flag")
		}
		if err != nil {
			return nil, fmt.Errorf("HEALTHCHECK --%s: %v", name, err)
		}
	}
	cmd, rest, _ := strings.Cut(args, " ")
	if cmd != "CMD" {
		return nil, fmt.Errorf("HEALTHCHECK %s: want CMD [...]", args)
	}
	var test []string
	if err := json.Unmarshal([]byte(rest), &test); err != nil {
		return nil, fmt.Errorf("HEALTHCHECK CMD %s: want the exec form (no shell in the image): %v", rest, err)
	}
	hc.Test = append([]string{"CMD"}, test...)
	return hc, nil
}

// checkBuildStage asserts the static, reproducible build of the service and the probe.
func checkBuildStage(df dockerfile) error {
	for _, s := range df.stages {
		for _, in := range s.instrs {
			if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
				continue
			}
			for _, must := range []string{"CGO_ENABLED=0", "-trimpath", "./services/${SERVICE}/cmd/${SERVICE}", "./tools/cmd/console", "./tools/cmd/healthcheck"} {
				if !strings.Contains(in.args, must) {
					return fmt.Errorf("build step %q lacks %s", in.args, must)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("no RUN go build step")
}

// checkDockerfile lists every way the Dockerfile's image for each service differs from the
// config of the real image (read back from the OCI layout) built by imagebuild.
func checkDockerfile(text string, images map[string]v1.Config, tag, revision string) []error {
	df, err := parseDockerfile(text)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if err := checkBuildStage(df); err != nil {
		errs = append(errs, err)
	}
	if len(df.globalArgs) == 0 || df.globalArgs[0].args != "SERVICE" {
		errs = append(errs, fmt.Errorf("want a global `ARG SERVICE` without default, got %v", df.globalArgs))
	}
	for _, s := range Images {
		got, err := dockerConfig(df, map[string]string{"SERVICE": s.Name, "VERSION": tag, "REVISION": revision})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", s.Name, err))
			continue
		}
		img, ok := images[s.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no image to compare with", s.Name))
			continue
		}
		diff := func(field string, a, b any) {
			if !reflect.DeepEqual(a, b) {
				errs = append(errs, fmt.Errorf("%s: %s: Dockerfile %v, image %v", s.Name, field, a, b))
			}
		}
		sortedEnv := func(e []string) []string { e = append([]string(nil), e...); sort.Strings(e); return e }
		diff("user", got.User, img.User)
		diff("workdir", got.WorkingDir, img.WorkingDir)
		diff("entrypoint", got.Entrypoint, img.Entrypoint)
		diff("env", sortedEnv(got.Env), sortedEnv(img.Env))
		diff("exposed ports", got.ExposedPorts, img.ExposedPorts)
		diff("labels", got.Labels, img.Labels)
		diff("healthcheck", got.Healthcheck, img.Healthcheck)
	}
	return errs
}

func readDockerfile(root string) (string, error) {
	b, err := os.ReadFile(root + "/deploy/images/Dockerfile")
	return string(b), err
}
