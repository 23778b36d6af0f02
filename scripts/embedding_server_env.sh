#!/usr/bin/env bash
# A real OpenAI-compatible embedding server for tests/test_embedding_server.py: infinity-emb
# (michaelfeil/infinity, MIT), serving /embeddings from a local model folder, offline, on the CPU.
#
# It lives in its own virtual environment because it pins transformers 4.x and sentence-transformers 3.x
# while clinpred runs on 5.x: a server is a separate process, as it is in production. Every version is
# exact and pip resolves nothing (--no-deps, then pip check), so the environment is the same on every
# machine. torch is installed first as $TORCH (default: the Makefile's pin, which picks the CPU wheel
# where the machine carries one); on another machine pass e.g.
#   TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
#
#   bash scripts/embedding_server_env.sh [DIR]      DIR default: $CLINPRED_EMBEDDING_SERVER_ENV, else
#                                                   .cache/servers/infinity (gitignored)
# Idempotent: a second call with the same pins does nothing. About 75 s on a 2-core machine, 1.4 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-${CLINPRED_EMBEDDING_SERVER_ENV:-.cache/servers/infinity}}"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.13.0}"

PINS="$(cat <<'EOF'
infinity_emb[server,torch]==0.0.78
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
backoff==2.2.1
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.1.8
cloudpickle==3.1.3
distro==1.9.0
fastapi==0.165.0
filelock==4.3.1
fsspec==2026.9.0
h11==0.16.0
hf-xet==1.8.0
httptools==0.9.0
huggingface_hub==0.36.2
idna==3.20
Jinja2==3.1.6
joblib==1.6.0
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
mpmath==1.3.0
narwhals==2.29.0
networkx==3.6.1
numpy==1.26.4
opentelemetry-api==1.45.2
orjson==3.13.0
packaging==26.4
pillow==13.0.0
posthog==7.91.1
prometheus-fastapi-instrumentator==8.1.0
prometheus_client==0.26.0
pydantic==2.14.4
pydantic_core==2.50.5
Pygments==2.21.0
python-dotenv==1.2.4
PyYAML==6.0.4
regex==2026.11.19
requests==2.34.2
rich==13.9.4
safetensors==0.8.0
scikit-learn==1.9.1
scipy==1.17.1
sentence-transformers==3.4.1
shellingham==1.5.4
starlette==1.10.0
sympy==1.14.0
threadpoolctl==3.8.0
tokenizers==0.22.2
tqdm==4.70.1
transformers==4.57.6
typer==0.12.5
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
uvicorn==0.32.1
uvloop==0.23.0
watchfiles==1.3.0
websockets==17.4
EOF
)"

STAMP="$DIR/.clinpred-server-pins"
WANT="$(printf '%s\n%s\n' "$TORCH" "$PINS")"
if [ -x "$DIR/bin/infinity_emb" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "embedding server environment up to date: $DIR"
  exit 0
fi
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
"$PYTHON" -m venv "$DIR"
"$DIR/bin/python" -m pip install -q --upgrade pip
# shellcheck disable=SC2086  # TORCH may carry pip options (--index-url ...)
"$DIR/bin/python" -m pip install -q $TORCH
printf '%s\n' "$PINS" > "$DIR/requirements.txt"
"$DIR/bin/python" -m pip install -q --no-deps -r "$DIR/requirements.txt"
"$DIR/bin/python" -m pip check
"$DIR/bin/infinity_emb" --help > /dev/null
printf '%s\n' "$WANT" > "$STAMP"
echo "embedding server environment ready: $DIR ($("$DIR/bin/python" -c 'import infinity_emb; print("infinity-emb", infinity_emb.__version__)'))"
