#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds, and runs every test.
#   bash scripts/test.sh            # all tests
#   bash scripts/test.sh foundation # only tests whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v zstd >/dev/null || need_apt+=(zstd)
# Mesa's lavapipe: a Vulkan driver on the CPU, so the wgpu backend is checked without a GPU.
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers libvulkan1)
if ((${#need_apt[@]})); then
    echo "installing ${need_apt[*]} (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Python peers for parity tests (sacrebleu, rouge-score, pyarrow, numpy …), in a local venv.
# Each module lists its own in scripts/python-requirements/<module>.txt.
reqs=(scripts/python-requirements/*.txt)
if [ -e "${reqs[0]}" ]; then
    if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
    # No wheel cache: torch's CUDA wheels would otherwise sit on disk twice (venv and cache).
    .venv/bin/pip install -q --no-cache-dir --disable-pip-version-check $(printf -- '-r %s ' "${reqs[@]}")
    export YUNMIN_PYTHON="$PWD/.venv/bin/python"
fi

if [ -z "${RUSTC_WRAPPER:-}" ] && command -v sccache >/dev/null; then export RUSTC_WRAPPER=sccache; fi
export CARGO_TERM_COLOR=never
# A one-off build gains nothing from incremental caches, which would double the target's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | tail -1 | awk '{print "disk before the build: " $4 " free of " $2}'
# The whole workspace, so the test build below reuses the same dependency builds (with `-p yunmin`
# features unify differently and every dependency is compiled twice).
cargo build --workspace
status=0
cargo test --workspace --no-fail-fast -- "$@" || status=$?
df -h . | tail -1 | awk '{print "disk after the tests: " $4 " free of " $2}'
# The wgpu backend, built and checked against the CPU (logits and gradients) on lavapipe.
if [ $# -eq 0 ]; then
    if [ "${YUNMIN_TEST_PRUNE:-0}" = 1 ]; then
        # CI: the wgpu feature changes features of shared dependencies, so this is a second full
        # build; on a small disk drop the first one (and the Python venv) before it.
        echo "YUNMIN_TEST_PRUNE=1: removing target/debug and .venv before the wgpu build"
        rm -rf target/debug .venv
        cargo test -p yunmin-core --features wgpu --lib -- model::tests::wgpu || status=$?
    else
        # `--workspace` keeps the dependencies' features as in the build above.
        cargo test --workspace --features yunmin-core/wgpu --lib -- model::tests::wgpu || status=$?
    fi
fi
exit $status
