# sagasuite — every target a newcomer or CI needs. `make test` installs, starts and
# tests everything on a fresh machine; downloads and server data are kept in
# $(SAGASUITE_HOME) so repeated runs (and fresh clones on the same machine) are fast.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export SAGASUITE_HOME ?= $(HOME)/.cache/sagasuite
BIN := $(SAGASUITE_HOME)/bin
export PATH := $(BIN):$(PATH)

# Every Go module of the workspace (go.work); build, vet and test reach each one.
MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')
PKGS := $(addsuffix /...,$(MODULES))

include deploy/local/infra.mk
include proto/proto.mk
include k8s/k8s.mk
include web/web.mk

.PHONY: help build vet fmt-check test test-go run

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## compile every module
	go build $(PKGS)

vet: ## go vet every module
	go vet $(PKGS)

fmt-check: ## fail when gofmt would change a file
	@out=$$(gofmt -l $(MODULES) | grep -v '\.pb\.go$$' || true); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: proto-tools proto-include infra-install k8s-tools ## everything: lint, vet, Kubernetes manifests (k8s-validate), unit and integration tests against the real local stack
	$(MAKE) --no-print-directory proto-lint fmt-check vet k8s-validate k8s-verify
	deploy/local/with-infra.sh $(MAKE) --no-print-directory test-go

test-go: ## go test every module (expects the stack from infra-up)
	go test -count=1 -timeout 20m $(PKGS)

run: ## the zero-setup embedded stack: all five services in one process on in-process Kafka, MySQL, MongoDB; prints tokens and grpcurl lines (DEV_FLAGS='--kafka 127.0.0.1:19092 …' for external servers)
	@mkdir -p $(BIN) && go build -o $(BIN)/sagactl ./tools/cmd/sagactl
	exec $(BIN)/sagactl dev $(DEV_FLAGS)

.PHONY: prometheus
prometheus: ## Prometheus on 127.0.0.1:9090 scraping the dev stack's ops ports (8081–8085) with deploy/prometheus's rules; data in $(SAGASUITE_HOME)/prometheus
	@mkdir -p $(SAGASUITE_HOME)/prometheus
	exec prometheus --config.file=deploy/prometheus/prometheus.yml --web.listen-address=127.0.0.1:9090 --storage.tsdb.path=$(SAGASUITE_HOME)/prometheus

.PHONY: demo
demo: ## start the dev stack, take every saga path, print the timelines and the audit, end with one JSON line (DEMO_FLAGS='--order host:port …' for a running suite instead)
	@go run ./tools/cmd/sagactl demo $(if $(DEMO_FLAGS),$(DEMO_FLAGS),--dev)

# Container images without a container engine (tools/cmd/imagebuild, go-containerregistry).
# Per checkout (.build/ is ignored by git), so worktrees sharing $(SAGASUITE_HOME) do not
# overwrite each other's layouts. The tag is never `latest`: git describe names the commit.
IMAGES_DIR ?= .build/images/oci
IMAGE_TAG ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: images
images: ## OCI images sagasuite/<service>:$(IMAGE_TAG) of the five services and the console into the OCI layout $(IMAGES_DIR), no Docker needed (README "Container images")
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) \
	  go run ./tools/cmd/imagebuild -out $(IMAGES_DIR) -tag $(IMAGE_TAG) \
	  -revision $$(git rev-parse HEAD 2>/dev/null || echo unknown)
