// Command kube-apiserver is upstream's kube-apiserver main (k8s.io/kubernetes
// v1.34.4 cmd/kube-apiserver), built from the Go module proxy so `make k8s-verify`
// needs no release download or container.
package main

import (
	"os"
	_ "time/tzdata" // upstream's main embeds tzdata too (CronJob time zones)

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
