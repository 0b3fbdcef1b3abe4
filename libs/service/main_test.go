package service

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

type mainTestConfig struct {
	DSN string `env:"DSN,required"`
}

// TestMain lets the test binary act as a service main when asked to.
func TestMain(m *testing.M) {
	if os.Getenv("SERVICE_MAIN_TEST") == "1" {
		Main("MAINTEST", func(context.Context, mainTestConfig, Runtime) error { return errors.New("store unreachable") })
		return
	}
	os.Exit(m.Run())
}

func TestMainExitsOneNamingTheBadVariableOrTheRunError(t *testing.T) {
	for name, tc := range map[string]struct {
		env  []string
		want string
	}{
		"missing variable": {nil, "MAINTEST_DSN"},
		"run error":        {[]string{"MAINTEST_DSN=x"}, "MAINTEST: store unreachable"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append([]string{"SERVICE_MAIN_TEST=1", "PATH=" + os.Getenv("PATH")}, tc.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %v, output %q; want exit 1 naming %q", err, out, tc.want)
			}
		})
	}
}
