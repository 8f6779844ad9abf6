# Source me: the environment framepipe's build and tests use (libtorch from the torch venv).
export FRAMEPIPE_VENV=${FRAMEPIPE_VENV:-/opt/framepipe/venv}
export LIBTORCH_USE_PYTORCH=1
# Where set-up puts converted model folders (scripts/convert_transnetv2.py); the framepipe binary
# looks for $FRAMEPIPE_MODELS/transnetv2 by default.
export FRAMEPIPE_MODELS=${FRAMEPIPE_MODELS:-/opt/framepipe/models}
export LIBTORCH_BYPASS_VERSION_CHECK=${LIBTORCH_BYPASS_VERSION_CHECK:-0}
case ":$PATH:" in *":$FRAMEPIPE_VENV/bin:"*) ;; *) export PATH="$FRAMEPIPE_VENV/bin:$PATH" ;; esac
