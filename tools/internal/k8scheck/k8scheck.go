// Package k8scheck checks rendered Kubernetes manifests (the output of
// `kustomize build k8s/overlays/…`) for what JSON schemas cannot see: that
// selectors meet their pods, that every named port, ConfigMap, Secret and key a
// pod refers to exists, and that each service's environment covers every
// variable its Config requires — read from the Go Config type itself, so a new
// required variable without a manifest entry fails here.
package k8scheck

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
)

// Objects are one render's objects by kind.
type Objects struct {
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	Jobs            []*batchv1.Job
	PVCs            []*corev1.PersistentVolumeClaim
	Services        []*corev1.Service
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Namespaces      []*corev1.Namespace
	NetworkPolicies []*networkingv1.NetworkPolicy
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
	Ingresses       []*networkingv1.Ingress
}

// Parse decodes a multi-document YAML render strictly: an unknown field or a
// kind this package does not know is an error, never silently skipped.
func Parse(render []byte) (*Objects, error) {
	objs := &Objects{}
	for i, doc := range bytes.Split(render, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var target any
		switch meta.APIVersion + "/" + meta.Kind {
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			objs.Deployments, target = append(objs.Deployments, o), o
		case "apps/v1/StatefulSet":
			o := &appsv1.StatefulSet{}
			objs.StatefulSets, target = append(objs.StatefulSets, o), o
		case "batch/v1/Job":
			o := &batchv1.Job{}
			objs.Jobs, target = append(objs.Jobs, o), o
		case "v1/PersistentVolumeClaim":
			o := &corev1.PersistentVolumeClaim{}
			objs.PVCs, target = append(objs.PVCs, o), o
		case "v1/Service":
			o := &corev1.Service{}
			objs.Services, target = append(objs.Services, o), o
		case "v1/ServiceAccount":
			o := &corev1.ServiceAccount{}
			objs.ServiceAccounts, target = append(objs.ServiceAccounts, o), o
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			objs.ConfigMaps, target = append(objs.ConfigMaps, o), o
		case "v1/Secret":
			o := &corev1.Secret{}
			objs.Secrets, target = append(objs.Secrets, o), o
		case "v1/Namespace":
			o := &corev1.Namespace{}
			objs.Namespaces, target = append(objs.Namespaces, o), o
		case "networking.k8s.io/v1/NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			objs.NetworkPolicies, target = append(objs.NetworkPolicies, o), o
		case "autoscaling/v2/HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			objs.HPAs, target = append(objs.HPAs, o), o
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			objs.PDBs, target = append(objs.PDBs, o), o
		case "networking.k8s.io/v1/Ingress":
			o := &networkingv1.Ingress{}
			objs.Ingresses, target = append(objs.Ingresses, o), o
		default:
			return nil, fmt.Errorf("document %d: unexpected kind %s %s", i, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, target); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, meta.Kind, err)
		}
	}
	return objs, nil
}

// Service names a sagasuite service and its Go Config type, whose env tags
// say which variables it requires.
type Service struct {
	Name   string       // Deployment name
	Prefix string       // variable prefix without "_", e.g. ORDER
	Config reflect.Type // e.g. reflect.TypeFor[order.Config]()
}

// Workload is a Deployment, StatefulSet or Job: what runs pods, and what the
// Services, PDBs and NetworkPolicies of a render must select.
type Workload struct {
	Kind, Name, Namespace string
	Selector              *metav1.LabelSelector // nil for a Job (the API server generates it)
	Template              *corev1.PodTemplateSpec
	// LongRunning workloads need probes; a Job runs to completion.
	LongRunning bool
	// Claims are a StatefulSet's volumeClaimTemplates' names (volumes its pods mount).
	Claims []string
}

func (w Workload) String() string { return w.Kind + " " + w.Name }

// Workloads lists the render's Deployments, StatefulSets and Jobs.
func (o *Objects) Workloads() []Workload {
	var out []Workload
	for _, d := range o.Deployments {
		out = append(out, Workload{Kind: "Deployment", Name: d.Name, Namespace: d.Namespace,
			Selector: d.Spec.Selector, Template: &d.Spec.Template, LongRunning: true})
	}
	for _, st := range o.StatefulSets {
		var claims []string
		for _, c := range st.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		out = append(out, Workload{Kind: "StatefulSet", Name: st.Name, Namespace: st.Namespace,
			Selector: st.Spec.Selector, Template: &st.Spec.Template, LongRunning: true, Claims: claims})
	}
	for _, j := range o.Jobs {
		out = append(out, Workload{Kind: "Job", Name: j.Name, Namespace: j.Namespace, Template: &j.Spec.Template})
	}
	return out
}

// Check runs every check and returns one problem per finding.
func Check(objs *Objects, services []Service) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	workloads := objs.Workloads()
	for _, w := range workloads {
		checkWorkload(objs, w, add)
	}
	for _, st := range objs.StatefulSets {
		checkStatefulSet(objs, st, add)
	}
	selects := func(what, ns string, sel labels.Selector) {
		var hits []string
		for _, w := range workloads {
			if w.Namespace == ns && sel.Matches(labels.Set(w.Template.Labels)) {
				hits = append(hits, w.String())
			}
		}
		if len(hits) != 1 {
			add("%s selects %d workloads %v, want exactly one", what, len(hits), hits)
		}
	}
	for _, s := range objs.Services {
		what := "Service " + s.Name
		if len(s.Spec.Selector) == 0 {
			add("%s has no selector", what)
			continue
		}
		selects(what, s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
		if w, ok := selected(workloads, s.Namespace, labels.SelectorFromSet(s.Spec.Selector)); ok {
			for _, p := range s.Spec.Ports {
				if !containerHasPort(w, p.TargetPort) {
					add("%s port %s: targetPort %s is no container port of %s", what, p.Name, p.TargetPort.String(), w)
				}
			}
		}
	}
	for _, p := range objs.PDBs {
		what := "PodDisruptionBudget " + p.Name
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || p.Spec.Selector == nil || sel.Empty() {
			add("%s: selector %v must select pods (%v)", what, p.Spec.Selector, err)
			continue
		}
		selects(what, p.Namespace, sel)
	}
	for _, np := range objs.NetworkPolicies {
		what := "NetworkPolicy " + np.Name
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			add("%s: %v", what, err)
			continue
		}
		if sel.Empty() {
			continue // the namespace-wide deny-all
		}
		selects(what, np.Namespace, sel)
		if w, ok := selected(workloads, np.Namespace, sel); ok {
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil && !containerHasPort(w, *p.Port) {
						add("%s: ingress port %s is no container port of %s", what, p.Port.String(), w)
					}
				}
			}
		}
	}
	for _, h := range objs.HPAs {
		what := "HorizontalPodAutoscaler " + h.Name
		ref := h.Spec.ScaleTargetRef
		d := deployment(objs, h.Namespace, ref.Name)
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			add("%s: scaleTargetRef %s %s %s is no Deployment of this render", what, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		if d.Spec.Replicas != nil {
			add("%s: Deployment %s also sets spec.replicas; the HPA must own the count", what, d.Name)
		}
		for _, svc := range services {
			if svc.Name != d.Name {
				continue
			}
			env, _ := environment(objs, d)
			partitions, err := intSetting(svc, env, "KAFKA_PARTITIONS")
			if err != nil {
				add("%s: %v", what, err)
			} else if int(h.Spec.MaxReplicas) > partitions {
				add("%s: maxReplicas %d exceeds %s_KAFKA_PARTITIONS %d (idle consumers)", what, h.Spec.MaxReplicas, svc.Prefix, partitions)
			}
		}
	}
	for _, svc := range services {
		d := deployment(objs, "", svc.Name)
		if d == nil {
			add("service %s: no Deployment %q in the render", svc.Name, svc.Name)
			continue
		}
		checkServiceEnv(objs, d, svc, add)
		checkReadiness(d, add)
	}
	for _, ing := range objs.Ingresses {
		checkIngress(objs, ing, add)
	}
	for _, cm := range objs.ConfigMaps {
		for key := range cm.Data {
			if looksSecret(key) {
				add("ConfigMap %s holds %s: credentials belong in a Secret", cm.Name, key)
			}
		}
	}
	return problems
}

// looksSecret says whether a variable carries credentials (a DSN or URI with
// a password, a password itself).
func looksSecret(key string) bool {
	for _, s := range []string{"_DSN", "_URI", "PASSWORD", "SECRET", "TOKEN"} {
		if strings.Contains(key, s) && !strings.HasSuffix(key, "_FILE") {
			return true
		}
	}
	return false
}

// checkStatefulSet: its governing Service exists, is headless and selects it.
func checkStatefulSet(objs *Objects, st *appsv1.StatefulSet, add func(string, ...any)) {
	what := "StatefulSet " + st.Name
	if st.Spec.ServiceName == "" {
		add("%s: no serviceName (its pods get no stable DNS names)", what)
		return
	}
	var svc *corev1.Service
	for _, s := range objs.Services {
		if s.Name == st.Spec.ServiceName && s.Namespace == st.Namespace {
			svc = s
		}
	}
	switch {
	case svc == nil:
		add("%s: serviceName %s has no Service in the render", what, st.Spec.ServiceName)
	case svc.Spec.ClusterIP != corev1.ClusterIPNone:
		add("%s: serviceName %s is not a headless Service (clusterIP: None)", what, svc.Name)
	case len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(st.Spec.Template.Labels)):
		add("%s: its headless Service %s does not select its pods", what, svc.Name)
	}
}

func checkWorkload(objs *Objects, w Workload, add func(string, ...any)) {
	what := w.String()
	if w.Kind != "Job" {
		sel, err := metav1.LabelSelectorAsSelector(w.Selector)
		if err != nil || w.Selector == nil || sel.Empty() {
			add("%s: selector %v must select its pods (%v)", what, w.Selector, err)
		} else if !sel.Matches(labels.Set(w.Template.Labels)) {
			add("%s: selector %s does not match its template's labels %v", what, sel, w.Template.Labels)
		}
	}
	pod := w.Template.Spec
	if pod.ServiceAccountName != "" && serviceAccount(objs, w.Namespace, pod.ServiceAccountName) == nil {
		add("%s: ServiceAccount %s is not in the render", what, pod.ServiceAccountName)
	}
	volumes := map[string]bool{}
	for _, c := range w.Claims {
		volumes[c] = true
	}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		if v.Secret != nil && secret(objs, w.Namespace, v.Secret.SecretName) == nil {
			add("%s: volume %s: Secret %s is not in the render", what, v.Name, v.Secret.SecretName)
		}
		if v.ConfigMap != nil && configMap(objs, w.Namespace, v.ConfigMap.Name) == nil {
			add("%s: volume %s: ConfigMap %s is not in the render", what, v.Name, v.ConfigMap.Name)
		}
		if v.PersistentVolumeClaim != nil && pvc(objs, w.Namespace, v.PersistentVolumeClaim.ClaimName) == nil {
			add("%s: volume %s: PersistentVolumeClaim %s is not in the render", what, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	containers := append(append([]corev1.Container(nil), pod.InitContainers...), pod.Containers...)
	for i, c := range containers {
		cwhat := what + " container " + c.Name
		image := c.Image
		if i := strings.LastIndex(image, "/"); i >= 0 {
			image = image[i+1:]
		}
		if !strings.Contains(c.Image, "@sha256:") && (!strings.Contains(image, ":") || strings.HasSuffix(image, ":latest")) {
			add("%s: image %q needs a real tag or digest, not :latest or none", cwhat, c.Image)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				add("%s: volumeMount %s names no volume or volumeClaimTemplate", cwhat, m.Name)
			}
		}
		if w.LongRunning && i >= len(pod.InitContainers) {
			checkProbes(w, c, cwhat, add)
		}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil && configMap(objs, w.Namespace, from.ConfigMapRef.Name) == nil {
				add("%s: envFrom ConfigMap %s is not in the render", cwhat, from.ConfigMapRef.Name)
			}
			if from.SecretRef != nil && secret(objs, w.Namespace, from.SecretRef.Name) == nil {
				add("%s: envFrom Secret %s is not in the render", cwhat, from.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
				if cm := configMap(objs, w.Namespace, ref.Name); cm == nil {
					add("%s: env %s: ConfigMap %s is not in the render", cwhat, e.Name, ref.Name)
				} else if _, ok := cm.Data[ref.Key]; !ok {
					add("%s: env %s: ConfigMap %s has no key %s", cwhat, e.Name, ref.Name, ref.Key)
				}
			}
			if ref := e.ValueFrom.SecretKeyRef; ref != nil {
				if s := secret(objs, w.Namespace, ref.Name); s == nil {
					add("%s: env %s: Secret %s is not in the render", cwhat, e.Name, ref.Name)
				} else if _, ok := secretData(s)[ref.Key]; !ok {
					add("%s: env %s: Secret %s has no key %s", cwhat, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
}

// checkProbes: a long-running container has all three probes, each on a port it declares.
func checkProbes(w Workload, c corev1.Container, cwhat string, add func(string, ...any)) {
	for name, probe := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
		switch {
		case probe == nil:
			add("%s: no %s", cwhat, name)
		case probe.GRPC != nil:
			if !containerHasPort(w, intstr.FromInt32(probe.GRPC.Port)) {
				add("%s: %s gRPC port %d is no container port", cwhat, name, probe.GRPC.Port)
			}
		case probe.HTTPGet != nil:
			if !containerHasPort(w, probe.HTTPGet.Port) {
				add("%s: %s port %s is no container port", cwhat, name, probe.HTTPGet.Port.String())
			}
		case probe.TCPSocket != nil:
			if !containerHasPort(w, probe.TCPSocket.Port) {
				add("%s: %s port %s is no container port", cwhat, name, probe.TCPSocket.Port.String())
			}
		case probe.Exec != nil:
			if len(probe.Exec.Command) == 0 {
				add("%s: %s runs an empty command", cwhat, name)
			}
		}
	}
}

// checkReadiness: a service's readiness probe asks what follows its
// dependencies — the health service's readiness name or GET /readyz. A gRPC
// probe on the server's own status ("") is SERVING through any outage, so it
// would route traffic to a replica that cannot work.
func checkReadiness(d *appsv1.Deployment, add func(string, ...any)) {
	for _, c := range d.Spec.Template.Spec.Containers {
		probe := c.ReadinessProbe
		switch {
		case probe == nil: // checkProbes says so
		case probe.GRPC != nil:
			if probe.GRPC.Service == nil || *probe.GRPC.Service != grpcserver.ReadinessService {
				add("Deployment %s container %s: readinessProbe asks the gRPC health of %q, want service %q (the server's own status ignores the stores)",
					d.Name, c.Name, ptrValue(probe.GRPC.Service), grpcserver.ReadinessService)
			}
		case probe.HTTPGet != nil:
			if probe.HTTPGet.Path != "/readyz" {
				add("Deployment %s container %s: readinessProbe GET %s, want /readyz", d.Name, c.Name, probe.HTTPGet.Path)
			}
		default:
			add("Deployment %s container %s: readinessProbe neither gRPC readiness nor GET /readyz", d.Name, c.Name)
		}
	}
}

func ptrValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkServiceEnv: the container's environment holds every variable the
// service's Config requires, the token settings AuthConfig.Check demands,
// and a grace period longer than the service's shutdown timeout.
func checkServiceEnv(objs *Objects, d *appsv1.Deployment, svc Service, add func(string, ...any)) {
	what := "Deployment " + d.Name
	env, err := environment(objs, d)
	if err != nil {
		add("%s: %v", what, err)
		return
	}
	for _, key := range RequiredVariables(svc.Config, svc.Prefix+"_") {
		if _, ok := env[key]; !ok {
			add("%s: required variable %s is not set (%s.Config)", what, key, svc.Name)
		}
	}
	if _, err := AuthSettings(env, svc.Prefix); err != nil {
		add("%s: %v", what, err)
	}
	// The pod declares the ports the process listens on: the containerPort named grpc
	// (ops) is the port of <P>_GRPC_ADDR (<P>_OPS_ADDR), set or defaulted.
	w := Workload{Kind: "Deployment", Name: d.Name, Namespace: d.Namespace, Template: &d.Spec.Template}
	listeners := map[string]string{"grpc": "GRPC_ADDR", "ops": "OPS_ADDR"}
	// The browser listener is optional; a pod that declares a web port (the console
	// forwards to it) must open it, and one that opens it must declare it.
	if _, set := env[svc.Prefix+"_WEB_ADDR"]; set || containerHasPort(w, intstr.FromString("web")) {
		listeners["web"] = "WEB_ADDR"
	}
	for portName, setting := range listeners {
		addr, err := stringSetting(svc, env, setting)
		if err != nil {
			add("%s: %v", what, err)
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			add("%s: %s_%s=%q is no host:port (its containerPort %s needs it)", what, svc.Prefix, setting, addr, portName)
			continue
		}
		if !containerHasPortNamed(w, portName, int32(n)) {
			add("%s: %s_%s=%q but its containerPort %s is not %d", what, svc.Prefix, setting, addr, portName, n)
		}
	}
	checkAddresses(objs, d, env, add)
	shutdown, err := durationSetting(svc, env, "SHUTDOWN_TIMEOUT")
	if err != nil {
		add("%s: %v", what, err)
		return
	}
	grace := 30 * time.Second // Kubernetes' default
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= shutdown {
		add("%s: terminationGracePeriodSeconds %s is not above %s_SHUTDOWN_TIMEOUT %s", what, grace, svc.Prefix, shutdown)
	}
}

// environment is the first container's variables as the kubelet sets them:
// envFrom sources first, then env (values from Secrets and ConfigMaps looked up).
func environment(objs *Objects, d *appsv1.Deployment) (map[string]string, error) {
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return nil, errors.New("no container")
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			if cm := configMap(objs, d.Namespace, from.ConfigMapRef.Name); cm != nil {
				for k, v := range cm.Data {
					env[from.Prefix+k] = v
				}
			}
		}
		if from.SecretRef != nil {
			if s := secret(objs, d.Namespace, from.SecretRef.Name); s != nil {
				for k, v := range secretData(s) {
					env[from.Prefix+k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := configMap(objs, d.Namespace, e.ValueFrom.ConfigMapKeyRef.Name); cm != nil {
				if v, ok := cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]; ok {
					env[e.Name] = v
				}
			}
		case e.ValueFrom.SecretKeyRef != nil:
			if s := secret(objs, d.Namespace, e.ValueFrom.SecretKeyRef.Name); s != nil {
				if v, ok := secretData(s)[e.ValueFrom.SecretKeyRef.Key]; ok {
					env[e.Name] = v
				}
			}
		default:
			env[e.Name] = "" // fieldRef / resourceFieldRef: set by the kubelet
		}
	}
	return env, nil
}

// RequiredVariables lists the variables a config struct marks
// `env:"…,required"`, with prefix and nested envPrefix applied the way
// caarlos0/env (libs/config.Load) reads them.
func RequiredVariables(t reflect.Type, prefix string) []string {
	var out []string
	walkEnv(t, prefix, func(f reflect.StructField, key string, opts []string) {
		for _, o := range opts {
			if o == "required" {
				out = append(out, key)
			}
		}
	})
	return out
}

// defaultOf is a variable's envDefault in the config struct.
func defaultOf(t reflect.Type, prefix, key string) (string, bool) {
	var def string
	var found bool
	walkEnv(t, prefix, func(f reflect.StructField, k string, _ []string) {
		if k == key {
			def, found = f.Tag.Lookup("envDefault")
		}
	})
	return def, found
}

func walkEnv(t reflect.Type, prefix string, visit func(reflect.StructField, string, []string)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, hasEnv := f.Tag.Lookup("env")
		if !hasEnv {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() {
				walkEnv(ft, prefix+f.Tag.Get("envPrefix"), visit)
			}
			continue
		}
		parts := strings.Split(tag, ",")
		if parts[0] != "" {
			visit(f, prefix+parts[0], parts[1:])
		}
	}
}

func setting(svc Service, env map[string]string, name string) (string, error) {
	key := svc.Prefix + "_" + name
	if v, ok := env[key]; ok {
		return v, nil
	}
	if v, ok := defaultOf(svc.Config, svc.Prefix+"_", key); ok {
		return v, nil
	}
	return "", fmt.Errorf("%s is neither set nor defaulted in %s.Config", key, svc.Name)
}

func stringSetting(svc Service, env map[string]string, name string) (string, error) {
	return setting(svc, env, name)
}

func intSetting(svc Service, env map[string]string, name string) (int, error) {
	v, err := setting(svc, env, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s_%s=%q: %w", svc.Prefix, name, v, err)
	}
	return n, nil
}

func durationSetting(svc Service, env map[string]string, name string) (time.Duration, error) {
	v, err := setting(svc, env, name)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s_%s=%q: %w", svc.Prefix, name, v, err)
	}
	return d, nil
}

func containerHasPort(w Workload, port intstr.IntOrString) bool {
	for _, c := range w.Template.Spec.Containers {
		for _, p := range c.Ports {
			if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return true
			}
		}
	}
	return false
}

func containerHasPortNamed(w Workload, name string, port int32) bool {
	for _, c := range w.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name && p.ContainerPort == port {
				return true
			}
		}
	}
	return false
}

var dsnAddress = regexp.MustCompile(`@tcp\(([^)]+)\)`)

// endpoints are the host:port pairs a service's environment dials: Kafka
// brokers, its store, the OTLP collector (defaults for a missing port).
func endpoints(key, value string) []string {
	var list []string
	defaultPort := ""
	switch {
	case strings.HasSuffix(key, "_KAFKA_BROKERS"):
		list = strings.Split(value, ",")
	case strings.HasSuffix(key, "_MYSQL_DSN"):
		if m := dsnAddress.FindStringSubmatch(value); m != nil {
			list, defaultPort = []string{m[1]}, "3306"
		}
	case strings.HasSuffix(key, "_MONGO_URI"):
		_, rest, _ := strings.Cut(value, "://")
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = rest[i+1:]
		}
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			rest = rest[:i]
		}
		list, defaultPort = strings.Split(rest, ","), "27017"
	case strings.HasSuffix(key, "_CASSANDRA_HOSTS"):
		list, defaultPort = strings.Split(value, ","), "9042"
	case key == "OTEL_EXPORTER_OTLP_ENDPOINT":
		if u, err := url.Parse(value); err == nil && u.Host != "" {
			list, defaultPort = []string{u.Host}, "4317"
		}
	}
	var out []string
	for _, hp := range list {
		hp = strings.TrimSpace(hp)
		if hp == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(hp); err != nil && defaultPort != "" {
			hp = net.JoinHostPort(hp, defaultPort)
		}
		out = append(out, hp)
	}
	return out
}

// checkAddresses: every address the service dials by a bare name (a Service of its
// own namespace, as in the dev overlay) is a Service of the render with that port.
// Dotted names and IPs are outside the render (overlays/prod) and not checked.
func checkAddresses(objs *Objects, d *appsv1.Deployment, env map[string]string, add func(string, ...any)) {
	for key, value := range env {
		for _, hp := range endpoints(key, value) {
			host, port, err := net.SplitHostPort(hp)
			if err != nil {
				add("Deployment %s: %s: address %q is no host:port", d.Name, key, hp)
				continue
			}
			if strings.Contains(host, ".") || strings.Contains(host, ":") {
				continue
			}
			n, _ := strconv.Atoi(port)
			var svc *corev1.Service
			for _, s := range objs.Services {
				if s.Name == host && s.Namespace == d.Namespace {
					svc = s
				}
			}
			if svc == nil {
				add("Deployment %s: %s dials %s, but the render has no Service %s", d.Name, key, hp, host)
				continue
			}
			found := false
			for _, p := range svc.Spec.Ports {
				found = found || p.Port == int32(n)
			}
			if !found {
				add("Deployment %s: %s dials %s, but Service %s has no port %d", d.Name, key, hp, host, n)
			}
		}
	}
}

// selected is the one workload sel selects in ns; false when none or several.
func selected(workloads []Workload, ns string, sel labels.Selector) (Workload, bool) {
	var hit Workload
	n := 0
	for _, w := range workloads {
		if w.Namespace == ns && sel.Matches(labels.Set(w.Template.Labels)) {
			hit, n = w, n+1
		}
	}
	return hit, n == 1
}

func pvc(objs *Objects, ns, name string) *corev1.PersistentVolumeClaim {
	for _, o := range objs.PVCs {
		if o.Name == name && o.Namespace == ns {
			return o
		}
	}
	return nil
}

// deployment finds one by name; ns "" matches any namespace.
func deployment(objs *Objects, ns, name string) *appsv1.Deployment {
	for _, d := range objs.Deployments {
		if d.Name == name && (ns == "" || d.Namespace == ns) {
			return d
		}
	}
	return nil
}

func configMap(objs *Objects, ns, name string) *corev1.ConfigMap {
	for _, o := range objs.ConfigMaps {
		if o.Name == name && o.Namespace == ns {
			return o
		}
	}
	return nil
}

func secret(objs *Objects, ns, name string) *corev1.Secret {
	for _, o := range objs.Secrets {
		if o.Name == name && o.Namespace == ns {
			return o
		}
	}
	return nil
}

func serviceAccount(objs *Objects, ns, name string) *corev1.ServiceAccount {
	for _, o := range objs.ServiceAccounts {
		if o.Name == name && o.Namespace == ns {
			return o
		}
	}
	return nil
}

// secretData merges data (decoded by the API types) and stringData.
func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// AuthSettings reads a service's <P>_AUTH_* variables out of its environment
// and checks them as the service does at start-up (config.AuthConfig.Check).
func AuthSettings(env map[string]string, prefix string) (config.AuthConfig, error) {
	auth := config.AuthConfig{
		JWKSFile: env[prefix+"_AUTH_JWKS_FILE"], JWKSURL: env[prefix+"_AUTH_JWKS_URL"],
		Issuer: env[prefix+"_AUTH_ISSUER"], Audience: env[prefix+"_AUTH_AUDIENCE"],
	}
	return auth, auth.Check(prefix)
}

// LooksSecret says whether a variable carries credentials (exported for
// tools/internal/composecheck, which applies the same rule to compose files).
func LooksSecret(key string) bool { return looksSecret(key) }

// Setting is a service's variable <Prefix>_<name> from env, else its
// envDefault in the Config (exported for tools/internal/composecheck).
func Setting(svc Service, env map[string]string, name string) (string, error) {
	return setting(svc, env, name)
}

// checkIngress: every backend is a Service of the render in the Ingress's namespace, with
// the port it names.
func checkIngress(objs *Objects, ing *networkingv1.Ingress, add func(string, ...any)) {
	what := "Ingress " + ing.Name
	var backends []*networkingv1.IngressServiceBackend
	if b := ing.Spec.DefaultBackend; b != nil && b.Service != nil {
		backends = append(backends, b.Service)
	}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service != nil {
				backends = append(backends, p.Backend.Service)
			}
		}
	}
	if len(backends) == 0 {
		add("%s: no Service backend", what)
	}
	for _, b := range backends {
		svc := service(objs, ing.Namespace, b.Name)
		if svc == nil {
			add("%s: backend Service %s is not in the render", what, b.Name)
			continue
		}
		found := false
		for _, p := range svc.Spec.Ports {
			found = found || (b.Port.Name != "" && p.Name == b.Port.Name) || (b.Port.Name == "" && p.Port == b.Port.Number)
		}
		if !found {
			add("%s: backend Service %s has no port %s%d", what, b.Name, b.Port.Name, b.Port.Number)
		}
	}
}

func service(objs *Objects, ns, name string) *corev1.Service {
	for _, s := range objs.Services {
		if s.Name == name && s.Namespace == ns {
			return s
		}
	}
	return nil
}

// Console names the console's Deployment and its Go Config type, and which of its variables
// hold the services' browser URLs (CONSOLE_ORDER_URL → order …).
type Console struct {
	Service
	// Upstreams maps each URL variable (without the prefix, e.g. ORDER_URL) to the
	// sagasuite service it must reach.
	Upstreams map[string]string
}

// CheckConsole checks the console's Deployment: every variable its Config requires is set,
// CONSOLE_ADDR is its containerPort http, its grace period is above its shutdown timeout,
// and each service URL it forwards to reaches that service's web listener: a Service of the
// render (bare names; dotted ones are outside it) on a port whose target is the service pod's
// containerPort web, which the service opens (<P>_WEB_ADDR, checked by Check).
func CheckConsole(objs *Objects, console Console, services []Service) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	d := deployment(objs, "", console.Name)
	if d == nil {
		add("console: no Deployment %q in the render", console.Name)
		return problems
	}
	what := "Deployment " + d.Name
	env, err := environment(objs, d)
	if err != nil {
		add("%s: %v", what, err)
		return problems
	}
	for _, key := range RequiredVariables(console.Config, console.Prefix+"_") {
		if _, ok := env[key]; !ok {
			add("%s: required variable %s is not set (%s.Config)", what, key, console.Name)
		}
	}
	w := Workload{Kind: "Deployment", Name: d.Name, Namespace: d.Namespace, Template: &d.Spec.Template}
	if addr, err := stringSetting(console.Service, env, "ADDR"); err != nil {
		add("%s: %v", what, err)
	} else if _, port, err := net.SplitHostPort(addr); err != nil {
		add("%s: %s_ADDR=%q is no host:port", what, console.Prefix, addr)
	} else if n, err := strconv.Atoi(port); err != nil || !containerHasPortNamed(w, "http", int32(n)) {
		add("%s: %s_ADDR=%q but its containerPort http is not %s", what, console.Prefix, addr, port)
	}
	if shutdown, err := durationSetting(console.Service, env, "SHUTDOWN_TIMEOUT"); err != nil {
		add("%s: %v", what, err)
	} else {
		grace := 30 * time.Second
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		if grace <= shutdown {
			add("%s: terminationGracePeriodSeconds %s is not above %s_SHUTDOWN_TIMEOUT %s", what, grace, console.Prefix, shutdown)
		}
	}
	workloads := objs.Workloads()
	for key, target := range console.Upstreams {
		raw, ok := env[console.Prefix+"_"+key]
		if !ok {
			continue // reported as a required variable
		}
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" || u.Port() == "" {
			add("%s: %s_%s=%q: want http(s)://service:port", what, console.Prefix, key, raw)
			continue
		}
		host := u.Hostname()
		if strings.Contains(host, ".") || strings.Contains(host, ":") {
			continue // outside the render
		}
		if host != target {
			add("%s: %s_%s=%q names Service %s, want the %s service", what, console.Prefix, key, raw, host, target)
		}
		svc := service(objs, d.Namespace, host)
		if svc == nil {
			add("%s: %s_%s=%q, but the render has no Service %s", what, console.Prefix, key, raw, host)
			continue
		}
		n, _ := strconv.Atoi(u.Port())
		var sp *corev1.ServicePort
		for i, p := range svc.Spec.Ports {
			if p.Port == int32(n) {
				sp = &svc.Spec.Ports[i]
			}
		}
		if sp == nil {
			add("%s: %s_%s=%q, but Service %s has no port %d", what, console.Prefix, key, raw, host, n)
			continue
		}
		pod, ok := selected(workloads, svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
		if !ok {
			continue // Check reports a Service that selects no single workload
		}
		webPort := int32(-1)
		for _, c := range pod.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == "web" {
					webPort = p.ContainerPort
				}
			}
		}
		if (sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "web") || (sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != webPort) || webPort < 0 {
			add("%s: %s_%s=%q reaches Service %s port %d → %s, not the containerPort web of %s (the browser listener)",
				what, console.Prefix, key, raw, host, n, sp.TargetPort.String(), pod)
		}
	}
	for _, svc := range services {
		found := false
		for _, target := range console.Upstreams {
			found = found || target == svc.Name
		}
		if !found {
			add("console: forwards to no %s service (Upstreams)", svc.Name)
		}
	}
	return problems
}
