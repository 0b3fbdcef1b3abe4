package platformcheck

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Object is one rendered object, decoded without a Go type (custom resources
// have none here): the fields the checks read, plus the whole document.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	Labels                            map[string]string
	Doc                               map[string]any
}

func (o Object) String() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name) }

// group is the API group of the object's apiVersion ("" for the core group).
func (o Object) group() string {
	if g, _, ok := strings.Cut(o.APIVersion, "/"); ok {
		return g
	}
	return ""
}

// Parse decodes a multi-document YAML render into objects. A document that is
// not an object with apiVersion, kind and metadata.name is an error.
func Parse(render []byte) ([]Object, error) {
	var objs []Object
	for i, doc := range bytes.Split(render, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		o := Object{Doc: m}
		o.APIVersion, _ = m["apiVersion"].(string)
		o.Kind, _ = m["kind"].(string)
		o.Name = str(m, "metadata", "name")
		o.Namespace = str(m, "metadata", "namespace")
		if labels, ok := get(m, "metadata", "labels").(map[string]any); ok {
			o.Labels = map[string]string{}
			for k, v := range labels {
				o.Labels[k], _ = v.(string)
			}
		}
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", i)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// get walks nested maps; nil when a step is missing or not a map.
func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func str(m map[string]any, path ...string) string {
	s, _ := get(m, path...).(string)
	return s
}

// integer reads a YAML number (decoded as float64) that must be whole.
func integer(m map[string]any, path ...string) (int, bool) {
	f, ok := get(m, path...).(float64)
	if !ok || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// Access is what one service does on Kafka, read from its code
// (CodeAccess): the topics it produces to, the topics its consumer group
// reads, and the group's id.
type Access struct {
	Produces, Reads []string
	Group           string
}

// Want is what the platform must provide for the services.
type Want struct {
	// Access per service (= KafkaUser name): its ACLs must be exactly these.
	Access map[string]Access
	// TopicPartitions: the partition count the producing service is
	// configured with (<SERVICE>_KAFKA_PARTITIONS), per Kafka topic name.
	TopicPartitions map[string]int
}

// DeadLetterTopic is libs/bus's dead-letter topic of a consumer group.
func DeadLetterTopic(group string) string { return group + ".dlq" }

// acl is one granted operation, normalised.
type acl struct{ resourceType, name, pattern, op string }

func (a acl) String() string {
	return fmt.Sprintf("%s %s %s:%s", a.op, a.resourceType, a.pattern, a.name)
}

// Check runs the cross-object checks over a platform render and returns every
// problem found.
func Check(objs []Object, want Want) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	byKind := map[string][]Object{}
	for _, o := range objs {
		byKind[o.group()+"/"+o.Kind] = append(byKind[o.group()+"/"+o.Kind], o)
	}
	names := func(kind, ns string, nameOf func(Object) string) map[string]Object {
		m := map[string]Object{}
		for _, o := range byKind[kind] {
			if o.Namespace == ns {
				m[nameOf(o)] = o
			}
		}
		return m
	}
	metaName := func(o Object) string { return o.Name }
	specName := func(o Object) string {
		if n := str(o.Doc, "spec", "name"); n != "" {
			return n
		}
		return o.Name
	}

	// Strimzi: every KafkaNodePool/KafkaTopic/KafkaUser names its Kafka by label.
	brokers := map[string]int{} // Kafka cluster (ns/name) → broker nodes
	for _, kind := range []string{"KafkaNodePool", "KafkaTopic", "KafkaUser"} {
		for _, o := range byKind["kafka.strimzi.io/"+kind] {
			cluster := o.Labels["strimzi.io/cluster"]
			if _, ok := names("kafka.strimzi.io/Kafka", o.Namespace, metaName)[cluster]; !ok {
				add("%s: label strimzi.io/cluster=%q names no Kafka in its namespace", o, cluster)
			}
			if kind == "KafkaNodePool" {
				roles, _ := get(o.Doc, "spec", "roles").([]any)
				replicas, _ := integer(o.Doc, "spec", "replicas")
				if slices.Contains(roles, any("broker")) {
					brokers[o.Namespace+"/"+cluster] += replicas
				}
			}
		}
	}

	// Topics by their Kafka name (spec.topicName, else metadata.name).
	topics := map[string]Object{}
	for _, o := range byKind["kafka.strimzi.io/KafkaTopic"] {
		name := str(o.Doc, "spec", "topicName")
		if name == "" {
			name = o.Name
		}
		if prev, ok := topics[name]; ok {
			add("%s: topic %q is also created by %s", o, name, prev)
		}
		topics[name] = o
		replicas, _ := integer(o.Doc, "spec", "replicas")
		if n := brokers[o.Namespace+"/"+o.Labels["strimzi.io/cluster"]]; replicas > n {
			add("%s: replicas %d, but its cluster has %d brokers", o, replicas, n)
		}
		if isr, ok := get(o.Doc, "spec", "config", "min.insync.replicas").(float64); ok && int(isr) >= replicas {
			add("%s: min.insync.replicas %d leaves no replica to lose (replicas %d): one broker down stops producers", o, int(isr), replicas)
		}
	}
	for _, name := range sortedKeys(want.TopicPartitions) {
		o, ok := topics[name]
		if !ok {
			add("topic %q: no KafkaTopic creates it", name)
			continue
		}
		if p, _ := integer(o.Doc, "spec", "partitions"); p != want.TopicPartitions[name] {
			add("%s: %d partitions, but the producing service is configured with %d (<SERVICE>_KAFKA_PARTITIONS)", o, p, want.TopicPartitions[name])
		}
	}

	// KafkaUser ACLs: every topic they name exists; per service, exactly the access its code needs.
	users := map[string]Object{}
	for _, o := range byKind["kafka.strimzi.io/KafkaUser"] {
		users[o.Name] = o
		granted := map[acl]bool{}
		acls, _ := get(o.Doc, "spec", "authorization", "acls").([]any)
		for i, a := range acls {
			m, _ := a.(map[string]any)
			if t := str(m, "type"); t != "" && t != "allow" {
				continue // deny rules only take away
			}
			res := acl{resourceType: str(m, "resource", "type"), name: str(m, "resource", "name"), pattern: str(m, "resource", "patternType")}
			if res.pattern == "" {
				res.pattern = "literal"
			}
			if res.resourceType == "topic" {
				switch {
				case res.name == "*" || res.name == "":
					add("%s: ACL %d grants every topic", o, i)
				case res.pattern == "prefix" && !anyPrefixed(topics, res.name):
					add("%s: ACL %d names topic prefix %q, but no KafkaTopic starts with it", o, i, res.name)
				case res.pattern == "literal":
					if _, ok := topics[res.name]; !ok {
						add("%s: ACL %d names topic %q, but no KafkaTopic creates it", o, i, res.name)
					}
				}
			}
			ops, _ := m["operations"].([]any)
			for _, op := range ops {
				s, _ := op.(string)
				res.op = s
				granted[res] = true
			}
		}
		access, ok := want.Access[o.Name]
		if !ok {
			continue // not a service (e.g. sagactl): only the references above are checked
		}
		expected := map[acl]bool{}
		grant := func(t, name string, ops ...string) {
			for _, op := range ops {
				expected[acl{resourceType: t, name: name, pattern: "literal", op: op}] = true
			}
		}
		for _, t := range access.Produces {
			grant("topic", t, "Write", "Describe")
		}
		for _, t := range access.Reads {
			grant("topic", t, "Read", "Describe")
		}
		if access.Group != "" {
			grant("group", access.Group, "Read")
			grant("topic", DeadLetterTopic(access.Group), "Write", "Describe")
		}
		for _, a := range sortedACLs(expected) {
			if !granted[a] {
				add("%s: lacks %s, which its code needs", o, a)
			}
		}
		for _, a := range sortedACLs(granted) {
			if !expected[a] {
				add("%s: grants %s, which its code does not use", o, a)
			}
		}
	}
	for _, svc := range sortedKeys(want.Access) {
		if _, ok := users[svc]; !ok {
			add("service %s: no KafkaUser", svc)
		}
	}

	// mariadb-operator: references to the MariaDB, and each Grant's user and database.
	for _, kind := range []string{"Database", "User", "Grant"} {
		for _, o := range byKind["k8s.mariadb.com/"+kind] {
			ref := str(o.Doc, "spec", "mariaDbRef", "name")
			ns := cmpOr(str(o.Doc, "spec", "mariaDbRef", "namespace"), o.Namespace)
			if _, ok := names("k8s.mariadb.com/MariaDB", ns, metaName)[ref]; !ok {
				add("%s: mariaDbRef %q names no MariaDB in namespace %s", o, ref, ns)
			}
		}
	}
	for _, o := range byKind["k8s.mariadb.com/Grant"] {
		db := str(o.Doc, "spec", "database")
		if db == "*" || db == "" {
			add("%s: grants on every database", o)
		} else if _, ok := names("k8s.mariadb.com/Database", o.Namespace, specName)[db]; !ok {
			add("%s: database %q is defined by no Database", o, db)
		}
		user, ok := names("k8s.mariadb.com/User", o.Namespace, specName)[str(o.Doc, "spec", "username")]
		if !ok {
			add("%s: username %q is defined by no User", o, str(o.Doc, "spec", "username"))
		} else if h, uh := cmpOr(str(o.Doc, "spec", "host"), "%"), cmpOr(str(user.Doc, "spec", "host"), "%"); h != uh {
			add("%s: host %q, but %s is for host %q", o, h, user, uh)
		}
	}

	// FerretDB: its PostgreSQL URL names a CloudNativePG cluster's read-write Service.
	for _, o := range byKind["apps/Deployment"] {
		containers, _ := get(o.Doc, "spec", "template", "spec", "containers").([]any)
		for _, c := range containers {
			container, _ := c.(map[string]any)
			env, _ := get(container, "env").([]any)
			for _, e := range env {
				m, _ := e.(map[string]any)
				if str(m, "name") != "FERRETDB_POSTGRESQL_URL" {
					continue
				}
				u, err := url.Parse(str(m, "value"))
				if err != nil || u.Hostname() == "" {
					add("%s: FERRETDB_POSTGRESQL_URL %q is not a URL with a host", o, str(m, "value"))
					continue
				}
				if u.User != nil {
					add("%s: FERRETDB_POSTGRESQL_URL carries credentials; each client's own are used", o)
				}
				host := strings.TrimSuffix(strings.Split(u.Hostname(), ".")[0], "-rw")
				if !strings.HasSuffix(strings.Split(u.Hostname(), ".")[0], "-rw") {
					add("%s: FERRETDB_POSTGRESQL_URL host %q is not a CloudNativePG read-write Service (<cluster>-rw)", o, u.Hostname())
				} else if _, ok := names("postgresql.cnpg.io/Cluster", o.Namespace, metaName)[host]; !ok {
					add("%s: FERRETDB_POSTGRESQL_URL host %q names no CloudNativePG Cluster %q", o, u.Hostname(), host)
				}
			}
		}
	}
	return problems
}

func anyPrefixed(topics map[string]Object, prefix string) bool {
	for name := range topics {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedACLs(m map[acl]bool) []acl {
	out := make([]acl, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
