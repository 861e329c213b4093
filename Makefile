# K2 — common tasks. `make test` is the full suite (what CI runs); see
# scripts/test.sh and scripts/test-services.sh.

GO ?= go
# Extra go test flags and packages, e.g. make test TESTFLAGS='-run TestLake -v ./internal/lake/'
# (packages default to ./...)
TESTFLAGS ?=

# Service settings that test-unit hides so that integration tests skip.
SERVICE_ENV := K2_TEST_POSTGRES_URL K2_TEST_S3_ENDPOINT K2_TEST_S3_BUCKET \
	K2_TEST_S3_ACCESS_KEY K2_TEST_S3_SECRET_KEY K2_TEST_S3_REGION K2_TEST_PYTHON \
	K2_TEST_KAFKA_BROKERS K2_TEST_KAFKA_TOOLS K2_TEST_JAVA K2_TEST_PROMTOOL K2_TEST_REQUIRE_SERVICES \
	K2_TEST_KAFKA_SASL_BROKERS K2_TEST_KAFKA_SSL_BROKERS K2_TEST_KAFKA_SASL_USER \
	K2_TEST_KAFKA_SASL_PASSWORD K2_TEST_CA_FILE K2_TEST_CLIENT_CERT_FILE K2_TEST_CLIENT_KEY_FILE \
	K2_TEST_POSTGRES_TLS_URL K2_TEST_CHROMIUM

.PHONY: build web up demo bench test test-unit services-start services-stop services-status services-reset

# k2 version, /version and k2_build_info name the build.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/k2-market-data/k2/internal/ops.Version=$(VERSION) -X github.com/k2-market-data/k2/internal/ops.Revision=$(REVISION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/k2 ./cmd/k2

# The dashboard's assets (web/dist, embedded in k2): web/src bundled by
# esbuild. Without node the committed web/dist serves as it is.
# npm ci only when web/node_modules is missing or older than the lock file.
web:
	@if command -v node >/dev/null 2>&1; then cd web && \
	{ [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ] || npm ci --no-audit --no-fund; } && \
	npm run build; \
	else echo "make web: node is not installed; k2 serves the committed web/dist"; fi

# The main job: K2 on this machine with a live synthetic market (Ctrl-C
# stops it); the dashboard, the API, /health and /metrics on
# http://127.0.0.1:8000. ARGS are passed on, e.g.
# make up ARGS='--feed binance --symbols BTCUSDT'
up: web build
	bin/k2 up $(ARGS)

# Load sample data into the lake directly and query it.
# ARGS may name data to load instead of the synthetic market, e.g.
# make demo ARGS=../shared/data/asx
demo: build
	bin/k2 demo $(ARGS)

# The lake benchmark report (1M and 10M synthetic trades).
bench: build
	bin/k2 --log-level warn bench lake

# Full suite against real PostgreSQL, S3 (versitygw), Kafka and PyIceberg.
test:
	scripts/test.sh $(TESTFLAGS)

# Unit tests only: no services; tests that need one skip.
test-unit:
	env $(addprefix -u ,$(SERVICE_ENV)) $(GO) test $(if $(filter ./% ../% github.com/%,$(TESTFLAGS)),,./...) $(TESTFLAGS)

services-start:
	scripts/test-services.sh start

services-stop:
	scripts/test-services.sh stop

services-status:
	scripts/test-services.sh status

# Stop the services and delete their data (PostgreSQL cluster, S3 objects, Kafka logs).
services-reset:
	scripts/test-services.sh reset
