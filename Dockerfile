# Multi-stage build; both stages on Debian bookworm so the binary's glibc matches.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
# Compiled in: the pages' templates and their stylesheet and script.
COPY templates ./templates
COPY static ./static
# Cargo.toml names the benchmark programs in bench/; they are not built here.
COPY bench ./bench
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tollbooth
COPY --from=build /src/target/release/tollbooth /usr/local/lib/tollbooth/tollbooth
# `tollbooth` runs the binary as the user tollbooth: Fly mounts volumes owned by root, so the
# wrapper gives /data to that user, then drops root's privileges (setpriv, from util-linux).
COPY deploy/tollbooth.sh /usr/local/bin/tollbooth
WORKDIR /data
ENV HOST=0.0.0.0 PORT=8080 DATABASE_URL=sqlite:///data/tollbooth.db
# glibc serves buffers over 128 KiB (the view's tables, a flush's rows) from their own mappings
# and gives them back when freed; by default it raises that threshold after the first such
# free and then keeps freed buffers in its heap: 10-17 MB more resident with 100,000 keys
# (docs/performance.md).
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072
# 8080: the service; 9091: the metrics listener, when METRICS_ADDR is set (fly.toml sets it).
EXPOSE 8080 9091
CMD ["tollbooth", "serve"]
