# deploy/local/infra.mk — the local real stack (Kafka, MariaDB, PostgreSQL+FerretDB,
# Cassandra), included by the root Makefile. deploy/local/infra.sh does the work;
# downloads and server data live in $(SAGASUITE_HOME) (default ~/.cache/sagasuite).
# Pick components with INFRA="kafka mariadb" (default: all).

INFRA_SH := deploy/local/infra.sh
INFRA ?=

.PHONY: infra-install infra-up infra-down infra-status infra-env

infra-install: ## install the local stack's servers (apt packages, Maven jars, FerretDB launcher) without starting them
	$(INFRA_SH) install $(INFRA)

infra-up: ## start the local real stack (Kafka, MariaDB, PostgreSQL+FerretDB, Cassandra); reuses running servers
	$(INFRA_SH) up $(INFRA)

infra-down: ## stop the local real stack
	$(INFRA_SH) down $(INFRA)

infra-status: ## one line per local stack server: running or stopped, pid, address, RSS
	@$(INFRA_SH) status $(INFRA)

infra-env: ## print the export lines that point tests at the local stack (eval "$(make -s infra-env)")
	@$(INFRA_SH) env
