# k8s/k8s.mk — the Kubernetes manifests' tooling, included by the root Makefile.
#
# Pinned and installed per machine under $(SAGASUITE_HOME) like proto.mk's tools
# (go install into $(BIN)/.versions/<name>-<version>, $(BIN)/<name> a symlink):
#   make k8s-tools     kustomize, kubeconform, kube-score, and the Kubernetes JSON schemas
#   make k8s-validate  render every overlay and component, kubeconform -strict, kube-score,
#                      then the Go test over the rendered objects (k8s/manifests_test.go)
#                      and over k8s/platform's custom resources (tools/internal/platformcheck)

SAGASUITE_HOME ?= $(HOME)/.cache/sagasuite
BIN ?= $(SAGASUITE_HOME)/bin

KUSTOMIZE_VERSION := v5.8.0
KUBECONFORM_VERSION := v0.8.0
KUBE_SCORE_VERSION := v1.20.0
# The PyPI package kubernetes-validate ships the upstream JSON schemas (1.25–1.37).
KUBERNETES_VALIDATE_VERSION := 1.37.0
# The Kubernetes minor the manifests target (kubeconform's schema set).
K8S_TARGET_VERSION := 1.34.0

K8S_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
K8S_TOOL_DIR := $(BIN)/.versions
K8S_SCHEMA_HOME := $(SAGASUITE_HOME)/k8s-schemas/kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION)-v$(K8S_TARGET_VERSION)

# k8s-go-install(name, package, version): one pinned tool into a versioned file.
# GOWORK=off: the tool's own go.mod decides its dependencies, never our workspace.
define k8s-go-install
$(K8S_TOOL_DIR)/$(1)-$(3):
	@mkdir -p $(K8S_TOOL_DIR)
	@echo "k8s-tools: go install $(2)@$(3)"
	@tmp=$$$$(mktemp -d $(K8S_TOOL_DIR)/.install-XXXXXX) && \
	  trap 'rm -rf "$$$$tmp"' EXIT && \
	  GOWORK=off GOBIN="$$$$tmp" go install $(2)@$(3) && \
	  mv "$$$$tmp/$(1)" $$@
endef

$(eval $(call k8s-go-install,kustomize,sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION)))
$(eval $(call k8s-go-install,kubeconform,github.com/yannh/kubeconform/cmd/kubeconform,$(KUBECONFORM_VERSION)))
$(eval $(call k8s-go-install,kube-score,github.com/zegl/kube-score/cmd/kube-score,$(KUBE_SCORE_VERSION)))

K8S_TOOLS := kustomize-$(KUSTOMIZE_VERSION) kubeconform-$(KUBECONFORM_VERSION) kube-score-$(KUBE_SCORE_VERSION)

# The wheel's schemas reference shared definitions (`-local` files); k8s/schemas.py
# inlines them once into standalone files laid out as kubeconform's schema location wants.
$(K8S_SCHEMA_HOME)/.done: $(K8S_ROOT)/schemas.py
	@echo "k8s-tools: kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) (PyPI) → standalone JSON schemas"
	@mkdir -p $(SAGASUITE_HOME)/k8s-schemas
	@tmp=$$(mktemp -d $(SAGASUITE_HOME)/k8s-schemas/.fetch-XXXXXX) && \
	  trap 'rm -rf "$$tmp"' EXIT && \
	  python3 -m pip download -q --no-deps --only-binary=:all: -d "$$tmp/wheel" kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) && \
	  python3 $(K8S_ROOT)/schemas.py "$$tmp"/wheel/kubernetes_validate-*.whl "$$tmp/out" v$(K8S_TARGET_VERSION) && \
	  touch "$$tmp/out/.done" && rm -rf $(K8S_SCHEMA_HOME) && mv "$$tmp/out" $(K8S_SCHEMA_HOME)

.PHONY: k8s-tools k8s-render k8s-validate

k8s-tools: $(addprefix $(K8S_TOOL_DIR)/,$(K8S_TOOLS)) $(K8S_SCHEMA_HOME)/.done ## install pinned kustomize, kubeconform, kube-score and the Kubernetes JSON schemas into SAGASUITE_HOME
	@for versioned in $(K8S_TOOLS); do \
	  name=$${versioned%-v*}; \
	  [ "$$(readlink $(BIN)/$$name 2>/dev/null)" = ".versions/$$versioned" ] || ln -sfn ".versions/$$versioned" $(BIN)/$$name; \
	done

# What is rendered and checked: each overlay, the base alone, the base with each
# component alone, and the base with every component together (a component cannot be
# built without a base). Component builds are small kustomizations written under
# .build/k8s/render, pointing back at k8s/.
K8S_RENDER_DIR := $(K8S_ROOT)/../.build/k8s/render
K8S_OVERLAYS := $(notdir $(wildcard $(K8S_ROOT)/overlays/*))
K8S_COMPONENTS := $(notdir $(wildcard $(K8S_ROOT)/components/*))

# k8s/platform's custom resources are validated against the operators' CRDs kept in
# k8s/platform/crds, converted into strict kubeconform schemas
# (<group>/<kind>_<version>.json) by tools/internal/platformcheck.
K8S_CRD_SCHEMA_DIR := $(abspath $(K8S_ROOT)/../.build/k8s/crd-schemas)
K8S_CRDS := $(wildcard $(K8S_ROOT)/platform/crds/*/*.yaml)
$(K8S_CRD_SCHEMA_DIR)/.done: $(K8S_CRDS) $(wildcard $(K8S_ROOT)/../tools/internal/platformcheck/*.go)
	@rm -rf $(K8S_CRD_SCHEMA_DIR)
	@cd $(K8S_ROOT)/.. && go run ./tools/internal/platformcheck/cmd/crdschemas $(K8S_CRD_SCHEMA_DIR) $(K8S_CRDS)
	@touch $@

# kube-score checks left out, each for a reason:
#   container-image-pull-policy         wants Always; images are pinned by tag (and by
#                                       digest in CI's `kustomize edit set image`), so
#                                       IfNotPresent is right.
#   deployment-replicas                 the dev overlay and the base run one replica on
#                                       purpose (a laptop cluster).
# and, only for the partial renders (base alone, base + one component), the checks that
# need the other components: pod-networkpolicy, deployment-has-poddisruptionbudget, and
# container-image-tag (the tags live in components/images). The overlays and the base +
# all components render are scored with them.
K8S_SCORE_IGNORE := container-image-pull-policy deployment-replicas
K8S_SCORE_IGNORE_PARTIAL := pod-networkpolicy deployment-has-poddisruptionbudget container-image-tag

k8s-render: k8s-tools ## render every overlay, the base, the base + each component and + all components into .build/k8s/render/*.yaml
	@rm -rf $(K8S_RENDER_DIR) && mkdir -p $(K8S_RENDER_DIR)/build
	@for overlay in $(K8S_OVERLAYS); do \
	  $(BIN)/kustomize build $(K8S_ROOT)/overlays/$$overlay > $(K8S_RENDER_DIR)/overlay-$$overlay.yaml; done
	@$(BIN)/kustomize build $(K8S_ROOT)/base > $(K8S_RENDER_DIR)/base.yaml
	@$(BIN)/kustomize build $(K8S_ROOT)/platform > $(K8S_RENDER_DIR)/platform-data.yaml
	@for component in $(K8S_COMPONENTS) all; do \
	  dir=$(K8S_RENDER_DIR)/build/$$component; mkdir -p $$dir; \
	  root=$$(realpath --relative-to=$$dir $(K8S_ROOT)); \
	  { echo "apiVersion: kustomize.config.k8s.io/v1beta1"; echo "kind: Kustomization"; \
	    echo "resources: [$$root/base]"; echo "components:"; \
	    if [ $$component = all ]; then for c in $(K8S_COMPONENTS); do echo "  - $$root/components/$$c"; done; \
	    else echo "  - $$root/components/$$component"; fi; } > $$dir/kustomization.yaml; \
	  $(BIN)/kustomize build $$dir > $(K8S_RENDER_DIR)/component-$$component.yaml; done
	@echo "k8s-render: $$(ls $(K8S_RENDER_DIR)/*.yaml | xargs -n1 basename | tr '\n' ' ')"

k8s-validate: k8s-render $(K8S_CRD_SCHEMA_DIR)/.done ## kubeconform -strict (Kubernetes $(K8S_TARGET_VERSION) schemas) and kube-score over every render, then the Go checks (tools/internal/k8scheck)
	@$(BIN)/kubeconform -strict -summary -kubernetes-version $(K8S_TARGET_VERSION) \
	  -schema-location '$(K8S_SCHEMA_HOME)/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json' \
	  -schema-location '$(K8S_CRD_SCHEMA_DIR)/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json' \
	  $(K8S_RENDER_DIR)/*.yaml
	@for render in $(K8S_RENDER_DIR)/*.yaml; do \
	  ignore="$(K8S_SCORE_IGNORE)"; \
	  case $$(basename $$render) in overlay-*|component-all.yaml|platform-*) ;; *) ignore="$$ignore $(K8S_SCORE_IGNORE_PARTIAL)";; esac; \
	  out=$$($(BIN)/kube-score score --kubernetes-version v$(basename $(K8S_TARGET_VERSION)) --output-format ci \
	    $$(for t in $$ignore; do printf -- '--ignore-test %s ' $$t; done) $$render) || \
	    { echo "kube-score: $$(basename $$render):"; echo "$$out" | grep -v '^\[OK\]\|^\[SKIPPED\]'; exit 1; }; \
	done; echo "kube-score: $(words $(wildcard $(K8S_RENDER_DIR)/*.yaml)) renders clean (ignored: $(K8S_SCORE_IGNORE); partial renders also $(K8S_SCORE_IGNORE_PARTIAL))"
	@go test -count=1 ./tools/internal/k8scheck/ ./tools/internal/platformcheck/

# ---------------------------------------------------------------------------------------
# make k8s-verify — a real kube-apiserver's server-side dry-run of every render
# (tools/k8sverify, its own Go module outside go.work; see tools/k8sverify/README.md).
#   make k8s-verify-tools  build kube-apiserver (k8s.io/kubernetes, pinned in
#                          tools/k8sverify/go.mod) once into $(BIN)/.versions, and k8sverify
#                          (etcd embedded, client-go) into .build/k8sverify
#   make k8s-verify        its broken-variant tests, then every overlay-*, component-all and
#                          platform-* render applied with dry-run=All, strict field validation,
#                          after the CRDs under k8s/platform/crds/** are Established

# Must match tools/k8sverify/go.mod (the recipe checks): the binary's name carries it.
K8S_APISERVER_VERSION := v1.34.4
K8S_VERIFY_DIR := $(abspath $(K8S_ROOT)/../tools/k8sverify)
K8S_APISERVER_BIN := $(K8S_TOOL_DIR)/kube-apiserver-$(K8S_APISERVER_VERSION)
# Per checkout: k8sverify is this repo's code, rebuilt when its sources change.
K8S_VERIFY_BIN := $(abspath $(K8S_ROOT)/../.build/k8sverify/k8sverify)
K8S_VERIFY_SRC := $(shell find $(K8S_VERIFY_DIR) -name '*.go' ! -name '*_test.go' ! -path '*/cmd/kube-apiserver/*') \
  $(K8S_VERIFY_DIR)/go.mod $(K8S_VERIFY_DIR)/go.sum
K8S_PLATFORM_CRDS := $(K8S_ROOT)/platform/crds

# Cold: ~6 CPU-minutes (3-4 min wall here) and 2.1 GB while linking; then cached in $(BIN)/.versions.
# GOWORK=off: the module's own go.mod (k8s.io/kubernetes + staging replaces) decides.
$(K8S_APISERVER_BIN):
	@grep -Eq '^[[:space:]]*(require )?k8s\.io/kubernetes $(K8S_APISERVER_VERSION)$$' $(K8S_VERIFY_DIR)/go.mod || \
	  { echo "k8s-verify-tools: tools/k8sverify/go.mod does not pin k8s.io/kubernetes $(K8S_APISERVER_VERSION) (K8S_APISERVER_VERSION in k8s/k8s.mk)"; exit 1; }
	@mkdir -p $(K8S_TOOL_DIR) $(dir $@)
	@echo "k8s-verify-tools: go build kube-apiserver $(K8S_APISERVER_VERSION) (one-time: minutes, 2 GB while linking)"
	@tmp=$$(mktemp -d $(K8S_TOOL_DIR)/.install-XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && \
	  cd $(K8S_VERIFY_DIR) && GOWORK=off go build -trimpath \
	    -ldflags "-X k8s.io/component-base/version.gitVersion=$(K8S_APISERVER_VERSION)" \
	    -o "$$tmp/kube-apiserver" ./cmd/kube-apiserver && \
	  mv "$$tmp/kube-apiserver" $@

$(K8S_VERIFY_BIN): $(K8S_VERIFY_SRC)
	@mkdir -p $(dir $@)
	@cd $(K8S_VERIFY_DIR) && GOWORK=off go build -trimpath -o $@ .

.PHONY: k8s-verify-tools k8s-verify

k8s-verify-tools: $(K8S_APISERVER_BIN) $(K8S_VERIFY_BIN) ## build kube-apiserver $(K8S_APISERVER_VERSION) once into SAGASUITE_HOME and the k8sverify runner (etcd embedded)

k8s-verify: k8s-render k8s-verify-tools ## server-side dry-run of every overlay/component-all/platform render through a real kube-apiserver (with the operators' CRDs), after its broken-variant tests
	@cd $(K8S_VERIFY_DIR) && GOWORK=off go vet ./... && \
	  GOWORK=off K8SVERIFY_APISERVER=$(K8S_APISERVER_BIN) go test -count=1 -timeout 10m ./...
	@renders=$$(ls $(K8S_RENDER_DIR)/overlay-*.yaml $(K8S_RENDER_DIR)/component-all.yaml $(K8S_RENDER_DIR)/platform-*.yaml 2>/dev/null || true); \
	  [ -n "$$renders" ] || { echo "k8s-verify: no renders under $(K8S_RENDER_DIR)"; exit 1; }; \
	  $(K8S_VERIFY_BIN) -apiserver $(K8S_APISERVER_BIN) -crds $(K8S_PLATFORM_CRDS) $$renders
