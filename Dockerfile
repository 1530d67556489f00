# syntax=docker/dockerfile:1
# The Strata image: one static-ish `strata` binary on distroless (no shell, non-root). Every role is a
# subcommand (`strata broker`, `strata bookie`, `strata init-cluster`, ...); the Helm chart runs no
# scripts, so nothing else is needed in the image.
#
#   docker build -t strata:0.1.0 .
#
# Stages: chef (cargo-chef), planner (dependency recipe), builder (dependencies in their own cached
# layer, then the workspace), runtime (distroless cc: glibc, libgcc, CA certificates).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install --locked cargo-chef --version "^0.1"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# protoc for the build scripts comes from the protoc-bin-vendored crate through tools/protoc
COPY .cargo .cargo
COPY tools tools
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin strata
COPY . .
RUN cargo build --release --locked --bin strata \
    && strip target/release/strata \
    && ./target/release/strata --version

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Pulsar-compatible messaging: broker, bookie and tools in one binary" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /src/target/release/strata /usr/local/bin/strata
USER 65532:65532
WORKDIR /var/lib/strata
# Pulsar protocol, HTTP (admin, lookup, metrics, probes), bookie gRPC and HTTP
EXPOSE 6650 8080 3181 8000
# Health is role-specific (/health and /ready on each role's HTTP port): Kubernetes probes check it,
# see helm/strata. The image itself declares none.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["--help"]
