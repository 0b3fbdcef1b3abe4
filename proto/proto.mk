# proto/proto.mk — the contracts' tooling, included by the root Makefile.
#
# Everything is pinned and installed per machine under $(SAGASUITE_HOME), so a fresh
# machine (CI) needs only the Go toolchain, Maven and unzip:
#   make proto-tools     buf, protoc-gen-go, protoc-gen-go-grpc into $(BIN) (go install, pinned)
#   make proto-include   protovalidate's validate.proto from Maven Central (import-only for buf)
#   make proto           regenerate proto/gen/go (committed) and tidy its go.mod
#   make proto-lint      buf lint + buf format check
#   make proto-breaking  buf breaking (FILE rules) against the main branch (PROTO_AGAINST_REF)
#
# Tools live in $(BIN)/.versions/<name>-<version>; $(BIN)/<name> is a symlink to the pinned
# one. A version bump here therefore installs the new binary once and repoints the link;
# repeated runs only stat files and cost nothing.

SAGASUITE_HOME ?= $(HOME)/.cache/sagasuite
BIN ?= $(SAGASUITE_HOME)/bin

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
PROTOVALIDATE_VERSION := 1.3.0
# Pinned rather than whatever Maven binds `dependency:` to (2.8 for Maven 3.8).
PROTO_MVN_DEPENDENCY_PLUGIN := org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# Repository root, whatever directory make was started from.
PROTO_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
PROTO_TOOL_DIR := $(BIN)/.versions
# validate.proto is unpacked once per machine; buf.yaml names the fixed, git-ignored
# checkout path .build/proto-include, which proto-include points at that directory.
PROTO_INCLUDE_HOME := $(SAGASUITE_HOME)/include/protovalidate-$(PROTOVALIDATE_VERSION)
PROTO_INCLUDE_LINK := $(PROTO_ROOT)/.build/proto-include
PROTO_GEN_GO := $(PROTO_ROOT)/proto/gen/go
# proto-breaking compares the working tree with this git ref. It must exist in the
# clone: CI either fetches it (git fetch origin main:main) or passes
# PROTO_AGAINST_REF=origin/main.
PROTO_AGAINST_REF ?= main

# proto-go-install(name, package, version): build one pinned tool into a versioned file.
# GOWORK=off: the tool's own go.mod decides its dependencies, never our workspace.
define proto-go-install
$(PROTO_TOOL_DIR)/$(1)-$(3):
	@mkdir -p $(PROTO_TOOL_DIR)
	@echo "proto-tools: go install $(2)@$(3)"
	@tmp=$$$$(mktemp -d $(PROTO_TOOL_DIR)/.install-XXXXXX) && \
	  trap 'rm -rf "$$$$tmp"' EXIT && \
	  GOWORK=off GOBIN="$$$$tmp" go install $(2)@$(3) && \
	  mv "$$$$tmp/$(1)" $$@
endef

$(eval $(call proto-go-install,buf,github.com/bufbuild/buf/cmd/buf,$(BUF_VERSION)))
$(eval $(call proto-go-install,protoc-gen-go,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION)))
$(eval $(call proto-go-install,protoc-gen-go-grpc,google.golang.org/grpc/cmd/protoc-gen-go-grpc,$(PROTOC_GEN_GO_GRPC_VERSION)))

PROTO_TOOLS := buf-$(BUF_VERSION) protoc-gen-go-$(PROTOC_GEN_GO_VERSION) protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: proto-tools proto-include proto proto-lint proto-breaking

proto-tools: $(addprefix $(PROTO_TOOL_DIR)/,$(PROTO_TOOLS)) ## install pinned buf, protoc-gen-go, protoc-gen-go-grpc (go install) into SAGASUITE_HOME/bin
	@for versioned in $(PROTO_TOOLS); do \
	  name=$${versioned%-v*}; \
	  [ "$$(readlink $(BIN)/$$name 2>/dev/null)" = ".versions/$$versioned" ] || ln -sfn ".versions/$$versioned" $(BIN)/$$name; \
	done

$(PROTO_INCLUDE_HOME)/buf/validate/validate.proto:
	@echo "proto-include: build.buf:protovalidate:$(PROTOVALIDATE_VERSION) from Maven Central"
	@mkdir -p $(SAGASUITE_HOME)/include
	@tmp=$$(mktemp -d $(SAGASUITE_HOME)/include/.fetch-XXXXXX) && \
	  trap 'rm -rf "$$tmp"' EXIT && \
	  { out=$$(mvn -q -B -Dstyle.color=never $(PROTO_MVN_DEPENDENCY_PLUGIN):copy -Dartifact=build.buf:protovalidate:$(PROTOVALIDATE_VERSION):jar \
	      -DoutputDirectory="$$tmp/jar" 2>&1) || { echo "$$out" >&2; exit 1; }; } && \
	  unzip -q "$$tmp/jar/protovalidate-$(PROTOVALIDATE_VERSION).jar" buf/validate/validate.proto -d "$$tmp/include" && \
	  rm -rf $(PROTO_INCLUDE_HOME) && mv "$$tmp/include" $(PROTO_INCLUDE_HOME)

proto-include: $(PROTO_INCLUDE_HOME)/buf/validate/validate.proto ## fetch protovalidate's validate.proto (Maven Central) as buf's import-only path
	@mkdir -p $(dir $(PROTO_INCLUDE_LINK))
	@[ "$$(readlink $(PROTO_INCLUDE_LINK) 2>/dev/null)" = "$(PROTO_INCLUDE_HOME)" ] || ln -sfn $(PROTO_INCLUDE_HOME) $(PROTO_INCLUDE_LINK)

# No `clean: true` in buf.gen.yaml: its out dir also holds go.mod and the tests.
proto: proto-tools proto-include ## regenerate Go into proto/gen/go and tidy its go.mod
	rm -rf $(PROTO_GEN_GO)/sagasuite
	cd $(PROTO_ROOT) && buf generate
	cd $(PROTO_GEN_GO) && go mod tidy

proto-lint: proto-tools proto-include ## buf lint and buf format check of proto/
	cd $(PROTO_ROOT) && buf lint
	cd $(PROTO_ROOT) && buf format proto --diff --exit-code

# Why not `buf breaking --against '.git#branch=main'`: buf builds that input from
# git objects only, where the git-ignored .build/proto-include is absent ("Module
# .build/proto-include had no .proto files"). So the ref's buf.yaml and proto/
# are exported to a temp dir, given the same include link, and used as the
# against input. A ref without buf.yaml (before the contracts existed) passes.
proto-breaking: proto-tools proto-include ## buf breaking (FILE rules) against git ref PROTO_AGAINST_REF (default main; CI: origin/main)
	@cd $(PROTO_ROOT) && \
	if ! git rev-parse --verify --quiet '$(PROTO_AGAINST_REF)^{commit}' >/dev/null; then \
	  echo "proto-breaking: git ref '$(PROTO_AGAINST_REF)' not found; run 'git fetch origin main:main' or set PROTO_AGAINST_REF=origin/main" >&2; \
	  exit 1; \
	fi; \
	if ! git cat-file -e '$(PROTO_AGAINST_REF):buf.yaml' 2>/dev/null; then \
	  echo "proto-breaking: $(PROTO_AGAINST_REF) has no buf.yaml; nothing to compare"; \
	  exit 0; \
	fi; \
	against=$$(mktemp -d) && trap 'rm -rf "$$against"' EXIT && \
	git archive '$(PROTO_AGAINST_REF)' buf.yaml proto ':(exclude)proto/gen' | tar -x -C "$$against" && \
	mkdir -p "$$against/.build" && ln -s $(PROTO_INCLUDE_HOME) "$$against/.build/proto-include" && \
	echo "buf breaking --against $(PROTO_AGAINST_REF)" && \
	buf breaking --against "$$against"
