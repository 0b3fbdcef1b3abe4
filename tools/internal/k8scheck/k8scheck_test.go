package k8scheck

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sagasuite/sagasuite/services/inventory"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/services/order"
	"github.com/sagasuite/sagasuite/services/payment"
	"github.com/sagasuite/sagasuite/services/shipping"
	"github.com/sagasuite/sagasuite/tools/internal/console"
	"github.com/sagasuite/sagasuite/tools/internal/imagebuild"
)

var suite = []Service{
	{Name: order.Name, Prefix: "ORDER", Config: reflect.TypeFor[order.Config]()},
	{Name: inventory.Name, Prefix: "INVENTORY", Config: reflect.TypeFor[inventory.Config]()},
	{Name: payment.Name, Prefix: "PAYMENT", Config: reflect.TypeFor[payment.Config]()},
	{Name: shipping.Name, Prefix: "SHIPPING", Config: reflect.TypeFor[shipping.Config]()},
	{Name: notification.Name, Prefix: "NOTIFICATION", Config: reflect.TypeFor[notification.Config]()},
}

var consoleSpec = Console{
	Service:   Service{Name: "console", Prefix: console.Prefix, Config: reflect.TypeFor[console.Config]()},
	Upstreams: console.Upstreams(),
}

// checkAll is what a render must pass: the services' checks and the console's.
func checkAll(objs *Objects, services []Service) []error {
	return append(Check(objs, services), CheckConsole(objs, consoleSpec, services)...)
}

// overlays are rendered by the pinned kustomize that `make k8s-tools` installs.
var overlays = []string{"dev", "prod"}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func kustomize(t *testing.T) string {
	t.Helper()
	home := os.Getenv("SAGASUITE_HOME")
	if home == "" {
		dir, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		home = filepath.Join(dir, ".cache", "sagasuite")
	}
	bin := filepath.Join(home, "bin", "kustomize")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kustomize is not installed at %s: run `make k8s-tools` (%v)", bin, err)
	}
	return bin
}

func render(t *testing.T, overlay string) []byte {
	t.Helper()
	out, err := exec.Command(kustomize(t), "build", filepath.Join(repoRoot(t), "k8s", "overlays", overlay)).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("kustomize build overlays/%s: %v\n%s", overlay, err, exit.Stderr)
		}
		t.Fatalf("kustomize build overlays/%s: %v", overlay, err)
	}
	return out
}

func parse(t *testing.T, render []byte) *Objects {
	t.Helper()
	objs, err := Parse(render)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestOverlaysPassEveryCheck(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			objs := parse(t, render(t, overlay))
			for _, p := range checkAll(objs, suite) {
				t.Error(p)
			}
		})
	}
}

// The reflection over the Config types finds what the services require: the
// Kafka brokers of every service and each one's store.
func TestRequiredVariablesReadFromConfig(t *testing.T) {
	want := map[string][]string{
		"order":        {"ORDER_KAFKA_BROKERS", "ORDER_MYSQL_DSN"},
		"inventory":    {"INVENTORY_KAFKA_BROKERS", "INVENTORY_MYSQL_DSN"},
		"payment":      {"PAYMENT_KAFKA_BROKERS", "PAYMENT_MYSQL_DSN"},
		"shipping":     {"SHIPPING_KAFKA_BROKERS", "SHIPPING_MONGO_URI"},
		"notification": {"NOTIFICATION_CASSANDRA_HOSTS", "NOTIFICATION_KAFKA_BROKERS"},
	}
	for _, svc := range suite {
		got := RequiredVariables(svc.Config, svc.Prefix+"_")
		for _, key := range want[svc.Name] {
			if !contains(got, key) {
				t.Errorf("%s: required %v lacks %s", svc.Name, got, key)
			}
		}
	}
	// A nested envPrefix section: a required variable there gets both prefixes.
	type section struct {
		URL string `env:"URL,required"`
	}
	type withNested struct {
		Gateway section `envPrefix:"GATEWAY_"`
	}
	if got := RequiredVariables(reflect.TypeFor[withNested](), "X_"); !reflect.DeepEqual(got, []string{"X_GATEWAY_URL"}) {
		t.Errorf("nested: got %v, want [X_GATEWAY_URL]", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestEachCheckBites plants one mistake at a time in the prod render's
// objects and expects a problem naming it: a check that never fails is no check.
func TestEachCheckBites(t *testing.T) {
	clean := render(t, "prod")
	containerOf := func(o *Objects, name string) *corev1.Container {
		for _, d := range o.Deployments {
			if d.Name == name {
				return &d.Spec.Template.Spec.Containers[0]
			}
		}
		t.Fatalf("no Deployment %s", name)
		return nil
	}
	cases := []struct {
		name   string
		break_ func(o *Objects)
		want   string
		// withSuite swaps the services' Config types (a new required variable).
		services []Service
	}{
		{name: "selector does not match template", want: "does not match its template",
			break_: func(o *Objects) { o.Deployments[0].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "typo" }},
		{name: "Service selects no Deployment", want: "selects 0 workloads",
			break_: func(o *Objects) { o.Services[0].Spec.Selector = map[string]string{"app.kubernetes.io/name": "nobody"} }},
		{name: "Service selects two Deployments", want: "selects 6 workloads",
			break_: func(o *Objects) {
				o.Services[0].Spec.Selector = map[string]string{"app.kubernetes.io/part-of": "sagasuite"}
			}},
		{name: "Service targetPort names no container port", want: "targetPort grpcc",
			break_: func(o *Objects) { o.Services[0].Spec.Ports[0].TargetPort = intstr.FromString("grpcc") }},
		{name: "PDB selects no Deployment", want: "PodDisruptionBudget",
			break_: func(o *Objects) { o.PDBs[0].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "nobody" }},
		{name: "NetworkPolicy selects no Deployment", want: "NetworkPolicy order selects 0",
			break_: func(o *Objects) {
				for _, np := range o.NetworkPolicies {
					if np.Name == "order" {
						np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] = "orders"
					}
				}
			}},
		{name: "NetworkPolicy ingress on a port the pod lacks", want: "ingress port metrics",
			break_: func(o *Objects) {
				for _, np := range o.NetworkPolicies {
					if np.Name == "order" {
						p := intstr.FromString("metrics")
						np.Spec.Ingress[0].Ports[1].Port = &p
					}
				}
			}},
		{name: "HPA targets a missing Deployment", want: "is no Deployment",
			break_: func(o *Objects) { o.HPAs[0].Spec.ScaleTargetRef.Name = "ordr" }},
		{name: "HPA above the partition count", want: "exceeds",
			break_: func(o *Objects) {
				for _, h := range o.HPAs {
					if h.Name == "order" {
						h.Spec.MaxReplicas = 12
					}
				}
			}},
		{name: "HPA and a static replica count", want: "also sets spec.replicas",
			break_: func(o *Objects) {
				n := int32(2)
				for _, d := range o.Deployments {
					if d.Name == o.HPAs[0].Spec.ScaleTargetRef.Name {
						d.Spec.Replicas = &n
					}
				}
			}},
		{name: "probe on a missing port", want: "readinessProbe port opz",
			break_: func(o *Objects) {
				containerOf(o, "payment").ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("opz")}}}
			}},
		{name: "readiness on the server's own gRPC status", want: `readinessProbe asks the gRPC health of ""`,
			break_: func(o *Objects) { containerOf(o, "payment").ReadinessProbe.GRPC.Service = nil }},
		{name: "readiness on another path", want: "readinessProbe GET /healthz, want /readyz",
			break_: func(o *Objects) {
				containerOf(o, "payment").ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("ops")}}}
			}},
		{name: "gRPC probe on a missing port", want: "livenessProbe gRPC port 9091",
			break_: func(o *Objects) { containerOf(o, "payment").LivenessProbe.GRPC.Port = 9091 }},
		{name: "no startup probe", want: "no startupProbe",
			break_: func(o *Objects) { containerOf(o, "payment").StartupProbe = nil }},
		{name: "envFrom a missing ConfigMap", want: "envFrom ConfigMap order-config",
			break_: func(o *Objects) { containerOf(o, "order").EnvFrom[0].ConfigMapRef.Name = "order-config" }},
		{name: "envFrom a missing Secret", want: "envFrom Secret shipping-creds",
			break_: func(o *Objects) { containerOf(o, "shipping").EnvFrom[1].SecretRef.Name = "shipping-creds" }},
		{name: "secretKeyRef to a missing key", want: "has no key ORDER_MYSQL_PASSWORD",
			break_: func(o *Objects) {
				c := containerOf(o, "order")
				c.Env = append(c.Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: c.EnvFrom[1].SecretRef.Name}, Key: "ORDER_MYSQL_PASSWORD"}}})
			}},
		{name: "volume from a missing Secret", want: "Secret auth-jwks is not in the render",
			break_: func(o *Objects) {
				for _, d := range o.Deployments {
					if d.Name == "notification" {
						d.Spec.Template.Spec.Volumes[0].Secret.SecretName = "auth-jwks"
					}
				}
			}},
		{name: "a required variable missing", want: "required variable SHIPPING_MONGO_URI",
			break_: func(o *Objects) {
				for _, s := range o.Secrets {
					delete(s.Data, "SHIPPING_MONGO_URI")
				}
			}},
		{name: "a token setting missing", want: "INVENTORY_AUTH_AUDIENCE is required",
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					delete(cm.Data, "INVENTORY_AUTH_AUDIENCE")
				}
			}},
		{name: "a new required variable in the code, none in the manifest", want: "required variable ORDER_NEW_THING",
			break_: func(o *Objects) {},
			services: func() []Service {
				type newConfig struct {
					order.Config
					NewThing string `env:"NEW_THING,required"`
				}
				s := append([]Service(nil), suite...)
				s[0].Config = reflect.TypeFor[newConfig]()
				return s
			}()},
		{name: "image :latest", want: "not :latest",
			break_: func(o *Objects) { containerOf(o, "inventory").Image = "sagasuite/inventory:latest" }},
		{name: "image without tag", want: "not :latest or none",
			break_: func(o *Objects) { containerOf(o, "inventory").Image = "registry.example:5000/sagasuite/inventory" }},
		{name: "grace period not above the shutdown timeout", want: "is not above NOTIFICATION_SHUTDOWN_TIMEOUT",
			break_: func(o *Objects) {
				g := int64(20)
				for _, d := range o.Deployments {
					if d.Name == "notification" {
						d.Spec.Template.Spec.TerminationGracePeriodSeconds = &g
					}
				}
			}},
		{name: "a credential in a ConfigMap", want: "credentials belong in a Secret",
			break_: func(o *Objects) { o.ConfigMaps[0].Data["PAYMENT_MYSQL_DSN"] = "u:p@tcp(h)/d" }},
		{name: "a web port the service does not open", want: "PAYMENT_WEB_ADDR is neither set",
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					delete(cm.Data, "PAYMENT_WEB_ADDR")
				}
			}},
		{name: "web listener off its container port", want: `SHIPPING_WEB_ADDR=":8095" but its containerPort web is not 8095`,
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					if _, ok := cm.Data["SHIPPING_WEB_ADDR"]; ok {
						cm.Data["SHIPPING_WEB_ADDR"] = ":8095"
					}
				}
			}},
		{name: "console lacks a service URL its Config requires", want: "required variable CONSOLE_NOTIFICATION_URL",
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					delete(cm.Data, "CONSOLE_NOTIFICATION_URL")
				}
			}},
		{name: "console forwards to a gRPC port", want: `CONSOLE_ORDER_URL="http://order:50051" reaches Service order port 50051 → grpc`,
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					if _, ok := cm.Data["CONSOLE_ORDER_URL"]; ok {
						cm.Data["CONSOLE_ORDER_URL"] = "http://order:50051"
					}
				}
			}},
		{name: "console URL names another service", want: `CONSOLE_PAYMENT_URL="http://inventory:8092" names Service inventory, want the payment service`,
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					if _, ok := cm.Data["CONSOLE_PAYMENT_URL"]; ok {
						cm.Data["CONSOLE_PAYMENT_URL"] = "http://inventory:8092"
					}
				}
			}},
		{name: "console URL on a port the Service lacks", want: "Service inventory has no port 9092",
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					if _, ok := cm.Data["CONSOLE_INVENTORY_URL"]; ok {
						cm.Data["CONSOLE_INVENTORY_URL"] = "http://inventory:9092"
					}
				}
			}},
		{name: "console listens off its container port", want: `CONSOLE_ADDR=":8080" but its containerPort http is not 8080`,
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					if _, ok := cm.Data["CONSOLE_ADDR"]; ok {
						cm.Data["CONSOLE_ADDR"] = ":8080"
					}
				}
			}},
		{name: "console grace period not above its shutdown timeout", want: "is not above CONSOLE_SHUTDOWN_TIMEOUT",
			break_: func(o *Objects) {
				g := int64(10)
				for _, d := range o.Deployments {
					if d.Name == "console" {
						d.Spec.Template.Spec.TerminationGracePeriodSeconds = &g
					}
				}
			}},
		{name: "Ingress to a missing Service", want: "Ingress console: backend Service consol is not in the render",
			break_: func(o *Objects) { o.Ingresses[0].Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "consol" }},
		{name: "Ingress to a port the Service lacks", want: "Ingress console: backend Service console has no port web",
			break_: func(o *Objects) { o.Ingresses[0].Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name = "web" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := parse(t, clean) // a fresh copy per case
			tc.break_(objs)
			services := suite
			if tc.services != nil {
				services = tc.services
			}
			problems := checkAll(objs, services)
			for _, p := range problems {
				if strings.Contains(p.Error(), tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %v", tc.want, problems)
		})
	}
}

func TestParseIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field":  "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  selectr: {a: b}\n",
		"string port":       "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n  - port: \"80\"\n",
		"unknown kind":      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n",
		"StatefulSet field": "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: x\nspec:\n  serviceNme: x\n",
		"Job field":         "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  backofLimit: 1\n",
		"PVC field":         "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: x\nspec:\n  accesModes: [ReadWriteOnce]\n",
		"Ingress field":     "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\nspec:\n  ingresClassName: nginx\n",
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

// TestDevOverlayShipsItsStack: the dev overlay runs what base's addresses name (the
// address check in Check proves each resolves to a Service with that port).
func TestDevOverlayShipsItsStack(t *testing.T) {
	objs := parse(t, render(t, "dev"))
	kinds := map[string]bool{}
	for _, w := range objs.Workloads() {
		kinds[w.String()] = true
	}
	for _, want := range []string{
		"StatefulSet kafka", "StatefulSet mariadb", "StatefulSet postgres", "StatefulSet cassandra",
		"Deployment ferretdb", "Deployment otel-collector",
		"Job mariadb-init", "Job postgres-init", "Job cassandra-init",
	} {
		if !kinds[want] {
			t.Errorf("dev overlay lacks %s (has %v)", want, kinds)
		}
	}
	for _, st := range objs.StatefulSets {
		if len(st.Spec.VolumeClaimTemplates) == 0 {
			t.Errorf("StatefulSet %s has no volumeClaimTemplates: its data dies with the pod", st.Name)
		}
	}
}

// TestEachDevCheckBites plants mistakes in the dev render's stores, Jobs and collector.
func TestEachDevCheckBites(t *testing.T) {
	clean := render(t, "dev")
	statefulSet := func(o *Objects, name string) *appsv1.StatefulSet {
		for _, st := range o.StatefulSets {
			if st.Name == name {
				return st
			}
		}
		t.Fatalf("no StatefulSet %s", name)
		return nil
	}
	job := func(o *Objects, name string) *batchv1.Job {
		for _, j := range o.Jobs {
			if j.Name == name {
				return j
			}
		}
		t.Fatalf("no Job %s", name)
		return nil
	}
	service := func(o *Objects, name string) *corev1.Service {
		for _, s := range o.Services {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no Service %s", name)
		return nil
	}
	cases := []struct {
		name   string
		break_ func(o *Objects)
		want   string
	}{
		{name: "store Service selects nothing", want: "Service mariadb selects 0 workloads",
			break_: func(o *Objects) {
				service(o, "mariadb").Spec.Selector = map[string]string{"app.kubernetes.io/name": "maria"}
			}},
		{name: "StatefulSet serviceName without a Service", want: "serviceName kafka-headless has no Service",
			break_: func(o *Objects) { statefulSet(o, "kafka").Spec.ServiceName = "kafka-headless" }},
		{name: "StatefulSet's Service not headless", want: "kafka is not a headless Service",
			break_: func(o *Objects) { service(o, "kafka").Spec.ClusterIP = "" }},
		{name: "init Job secretKeyRef to a missing key", want: "has no key ORDER_MYSQL_DNS",
			break_: func(o *Objects) {
				for i, e := range job(o, "mariadb-init").Spec.Template.Spec.Containers[0].Env {
					if e.Name == "ORDER_MYSQL_DSN" {
						job(o, "mariadb-init").Spec.Template.Spec.Containers[0].Env[i].ValueFrom.SecretKeyRef.Key = "ORDER_MYSQL_DNS"
					}
				}
			}},
		{name: "init Job configMapKeyRef to a missing key", want: "has no key NOTIFICATION_CASSANDRA_USER",
			break_: func(o *Objects) {
				c := &job(o, "cassandra-init").Spec.Template.Spec.Containers[0]
				for i, e := range c.Env {
					if e.Name == "ROLE" {
						c.Env[i].ValueFrom.ConfigMapKeyRef.Key = "NOTIFICATION_CASSANDRA_USER"
					}
				}
			}},
		{name: "store image :latest", want: `"cassandra:latest" needs a real tag`,
			break_: func(o *Objects) {
				statefulSet(o, "cassandra").Spec.Template.Spec.Containers[0].Image = "cassandra:latest"
			}},
		{name: "init container image without tag", want: `"cassandra" needs a real tag`,
			break_: func(o *Objects) { statefulSet(o, "cassandra").Spec.Template.Spec.InitContainers[0].Image = "cassandra" }},
		{name: "Job image without tag", want: `"postgres" needs a real tag`,
			break_: func(o *Objects) { job(o, "postgres-init").Spec.Template.Spec.Containers[0].Image = "postgres" }},
		{name: "volumeMount names no volume or claim", want: "volumeMount datta",
			break_: func(o *Objects) {
				statefulSet(o, "postgres").Spec.Template.Spec.Containers[0].VolumeMounts[0].Name = "datta"
			}},
		{name: "volume from a missing PVC", want: "PersistentVolumeClaim scratch is not in the render",
			break_: func(o *Objects) {
				spec := &job(o, "mariadb-init").Spec.Template.Spec
				spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "scratch"}}})
			}},
		{name: "StatefulSet without a readiness probe", want: "StatefulSet kafka container kafka: no readinessProbe",
			break_: func(o *Objects) { statefulSet(o, "kafka").Spec.Template.Spec.Containers[0].ReadinessProbe = nil }},
		{name: "store probe on a missing port", want: "livenessProbe port stor is no container port",
			break_: func(o *Objects) {
				statefulSet(o, "cassandra").Spec.Template.Spec.Containers[0].LivenessProbe.TCPSocket.Port = intstr.FromString("stor")
			}},
		{name: "init Job pods carry a store's label", want: "selects 2 workloads",
			break_: func(o *Objects) { job(o, "mariadb-init").Spec.Template.Labels["app.kubernetes.io/name"] = "mariadb" }},
		{name: "store NetworkPolicy on a port the store lacks", want: "NetworkPolicy cassandra: ingress port 9160",
			break_: func(o *Objects) {
				for _, np := range o.NetworkPolicies {
					if np.Name == "cassandra" {
						p := intstr.FromInt32(9160)
						np.Spec.Ingress[0].Ports[0].Port = &p
					}
				}
			}},
		{name: "a service dials a store the render lacks", want: "dials ferretdb:27017, but the render has no Service ferretdb",
			break_: func(o *Objects) {
				for i, s := range o.Services {
					if s.Name == "ferretdb" {
						o.Services = append(o.Services[:i], o.Services[i+1:]...)
						break
					}
				}
			}},
		{name: "a store Service on another port", want: "dials cassandra:9042, but Service cassandra has no port 9042",
			break_: func(o *Objects) { service(o, "cassandra").Spec.Ports[0].Port = 9043 }},
		{name: "collector address without its Service port", want: "Service otel-collector has no port 4317",
			break_: func(o *Objects) { service(o, "otel-collector").Spec.Ports[0].Port = 4318 }},
		{name: "listen address off the container port", want: `ORDER_GRPC_ADDR=":9090" but its containerPort grpc is not 9090`,
			break_: func(o *Objects) {
				for _, cm := range o.ConfigMaps {
					if _, ok := cm.Data["ORDER_GRPC_ADDR"]; ok {
						cm.Data["ORDER_GRPC_ADDR"] = ":9090"
					}
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := parse(t, clean)
			tc.break_(objs)
			problems := checkAll(objs, suite)
			for _, p := range problems {
				if strings.Contains(p.Error(), tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %v", tc.want, problems)
		})
	}
}

// TestPortsMatchTheImages: every overlay's pods declare, and listen on, the ports the
// images expose (tools/internal/imagebuild.Services, which the Dockerfile's test and the
// built images' test hold to the same numbers).
func TestPortsMatchTheImages(t *testing.T) {
	for _, overlay := range overlays {
		objs := parse(t, render(t, overlay))
		for _, img := range imagebuild.Images {
			var found bool
			for _, d := range objs.Deployments {
				if d.Name != img.Name {
					continue
				}
				found = true
				got := map[string]int32{}
				for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
					got[p.Name] = p.ContainerPort
				}
				if got["grpc"] != int32(img.GRPCPort) || got["ops"] != int32(img.OpsPort) || got["http"] != int32(img.HTTPPort) {
					t.Errorf("%s: Deployment %s ports grpc %d ops %d http %d; its image exposes %v",
						overlay, d.Name, got["grpc"], got["ops"], got["http"], img.Ports())
				}
			}
			if !found {
				t.Errorf("%s: no Deployment for image %s", overlay, img.Name)
			}
		}
	}
}
