# CKA Lens as a Hugging Face Space (Docker SDK; the Space's README sets `sdk: docker` and `app_port: 8501`).
# CPU by default; for a GPU Space build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CKA_LENS_DISABLE_FILE_SPECS=1 \
    HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH

# CKA_LENS_DISABLE_FILE_SPECS: on a public server a shared link must not make the app read its own disk.
# Spaces run the container as uid 1000: give that user the app and its caches.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# torch from its own index first (the CPU wheel is ~10x smaller than PyPI's CUDA one); the pins in
# requirements.txt then find it already installed (2.14.1+cpu satisfies ==2.14.1).
COPY --chown=user requirements.txt .
RUN pip install --index-url "$TORCH_INDEX" \
        "$(grep -E '^torch==' requirements.txt)" "$(grep -E '^torchvision==' requirements.txt)" \
    && pip install -r requirements.txt

COPY --chown=user . .
USER user

EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"

# HF_HOME (Hub downloads) and CKA_LENS_CACHE (CIFAR-10 train split) go on the persistent /data volume when the
# Space has one; it is mounted at run time, so this is decided here, not at build time.
# XSRF protection is off because the Space shows the app in an iframe, where Streamlit's XSRF cookie is
# blocked and every upload would fail with 403 (huggingface.co/docs/hub/spaces-cookie-limitations).
CMD if [ -d /data ] && [ -w /data ]; then \
        export HF_HOME=/data/huggingface CKA_LENS_CACHE=/data/cka-lens; \
    fi; \
    exec streamlit run app.py --server.port 8501 --server.address 0.0.0.0 --server.headless true \
        --browser.gatherUsageStats false --server.enableXsrfProtection false
