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
	"reflect"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sagasuite/sagasuite/libs/config"
)

// Objects are one render's objects by kind.
type Objects struct {
	Deployments     []*appsv1.Deployment
	Services        []*corev1.Service
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Namespaces      []*corev1.Namespace
	NetworkPolicies []*networkingv1.NetworkPolicy
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
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

// Check runs every check and returns one problem per finding.
func Check(objs *Objects, services []Service) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	for _, d := range objs.Deployments {
		checkDeployment(objs, d, add)
	}
	selects := func(what, ns string, sel labels.Selector) {
		var hits []string
		for _, d := range objs.Deployments {
			if d.Namespace == ns && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				hits = append(hits, d.Name)
			}
		}
		if len(hits) != 1 {
			add("%s selects %d Deployments %v, want exactly one", what, len(hits), hits)
		}
	}
	for _, s := range objs.Services {
		what := "Service " + s.Name
		if len(s.Spec.Selector) == 0 {
			add("%s has no selector", what)
			continue
		}
		selects(what, s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
		if d := selected(objs, s.Namespace, labels.SelectorFromSet(s.Spec.Selector)); d != nil {
			for _, p := range s.Spec.Ports {
				if !containerHasPort(d, p.TargetPort) {
					add("%s port %s: targetPort %s is no container port of Deployment %s", what, p.Name, p.TargetPort.String(), d.Name)
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
		if d := selected(objs, np.Namespace, sel); d != nil {
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil && !containerHasPort(d, *p.Port) {
						add("%s: ingress port %s is no container port of Deployment %s", what, p.Port.String(), d.Name)
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

func checkDeployment(objs *Objects, d *appsv1.Deployment, add func(string, ...any)) {
	what := "Deployment " + d.Name
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || d.Spec.Selector == nil || sel.Empty() {
		add("%s: selector %v must select its pods (%v)", what, d.Spec.Selector, err)
	} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		add("%s: selector %s does not match its template's labels %v", what, sel, d.Spec.Template.Labels)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "" && serviceAccount(objs, d.Namespace, pod.ServiceAccountName) == nil {
		add("%s: ServiceAccount %s is not in the render", what, pod.ServiceAccountName)
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil && secret(objs, d.Namespace, v.Secret.SecretName) == nil {
			add("%s: volume %s: Secret %s is not in the render", what, v.Name, v.Secret.SecretName)
		}
		if v.ConfigMap != nil && configMap(objs, d.Namespace, v.ConfigMap.Name) == nil {
			add("%s: volume %s: ConfigMap %s is not in the render", what, v.Name, v.ConfigMap.Name)
		}
	}
	for _, c := range pod.Containers {
		cwhat := what + " container " + c.Name
		image := c.Image
		if i := strings.LastIndex(image, "/"); i >= 0 {
			image = image[i+1:]
		}
		if !strings.Contains(c.Image, "@sha256:") && (!strings.Contains(image, ":") || strings.HasSuffix(image, ":latest")) {
			add("%s: image %q needs a real tag or digest, not :latest or none", cwhat, c.Image)
		}
		for name, probe := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
			switch {
			case probe == nil:
				add("%s: no %s", cwhat, name)
			case probe.GRPC != nil:
				if !containerHasPort(d, intstr.FromInt32(probe.GRPC.Port)) {
					add("%s: %s gRPC port %d is no container port", cwhat, name, probe.GRPC.Port)
				}
			case probe.HTTPGet != nil:
				if !containerHasPort(d, probe.HTTPGet.Port) {
					add("%s: %s port %s is no container port", cwhat, name, probe.HTTPGet.Port.String())
				}
			case probe.TCPSocket != nil:
				if !containerHasPort(d, probe.TCPSocket.Port) {
					add("%s: %s port %s is no container port", cwhat, name, probe.TCPSocket.Port.String())
				}
			}
		}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil && configMap(objs, d.Namespace, from.ConfigMapRef.Name) == nil {
				add("%s: envFrom ConfigMap %s is not in the render", cwhat, from.ConfigMapRef.Name)
			}
			if from.SecretRef != nil && secret(objs, d.Namespace, from.SecretRef.Name) == nil {
				add("%s: envFrom Secret %s is not in the render", cwhat, from.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
				if cm := configMap(objs, d.Namespace, ref.Name); cm == nil {
					add("%s: env %s: ConfigMap %s is not in the render", cwhat, e.Name, ref.Name)
				} else if _, ok := cm.Data[ref.Key]; !ok {
					add("%s: env %s: ConfigMap %s has no key %s", cwhat, e.Name, ref.Name, ref.Key)
				}
			}
			if ref := e.ValueFrom.SecretKeyRef; ref != nil {
				if s := secret(objs, d.Namespace, ref.Name); s == nil {
					add("%s: env %s: Secret %s is not in the render", cwhat, e.Name, ref.Name)
				} else if _, ok := secretData(s)[ref.Key]; !ok {
					add("%s: env %s: Secret %s has no key %s", cwhat, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
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
	auth := config.AuthConfig{
		JWKSFile: env[svc.Prefix+"_AUTH_JWKS_FILE"], JWKSURL: env[svc.Prefix+"_AUTH_JWKS_URL"],
		Issuer: env[svc.Prefix+"_AUTH_ISSUER"], Audience: env[svc.Prefix+"_AUTH_AUDIENCE"],
	}
	if err := auth.Check(svc.Prefix); err != nil {
		add("%s: %v", what, err)
	}
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

func containerHasPort(d *appsv1.Deployment, port intstr.IntOrString) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return true
			}
		}
	}
	return false
}

func selected(objs *Objects, ns string, sel labels.Selector) *appsv1.Deployment {
	var hit *appsv1.Deployment
	for _, d := range objs.Deployments {
		if d.Namespace == ns && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			if hit != nil {
				return nil
			}
			hit = d
		}
	}
	return hit
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

// LooksSecret says whether a variable carries credentials (exported for
// tools/internal/composecheck, which applies the same rule to compose files).
func LooksSecret(key string) bool { return looksSecret(key) }

// Setting is a service's variable <Prefix>_<name> from env, else its
// envDefault in the Config (exported for tools/internal/composecheck).
func Setting(svc Service, env map[string]string, name string) (string, error) {
	return setting(svc, env, name)
}
