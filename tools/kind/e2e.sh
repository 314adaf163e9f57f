#!/usr/bin/env bash
# make e2e-kind: the end-to-end suite against a kind cluster with the operator deployed
# in-cluster from deploy/. Needs Docker, kind and kubectl on the PATH.
#
#  1. creates the kind cluster rollguard-e2e (tools/kind/cluster.yaml), or reuses it;
#  2. builds the image from deploy/Dockerfile and loads it into kind;
#  3. starts the workload simulator and Prometheus on the host; Prometheus listens on the
#     kind network's gateway address so that the in-cluster operator can query it;
#  4. creates the users alice (group ml-oncall) and mallory with client certificates signed by
#     the cluster's CA, as contexts of a kubeconfig of its own;
#  5. applies deploy/, points rollguard-config at that Prometheus, waits for the rollout;
#  6. runs tests/e2e with ROLLGUARD_E2E_OPERATOR=in-cluster.
#
# Not run where there is no Docker engine (the machines this project is developed on): the
# same suite runs in `make test` against the local control plane.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CLUSTER=rollguard-e2e
IMAGE=rollguard:e2e
WORK=${WORK:-$REPO/.dev/kind}
PY=.venv/bin/python

log() { printf '[e2e-kind] %s\n' "$*" >&2; }
for tool in docker kind kubectl openssl; do
  command -v "$tool" >/dev/null || { log "error: $tool is required"; exit 1; }
done
mkdir -p "$WORK"
KUBECONFIG_FILE=$WORK/kubeconfig

if ! kind get clusters | grep -qx "$CLUSTER"; then
  log "creating kind cluster $CLUSTER"
  kind create cluster --config tools/kind/cluster.yaml --kubeconfig "$KUBECONFIG_FILE" --wait 120s
fi
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
kubectl config --kubeconfig "$KUBECONFIG_FILE" rename-context "kind-$CLUSTER" admin >/dev/null 2>&1 || true
K="kubectl --kubeconfig $KUBECONFIG_FILE"

log "building $IMAGE"
docker build -f deploy/Dockerfile -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"
# The examples' model images stand for real model servers: on kind their pods run the pause
# image under those names (the simulator fakes their metrics, as in the local environment).
docker pull -q registry.k8s.io/pause:3.10
for tag in 1.4.2 1.5.0; do
  docker tag registry.k8s.io/pause:3.10 "registry.example.com/payments-risk/fraud-scorer:$tag"
  kind load docker-image "registry.example.com/payments-risk/fraud-scorer:$tag" --name "$CLUSTER"
done

log "users alice (ml-oncall) and mallory"
docker exec "$CLUSTER-control-plane" cat /etc/kubernetes/pki/ca.crt > "$WORK/ca.crt"
docker exec "$CLUSTER-control-plane" cat /etc/kubernetes/pki/ca.key > "$WORK/ca.key"
for user in alice:ml-oncall mallory:; do
  name=${user%%:*}; group=${user#*:}
  subject="/CN=$name${group:+/O=$group}"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/$name.key" -subj "$subject" -out "$WORK/$name.csr" 2>/dev/null
  openssl x509 -req -in "$WORK/$name.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial -days 1 -out "$WORK/$name.crt" 2>/dev/null
  $K config set-credentials "$name" --client-certificate="$WORK/$name.crt" --client-key="$WORK/$name.key" --embed-certs >/dev/null
  $K config set-context "$name" --cluster="kind-$CLUSTER" --user="$name" >/dev/null
done
rm -f "$WORK/ca.key"

GATEWAY=$(docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}')
SIM_PORT=19101
PROM_PORT=19090
log "workload simulator on 127.0.0.1:$SIM_PORT, Prometheus on $GATEWAY:$PROM_PORT"
PYTHONPATH=tools $PY -m devenv.workload.server --kubeconfig "$KUBECONFIG_FILE" --context admin \
  --host 127.0.0.1 --port "$SIM_PORT" --seed 7 > "$WORK/simulator.log" 2>&1 &
SIM_PID=$!
cat > "$WORK/prometheus.yml" <<PROM
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: model-serving
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:$SIM_PORT"]}]
PROM
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --web.listen-address="$GATEWAY:$PROM_PORT" --log.level=warn > "$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
trap 'kill $SIM_PID $PROM_PID 2>/dev/null || true' EXIT

log "applying deploy/"
for _ in 1 2 3; do
  $K apply --server-side --force-conflicts -k deploy/ && break
  $K wait --for=condition=Established --timeout=60s crd --all || true
done
$K -n rollguard-system set image deployment/rollguard operator="$IMAGE"
$K -n rollguard-system patch configmap rollguard-config --type=merge -p "{\"data\": {
  \"ROLLGUARD_PROMETHEUS_URL\": \"http://$GATEWAY:$PROM_PORT\",
  \"ROLLGUARD_SCRAPE_INTERVAL\": \"1\", \"ROLLGUARD_DECISION_POLL\": \"1\"}}"
$K -n rollguard-system rollout restart deployment/rollguard
$K -n rollguard-system rollout status deployment/rollguard --timeout=180s

log "running tests/e2e against the in-cluster operator"
ROLLGUARD_KUBECONFIG=$KUBECONFIG_FILE \
ROLLGUARD_PROMETHEUS_URL=http://$GATEWAY:$PROM_PORT \
ROLLGUARD_SIMULATOR_URL=http://127.0.0.1:$SIM_PORT \
ROLLGUARD_E2E_OPERATOR=in-cluster \
  .venv/bin/pytest tests/e2e -q -p no:cacheprovider
