# Build stage: the toolchain pinned by rust-toolchain.toml, a locked release build.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin scimgate

# Runtime stage: a small Debian with the one binary, run as an unprivileged user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin scimgate \
    && mkdir -p /data && chown scimgate:scimgate /data
COPY --from=build /src/target/release/scimgate /usr/local/bin/scimgate
USER scimgate
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["scimgate", "healthcheck", "--addr", "127.0.0.1:8080"]
ENTRYPOINT ["scimgate"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data", "/data"]
