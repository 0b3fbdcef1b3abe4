// Command crdschemas writes the strict JSON schemas of CRDs where kubeconform
// reads them: crdschemas OUTDIR CRD.yaml... writes OUTDIR/<group>/<kind>_<version>.json
// (kubeconform -schema-location 'OUTDIR/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json').
package main

import (
	"fmt"
	"os"

	"github.com/sagasuite/sagasuite/tools/internal/platformcheck"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: crdschemas OUTDIR CRD.yaml...")
		os.Exit(2)
	}
	n, err := platformcheck.WriteSchemas(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdschemas:", err)
		os.Exit(1)
	}
	fmt.Printf("crdschemas: %d schemas from %d CRD files in %s\n", n, len(os.Args)-2, os.Args[1])
}
