# otafleet Makefile. Tools are pinned here, built from the Go module proxy
# into a cache outside the checkout, and linked into bin/.

IMG ?= otafleet/manager:dev
CACHE ?= $(HOME)/.cache/otafleet
LOCALBIN ?= $(CURDIR)/bin
TOOLS_CACHE := $(CACHE)/tools

CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
KUSTOMIZE_VERSION ?= v5.7.1
# promtool's version is the one of github.com/prometheus/prometheus in
# go.mod, whose PromQL parser checks the dashboard in test/monitoring.
PROMTOOL_VERSION ?= v0.315.1
# helm lints and renders charts/otafleet in test-chart.
HELM_VERSION ?= v3.22.0

CONTROLLER_GEN := $(LOCALBIN)/controller-gen
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint
PROMTOOL := $(LOCALBIN)/promtool
HELM := $(LOCALBIN)/helm

# Tests of separate packages run in parallel; each starts its own servers.
GOTEST_FLAGS ?= -race -timeout 30m
BENCH_FLAGS ?=

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." paths="./internal/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: generate manifests fmt ## Regenerate everything and fail if the tree changes.
	hack/sync-chart.sh
	@if [ -n "$$(git status --porcelain -- api config controllers internal cmd charts)" ]; then \
		git status --porcelain; git --no-pager diff --stat; \
		echo "verify: generated files are out of date: run 'make generate manifests fmt' and hack/sync-chart.sh, and commit"; exit 1; fi

.PHONY: test-env
test-env: ## Build (once) the real servers tests use: kube-apiserver, etcd, MinIO; install Mosquitto and Chromium.
	hack/setup-test-env.sh all >/dev/null
	hack/ensure-chromium.sh >/dev/null

.PHONY: test
test: test-env vet test-rules test-chart ## Run all tests against real servers (envtest, MinIO, MQTT brokers, Chromium).
	eval "$$(hack/setup-test-env.sh all)" && eval "$$(hack/ensure-chromium.sh)" && \
		go test $(GOTEST_FLAGS) $$(go list ./... | grep -v '/test/chart$$')

.PHONY: test-rules
test-rules: promtool ## Check the Prometheus alert rules and run their unit tests with promtool.
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	sed -n '/^spec:$$/,$$p' config/prometheus/rules.yaml | tail -n +2 | sed 's/^  //' > "$$tmp/otafleet.rules.yaml"; \
	cp config/prometheus/rules_test.yaml "$$tmp/"; \
	$(PROMTOOL) check rules "$$tmp/otafleet.rules.yaml"; \
	$(PROMTOOL) test rules "$$tmp/rules_test.yaml"

.PHONY: test-chart
test-chart: helm ## Lint and render the Helm chart, then compare it with config/ and dry-run apply it to a real API server (test/chart).
	$(HELM) lint --strict charts/otafleet
	$(HELM) template otafleet charts/otafleet --namespace otafleet-system --include-crds >/dev/null
	eval "$$(hack/setup-test-env.sh all)" && HELM_BIN=$(HELM) go test $(GOTEST_FLAGS) ./test/chart/

.PHONY: test-e2e
test-e2e: test-env ## Run the end-to-end tests only.
	eval "$$(hack/setup-test-env.sh all)" && go test $(GOTEST_FLAGS) ./test/...

BENCH_DEVICES ?= 10000
# BENCH_BROKER=mosquitto runs the rollout on Mosquitto instead of the
# embedded Mochi broker. From the environment: BENCH_FLOORS=off skips the
# floors, BENCH_CPUPROFILE=/tmp/cpu writes CPU profiles (the simulator's too),
# BENCH_DEVICESIM=/path/devicesim runs that simulator binary instead of this
# tree's (to compare two builds back to back; see bench/results.md).
BENCH_BROKER ?=

.PHONY: bench
bench: test-env ## Run the hot-path micro-benchmarks, the simulator alone, then fleet rollouts of BENCH_DEVICES devices (BENCH_RUNS: instant,downloads,separate), then the multi-replica variant; prints figures.
	eval "$$(hack/setup-test-env.sh all)" && go test -run '^$$' -bench . -benchmem $(BENCH_FLAGS) ./internal/...
	eval "$$(hack/setup-test-env.sh all)" && BENCH_DEVICES=$(BENCH_DEVICES) BENCH_BROKER=$(BENCH_BROKER) BENCH_RUNS=$(BENCH_RUNS) go test -run '^$$' -bench . -benchtime=1x -timeout 30m ./test/bench/
	$(MAKE) bench-replicas

# The multi-replica variant (docs/replicas.md): three manager processes with
# product Leases, BENCH_REPLICA_PRODUCTS products of BENCH_REPLICA_DEVICES
# devices each, BENCH_REPLICA_KILLS SIGKILLs of the busiest replica, a
# replica added and one stopped gracefully; every record checked exactly.
BENCH_REPLICA_PRODUCTS ?= 6
BENCH_REPLICA_DEVICES ?= 1000
BENCH_REPLICA_KILLS ?= 4

.PHONY: bench-replicas
bench-replicas: test-env ## Three replicas share products while the busiest is SIGKILLed; prints takeover p50/p99 and each replica's products, devices, CPU and heap.
	eval "$$(hack/setup-test-env.sh all)" && SHARDS_PRODUCTS=$(BENCH_REPLICA_PRODUCTS) SHARDS_DEVICES=$(BENCH_REPLICA_DEVICES) \
		SHARDS_KILLS=$(BENCH_REPLICA_KILLS) go test -v -count=1 -run '^TestReplicasShareProducts$$' -timeout 40m ./test/chaos/ | \
		grep -E 'replicas test|takeover|handover|products by replica|replica  |^ +[0-9]+ +[0-9]|mismatch|PASS|FAIL|ok'

# The chaos harness (test/chaos, docs/chaos.md): CHAOS_KILLS SIGKILLs of the
# manager during rollouts to CHAOS_DEVICES devices; CHAOS_SEED replays a run
# (empty: a new seed, printed); CHAOS_WAVES the waves' cumulative percentages
# (10,50,100); CHAOS_DIR keeps the logs. CHAOS_FAULTS injects other faults
# (broker, broker-persist, minio, minio-upload, apiserver, replicas), each
# CHAOS_FAULT_REPEAT (1) times, with no kills unless CHAOS_KILLS says so;
# unset, every fault but broker comes once among the kills (100).
# CHAOS_REPLICAS runs more managers; CHAOS_LEASE sets their lease duration,
# renew deadline and retry period (15s,10s,2s). `make test` runs a short
# version (3 kills and those faults, then a broker without persistence).
CHAOS_KILLS ?=
CHAOS_DEVICES ?= 2000
CHAOS_SEED ?=
CHAOS_DIR ?=
CHAOS_WAVES ?= 10,50,100
CHAOS_FAULTS ?=
CHAOS_FAULT_REPEAT ?=
CHAOS_REPLICAS ?=
CHAOS_LEASE ?=

.PHONY: chaos
chaos: test-env ## SIGKILL the real manager CHAOS_KILLS (100) times during rollouts to CHAOS_DEVICES (2,000) devices, or inject CHAOS_FAULTS; check every record exactly and print the table.
	eval "$$(hack/setup-test-env.sh all)" && CHAOS_KILLS=$(or $(CHAOS_KILLS),$(if $(CHAOS_FAULTS),0,100)) \
		CHAOS_DEVICES=$(CHAOS_DEVICES) CHAOS_SEED=$(CHAOS_SEED) CHAOS_DIR=$(CHAOS_DIR) CHAOS_WAVES=$(CHAOS_WAVES) \
		CHAOS_FAULTS=$(CHAOS_FAULTS) CHAOS_FAULT_REPEAT=$(CHAOS_FAULT_REPEAT) CHAOS_REPLICAS=$(CHAOS_REPLICAS) CHAOS_LEASE=$(CHAOS_LEASE) \
		go test -v -count=1 -run '^TestManagerSIGKILL$$' -timeout 4h ./test/chaos/

##@ Build

.PHONY: build
build: ## Build the binaries into bin/.
	go build -o $(LOCALBIN)/ ./cmd/...

.PHONY: run
run: ## Run the manager against the current kubeconfig.
	go run ./cmd/manager

.PHONY: demo
demo: ## Run the playground: control plane, broker, storage, a simulated fleet and a rollout.
	go run ./cmd/otafleet-lab

IMAGE_ARCH ?= $(shell go env GOARCH)

.PHONY: image
image: ## Build the manager's image as a tarball without Docker (bin/manager-image.tar; docker/podman load it) and check its config.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags=-s -o $(LOCALBIN)/image/manager ./cmd/manager
	cd hack/imagebuild && GOWORK=off go run . -binary $(LOCALBIN)/image/manager -arch $(IMAGE_ARCH) \
		-tag $(IMG) -out $(LOCALBIN)/manager-image.tar
	cd hack/imagebuild && GOWORK=off go run . -check $(LOCALBIN)/manager-image.tar

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the current cluster.
	kubectl apply --server-side -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the manager into the current cluster.
	kubectl apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the manager from the current cluster.
	kubectl delete --ignore-not-found -k config/default

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

# go-tool installs PACKAGE@VERSION into the cache once and links it into bin/.
define go-tool
@[ -x "$(TOOLS_CACHE)/$(notdir $(1))-$(3)/$(notdir $(1))" ] || { \
	echo "installing $(2)@$(3)"; \
	GOBIN="$(TOOLS_CACHE)/$(notdir $(1))-$(3)" go install $(2)@$(3); }
@ln -sf "$(TOOLS_CACHE)/$(notdir $(1))-$(3)/$(notdir $(1))" "$(1)"
endef

# go-tool-in-module builds PACKAGE of MODULE@VERSION inside the module's own
# tree, for modules whose replace directives go install refuses (Prometheus).
define go-tool-in-module
@[ -x "$(TOOLS_CACHE)/$(notdir $(1))-$(4)/$(notdir $(1))" ] || { \
	echo "building $(2)/$(3)@$(4)"; \
	dir=$$(go mod download -json $(2)@$(4) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	cd "$$dir" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath \
		-o "$(TOOLS_CACHE)/$(notdir $(1))-$(4)/$(notdir $(1))" ./$(3); }
@ln -sf "$(TOOLS_CACHE)/$(notdir $(1))-$(4)/$(notdir $(1))" "$(1)"
endef

.PHONY: controller-gen
controller-gen: $(LOCALBIN)
	$(call go-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_GEN_VERSION))

.PHONY: golangci-lint
golangci-lint: $(LOCALBIN)
	$(call go-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: promtool
promtool: $(LOCALBIN)
	$(call go-tool-in-module,$(PROMTOOL),github.com/prometheus/prometheus,cmd/promtool,$(PROMTOOL_VERSION))

.PHONY: helm
helm: $(LOCALBIN)
	$(call go-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))
