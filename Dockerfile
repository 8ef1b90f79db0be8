# syntax=docker/dockerfile:1.7
# One image for every touchpath service; the subcommand picks the role:
#   docker run touchpath:local collector | processor | api
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: install touchpath and its dependencies into a self-contained virtualenv ------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/touchpath
ENV PATH=/opt/touchpath/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY touchpath ./touchpath
COPY collector ./collector
COPY processor ./processor
COPY api ./api
COPY infra ./infra
COPY store ./store
COPY dispatcher ./dispatcher
COPY launcher ./launcher
RUN pip install . \
    && python -c "import touchpath, collector, processor, dispatcher, api, infra, store, launcher"

# --- runtime: the virtualenv only, run as an unprivileged user ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="touchpath" \
      org.opencontainers.image.description="touchpath collector, processor and api services" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 touchpath \
    && useradd --system --uid 10001 --gid touchpath --no-create-home \
       --home-dir /var/lib/touchpath --shell /usr/sbin/nologin touchpath \
    && install -d -o touchpath -g touchpath -m 0750 /var/lib/touchpath

COPY --from=build /opt/touchpath /opt/touchpath

ENV PATH=/opt/touchpath/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOUCHPATH_DATA_DIR=/var/lib/touchpath \
    TOUCHPATH_COLLECTOR_HOST=0.0.0.0 \
    TOUCHPATH_API_HOST=0.0.0.0

WORKDIR /var/lib/touchpath
USER 10001:10001

# collector, api, processor metrics/health
EXPOSE 8080 8081 8082

ENTRYPOINT ["touchpath"]
CMD ["--help"]
