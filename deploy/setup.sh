#!/bin/sh
# Idempotent set-up against the Prefect server in PREFECT_API_URL: Firebreak's schema, the
# work pool, one global concurrency limit per platform, and the deployments.
set -eu
cd /opt/firebreak
firebreak db upgrade
prefect work-pool create firebreak --type process 2>/dev/null || echo "work pool firebreak exists"
prefect work-queue create respond --pool firebreak --priority 1 2>/dev/null || true
prefect work-queue create monitor --pool firebreak --priority 10 2>/dev/null || true
firebreak limits apply --file deploy/concurrency-limits.yaml
prefect --no-prompt deploy --all --prefect-file deploy/prefect.yaml
