// Command imagebuild builds the services' and the console's OCI images without a container engine into one OCI
// image layout (`make images`): static binaries by `go build`, then go-containerregistry
// assembles each image on an empty base. See README "Container images".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/imagebuild"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	out := fs.String("out", "", "OCI layout directory to write (replaced when it is one already)")
	tag := fs.String("tag", "dev", "image tag and version label (never latest)")
	revision := fs.String("revision", "", "commit id for the revision label (required)")
	services := fs.String("services", "", "comma-separated images (default: the five services and the console)")
	root := fs.String("root", ".", "checkout root (holds go.work)")
	caCerts := fs.String("ca-certs", imagebuild.CABundle, "CA bundle copied into the images")
	goarch := fs.String("goarch", "", "target architecture (default: this machine's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	// SOURCE_DATE_EPOCH (reproducible-builds.org) dates every file and the config; unset, the
	// Unix epoch.
	created := time.Unix(0, 0)
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative number of seconds", v)
		}
		created = time.Unix(sec, 0)
	}
	selected := imagebuild.Images
	if *services != "" {
		selected = nil
		for _, name := range strings.Split(*services, ",") {
			s, err := imagebuild.Lookup(strings.TrimSpace(name))
			if err != nil {
				return err
			}
			selected = append(selected, s)
		}
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "sagasuite-imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	o := imagebuild.Options{RepoRoot: absRoot, Tag: *tag, Revision: *revision, Created: created,
		CACerts: *caCerts, GOARCH: *goarch, BinDir: binDir}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := imagebuild.BuildBinaries(ctx, o, selected); err != nil {
		return err
	}
	digests, err := imagebuild.WriteLayout(*out, o, selected)
	if err != nil {
		return err
	}
	fmt.Printf("OCI layout %s:\n", *out)
	names := make([]string, 0, len(digests))
	for _, s := range selected {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	for _, n := range names {
		s, _ := imagebuild.Lookup(n)
		fmt.Printf("  %-40s %s\n", s.Ref(*tag), digests[n])
	}
	return nil
}
