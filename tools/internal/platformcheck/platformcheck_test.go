package platformcheck

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The services whose Kafka access and stores the platform provides.
var services = []string{"order", "inventory", "payment", "shipping", "notification"}

// k8sVersion is the Kubernetes minor k8s/k8s.mk validates against (K8S_TARGET_VERSION).
const k8sVersion = "1.34.0"

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func sagasuiteHome(t *testing.T) string {
	t.Helper()
	if home := os.Getenv("SAGASUITE_HOME"); home != "" {
		return home
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, ".cache", "sagasuite")
}

// tool is a pinned binary `make k8s-tools` installs.
func tool(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(sagasuiteHome(t), "bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not installed at %s: run `make k8s-tools` (%v)", name, bin, err)
	}
	return bin
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, exit.Stderr)
		}
		t.Fatalf("%s %v: %v", filepath.Base(name), args, err)
	}
	return out
}

func render(t *testing.T, dir string) []byte {
	t.Helper()
	return run(t, tool(t, "kustomize"), "build", filepath.Join(repoRoot(t), "k8s", dir))
}

func crdFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "k8s", "platform", "crds", "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRD files under k8s/platform/crds (%v)", err)
	}
	return files
}

// crdSchemaDir converts the CRDs once per test binary.
var crdSchemaDir string

func schemas(t *testing.T) string {
	t.Helper()
	if crdSchemaDir != "" {
		return crdSchemaDir
	}
	dir, err := os.MkdirTemp("", "platformcheck-schemas-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSchemas(dir, crdFiles(t)); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	crdSchemaDir = dir
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if crdSchemaDir != "" {
		os.RemoveAll(crdSchemaDir)
	}
	os.Exit(code)
}

// kubeconform validates a render file strictly, as k8s/k8s.mk does: the
// Kubernetes schemas for native kinds, the CRD schemas for custom resources.
func kubeconform(t *testing.T, file string) (string, error) {
	t.Helper()
	k8sSchemas, err := filepath.Glob(filepath.Join(sagasuiteHome(t), "k8s-schemas", "kubernetes-validate-*-v"+k8sVersion))
	if err != nil || len(k8sSchemas) != 1 {
		t.Fatalf("the Kubernetes %s JSON schemas are not installed under %s/k8s-schemas: run `make k8s-tools` (%v)", k8sVersion, sagasuiteHome(t), k8sSchemas)
	}
	out, err := exec.Command(tool(t, "kubeconform"), "-strict", "-summary", "-kubernetes-version", k8sVersion,
		"-schema-location", k8sSchemas[0]+"/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json",
		"-schema-location", schemas(t)+"/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
		file).CombinedOutput()
	return string(out), err
}

// want is what the platform must provide, read from the code and the base manifests.
func want(t *testing.T) Want {
	t.Helper()
	access, err := CodeAccess(repoRoot(t), services)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Parse(render(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	partitions := map[string]int{}
	for _, svc := range services {
		key := strings.ToUpper(svc) + "_KAFKA_PARTITIONS"
		found := false
		for _, o := range base {
			if o.Kind != "ConfigMap" || o.Name == "" || !strings.HasPrefix(o.Name, svc+"-config") {
				continue
			}
			v := str(o.Doc, "data", key)
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("base %s: %s=%q: %v", o, key, v, err)
			}
			for _, topic := range access[svc].Produces {
				partitions[topic] = n
			}
			found = true
		}
		if !found {
			t.Fatalf("base: no ConfigMap %s-config with %s", svc, key)
		}
	}
	return Want{Access: access, TopicPartitions: partitions}
}

// The access read from the code is the one the services' READMEs describe.
func TestCodeAccess(t *testing.T) {
	access, err := CodeAccess(repoRoot(t), services)
	if err != nil {
		t.Fatal(err)
	}
	expect := map[string]string{
		"order":        "produces [orders.v1] reads [inventory.v1 payments.v1 shipments.v1] group order",
		"inventory":    "produces [inventory.v1] reads [orders.v1 payments.v1 shipments.v1] group inventory",
		"payment":      "produces [payments.v1] reads [inventory.v1 orders.v1 shipments.v1] group payment",
		"shipping":     "produces [shipments.v1] reads [inventory.v1 orders.v1] group shipping",
		"notification": "produces [notifications.v1] reads [orders.v1 inventory.v1 payments.v1 shipments.v1 notifications.v1] group notification",
	}
	for svc, e := range expect {
		a := access[svc]
		if got := fmt.Sprintf("produces %v reads %v group %s", a.Produces, a.Reads, a.Group); got != e {
			t.Errorf("%s: %s, want %s", svc, got, e)
		}
	}
}

// licenceTexts: lines that identify each licence's text.
var licenceTexts = map[string][]string{
	"Apache-2.0": {"Apache License", "Version 2.0, January 2004"},
	"MIT":        {"MIT License", "Permission is hereby granted, free of charge"},
}

// Every operator folder holds its CRDs, its licence and where they came from,
// and every CRD converts.
func TestCRDFilesCarryLicenceAndParse(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(repoRoot(t), "k8s", "platform", "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	operators := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		operators++
		name := filepath.Base(dir)
		// SOURCE names the artifact and the licence; LICENSE must be that licence's text.
		source, err := os.ReadFile(filepath.Join(dir, "SOURCE"))
		if err != nil || !strings.Contains(string(source), "\nartifact: ") {
			t.Errorf("%s: SOURCE missing or without an artifact: line (%v)", name, err)
		}
		spdx := ""
		if _, rest, ok := strings.Cut(string(source), "\nlicence:"); ok {
			spdx, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
		}
		licence, err := os.ReadFile(filepath.Join(dir, "LICENSE"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		marks, known := licenceTexts[spdx]
		if !known {
			t.Errorf("%s: SOURCE names licence %q; this test knows %v", name, spdx, sortedKeys(licenceTexts))
		}
		for _, mark := range marks {
			if !strings.Contains(string(licence), mark) {
				t.Errorf("%s: LICENSE is not the %s text (no %q)", name, spdx, mark)
			}
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if len(files) == 0 {
			t.Errorf("%s: no CRD yaml", name)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseCRD(data); err != nil {
				t.Errorf("%s/%s: %v", name, filepath.Base(f), err)
			}
		}
	}
	if operators != 4 {
		t.Errorf("%d operator folders, want 4 (strimzi, mariadb-operator, cass-operator, cloudnative-pg)", operators)
	}
}

func TestPlatformPassesEveryCheck(t *testing.T) {
	out := render(t, "platform")
	objs, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	// Every custom resource has a CRD here (k8s-verify installs them from k8s/platform/crds).
	for _, o := range objs {
		if o.group() == "" || strings.Contains(o.group(), ".k8s.io") || o.group() == "apps" || o.group() == "policy" {
			continue
		}
		_, version, _ := strings.Cut(o.APIVersion, "/")
		path := filepath.Join(schemas(t), CRDSchema{Group: o.group(), Kind: o.Kind, Version: version}.Path())
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: no CRD in k8s/platform/crds serves %s", o, o.APIVersion)
		}
	}
	for _, p := range Check(objs, want(t)) {
		t.Error(p)
	}
	file := filepath.Join(t.TempDir(), "platform.yaml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := kubeconform(t, file); err != nil {
		t.Errorf("kubeconform: %v\n%s", err, msg)
	}
}

// TestSchemasBite plants one mistake at a time in the platform render and
// expects kubeconform, with the CRD schemas, to reject it naming the field.
func TestSchemasBite(t *testing.T) {
	clean := string(render(t, "platform"))
	cases := []struct {
		name, old, new, expect string
	}{
		{"misspelled KafkaTopic field", "  partitions: 3\n", "  partition: 3\n", "partition"},
		{"KafkaUser ACL operation (v1beta2's singular)", "    - operations:", "    - operation:", "operation"},
		{"string where MariaDB wants an integer", "  replicas: 3\n  replication:", "  replicas: three\n  replication:", "replicas"},
		{"KafkaNodePool role outside the enum", "  - controller\n", "  - controler\n", "/spec/roles/0"},
		{"unknown CNPG Cluster field", "  instances: 3\n", "  instances: 3\n  instance: 3\n", "instance"},
		{"misspelled Grant field", "  privileges:\n", "  privilege:\n", "privilege"},
		{"unknown top-level field of a custom resource", "kind: KafkaTopic\n", "kind: KafkaTopic\nsepc: {}\n", "sepc"},
		{"native object too: FerretDB port as a string", "containerPort: 27017", "containerPort: \"27017\"", "containerPort"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(clean, c.old) {
				t.Fatalf("the render has no %q to break", c.old)
			}
			file := filepath.Join(t.TempDir(), "platform.yaml")
			if err := os.WriteFile(file, []byte(strings.Replace(clean, c.old, c.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			msg, err := kubeconform(t, file)
			if err == nil {
				t.Fatalf("kubeconform accepted it:\n%s", msg)
			}
			if !strings.Contains(msg, c.expect) {
				t.Errorf("kubeconform's output does not name %q:\n%s", c.expect, msg)
			}
		})
	}
}

// TestCrossChecksBite plants one mistake at a time in the parsed platform
// objects and expects Check to name it: mistakes no schema can see.
func TestCrossChecksBite(t *testing.T) {
	clean := render(t, "platform")
	w := want(t)
	find := func(objs []Object, kind, name string) map[string]any {
		for _, o := range objs {
			if o.Kind == kind && o.Name == name {
				return o.Doc
			}
		}
		t.Fatalf("no %s %s in the render", kind, name)
		return nil
	}
	acls := func(objs []Object, user string) []any {
		return get(find(objs, "KafkaUser", user), "spec", "authorization", "acls").([]any)
	}
	setACLs := func(objs []Object, user string, list []any) {
		get(find(objs, "KafkaUser", user), "spec", "authorization").(map[string]any)["acls"] = list
	}
	spec := func(objs []Object, kind, name string) map[string]any {
		return get(find(objs, kind, name), "spec").(map[string]any)
	}
	cases := []struct {
		name   string
		break_ func([]Object)
		expect string
	}{
		{"ACL names a topic no KafkaTopic creates", func(o []Object) {
			a := acls(o, "order")[1].(map[string]any)
			a["resource"].(map[string]any)["name"] = "inventroy.v1"
		}, `names topic "inventroy.v1", but no KafkaTopic creates it`},
		{"sagactl ACL names a topic no KafkaTopic creates", func(o []Object) {
			a := acls(o, "sagactl")[0].(map[string]any)
			a["resource"].(map[string]any)["name"] = "order.dead"
		}, `names topic "order.dead"`},
		{"ACL on every topic", func(o []Object) {
			a := acls(o, "sagactl")[0].(map[string]any)
			a["resource"].(map[string]any)["name"] = "*"
		}, "grants every topic"},
		{"service lacks a read its code needs", func(o []Object) {
			setACLs(o, "shipping", acls(o, "shipping")[:2]) // drops orders.v1, the DLQ and the group
		}, "KafkaUser sagasuite-data/shipping: lacks Read topic literal:orders.v1"},
		{"service lacks its consumer group", func(o []Object) {
			l := acls(o, "payment")
			setACLs(o, "payment", l[:len(l)-1])
		}, "lacks Read group literal:payment"},
		{"service may write a topic it does not own", func(o []Object) {
			a := acls(o, "inventory")[1].(map[string]any) // orders.v1: Read, Describe
			a["operations"] = []any{"Read", "Describe", "Write"}
		}, "KafkaUser sagasuite-data/inventory: grants Write topic literal:orders.v1"},
		{"service may create topics", func(o []Object) {
			a := acls(o, "order")[0].(map[string]any)
			a["operations"] = []any{"Write", "Describe", "Create"}
		}, "grants Create topic literal:orders.v1"},
		{"no KafkaUser for a service", func(o []Object) {
			find(o, "KafkaUser", "notification")["metadata"].(map[string]any)["name"] = "notifications"
		}, "service notification: no KafkaUser"},
		{"topic partitions differ from the service's setting", func(o []Object) {
			spec(o, "KafkaTopic", "payments-v1")["partitions"] = float64(6)
		}, "6 partitions, but the producing service is configured with 3"},
		{"a topic the services use is not created", func(o []Object) {
			spec(o, "KafkaTopic", "shipments-v1")["topicName"] = "shipment.v1"
		}, `topic "shipments.v1": no KafkaTopic creates it`},
		{"two KafkaTopics create one topic", func(o []Object) {
			spec(o, "KafkaTopic", "orders-v1")["topicName"] = "inventory.v1"
		}, `topic "inventory.v1" is also created by`},
		{"more replicas than brokers", func(o []Object) {
			spec(o, "KafkaNodePool", "dual-role")["replicas"] = float64(2)
		}, "replicas 3, but its cluster has 2 brokers"},
		{"min.insync.replicas equal to replicas", func(o []Object) {
			get(spec(o, "KafkaTopic", "orders-v1"), "config").(map[string]any)["min.insync.replicas"] = float64(3)
		}, "min.insync.replicas 3 leaves no replica to lose"},
		{"KafkaUser names no Kafka cluster", func(o []Object) {
			find(o, "KafkaUser", "order")["metadata"].(map[string]any)["labels"].(map[string]any)["strimzi.io/cluster"] = "kafka"
		}, `label strimzi.io/cluster="kafka" names no Kafka`},
		{"Grant for a database no Database defines", func(o []Object) {
			spec(o, "Grant", "payment")["database"] = "payments"
		}, `database "payments" is defined by no Database`},
		{"Grant on every database", func(o []Object) {
			spec(o, "Grant", "order")["database"] = "*"
		}, "grants on every database"},
		{"Grant for a user no User defines", func(o []Object) {
			spec(o, "Grant", "inventory")["username"] = "inventroy"
		}, `username "inventroy" is defined by no User`},
		{"Grant for another host than the User's", func(o []Object) {
			spec(o, "Grant", "order")["host"] = "10.0.0.1"
		}, `host "10.0.0.1", but User sagasuite-data/order is for host "%"`},
		{"Database on a MariaDB that does not exist", func(o []Object) {
			spec(o, "Database", "order")["mariaDbRef"].(map[string]any)["name"] = "mysql"
		}, `mariaDbRef "mysql" names no MariaDB`},
		{"FerretDB pointed at a PostgreSQL cluster that does not exist", func(o []Object) {
			env := get(find(o, "Deployment", "ferretdb"), "spec", "template", "spec", "containers").([]any)[0].(map[string]any)["env"].([]any)
			env[1].(map[string]any)["value"] = "postgres://postgres-rw:5432/ferretdb"
		}, `names no CloudNativePG Cluster "postgres"`},
		{"FerretDB URL with a password", func(o []Object) {
			env := get(find(o, "Deployment", "ferretdb"), "spec", "template", "spec", "containers").([]any)[0].(map[string]any)["env"].([]any)
			env[1].(map[string]any)["value"] = "postgres://shipping:secret@ferretdb-pg-rw:5432/ferretdb"
		}, "carries credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs, err := Parse(clean)
			if err != nil {
				t.Fatal(err)
			}
			c.break_(objs)
			// Names may have changed: re-read them from the documents.
			for i := range objs {
				objs[i].Name = str(objs[i].Doc, "metadata", "name")
				if labels, ok := get(objs[i].Doc, "metadata", "labels").(map[string]any); ok {
					objs[i].Labels = map[string]string{}
					for k, v := range labels {
						objs[i].Labels[k], _ = v.(string)
					}
				}
			}
			problems := Check(objs, w)
			for _, p := range problems {
				if strings.Contains(p.Error(), c.expect) {
					return
				}
			}
			t.Errorf("no problem names %q; got %v", c.expect, problems)
		})
	}
}

// The conversion makes objects strict, and keeps open what the CRD keeps open.
func TestStrictConversion(t *testing.T) {
	crd := []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
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
              properties:
                size: {x-kubernetes-int-or-string: true}
                note: {type: string, nullable: true}
                free: {type: object, x-kubernetes-preserve-unknown-fields: true, properties: {a: {type: string}}}
                labels: {type: object, additionalProperties: {type: string}}
    - name: v0
      served: false
      storage: false
`)
	got, err := ParseCRD(crd)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path() != filepath.Join("example.com", "widget_v1.json") {
		t.Fatalf("got %+v, want one schema example.com/widget_v1.json (v0 is not served)", got)
	}
	spec := get(got[0].Schema, "properties", "spec").(map[string]any)
	checks := []struct {
		what string
		ok   bool
	}{
		{"root closed", got[0].Schema["additionalProperties"] == false},
		{"spec closed", spec["additionalProperties"] == false},
		{"int-or-string has no single type", get(spec, "properties", "size", "type") == nil && get(spec, "properties", "size", "anyOf") != nil},
		{"nullable admits null", fmt.Sprint(get(spec, "properties", "note", "type")) == "[string null]"},
		{"preserve-unknown-fields stays open", get(spec, "properties", "free", "additionalProperties") == nil},
		{"a map keeps its value schema", get(spec, "properties", "labels", "additionalProperties", "type") == "string"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %v", c.what, got[0].Schema)
		}
	}
	for _, bad := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
		strings.Replace(string(crd), "name: widgets.example.com", "name: widget.example.com", 1),
		strings.Replace(string(crd), "served: true", "served: false", 1),
		"{not yaml",
	} {
		if _, err := ParseCRD([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad[:min(len(bad), 60)])
		}
	}
}
