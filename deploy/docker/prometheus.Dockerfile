# Prometheus from Debian's package, on the same base as moe-serve's image,
# for the compose cluster (deploy/compose): built by
# `deploy/docker/build-image.sh --prometheus`.
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus && \
    rm -rf /var/lib/apt/lists/*
USER prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
