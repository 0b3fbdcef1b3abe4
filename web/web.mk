# web/web.mk — the browser console, included by the root Makefile.
#
#   make web-deps    npm ci of web/package-lock.json into web/node_modules (git-ignored; reaches the npm registry)
#   make web-gen     regenerate web/src/gen (committed) from proto/ with buf + the pinned protoc-gen-es
#   make web-check   tsc --noEmit over web/src
#   make web-bundle  esbuild bundle into web/dist (committed; embedded by the web Go package)
#   make web         all of them, in that order
#
# make test runs web-deps first, so web's Go tests (typecheck, generation and
# bundle staleness) find their tools on a fresh machine.

WEB_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
WEB_STAMP := $(WEB_ROOT)/node_modules/.package-lock.json

.PHONY: web web-deps web-gen web-check web-bundle

# npm writes node_modules/.package-lock.json on every install: a lock file newer
# than it means the pinned set changed, so npm ci runs again; otherwise nothing.
$(WEB_STAMP): $(WEB_ROOT)/package-lock.json $(WEB_ROOT)/package.json
	@command -v npm >/dev/null || { echo "web-deps: npm not found (install Node.js 20+ and npm)" >&2; exit 1; }
	cd $(WEB_ROOT) && npm ci --no-audit --no-fund
	@touch $@

web-deps: $(WEB_STAMP) ## install the console's pinned npm packages (npm ci) into web/node_modules

web-gen: web-deps proto-tools proto-include ## regenerate the console's TypeScript clients in web/src/gen (protoc-gen-es via buf)
	cd $(WEB_ROOT)/.. && buf generate --template web/buf.gen.yaml

web-check: web-deps ## type-check the console (tsc --noEmit)
	cd $(WEB_ROOT) && node_modules/.bin/tsc --noEmit -p .

web-bundle: web-deps ## bundle the console into web/dist (esbuild)
	cd $(WEB_ROOT) && node build.mjs

web: web-gen web-check web-bundle ## the console: npm ci, generate clients, type-check, bundle into web/dist (commit src/gen and dist)

test: web-deps
