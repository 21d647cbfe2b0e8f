# Build stage: the toolchain pinned by rust-toolchain.toml, a locked release build.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin scimgate

# Runtime stage: a small Debian with the one binary, run as an unprivileged user.
FROM debian:bookworm-slim
# The data folder holds personal data, password hashes and keys: its owner only (0700).
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin scimgate \
    && mkdir -p /data && chown scimgate:scimgate /data && chmod 700 /data
COPY --from=build /src/target/release/scimgate /usr/local/bin/scimgate
USER scimgate
VOLUME ["/data"]
EXPOSE 8080
# Speaks HTTPS when the configuration it reads (SCIMGATE_TLS_CERT, or a file named by
# SCIMGATE_CONFIG) sets tls_cert; a configuration given only as `serve --config` is not seen
# here, so set it through SCIMGATE_CONFIG (or add `--tls` to this line).
HEALTHCHECK --interval=30s --timeout=5s CMD ["scimgate", "healthcheck", "--addr", "127.0.0.1:8080"]
ENTRYPOINT ["scimgate"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data", "/data"]
