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
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tollbooth /usr/local/bin/tollbooth
# Fly mounts volumes owned by root, so the process runs as the VM's root to write /data.
WORKDIR /data
ENV HOST=0.0.0.0 PORT=8080 DATABASE_URL=sqlite:///data/tollbooth.db
# glibc serves buffers over 128 KiB (the view's tables, a flush's rows) from their own mappings
# and gives them back when freed; by default it raises that threshold after the first such
# free and then keeps freed buffers in its heap: 10-17 MB more resident with 100,000 keys
# (README, "Performance").
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072
EXPOSE 8080
CMD ["tollbooth", "serve"]
