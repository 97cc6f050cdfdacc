#!/bin/sh
# Idempotent set-up against the Prefect server in PREFECT_API_URL: Firebreak's schema, the
# work pool, one global concurrency limit per platform, and the deployments.
set -eu
cd /opt/firebreak
firebreak db upgrade
prefect work-pool create firebreak --type process 2>/dev/null || echo "work pool firebreak exists"
prefect work-queue create respond --pool firebreak --priority 1 2>/dev/null || true
prefect work-queue create monitor --pool firebreak --priority 10 2>/dev/null || true
python - <<'PY'
import subprocess, yaml
for name, limit in yaml.safe_load(open("deploy/concurrency-limits.yaml"))["limits"].items():
    if subprocess.run(["prefect", "gcl", "inspect", name], capture_output=True).returncode == 0:
        subprocess.run(["prefect", "gcl", "update", name, "--limit", str(limit)], check=True)
    else:
        subprocess.run(["prefect", "gcl", "create", name, "--limit", str(limit)], check=True)
PY
prefect --no-prompt deploy --all --prefect-file deploy/prefect.yaml
