# CKA Lens as a Hugging Face Space (Docker SDK; the Space's README sets `sdk: docker` and `app_port: 8501`).
# CPU by default; for a GPU Space build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# BASE and EXTRA_INDEX exist for `make container-test`, which builds on a machine without a registry.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRA_INDEX=""
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    CKA_LENS_DISABLE_FILE_SPECS=1 \
    HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH

# CKA_LENS_DISABLE_FILE_SPECS: on a public server a shared link must not make the app read its own disk.
# Spaces run the container as uid 1000: that user owns its home (caches, the result store), not the app.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# torch from its own index first (the CPU wheel is ~10x smaller than PyPI's CUDA one); the pins in
# requirements.txt then find it already installed (2.14.1+cpu satisfies ==2.14.1).
COPY requirements.txt .
RUN PIP_EXTRA_INDEX_URL="$EXTRA_INDEX" pip install --index-url "$TORCH_INDEX" \
        "$(grep -E '^torch==' requirements.txt)" "$(grep -E '^torchvision==' requirements.txt)" \
    && PIP_EXTRA_INDEX_URL="$EXTRA_INDEX" pip install -r requirements.txt

# The app belongs to root: the user running it can read it, never change it.
COPY . .
USER user

# The default comparison (the bundled pair, the default subset and options) is computed now, into the
# user's result store, so a first visitor's first chart needs no computation.
RUN python -m cli compare --a bundled:simclr-resnet18-w16 --b bundled:supervised-resnet18-w16 \
        --out /tmp/default-result.json && rm /tmp/default-result.json

EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"

# HF_HOME (Hub downloads) and CKA_LENS_CACHE (CIFAR-10 train split, the result store) go on the persistent
# /data volume when the Space has one; it is mounted at run time, so this is decided here, not at build time,
# and the build's stored results are copied there once.
# ui.serve is `streamlit run app.py`, listening at once while it loads the imports, the default networks and
# the default result (shipped in data/shipped) behind it.
# XSRF protection is off because the Space shows the app in an iframe, where Streamlit's XSRF cookie is
# blocked and every upload would fail with 403 (huggingface.co/docs/hub/spaces-cookie-limitations).
CMD if [ -d /data ] && [ -w /data ]; then \
        export HF_HOME=/data/huggingface CKA_LENS_CACHE=/data/cka-lens; \
        mkdir -p /data/cka-lens/store && cp -n /home/user/.cache/cka-lens/store/* /data/cka-lens/store/; \
    fi; \
    exec python -m ui.serve --server.port 8501 --server.address 0.0.0.0 --server.headless true \
        --browser.gatherUsageStats false --server.enableXsrfProtection false
