package imagebuild

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// fsEntry is one path of an image's flattened filesystem.
type fsEntry struct {
	hdr  *tar.Header
	data []byte // regular files only
}

// flatten reads the image's filesystem as a container would see it (whiteouts applied).
func flatten(img v1.Image) (map[string]fsEntry, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]fsEntry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		e := fsEntry{hdr: hdr}
		if hdr.Typeflag == tar.TypeReg {
			if e.data, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
		files[strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "/"), "/")] = e
	}
}

// want is what one service's image must hold.
type want struct {
	svc      Service
	tag      string
	revision string
	created  time.Time
}

// checkImage lists every way img differs from what the service's image must be; nil means
// none. Each rule is shown to catch a planted mistake in TestCheckImageCatchesMistakes.
func checkImage(img v1.Image, w want) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cf, err := img.ConfigFile()
	if err != nil {
		return []error{err}
	}
	c := cf.Config

	// A numeric non-root user: Kubernetes' runAsNonRoot can only verify a numeric one.
	uid, gid, ok := strings.Cut(c.User, ":")
	if n, err := strconv.Atoi(uid); !ok || err != nil || n == 0 {
		bad("user %q: want numeric non-root uid:gid", c.User)
	} else if _, err := strconv.Atoi(gid); err != nil {
		bad("user %q: gid not numeric", c.User)
	}
	if c.User != User {
		bad("user %q, want %q", c.User, User)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{w.svc.Entrypoint()}) {
		bad("entrypoint %q, want [%s]", c.Entrypoint, w.svc.Entrypoint())
	}
	if len(c.Cmd) != 0 {
		bad("cmd %q, want none", c.Cmd)
	}
	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	var wantPorts []string
	for _, p := range w.svc.Ports() {
		wantPorts = append(wantPorts, strconv.Itoa(p)+"/tcp")
	}
	sort.Strings(wantPorts)
	if len(wantPorts) == 0 || !reflect.DeepEqual(ports, wantPorts) {
		bad("exposed ports %v, want %v (gRPC, ops; the console's one)", ports, wantPorts)
	}
	// The binary must listen where the image says: its address variables name the exposed ports.
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
		for _, secret := range []string{"PASSWORD", "SECRET", "TOKEN", "DSN", "URI", "KEY"} {
			if strings.Contains(k, secret) {
				bad("env %s: no credentials or connection strings in an image", k)
			}
		}
	}
	p := w.svc.EnvPrefix()
	for _, addr := range []struct {
		key  string
		port int
	}{{"_GRPC_ADDR", w.svc.GRPCPort}, {"_OPS_ADDR", w.svc.OpsPort}, {"_ADDR", w.svc.HTTPPort}} {
		got, set := env[p+addr.key]
		switch {
		case addr.port == 0 && set:
			bad("env %s%s=%q, want none (no such listener)", p, addr.key, got)
		case addr.port != 0 && got != fmt.Sprintf(":%d", addr.port):
			bad("env %s%s=%q, want %q", p, addr.key, got, fmt.Sprintf(":%d", addr.port))
		}
	}
	for k, v := range w.svc.Labels(w.tag, w.revision) {
		if v == "" {
			bad("label %s: expected value is empty", k)
		}
		if c.Labels[k] != v {
			bad("label %s=%q, want %q", k, c.Labels[k], v)
		}
	}
	if c.WorkingDir != HomeDir {
		bad("working dir %q, want %q", c.WorkingDir, HomeDir)
	}
	hc := c.Healthcheck
	if hc == nil || !reflect.DeepEqual(hc.Test, w.svc.HealthcheckTest()) || hc.Interval != HealthInterval ||
		hc.Timeout != HealthTimeout || hc.StartPeriod != HealthStartPeriod || hc.Retries != HealthRetries {
		bad("healthcheck %+v, want %v every %v", hc, w.svc.HealthcheckTest(), HealthInterval)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		bad("platform %s/%s, want linux/<arch>", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(w.created) {
		bad("created %v, want %v (SOURCE_DATE_EPOCH)", cf.Created.Time, w.created)
	}

	files, err := flatten(img)
	if err != nil {
		return append(errs, err)
	}
	for name, e := range files {
		if !e.hdr.ModTime.Equal(w.created) {
			bad("%s: mtime %v, want %v", name, e.hdr.ModTime, w.created)
		}
	}
	for _, path := range []string{strings.TrimPrefix(w.svc.Entrypoint(), "/"), strings.TrimPrefix(Healthcheck, "/")} {
		e, ok := files[path]
		switch {
		case !ok:
			bad("/%s missing", path)
		case e.hdr.Typeflag != tar.TypeReg || e.hdr.Mode&0o111 == 0:
			bad("/%s: not an executable file (type %c, mode %o)", path, e.hdr.Typeflag, e.hdr.Mode)
		default:
			if err := checkStatic(e.data); err != nil {
				bad("/%s: %v", path, err)
			}
		}
	}
	// No shell: nothing a `docker exec … sh` or a shell-form instruction could run.
	for _, sh := range []string{"bin/sh", "bin/bash", "bin/ash", "bin/busybox", "usr/bin/sh", "usr/bin/bash", "usr/local/bin/sh"} {
		if _, ok := files[sh]; ok {
			bad("/%s present: the image must have no shell", sh)
		}
	}
	if e, ok := files[strings.TrimPrefix(CABundle, "/")]; !ok {
		bad("%s missing", CABundle)
	} else if !x509.NewCertPool().AppendCertsFromPEM(e.data) {
		bad("%s holds no certificate", CABundle)
	}
	if e, ok := files["etc/passwd"]; !ok || !bytes.Contains(e.data, []byte(fmt.Sprintf(":x:%d:%d:", UID, UID))) {
		bad("/etc/passwd has no entry for uid %d", UID)
	}
	if e, ok := files["etc/group"]; !ok || !bytes.Contains(e.data, []byte(fmt.Sprintf(":x:%d:", UID))) {
		bad("/etc/group has no entry for gid %d", UID)
	}
	return errs
}

// checkStatic fails on anything but a statically linked Linux ELF executable: a dynamic one
// would need a libc the image does not have.
func checkStatic(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (has an ELF interpreter)")
		}
	}
	return nil
}
