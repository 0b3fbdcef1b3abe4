// Package verify installs CustomResourceDefinitions into a real kube-apiserver and
// server-side-applies rendered manifests with dry-run, collecting every rejection.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// FieldManager is the server-side-apply manager name every dry-run uses.
const FieldManager = "sagasuite-k8s-verify"

// Object is one document of a manifest file, with where it came from.
type Object struct {
	File  string
	Index int // 0-based document index in File
	Obj   *unstructured.Unstructured
}

// Describe names the object as "Kind namespace/name" for reports.
func (o Object) Describe() string {
	name := o.Obj.GetName()
	if ns := o.Obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return o.Obj.GetKind() + " " + name
}

// Rejection is one object the server refused.
type Rejection struct {
	File, Kind, Name string
	Message          string
}

func (r Rejection) String() string {
	return fmt.Sprintf("%s: %s %s: %s", filepath.Base(r.File), r.Kind, r.Name, r.Message)
}

// ReadObjects splits a multi-document YAML (or JSON) file into objects, skipping
// empty documents. A document without apiVersion/kind is an error.
func ReadObjects(path string) ([]Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodeObjects(path, data)
}

// DecodeObjects is ReadObjects on bytes already read; name is used in errors and reports.
func DecodeObjects(name string, data []byte) ([]Object, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objects []Object
	for index := 0; ; index++ {
		var raw map[string]any
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, fmt.Errorf("%s: document %d: %w", name, index+1, err)
		}
		if len(raw) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: raw}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
			return nil, fmt.Errorf("%s: document %d: no apiVersion or kind", name, index+1)
		}
		objects = append(objects, Object{File: name, Index: index, Obj: obj})
	}
}

// CRDFiles lists every *.yaml and *.yml file under dir, sorted. An absent dir
// yields none: the platform CRDs are optional until k8s/platform exists.
func CRDFiles(dir string) ([]string, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// InstallCRDs creates every CustomResourceDefinition in files (other kinds in them
// are an error: the directory is meant for CRDs only) and waits, bounded by
// timeout, until each is Established.
func InstallCRDs(ctx context.Context, cfg *rest.Config, files []string, timeout time.Duration) ([]string, error) {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, file := range files {
		objects, err := ReadObjects(file)
		if err != nil {
			return nil, err
		}
		for _, o := range objects {
			if o.Obj.GetKind() != "CustomResourceDefinition" {
				return nil, fmt.Errorf("%s: document %d is a %s, not a CustomResourceDefinition", file, o.Index+1, o.Obj.GetKind())
			}
			var crd apiextensionsv1.CustomResourceDefinition
			data, err := o.Obj.MarshalJSON()
			if err != nil {
				return nil, err
			}
			if err := yaml.UnmarshalStrict(data, &crd); err != nil {
				return nil, fmt.Errorf("%s: CRD %s: %w", file, o.Obj.GetName(), err)
			}
			if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
				return nil, fmt.Errorf("%s: CRD %s rejected: %w", file, crd.Name, err)
			}
			names = append(names, crd.Name)
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse {
					return false, fmt.Errorf("names not accepted: %s", cond.Message)
				}
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return nil, fmt.Errorf("CRD %s not Established within %s: %w", name, timeout, err)
		}
	}
	return names, nil
}

// Applier server-side-applies objects with dry-run against one apiserver.
type Applier struct {
	dynamic dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	// created holds the namespaces already created for real.
	created map[string]bool
}

// NewApplier builds the clients. Create it after installing CRDs, or call Reset.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{
		dynamic: dyn,
		mapper:  restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)),
		created: map[string]bool{},
	}, nil
}

// Reset forgets cached discovery (after new CRDs are installed).
func (a *Applier) Reset() { a.mapper.Reset() }

// EnsureNamespaces creates, for real, every Namespace object among objects and
// every namespace an object names: a dry-run Namespace does not exist for the
// dry-run objects inside it. It returns the namespaces objects name without
// declaring them (created anyway so their objects can be checked).
func (a *Applier) EnsureNamespaces(ctx context.Context, objects []Object) (undeclared []string, err error) {
	declared := map[string]bool{}
	for _, o := range objects {
		if o.Obj.GetKind() == "Namespace" && o.Obj.GroupVersionKind().Group == "" {
			declared[o.Obj.GetName()] = true
		}
	}
	wanted := map[string]bool{}
	for name := range declared {
		wanted[name] = true
	}
	for _, o := range objects {
		if ns := o.Obj.GetNamespace(); ns != "" {
			wanted[ns] = true
		}
	}
	var names []string
	for name := range wanted {
		names = append(names, name)
	}
	sort.Strings(names)
	nsResource := a.dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	for _, name := range names {
		if !declared[name] {
			undeclared = append(undeclared, name)
		}
		if a.created[name] || name == "default" {
			continue
		}
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName(name)
		if _, err := nsResource.Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return undeclared, fmt.Errorf("create namespace %s: %w", name, err)
		}
		a.created[name] = true
	}
	return undeclared, nil
}

// DryRunApply server-side-applies one object with dry-run and strict field
// validation. It returns the server's (or the mapping's) error, nil if accepted.
func (a *Applier) DryRunApply(ctx context.Context, o Object) error {
	gvk := o.Obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("the server has no resource for %s (is its CRD under k8s/platform/crds?)", gvk)
		}
		return fmt.Errorf("map %s: %w", gvk, err)
	}
	var resource dynamic.ResourceInterface = a.dynamic.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := o.Obj.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault // what kubectl apply would use without -n
		}
		resource = a.dynamic.Resource(mapping.Resource).Namespace(ns)
	}
	body, err := o.Obj.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	force := true
	_, err = resource.Patch(ctx, o.Obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		DryRun:          []string{metav1.DryRunAll},
		FieldManager:    FieldManager,
		Force:           &force,
		FieldValidation: "Strict",
	})
	return err
}

// FileResult is the outcome for one rendered file.
type FileResult struct {
	File        string
	Objects     int
	Undeclared  []string // namespaces named by objects but not declared in the file
	Rejections  []Rejection
	ReadFailure error // the file could not be read or decoded
}

// VerifyFile reads path, creates its namespaces, and dry-run-applies every object.
func (a *Applier) VerifyFile(ctx context.Context, path string) FileResult {
	result := FileResult{File: path}
	objects, err := ReadObjects(path)
	if err != nil {
		result.ReadFailure = err
		return result
	}
	result.Objects = len(objects)
	undeclared, err := a.EnsureNamespaces(ctx, objects)
	result.Undeclared = undeclared
	if err != nil {
		result.ReadFailure = err
		return result
	}
	for _, o := range objects {
		if err := a.DryRunApply(ctx, o); err != nil {
			name := o.Obj.GetName()
			if ns := o.Obj.GetNamespace(); ns != "" {
				name = ns + "/" + name
			}
			result.Rejections = append(result.Rejections, Rejection{File: path, Kind: o.Obj.GetKind(), Name: name, Message: err.Error()})
		}
	}
	return result
}
