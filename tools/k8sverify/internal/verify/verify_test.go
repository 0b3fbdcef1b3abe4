package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/sagasuite/sagasuite/tools/k8sverify/internal/cluster"
)

// The test needs the real kube-apiserver binary `make k8s-verify-tools` builds;
// `make k8s-verify` passes its path.
const apiserverEnv = "K8SVERIFY_APISERVER"

// A small namespaced CRD standing in for the operators' ones.
const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.sagasuite.dev
spec:
  group: test.sagasuite.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1}
                color: {type: string}
`

const goodDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: order, namespace: verify-test}
spec:
  replicas: 1
  selector: {matchLabels: {app: order}}
  template:
    metadata: {labels: {app: order}}
    spec:
      containers:
        - name: order
          image: example.com/order:1.0.0
          ports: [{name: grpc, containerPort: 8080}]
`

const goodService = `
apiVersion: v1
kind: Service
metadata: {name: order, namespace: verify-test}
spec:
  selector: {app: order}
  ports: [{name: grpc, port: 8080, targetPort: grpc}]
`

const goodWidget = `
apiVersion: test.sagasuite.dev/v1
kind: Widget
metadata: {name: w, namespace: verify-test}
spec: {size: 3, color: blue}
`

// One control plane serves every test in the package; TestMain stops it.
var (
	shared      *cluster.Cluster
	sharedErr   error
	sharedStart sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

func startCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	bin := os.Getenv(apiserverEnv)
	if bin == "" {
		t.Fatalf("%s is not set: run `make k8s-verify` (it builds kube-apiserver and passes its path) or set it to a kube-apiserver v1.34 binary", apiserverEnv)
	}
	sharedStart.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared, sharedErr = cluster.Start(ctx, cluster.Options{APIServerBin: bin, ReadyTimeout: 150 * time.Second})
	})
	if sharedErr != nil {
		t.Fatalf("start control plane: %v", sharedErr)
	}
	return shared
}

func mustDecode(t *testing.T, doc string) Object {
	t.Helper()
	objects, err := DecodeObjects("inline.yaml", []byte(doc))
	if err != nil || len(objects) != 1 {
		t.Fatalf("decode test document: %v (%d objects)", err, len(objects))
	}
	return objects[0]
}

// TestDryRunRejectsBrokenObjects proves the check bites: each broken variant is
// refused by the real apiserver with its reason, and the good objects pass.
func TestDryRunRejectsBrokenObjects(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The CRD comes from a directory, nested, as k8s/platform/crds/** will.
	crdDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(crdDir, "test-operator"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crdDir, "test-operator", "widgets.yaml"), []byte(widgetCRD), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := CRDFiles(crdDir)
	if err != nil || len(files) != 1 {
		t.Fatalf("CRDFiles(%s) = %v, %v; want the one planted file", crdDir, files, err)
	}
	names, err := InstallCRDs(ctx, c.Config, files, time.Minute)
	if err != nil {
		t.Fatalf("install planted CRD: %v", err)
	}
	if len(names) != 1 || names[0] != "widgets.test.sagasuite.dev" {
		t.Fatalf("installed CRDs = %v", names)
	}

	applier, err := NewApplier(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	good := []Object{mustDecode(t, goodDeployment), mustDecode(t, goodService), mustDecode(t, goodWidget)}
	if _, err := applier.EnsureNamespaces(ctx, good); err != nil {
		t.Fatalf("create namespaces: %v", err)
	}

	for _, o := range good {
		if err := applier.DryRunApply(ctx, o); err != nil {
			t.Errorf("good %s rejected: %v", o.Describe(), err)
		}
	}
	// Dry-run must not persist anything.
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	deployments := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace("verify-test")
	if _, err := deployments.Get(ctx, "order", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a dry-run apply, GET deployment order = %v; want NotFound", err)
	}

	broken := []struct {
		name, doc     string
		wantInMessage []string
	}{
		{
			name:          "misspelled field",
			doc:           strings.Replace(goodDeployment, "replicas: 1", "replica: 1", 1),
			wantInMessage: []string{".spec.replica: field not declared in schema"},
		},
		{
			name:          "string where an integer is needed",
			doc:           strings.Replace(goodService, "port: 8080", `port: "8080"`, 1),
			wantInMessage: []string{`.spec.ports[port="8080",protocol="TCP"].port: expected numeric (int or float), got string`},
		},
		{
			name:          "Deployment selector not matching its template",
			doc:           strings.Replace(goodDeployment, "labels: {app: order}", "labels: {app: orders}", 1),
			wantInMessage: []string{"spec.template.metadata.labels", "`selector` does not match template `labels`"},
		},
		{
			name:          "unknown field in a custom resource (planted CRD's schema)",
			doc:           strings.Replace(goodWidget, "color: blue", "colour: blue", 1),
			wantInMessage: []string{".spec.colour: field not declared in schema"},
		},
		{
			name:          "custom resource breaking its schema's minimum",
			doc:           strings.Replace(goodWidget, "size: 3", "size: 0", 1),
			wantInMessage: []string{"spec.size", "should be greater than or equal to 1"},
		},
		{
			name:          "kind the server does not know (CRD missing)",
			doc:           strings.Replace(goodWidget, "kind: Widget", "kind: Gadget", 1),
			wantInMessage: []string{"has no resource for test.sagasuite.dev/v1, Kind=Gadget"},
		},
	}
	for _, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			o := mustDecode(t, tc.doc)
			err := applier.DryRunApply(ctx, o)
			if err == nil {
				t.Fatalf("%s accepted; want a rejection", o.Describe())
			}
			for _, want := range tc.wantInMessage {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("rejection %q does not mention %q", err, want)
				}
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

// TestVerifyFileReportsEachRejection checks the per-file path the command uses:
// namespaces declared in the file are created for real, and only the broken
// document is reported, with its kind and name.
func TestVerifyFileReportsEachRejection(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applier, err := NewApplier(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	render := "apiVersion: v1\nkind: Namespace\nmetadata: {name: verify-test}\n---\n" + goodDeployment +
		"---\n" + strings.Replace(goodService, "name: order,", "name: broken,", 1) + "  sessionAffinityy: None\n"
	path := filepath.Join(t.TempDir(), "overlay-test.yaml")
	if err := os.WriteFile(path, []byte(render), 0o644); err != nil {
		t.Fatal(err)
	}
	result := applier.VerifyFile(ctx, path)
	if result.ReadFailure != nil {
		t.Fatalf("VerifyFile: %v", result.ReadFailure)
	}
	if result.Objects != 3 || len(result.Undeclared) != 0 {
		t.Errorf("objects = %d, undeclared namespaces = %v; want 3 and none", result.Objects, result.Undeclared)
	}
	if len(result.Rejections) != 1 {
		t.Fatalf("rejections = %v; want exactly the broken Service", result.Rejections)
	}
	r := result.Rejections[0]
	if r.Kind != "Service" || r.Name != "verify-test/broken" || !strings.Contains(r.Message, ".spec.sessionAffinityy: field not declared in schema") {
		t.Errorf("rejection = %+v; want Service verify-test/broken with the unknown field", r)
	}
}

func TestCRDFilesAbsentDirectory(t *testing.T) {
	files, err := CRDFiles(filepath.Join(t.TempDir(), "no-such-dir"))
	if err != nil || len(files) != 0 {
		t.Fatalf("CRDFiles(absent) = %v, %v; want none, no error", files, err)
	}
}

func TestDecodeObjectsRejectsKindless(t *testing.T) {
	_, err := DecodeObjects("bad.yaml", []byte("metadata: {name: x}\n"))
	if err == nil || !strings.Contains(err.Error(), "no apiVersion or kind") {
		t.Fatalf("DecodeObjects(kindless) error = %v", err)
	}
}
