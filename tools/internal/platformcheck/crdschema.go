// Package platformcheck checks k8s/platform, the operators' custom resources
// the data platform is made of: it turns the operators' CRDs (kept in
// k8s/platform/crds with their licences) into JSON schemas kubeconform
// validates the custom resources against, strictly, and checks across objects
// what no schema can see — a KafkaUser's ACL naming a topic no KafkaTopic
// creates, a Grant on a database no Database defines, a reference to a
// cluster that is not there, a topic whose partitions differ from what the
// services are configured with.
package platformcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// CRDSchema is the JSON schema of one served version of a CRD's kind, named
// as kubeconform's schema location {{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json
// wants it (ResourceKind is the kind in lower case).
type CRDSchema struct {
	Group, Kind, Version string
	Schema               map[string]any
}

// Path is the schema's file path under a schema directory.
func (s CRDSchema) Path() string {
	return filepath.Join(s.Group, strings.ToLower(s.Kind)+"_"+s.Version+".json")
}

// crd is the part of an apiextensions.k8s.io/v1 CustomResourceDefinition read here.
type crd struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind   string `json:"kind"`
			Plural string `json:"plural"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema *struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// ParseCRD reads one CRD file (a single YAML document) and returns the strict
// JSON schema of each served version. Anything that is not a complete
// apiextensions.k8s.io/v1 CRD is an error.
func ParseCRD(data []byte) ([]CRDSchema, error) {
	var c crd
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	switch {
	case c.APIVersion != "apiextensions.k8s.io/v1" || c.Kind != "CustomResourceDefinition":
		return nil, fmt.Errorf("not an apiextensions.k8s.io/v1 CustomResourceDefinition (apiVersion %q, kind %q)", c.APIVersion, c.Kind)
	case c.Spec.Group == "" || c.Spec.Names.Kind == "" || c.Spec.Names.Plural == "":
		return nil, fmt.Errorf("CRD %q: spec.group, spec.names.kind and spec.names.plural are required", c.Metadata.Name)
	case c.Metadata.Name != c.Spec.Names.Plural+"."+c.Spec.Group:
		return nil, fmt.Errorf("CRD %q: name must be <plural>.<group> = %s.%s", c.Metadata.Name, c.Spec.Names.Plural, c.Spec.Group)
	case c.Spec.Scope != "Namespaced" && c.Spec.Scope != "Cluster":
		return nil, fmt.Errorf("CRD %q: scope %q", c.Metadata.Name, c.Spec.Scope)
	}
	var out []CRDSchema
	for _, v := range c.Spec.Versions {
		if !v.Served {
			continue
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("CRD %q version %q: no openAPIV3Schema", c.Metadata.Name, v.Name)
		}
		schema, ok := strict(v.Schema.OpenAPIV3Schema).(map[string]any)
		if !ok {
			return nil, fmt.Errorf("CRD %q version %q: openAPIV3Schema is not an object", c.Metadata.Name, v.Name)
		}
		schema["$schema"] = "http://json-schema.org/draft-07/schema#"
		out = append(out, CRDSchema{Group: c.Spec.Group, Kind: c.Spec.Names.Kind, Version: v.Name, Schema: schema})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("CRD %q serves no version", c.Metadata.Name)
	}
	return out, nil
}

// strict rewrites an OpenAPI v3 structural schema as the JSON schema the API
// server effectively enforces: an object with declared properties rejects any
// other field (the apiserver prunes or, with strict field validation, rejects
// it) unless it preserves unknown fields; nullable admits null;
// int-or-string admits both; an embedded resource admits apiVersion, kind and
// metadata. Vendor extensions are left in place: JSON schema ignores them.
func strict(node any) any {
	switch n := node.(type) {
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = strict(v)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(n)+1)
		for k, v := range n {
			switch k {
			case "default", "enum", "example", "x-kubernetes-validations":
				// Values, not schemas: copied as they are.
				out[k] = v
				continue
			case "properties", "patternProperties", "definitions":
				// Maps of names to schemas: the names are data, not keywords.
				if props, ok := v.(map[string]any); ok {
					m := make(map[string]any, len(props))
					for name, s := range props {
						m[name] = strict(s)
					}
					out[k] = m
					continue
				}
			}
			out[k] = strict(v)
		}
		if out["x-kubernetes-int-or-string"] == true {
			delete(out, "type")
			if _, ok := out["anyOf"]; !ok {
				out["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
			}
		}
		if out["x-kubernetes-embedded-resource"] == true {
			props, _ := out["properties"].(map[string]any)
			if props == nil {
				props = map[string]any{}
			}
			for _, f := range []string{"apiVersion", "kind"} {
				if _, ok := props[f]; !ok {
					props[f] = map[string]any{"type": "string"}
				}
			}
			if _, ok := props["metadata"]; !ok {
				props["metadata"] = map[string]any{"type": "object"}
			}
			out["properties"] = props
		}
		if out["nullable"] == true {
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		_, hasProps := out["properties"]
		_, hasAdditional := out["additionalProperties"]
		if hasProps && !hasAdditional && out["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		return out
	default:
		return node
	}
}

// WriteSchemas converts every CRD file given and writes its schemas under dir
// (dir/<group>/<kind>_<version>.json). It returns how many it wrote; two CRD
// files defining the same group, kind and version are an error.
func WriteSchemas(dir string, crdFiles []string) (int, error) {
	written := map[string]string{}
	var errs []error
	for _, file := range crdFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		schemas, err := ParseCRD(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		for _, s := range schemas {
			path := filepath.Join(dir, s.Path())
			if prev, ok := written[path]; ok {
				errs = append(errs, fmt.Errorf("%s: %s/%s %s is defined by %s too", file, s.Group, s.Kind, s.Version, prev))
				continue
			}
			body, err := json.Marshal(s.Schema)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", file, err))
				continue
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := os.WriteFile(path, body, 0o644); err != nil {
				errs = append(errs, err)
				continue
			}
			written[path] = file
		}
	}
	return len(written), errors.Join(errs...)
}
