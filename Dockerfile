# syntax=docker/dockerfile:1
#
# magma-monitor container image.
#
#   docker build -t magma-monitor:0.1.0 .
#   docker run --rm -p 8000:8000 -p 9464:9464 magma-monitor:0.1.0 --upstream http://model:8080
#
# Stage 1 builds a locked release binary; stage 2 is distroless "cc" (glibc and
# libgcc, no shell, no package manager), running as the distroless nonroot user.
# NVML (libnvidia-ml.so.1) is not in the image: the NVIDIA container runtime
# mounts it from the host when the pod asks for a GPU.

# The newest locked dependencies need Rust 1.95 (see their rust-version fields).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole tree (minus .dockerignore) so every target Cargo.toml declares is present;
# cache mounts keep the registry and the target directory between builds.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin magma-monitor \
 && install -D -m 0755 target/release/magma-monitor /out/magma-monitor

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="magma-monitor" \
      org.opencontainers.image.description="Transparent reverse-proxy sidecar that monitors multimodal model servers (Magma): latency, errors, drift, quality, GPU." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/magma-monitor /usr/local/bin/magma-monitor
# 65532 is distroless' "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
ENV MAGMA_MONITOR_LISTEN=0.0.0.0:8000 \
    MAGMA_MONITOR_ADMIN_LISTEN=0.0.0.0:9464 \
    MAGMA_MONITOR_LOG_FORMAT=json
# 8000: client traffic (proxied to the model server); 9464: /metrics, /healthz, /readyz, /api.
EXPOSE 8000 9464
# With no arguments the binary runs the proxy; arguments given to `docker run` are its flags.
ENTRYPOINT ["/usr/local/bin/magma-monitor"]
